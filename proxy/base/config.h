/*
 * herald's options. One table (config.c) drives the command line
 * (--name=value), the config file (name = value lines, # comments) and
 * --help. Command-line flags override the file. Parsing errors name the flag
 * or the file and line; herald exits with status 2 on them.
 */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum { CONFIG_MAX_LISTEN = 16 };

typedef struct config_listen {
    struct sockaddr_storage addr;
    char text[80]; /* as given, for logs */
    bool tls;      /* ,tls: ALPN h2 and http/1.1 */
    bool h2c;      /* ,h2c: cleartext h2 prior knowledge only, no HTTP/1.1 */
} config_listen_t;

typedef enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
    LOG_LEVEL_FATAL,
} log_level_t;

typedef struct config {
    /* origin */
    char origin_host[256]; /* host part of --origin (name or address) */
    uint16_t origin_port;
    struct sockaddr_storage origin_addr; /* resolved at start-up */
    char origin_host_header[256];        /* --origin-host; empty: use :authority */
    double origin_timeout;               /* s, no response head within this -> 504 */
    double origin_idle_timeout;          /* s, pooled idle connections closed after this */
    uint32_t origin_max_connections;     /* origin connections, all workers together */
    uint32_t origin_queue;               /* requests waiting for one, all workers together */
    /* listeners */
    config_listen_t listen[CONFIG_MAX_LISTEN];
    size_t nlisten;
    char tls_cert[1024];
    char tls_key[1024];
    /* process */
    int workers;
    char config_file[1024];
    log_level_t log_level;
    char access_log[1024]; /* "" off, "-" stdout */
    double idle_timeout;   /* s, idle client connections */
    double header_timeout; /* s, to receive a complete request head */
    double body_timeout;   /* s, between request body bytes */
    double drain_timeout;  /* s, on SIGTERM */
    bool trust_forwarded;
    size_t max_header_size;          /* bytes, request head (h1) / header block (h2) */
    size_t max_headers;              /* count */
    uint32_t max_concurrent_streams; /* h2 SETTINGS we announce */
    /* learning (proxy/deliver/learning.c) */
    double min_confidence;      /* --min-confidence, 0..1 */
    double explore;             /* --explore, 0..1 */
    double learn_window;        /* s, --learn-window */
    size_t max_pages;           /* --max-pages */
    size_t max_assets_per_page; /* --max-assets-per-page */
    /* delivery (proxy/deliver/delivery.c) */
    bool push;               /* --push */
    bool hints;              /* --hints */
    bool hints_h1;           /* --hints-h1 */
    size_t push_budget;      /* bytes ahead of the HTML at most */
    uint64_t bandwidth_hint; /* bits/s assumed for every connection; 0 (auto): measured */
    char digest_cookie[64];  /* cookie name; "off" disables */
    bool x_herald_header;    /* --x-herald-header */
    bool push_redirects;     /* --push-redirects */
    bool sse_push;           /* --sse-push */
    /* next pages (proxy/deliver/speculate.c) */
    char speculation[16];        /* --speculation: off, prefetch or prerender */
    double speculation_min;      /* --speculation-min, 0..1 */
    size_t speculation_max;      /* --speculation-max */
    char speculation_deny[1024]; /* --speculation-deny: comma-separated patterns */
    char speculation_path[256];  /* --speculation-path: herald's rule-set path */
    /* admin and state (proxy/ops/admin.c, proxy/ops/state.c) */
    char admin[80];              /* --admin ADDR:PORT; "" off */
    char admin_token[256];       /* --admin-token; "" none */
    char admin_token_file[1024]; /* --admin-token-file */
    char state_file[1024];       /* --state; "" off */
    double state_interval;       /* s, --state-interval */
    /* the fleet's shared map (deliver/sharedmap.c) */
    char shared_map[1024];               /* --shared-map URL; "" off */
    char shared_map_password_file[1024]; /* --shared-map-password-file */
    char shared_map_prefix[80];          /* --shared-map-prefix */
    double shared_map_interval;          /* s, --shared-map-interval */
} config_t;

/** Parse "ADDR:PORT" or "[V6]:PORT" into `ss`; 0 or HERALD_EINVAL. */
int config_parse_hostport(const char *s, struct sockaddr_storage *ss);

#endif
