/*
 * The option table: one row per option drives the command line, the config
 * file and --help. Values are checked against each row's range; errors name
 * the flag or file:line and make herald exit with status 2.
 */
#include "options.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald/error.h"

typedef enum opt_type {
    OPT_STRING,
    OPT_BOOL,
    OPT_DURATION, /* seconds, fractional allowed */
    OPT_INT,
    OPT_SIZE, /* bytes; k/m/g suffixes */
    /* a plain double (ratios) */
    OPT_NUMBER,
    OPT_RATE, /* bits per second, uint64_t; decimal k/m/g suffixes (20m = 20,000,000) */
    OPT_LOGLEVEL,
    OPT_LISTEN, /* repeatable */
    OPT_ORIGIN,
    OPT_CONFIG, /* the file itself: read before the other flags */
} opt_type_t;

typedef struct opt_def {
    const char *name;
    opt_type_t type;
    size_t offset;   /* into config_t */
    size_t size;     /* for strings: buffer size */
    const char *def; /* default, as it would be written; NULL: none */
    double min, max; /* range for numbers */
    const char *help;
} opt_def_t;

#define OFF(f) offsetof(config_t, f), sizeof(((config_t *)0)->f)

static const opt_def_t options[] = {
    {"origin", OPT_ORIGIN, OFF(origin_host), NULL, 0, 0,
     "the HTTP/1.1 origin, http://HOST:PORT (required)"},
    {"listen", OPT_LISTEN, OFF(listen), "127.0.0.1:8080", 0, 0,
     "ADDR:PORT[,tls|,h2c] to accept clients on; IPv6 as [::1]:8443; repeatable. Cleartext "
     "serves h2 prior knowledge and HTTP/1.1; ,tls does ALPN h2 and http/1.1; ,h2c serves "
     "cleartext h2 prior knowledge only and closes any other connection at its first bytes"},
    {"tls-cert", OPT_STRING, OFF(tls_cert), NULL, 0, 0, "PEM certificate chain for ,tls listeners"},
    {"tls-key", OPT_STRING, OFF(tls_key), NULL, 0, 0, "PEM private key for ,tls listeners"},
    {"workers", OPT_INT, OFF(workers), "0", 0, 256,
     "worker threads, each with its own loop, listeners and origin pool; 0: one per core"},
    {"config", OPT_CONFIG, OFF(config_file), NULL, 0, 0,
     "config file of 'name = value' lines (# comments); flags override it"},
    {"log-level", OPT_LOGLEVEL, OFF(log_level), "info", 0, 0, "error|warn|info|debug"},
    {"access-log", OPT_STRING, OFF(access_log), NULL, 0, 0,
     "access log file (combined format + protocol, upstream time, bytes); - for stdout"},
    {"origin-timeout", OPT_DURATION, OFF(origin_timeout), "30", 0.001, 86400,
     "seconds to wait for the origin's response (and between its bytes) before 504"},
    {"idle-timeout", OPT_DURATION, OFF(idle_timeout), "60", 0.001, 86400,
     "seconds an idle client connection stays open"},
    {"origin-host", OPT_STRING, OFF(origin_host_header), NULL, 0, 0,
     "Host header sent to the origin (default: the client's :authority/Host)"},
    {"origin-idle-timeout", OPT_DURATION, OFF(origin_idle_timeout), "2", 0.001, 86400,
     "seconds an idle pooled origin connection is kept; keep below the origin's keep-alive"},
    {"origin-max-connections", OPT_INT, OFF(origin_max_connections), "32", 1, 65535,
     "origin connections open at most, all workers together (a legacy origin serves a fixed "
     "number at once); beyond them requests wait in the origin queue"},
    {"origin-queue", OPT_INT, OFF(origin_queue), "1024", 0, 1000000,
     "requests that may wait for an origin connection, all workers together; beyond them 503 "
     "with Retry-After. The wait counts toward --origin-timeout"},
    {"trust-forwarded", OPT_BOOL, OFF(trust_forwarded), "off", 0, 0,
     "on: append to incoming X-Forwarded-For/-Proto; off: replace them"},
    {"header-timeout", OPT_DURATION, OFF(header_timeout), "10", 0.001, 3600,
     "seconds for a client to send a complete request head (and finish the TLS handshake)"},
    {"body-timeout", OPT_DURATION, OFF(body_timeout), "30", 0.001, 86400,
     "seconds a request body may stall between bytes"},
    {"drain-timeout", OPT_DURATION, OFF(drain_timeout), "10", 0, 3600,
     "on SIGTERM/SIGINT, seconds in-flight requests get to finish"},
    {"max-header-size", OPT_SIZE, OFF(max_header_size), "64k", 1024, 16 * 1024 * 1024,
     "largest request head (HTTP/1.1) or header list (HTTP/2) accepted"},
    {"max-headers", OPT_INT, OFF(max_headers), "100", 1, 10000, "most request header fields"},
    {"max-concurrent-streams", OPT_INT, OFF(max_concurrent_streams), "100", 1, 10000,
     "HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS announced to clients"},
    /* learning (proxy/deliver/learning.c) */
    {"min-confidence", OPT_NUMBER, OFF(min_confidence), "0.5", 0, 1,
     "assets whose clean visits fetch them at least this often (decayed hits over visits) are "
     "planned"},
    {"explore", OPT_NUMBER, OFF(explore), "0.05", 0, 1,
     "share of a page's visits on which 1-2 confirmed assets are held back in rotation, so that "
     "browsers keep showing whether the page still needs them; 0 turns it off"},
    {"learn-window", OPT_DURATION, OFF(learn_window), "5", 0.01, 600,
     "seconds after a page during which requests on the same connection count as its follow-ups"},
    {"max-pages", OPT_INT, OFF(max_pages), "10000", 1, 100000000,
     "pages (and templates) kept in the learned map; least recently used evicted"},
    {"max-assets-per-page", OPT_INT, OFF(max_assets_per_page), "64", 1, 100000,
     "learned assets kept per page; the least confident evicted"},
    /* delivery (proxy/deliver/delivery.c) */
    {"push", OPT_BOOL, OFF(push), "on", 0, 0,
     "HTTP/2 server push of a page's learned assets to clients that allow it"},
    {"hints", OPT_BOOL, OFF(hints), "on", 0, 0,
     "103 Early Hints with the learned preloads when push is off or not allowed (navigations)"},
    {"hints-h1", OPT_BOOL, OFF(hints_h1), "off", 0, 0,
     "also send 103 Early Hints to HTTP/1.1 clients (never to HTTP/1.0)"},
    {"push-budget", OPT_SIZE, OFF(push_budget), "256k", 0, 1024.0 * 1024 * 1024,
     "most pushed bytes sent ahead of the page's HTML; below this, pushes ahead of it are "
     "paced to what the think time left can carry at the path's rate; the rest of the plan "
     "is promised and follows the HTML"},
    {"bandwidth-hint", OPT_RATE, OFF(bandwidth_hint), "auto", 1000, 1e12,
     "bits/s to assume for every client connection instead of measuring; auto: measured per "
     "connection (PINGs behind data, TCP_INFO when the kernel sees the real path), starting "
     "from the client network's recent connections, else the population's; k/m/g are "
     "10^3/10^6/10^9"},
    {"digest-cookie", OPT_STRING, OFF(digest_cookie), "herald_cd", 0, 0,
     "name of the cache-digest cookie set on page responses after pushes; off disables it"},
    {"x-herald-header", OPT_BOOL, OFF(x_herald_header), "off", 0, 0,
     "add 'x-herald: push=N; hint=N; plan=page|template|none' to page responses"},
    {"push-redirects", OPT_BOOL, OFF(push_redirects), "on", 0, 0,
     "push a learned same-origin redirect together with its target"},
    {"sse-push", OPT_BOOL, OFF(sse_push), "on", 0, 0,
     "an origin event-stream comment ': herald-push PATH' pushes PATH (h2 push clients)"},
    /* next pages (proxy/deliver/speculate.c) */
    {"speculation", OPT_STRING, OFF(speculation), "off", 0, 0,
     "off|prefetch|prerender: on a page's HTML response add a Speculation-Rules header naming "
     "herald's rule set of the page's learned next pages (the browser fetches them ahead of "
     "the click); off by default: an operator opts into prefetching GETs"},
    {"speculation-min", OPT_NUMBER, OFF(speculation_min), "0.3", 0, 1,
     "least P(next page | page) of a next page in a rule set"},
    {"speculation-max", OPT_INT, OFF(speculation_max), "5", 0, 100,
     "most URLs in one rule set; a client may start twice that many browser prefetches "
     "at once, then one a second (more are answered 503)"},
    {"speculation-deny", OPT_STRING, OFF(speculation_deny),
     "logout,log-out,log_out,signout,sign-out,sign_out,logoff,log-off,delete,remove,destroy,"
     "unsubscribe,cancel,cart,basket,checkout,admin,do=,action=",
     0, 0,
     "comma-separated patterns a next page's path or query must not contain (case-insensitive, "
     "percent-decoded); one ending in '=' names a query key"},
    {"speculation-path", OPT_STRING, OFF(speculation_path), "/.well-known/herald/speculation.json",
     0, 0, "path herald answers with a page's rule set (?page=PATH); never sent to the origin"},
    /* admin and state (proxy/ops/admin.c, proxy/ops/state.c) */
    {"admin", OPT_STRING, OFF(admin), NULL, 0, 0,
     "ADDR:PORT of the admin HTTP/1.1 listener (JSON API, /metrics, /healthz, HTML page); "
     "off unless given; a non-loopback address needs --admin-token or --admin-token-file"},
    {"admin-token", OPT_STRING, OFF(admin_token), NULL, 0, 0,
     "bearer token every admin request must carry (Authorization: Bearer TOKEN); reloadable"},
    {"admin-token-file", OPT_STRING, OFF(admin_token_file), NULL, 0, 0,
     "file whose first line is the admin token (keeps it out of ps); reloadable"},
    {"state", OPT_STRING, OFF(state_file), NULL, 0, 0,
     "file the learned map (pins and bans included) is saved to and loaded from at start"},
    {"state-interval", OPT_DURATION, OFF(state_interval), "30", 0.05, 86400,
     "seconds between saves of --state when the map changed (also saved on shutdown)"},
    /* the fleet's shared map (proxy/deliver/sharedmap.c, docs/fleet.md) */
    {"shared-map", OPT_STRING, OFF(shared_map), NULL, 0, 0,
     "redis://[USER[:PASS]@]HOST:PORT[/DB] or unix:///PATH: share the learned map, pins and "
     "bans with every herald using the same Redis and prefix; off unless given"},
    {"shared-map-password-file", OPT_STRING, OFF(shared_map_password_file), NULL, 0, 0,
     "file whose first line is the Redis password (keeps it out of ps)"},
    {"shared-map-prefix", OPT_STRING, OFF(shared_map_prefix), "herald:", 0, 0,
     "start of every Redis key: fleets sharing one Redis use different prefixes"},
    {"shared-map-interval", OPT_DURATION, OFF(shared_map_interval), "1", 0.05, 3600,
     "seconds between sends of this instance's evidence to the shared map"},
};

enum { NOPTIONS = sizeof(options) / sizeof(options[0]) };

static const opt_def_t *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strlen(options[i].name) == len && memcmp(options[i].name, name, len) == 0)
            return &options[i];
    return NULL;
}

static void failf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v))
        return HERALD_EINVAL;
    *out = v;
    return 0;
}

static int set_option(config_t *cfg, const opt_def_t *o, const char *value, bool *listen_reset,
                      char *err, size_t errlen)
{
    void *field = (char *)cfg + o->offset;
    double num;
    switch (o->type) {
    case OPT_STRING:
    case OPT_CONFIG:
        if (strlen(value) >= o->size) {
            failf(err, errlen, "value too long for %s", o->name);
            return HERALD_EINVAL;
        }
        strcpy(field, value);
        return 0;
    case OPT_BOOL:
        if (strcmp(value, "on") == 0) {
            *(bool *)field = true;
        } else if (strcmp(value, "off") == 0) {
            *(bool *)field = false;
        } else {
            failf(err, errlen, "%s takes on|off, not '%s'", o->name, value);
            return HERALD_EINVAL;
        }
        return 0;
    case OPT_DURATION:
    case OPT_NUMBER:
    case OPT_INT:
        if (parse_number(value, &num) != 0 || num < o->min || num > o->max ||
            (o->type == OPT_INT && num != floor(num))) {
            failf(err, errlen, "%s takes %s from %g to %g, not '%s'", o->name,
                  o->type == OPT_INT      ? "a whole number"
                  : o->type == OPT_NUMBER ? "a number"
                                          : "seconds",
                  o->min, o->max, value);
            return HERALD_EINVAL;
        }
        if (o->type == OPT_DURATION || o->type == OPT_NUMBER)
            *(double *)field = num;
        else if (o->size == sizeof(uint32_t))
            *(uint32_t *)field = (uint32_t)num;
        else if (o->size == sizeof(int))
            *(int *)field = (int)num;
        else
            *(size_t *)field = (size_t)num;
        return 0;
    case OPT_SIZE: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        double mult = 1;
        if (*end == 'k' || *end == 'K')
            mult = 1024, end++;
        else if (*end == 'm' || *end == 'M')
            mult = 1024 * 1024, end++;
        else if (*end == 'g' || *end == 'G')
            mult = 1024.0 * 1024 * 1024, end++;
        v *= mult;
        /* "nan" parses as a number and is neither below min nor above max */
        if (end == value || *end != '\0' || errno != 0 || !(v >= o->min && v <= o->max)) {
            failf(err, errlen, "%s takes a size from %g to %g bytes (k/m suffixes), not '%s'",
                  o->name, o->min, o->max, value);
            return HERALD_EINVAL;
        }
        *(size_t *)field = (size_t)v;
        return 0;
    }
    case OPT_RATE: {
        if (strcmp(value, "auto") == 0) {
            *(uint64_t *)field = 0; /* measured, not assumed */
            return 0;
        }
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (*end == 'k' || *end == 'K')
            v *= 1e3, end++;
        else if (*end == 'm' || *end == 'M')
            v *= 1e6, end++;
        else if (*end == 'g' || *end == 'G')
            v *= 1e9, end++;
        if (end == value || *end != '\0' || errno != 0 || !(v >= o->min && v <= o->max)) {
            failf(err, errlen,
                  "%s takes auto or bits per second from %g to %g (k/m/g: 10^3/6/9), not '%s'",
                  o->name, o->min, o->max, value);
            return HERALD_EINVAL;
        }
        *(uint64_t *)field = (uint64_t)v;
        return 0;
    }
    case OPT_LOGLEVEL: {
        static const char *const names[] = {"debug", "info", "warn", "error"};
        for (int i = 0; i < 4; i++) {
            if (strcmp(value, names[i]) == 0) {
                *(log_level_t *)field = (log_level_t)i;
                return 0;
            }
        }
        failf(err, errlen, "log-level takes error|warn|info|debug, not '%s'", value);
        return HERALD_EINVAL;
    }
    case OPT_LISTEN: {
        if (*listen_reset) {
            cfg->nlisten = 0;
            *listen_reset = false;
        }
        if (cfg->nlisten == CONFIG_MAX_LISTEN) {
            failf(err, errlen, "at most %d listen addresses", CONFIG_MAX_LISTEN);
            return HERALD_EINVAL;
        }
        config_listen_t *l = &cfg->listen[cfg->nlisten];
        char buf[sizeof(l->text)];
        if (strlen(value) >= sizeof(buf)) {
            failf(err, errlen, "listen address too long: '%s'", value);
            return HERALD_EINVAL;
        }
        strcpy(buf, value);
        l->tls = false;
        l->h2c = false;
        char *comma = strchr(buf, ',');
        if (comma != NULL) {
            if (strcmp(comma + 1, "tls") == 0) {
                l->tls = true;
            } else if (strcmp(comma + 1, "h2c") == 0) {
                l->h2c = true;
            } else {
                failf(err, errlen, "listen: unknown flag '%s' (one of ,tls or ,h2c)", comma + 1);
                return HERALD_EINVAL;
            }
            *comma = '\0';
        }
        if (config_parse_hostport(buf, &l->addr) != 0) {
            failf(err, errlen, "listen takes ADDR:PORT[,tls|,h2c] (IPv6 as [::1]:PORT), not '%s'",
                  value);
            return HERALD_EINVAL;
        }
        strcpy(l->text, value);
        cfg->nlisten++;
        return 0;
    }
    case OPT_ORIGIN: {
        const char *prefix = "http://";
        if (strncmp(value, prefix, strlen(prefix)) != 0) {
            failf(err, errlen, "origin takes http://HOST:PORT, not '%s'", value);
            return HERALD_EINVAL;
        }
        char hp[300];
        const char *rest = value + strlen(prefix);
        size_t n = strcspn(rest, "/");
        if (rest[n] == '/' && rest[n + 1] != '\0') {
            failf(err, errlen, "origin takes http://HOST:PORT without a path, not '%s'", value);
            return HERALD_EINVAL;
        }
        if (n == 0 || n >= sizeof(hp) - 4) {
            failf(err, errlen, "origin takes http://HOST:PORT, not '%s'", value);
            return HERALD_EINVAL;
        }
        memcpy(hp, rest, n);
        hp[n] = '\0';
        /* Port defaults to 80 when absent. */
        const char *bracket = strrchr(hp, ']');
        const char *colon = strrchr(hp, ':');
        if (colon == NULL || (bracket != NULL && colon < bracket))
            strcat(hp, ":80");
        int rc = config_parse_hostport(hp, &cfg->origin_addr);
        if (rc != 0) {
            failf(err, errlen, "origin '%s': %s", value,
                  rc == HERALD_ENOTFOUND ? "host name does not resolve" : "bad HOST:PORT");
            return HERALD_EINVAL;
        }
        char *c = strrchr(hp, ':');
        *c = '\0';
        snprintf(cfg->origin_host, sizeof(cfg->origin_host), "%s", hp);
        cfg->origin_port = (uint16_t)atoi(c + 1);
        return 0;
    }
    }
    return HERALD_EINVAL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int load_file(config_t *cfg, const char *path, bool *listen_reset)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "herald: cannot read config file %s: %s\n", path, strerror(errno));
        return 2;
    }
    char line[4096], err[512];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            fprintf(stderr, "herald: %s:%d: line too long\n", path, lineno);
            rc = 2;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            fprintf(stderr, "herald: %s:%d: expected 'name = value', got '%s'\n", path, lineno, s);
            rc = 2;
            break;
        }
        *eq = '\0';
        char *name = trim(s), *value = trim(eq + 1);
        const opt_def_t *o = find_option(name, strlen(name));
        if (o == NULL || o->type == OPT_CONFIG) {
            fprintf(stderr, "herald: %s:%d: unknown option '%s'\n", path, lineno, name);
            rc = 2;
            break;
        }
        if (set_option(cfg, o, value, listen_reset, err, sizeof(err)) != 0) {
            fprintf(stderr, "herald: %s:%d: %s\n", path, lineno, err);
            rc = 2;
            break;
        }
    }
    fclose(f);
    return rc;
}

static void set_defaults(config_t *cfg)
{
    char err[512];
    bool reset = true;
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (options[i].def == NULL)
            continue;
        if (set_option(cfg, &options[i], options[i].def, &reset, err, sizeof(err)) != 0)
            abort(); /* a bad default is a programming error */
    }
}

void config_print_help(void *out)
{
    FILE *f = out;
    fprintf(f,
            "usage: herald --origin=http://HOST:PORT [--listen=ADDR:PORT[,tls|,h2c]]... [options]\n"
            "\nEvery option may also be written 'name = value' in the --config file;\n"
            "flags override the file. Booleans take on|off; durations are seconds and\n"
            "may be fractional.\n\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt_def_t *o = &options[i];
        fprintf(f, "  --%s=VALUE\n      %s\n      default: %s\n", o->name, o->help,
                o->def != NULL ? o->def : "(none)");
    }
    fprintf(f, "  --help     this text\n  --version  print the version\n"
               "  --print-config  print a sample config file with every option commented\n");
}

/* Options whose change needs a restart (sockets, threads, the map's caps). */
static bool needs_restart(const char *name)
{
    static const char *const names[] = {"origin",
                                        "listen",
                                        "workers",
                                        "origin-max-connections",
                                        "origin-queue",
                                        "max-pages",
                                        "max-assets-per-page",
                                        "admin",
                                        "state",
                                        "state-interval",
                                        "shared-map",
                                        "shared-map-password-file",
                                        "shared-map-prefix",
                                        "shared-map-interval",
                                        "config"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

size_t config_diff(const config_t *a, const config_t *b, char *reloaded, size_t rlen, char *restart,
                   size_t slen)
{
    size_t n = 0;
    reloaded[0] = restart[0] = '\0';
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt_def_t *o = &options[i];
        bool differs =
            memcmp((const char *)a + o->offset, (const char *)b + o->offset, o->size) != 0;
        if (o->type == OPT_ORIGIN)
            differs |= a->origin_port != b->origin_port;
        if (!differs)
            continue;
        n++;
        char *dst = needs_restart(o->name) ? restart : reloaded;
        size_t cap = needs_restart(o->name) ? slen : rlen, len = strlen(dst);
        snprintf(dst + len, cap - len, "%s%s", len > 0 ? ", " : "", o->name);
    }
    return n;
}

void config_apply_reload(config_t *dst, const config_t *src)
{
    config_t keep = *dst;
    *dst = *src;
    /* restart-only fields stay as the process started */
    memcpy(dst->origin_host, keep.origin_host, sizeof(dst->origin_host));
    dst->origin_port = keep.origin_port;
    dst->origin_addr = keep.origin_addr;
    memcpy(dst->listen, keep.listen, sizeof(dst->listen));
    dst->nlisten = keep.nlisten;
    dst->workers = keep.workers;
    dst->origin_max_connections = keep.origin_max_connections;
    dst->origin_queue = keep.origin_queue;
    dst->max_pages = keep.max_pages;
    dst->max_assets_per_page = keep.max_assets_per_page;
    memcpy(dst->admin, keep.admin, sizeof(dst->admin));
    memcpy(dst->state_file, keep.state_file, sizeof(dst->state_file));
    dst->state_interval = keep.state_interval;
    memcpy(dst->shared_map, keep.shared_map, sizeof(dst->shared_map));
    memcpy(dst->shared_map_password_file, keep.shared_map_password_file,
           sizeof(dst->shared_map_password_file));
    memcpy(dst->shared_map_prefix, keep.shared_map_prefix, sizeof(dst->shared_map_prefix));
    dst->shared_map_interval = keep.shared_map_interval;
    memcpy(dst->config_file, keep.config_file, sizeof(dst->config_file));
}

void config_print_sample(void *out)
{
    FILE *f = out;
    fprintf(f, "# herald configuration: 'name = value' lines, # comments. Every option\n"
               "# of --help can be set here; command-line flags override this file.\n"
               "# Generated by 'herald --print-config' from the option table.\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt_def_t *o = &options[i];
        if (o->type == OPT_CONFIG)
            continue;
        fprintf(f, "\n# %s\n", o->help);
        if (o->def != NULL)
            fprintf(f, "# %s = %s\n", o->name, o->def);
        else
            fprintf(f, "# %s =\n", o->name);
    }
}

int config_load(config_t *cfg, int argc, char **argv)
{
    char err[512];
    set_defaults(cfg);
    /* The file first, wherever --config appears, so flags override it. */
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            config_print_help(stdout);
            return 1;
        }
        if (strcmp(argv[i], "--print-config") == 0) {
            config_print_sample(stdout);
            return 1;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("herald 0.1.0\n");
            return 1;
        }
        if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
    }
    bool listen_reset = true; /* the first listen given replaces the default */
    if (file != NULL) {
        snprintf(cfg->config_file, sizeof(cfg->config_file), "%s", file);
        int rc = load_file(cfg, file, &listen_reset);
        if (rc != 0)
            return rc;
    }
    bool flag_listen_reset = true; /* flags replace the file's listen lines */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "herald: unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
        const char *eq = strchr(a + 2, '=');
        size_t nlen = eq != NULL ? (size_t)(eq - a - 2) : strlen(a + 2);
        const opt_def_t *o = find_option(a + 2, nlen);
        if (o == NULL) {
            fprintf(stderr, "herald: unknown option '%.*s' (see --help)\n", (int)nlen + 2, a);
            return 2;
        }
        if (o->type == OPT_CONFIG)
            continue;
        const char *value = eq != NULL ? eq + 1 : NULL;
        if (value == NULL && o->type == OPT_BOOL)
            value = "on";
        if (value == NULL) {
            fprintf(stderr, "herald: --%s needs a value (--%s=VALUE)\n", o->name, o->name);
            return 2;
        }
        bool *reset = o->type == OPT_LISTEN ? &flag_listen_reset : &listen_reset;
        if (set_option(cfg, o, value, reset, err, sizeof(err)) != 0) {
            fprintf(stderr, "herald: --%s: %s\n", o->name, err);
            return 2;
        }
    }
    if (cfg->origin_host[0] == '\0') {
        fprintf(stderr, "herald: --origin=http://HOST:PORT is required (see --help)\n");
        return 2;
    }
    bool any_tls = false;
    for (size_t i = 0; i < cfg->nlisten; i++)
        any_tls |= cfg->listen[i].tls;
    if (any_tls && (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0')) {
        fprintf(stderr, "herald: a ,tls listener needs --tls-cert and --tls-key\n");
        return 2;
    }
    if (strcmp(cfg->speculation, "off") != 0 && strcmp(cfg->speculation, "prefetch") != 0 &&
        strcmp(cfg->speculation, "prerender") != 0) {
        fprintf(stderr, "herald: --speculation: '%s' is not off, prefetch or prerender\n",
                cfg->speculation);
        return 2;
    }
    if (cfg->speculation_path[0] != '/' || strpbrk(cfg->speculation_path, "?# ") != NULL) {
        fprintf(stderr, "herald: --speculation-path: '%s' is not a path (/...)\n",
                cfg->speculation_path);
        return 2;
    }
    if (cfg->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = n > 0 ? (int)n : 1;
    }
    return 0;
}
