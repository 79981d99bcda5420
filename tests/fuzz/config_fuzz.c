/*
 * libFuzzer target for proxy/config.c, which reads the config file (and the
 * command line). Input: the file's bytes, then optionally a NUL and
 * command-line flags, one per line. The file is handed over as
 * /proc/self/fd/N of a memfd, as --config would name a real file.
 *
 * Host names in listen/origin values would be resolved with getaddrinfo;
 * this target defines its own getaddrinfo that resolves nothing, so fuzzing
 * never waits on a resolver (numeric addresses still parse).
 *
 * Properties: config_load returns 0 (then every value is in its range), 2
 * (bad input: it printed why), never anything else, and never crashes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proxy/config.h"

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    (void)node, (void)service, (void)hints;
    *res = NULL;
    return EAI_NONAME;
}

void freeaddrinfo(struct addrinfo *res)
{
    (void)res;
}

static int fd = -1;
static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        fd = memfd_create("herald-config-fuzz", 0);
        devnull = fopen("/dev/null", "w");
        if (fd < 0 || devnull == NULL)
            abort();
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t flen = nul != NULL ? (size_t)(nul - data) : size;
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, flen, 0) != (ssize_t)flen)
        abort();

    enum { MAXARGS = 16 };
    char *argv[MAXARGS + 3];
    char cfgarg[64];
    int argc = 0;
    argv[argc++] = "herald";
    snprintf(cfgarg, sizeof(cfgarg), "--config=/proc/self/fd/%d", fd);
    argv[argc++] = cfgarg;
    char *flags = NULL;
    if (nul != NULL) {
        size_t n = size - flen - 1;
        flags = malloc(n + 1);
        if (flags == NULL)
            return 0;
        memcpy(flags, nul + 1, n);
        flags[n] = '\0';
        char *save = NULL;
        for (char *t = strtok_r(flags, "\n", &save); t != NULL && argc < MAXARGS + 2;
             t = strtok_r(NULL, "\n", &save)) {
            /* these print to stdout and return 1: not the parser */
            if (strcmp(t, "--help") == 0 || strcmp(t, "-h") == 0 ||
                strcmp(t, "--print-config") == 0 || strcmp(t, "--version") == 0 ||
                strncmp(t, "--config=", 9) == 0)
                continue;
            argv[argc++] = t;
        }
    }
    argv[argc] = NULL;

    static config_t cfg, again;
    FILE *err = stderr;
    stderr = devnull; /* config_load explains each refusal on stderr */
    int rc = config_load(&cfg, argc, argv);
    int rc2 = config_load(&again, argc, argv);
    stderr = err;
    if ((rc != 0 && rc != 2) || rc2 != rc)
        abort();
    if (rc == 0) {
        /* every value within its option's range (NaN is in none) */
        if (cfg.nlisten < 1 || cfg.nlisten > CONFIG_MAX_LISTEN || cfg.workers < 1 ||
            cfg.workers > 256 || cfg.origin_host[0] == '\0' ||
            !(cfg.min_confidence >= 0 && cfg.min_confidence <= 1) ||
            !(cfg.explore >= 0 && cfg.explore <= 1) ||
            !(cfg.learn_window >= 0.01 && cfg.learn_window <= 600) ||
            !(cfg.origin_timeout >= 0.001 && cfg.origin_timeout <= 86400) ||
            !(cfg.state_interval >= 0.05 && cfg.state_interval <= 86400) ||
            cfg.max_header_size < 1024 || cfg.max_header_size > 16 * 1024 * 1024 ||
            cfg.push_budget > 1024u * 1024 * 1024 ||
            (cfg.bandwidth_hint != 0 && cfg.bandwidth_hint < 1000) || /* 0: auto, measured */
            cfg.bandwidth_hint > 1000000000000ull || cfg.max_concurrent_streams < 1 ||
            cfg.max_concurrent_streams > 10000)
            abort();
        /* the same input gives the same config: nothing read uninitialised */
        if (memcmp(&cfg, &again, sizeof(cfg)) != 0)
            abort();
    }
    free(flags);
    return 0;
}
