/* config.c: option table, flags over file, clear errors with exit code 2. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"
#include "testutil.h"

static int load(config_t *cfg, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "herald";
    for (; *args != NULL; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    /* config_load prints errors to stderr; keep the test log readable. */
    fflush(stderr);
    return config_load(cfg, argc, argv);
}

static char *write_file(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/herald-config-test-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? path : NULL;
}

static void test_hostport(void)
{
    struct sockaddr_storage ss;
    CHECK_INTEQ(config_parse_hostport("127.0.0.1:8080", &ss), 0);
    CHECK_INTEQ(ss.ss_family, AF_INET);
    CHECK_INTEQ(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
    CHECK_INTEQ(config_parse_hostport("[::1]:8443", &ss), 0);
    CHECK_INTEQ(ss.ss_family, AF_INET6);
    CHECK_INTEQ(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 8443);
    CHECK(config_parse_hostport("::1:8443", &ss) != 0); /* v6 needs brackets */
    CHECK(config_parse_hostport("127.0.0.1", &ss) != 0);
    CHECK(config_parse_hostport("127.0.0.1:99999", &ss) != 0);
    CHECK(config_parse_hostport("127.0.0.1:", &ss) != 0);
    CHECK(config_parse_hostport("[::1]8443", &ss) != 0);
}

static void test_defaults_and_flags(void)
{
    config_t cfg;
    const char *a1[] = {"--origin=http://127.0.0.1:9000", NULL};
    CHECK_INTEQ(load(&cfg, a1), 0);
    CHECK_INTEQ(cfg.origin_port, 9000);
    CHECK_STREQ(cfg.origin_host, "127.0.0.1");
    CHECK_INTEQ(cfg.nlisten, 1);
    CHECK(cfg.workers >= 1);
    CHECK(cfg.origin_timeout == 30.0);
    CHECK(!cfg.trust_forwarded);

    const char *a2[] = {"--origin=http://localhost:81",
                        "--listen=127.0.0.1:1,tls",
                        "--listen=[::1]:2",
                        "--listen=127.0.0.1:3,h2c",
                        "--tls-cert=c",
                        "--tls-key=k",
                        "--origin-timeout=0.25",
                        "--trust-forwarded=on",
                        "--workers=3",
                        "--log-level=debug",
                        NULL};
    CHECK_INTEQ(load(&cfg, a2), 0);
    CHECK_INTEQ(cfg.nlisten, 3);
    CHECK(cfg.listen[0].tls && !cfg.listen[0].h2c);
    CHECK(!cfg.listen[1].tls && !cfg.listen[1].h2c);
    CHECK_INTEQ(cfg.listen[1].addr.ss_family, AF_INET6);
    CHECK(!cfg.listen[2].tls && cfg.listen[2].h2c);
    CHECK(cfg.origin_timeout == 0.25);
    CHECK(cfg.trust_forwarded);
    CHECK_INTEQ(cfg.workers, 3);
    CHECK_INTEQ(cfg.log_level, LOG_LEVEL_DEBUG);
}

static void test_errors(void)
{
    config_t cfg;
    const char *none[] = {NULL};
    CHECK_INTEQ(load(&cfg, none), 2); /* --origin required */
    const char *bad[][3] = {
        {"--origin=http://127.0.0.1:1", "--bogus=1", NULL},
        {"--origin=http://127.0.0.1:1", "--trust-forwarded=yes", NULL},
        {"--origin=http://127.0.0.1:1", "--origin-timeout=-1", NULL},
        {"--origin=http://127.0.0.1:1", "--workers=1.5", NULL},
        {"--origin=https://127.0.0.1:1", NULL, NULL},
        {"--origin=http://127.0.0.1:1", "--listen=127.0.0.1:1,tls", NULL}, /* no cert */
        {"--origin=http://127.0.0.1:1", "--listen=nonsense", NULL},
        {"--origin=http://127.0.0.1:1", "--listen=127.0.0.1:1,h2", NULL},
        {"--origin=http://127.0.0.1:1", "--listen=127.0.0.1:1,tls,h2c", NULL},
        {"--origin=http://127.0.0.1:1", "--log-level=loud", NULL},
        {"--origin=http://127.0.0.1:1", "--max-header-size=1x", NULL},
        /* strtod reads these as numbers: NaN is in no range, inf above every one */
        {"--origin=http://127.0.0.1:1", "--push-budget=nan", NULL},
        {"--origin=http://127.0.0.1:1", "--push-budget=NaNk", NULL},
        {"--origin=http://127.0.0.1:1", "--max-header-size=inf", NULL},
        {"--origin=http://127.0.0.1:1", "--bandwidth-hint=nan", NULL},
        {"--origin=http://127.0.0.1:1", "--bandwidth-hint=-nanm", NULL},
        {"--origin=http://127.0.0.1:1", "--origin-timeout=nan", NULL},
        {"--origin=http://127.0.0.1:1", "--min-confidence=nan", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_INTEQ(load(&cfg, bad[i]), 2);
}

static void test_file(void)
{
    config_t cfg;
    char *path = write_file("# a comment\n\norigin = http://127.0.0.1:7000\n"
                            "listen = 127.0.0.1:7001\nlisten = 127.0.0.1:7002\n"
                            "origin-timeout = 5\n  idle-timeout = 7.5  # trailing\n");
    CHECK(path != NULL);
    char flag[128];
    snprintf(flag, sizeof(flag), "--config=%s", path);
    const char *a1[] = {flag, "--origin-timeout=9", NULL};
    /* "idle-timeout = 7.5  # trailing" is not a number: trailing comments are not allowed. */
    CHECK_INTEQ(load(&cfg, a1), 2);
    unlink(path);

    path = write_file("origin = http://127.0.0.1:7000\nlisten = 127.0.0.1:7001\n"
                      "listen = 127.0.0.1:7002\norigin-timeout = 5\n");
    snprintf(flag, sizeof(flag), "--config=%s", path);
    const char *a2[] = {flag, "--origin-timeout=9", NULL};
    CHECK_INTEQ(load(&cfg, a2), 0);
    CHECK(cfg.origin_timeout == 9.0); /* the flag wins */
    CHECK_INTEQ(cfg.nlisten, 2);      /* the file's listens replace the default */
    const char *a3[] = {flag, "--listen=127.0.0.1:7003", NULL};
    CHECK_INTEQ(load(&cfg, a3), 0);
    CHECK_INTEQ(cfg.nlisten, 1); /* flags replace the file's listens */
    unlink(path);

    path = write_file("origin = http://127.0.0.1:7000\nno equals sign here\n");
    snprintf(flag, sizeof(flag), "--config=%s", path);
    const char *a4[] = {flag, NULL};
    CHECK_INTEQ(load(&cfg, a4), 2);
    unlink(path);

    const char *a5[] = {"--config=/nonexistent/herald.conf", NULL};
    CHECK_INTEQ(load(&cfg, a5), 2);
}

/* SIGHUP support: what changed, what is applied, what needs a restart. */
static void test_reload_diff(void)
{
    config_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    const char *base[] = {"--origin=http://127.0.0.1:9", "--push-budget=1k", NULL};
    const char *next[] = {"--origin=http://127.0.0.1:10", "--push-budget=2k", "--workers=7",
                          "--log-level=warn", NULL};
    CHECK_INTEQ(load(a, base), 0);
    CHECK_INTEQ(load(b, next), 0);
    char reloaded[256], restart[256];
    CHECK_INTEQ((int)config_diff(a, b, reloaded, sizeof(reloaded), restart, sizeof(restart)), 4);
    CHECK_STREQ(reloaded, "log-level, push-budget");
    CHECK_STREQ(restart, "origin, workers");
    CHECK_INTEQ((int)config_diff(a, a, reloaded, sizeof(reloaded), restart, sizeof(restart)), 0);
    CHECK_STREQ(reloaded, "");
    int workers = a->workers;
    config_apply_reload(a, b);
    CHECK_INTEQ((int)a->push_budget, 2048);
    CHECK_INTEQ((int)a->log_level, (int)LOG_LEVEL_WARN);
    CHECK_INTEQ(a->workers, workers); /* restart-only: kept */
    CHECK_INTEQ(a->origin_port, 9);   /* restart-only: kept */
    free(a);
    free(b);
}

int main(void)
{
    test_reload_diff();
    test_hostport();
    test_defaults_and_flags();
    test_errors();
    test_file();
    return TESTUTIL_SUMMARY();
}
