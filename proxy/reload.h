/*
 * Operations signals on the main thread's loop: SIGHUP re-reads the config
 * file (and the flags, which still override it) and applies what can change
 * without dropping a connection: log level, access log, timeouts, learning
 * and push/hint settings and budgets (each worker applies them on its own
 * loop, see worker_reload), the admin token, and the TLS certificate and key
 * (a new SSL_CTX for new connections; live ones keep theirs, SSL_CTX is
 * refcounted). Options that need a restart are logged and left alone.
 * SIGUSR1 reopens the access log (logrotate); the error log is stderr.
 */
#ifndef HERALD_RELOAD_H
#define HERALD_RELOAD_H

#include <stddef.h>
#include <uv.h>

#include "config.h"

typedef struct admin admin_t;
typedef struct worker worker_t;
typedef struct ssl_ctx_st SSL_CTX;

typedef struct reload {
    uv_signal_t sighup, sigusr1; /* data = this */
    config_t *cfg;               /* the main thread's running config, updated in place */
    int argc;
    char **argv;
    worker_t *workers;
    int nworkers;
    admin_t *admin; /* may be NULL */
    SSL_CTX **ctxs; /* contexts made by reloads; freed by reload_dispose after the workers joined */
    size_t nctxs;
} reload_t;

/**
 * Watch SIGHUP and SIGUSR1 on `loop`. Everything is borrowed and must
 * outlive reload_dispose(); argv is re-parsed on every SIGHUP.
 */
void reload_init(reload_t *r, uv_loop_t *loop, config_t *cfg, int argc, char **argv,
                 worker_t *workers, int nworkers, admin_t *admin);
/** Stop watching (on shutdown) so the loop can end. */
void reload_stop(reload_t *r);
/** Free the TLS contexts reloads made. Only after every worker is joined. */
void reload_dispose(reload_t *r);

#endif
