/*
 * A worker: one thread, one uv loop, its own SO_REUSEPORT listeners, its own
 * client connections and its own origin connection pool. Workers share only
 * the read-only config and the TLS context (and, later, the learned map).
 */
#ifndef HERALD_WORKER_H
#define HERALD_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proxy/block.h"
#include "proxy/config.h"
#include "proxy/exchange.h"
#include "proxy/list.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct upstream_pool upstream_pool_t;
typedef struct conn conn_t;
typedef struct pagemap pagemap_t;
typedef struct budget budget_t;

/*
 * A listening socket of one worker. herald calls accept4() itself (libuv
 * would, on EMFILE, accept and drop connections, or retry in a loop): on
 * EMFILE/ENFILE the worker stops polling its listeners for a moment, logs
 * once, and leaves the clients in the kernel's backlog until descriptors
 * free up.
 */
typedef struct worker_listener {
    uv_poll_t poll; /* data = this; readable: connections to accept */
    int fd;         /* the listening socket, closed with the poll handle */
    struct worker *worker;
    const config_listen_t *conf;
} worker_listener_t;

typedef enum worker_state {
    WORKER_RUNNING,
    WORKER_DRAINING, /* listeners closed; waiting for in-flight requests */
    WORKER_STOPPED,
} worker_state_t;

typedef struct worker {
    uv_loop_t loop;
    int id;
    const config_t *cfg;
    SSL_CTX *ssl_ctx; /* NULL when no TLS listener */
    worker_listener_t listeners[CONFIG_MAX_LISTEN];
    size_t nlisteners;
    upstream_pool_t *upstream;
    exchange_ctx_t xctx; /* every exchange of this worker: the origin side and the observers */
    budget_t *budget;    /* the process' origin budget (main.c owns it), shared by the pools */
    /* the learned map shared by all workers (main.c owns it); NULL = off */
    pagemap_t *learn;
    list_t conns; /* every client connection (conn_t.link) */
    size_t nconns;
    size_t peak_conns;    /* most connections at once since memory was last released */
    block_cache_t blocks; /* response body and output blocks of this worker's connections */
    worker_state_t state;
    uv_async_t wakeup; /* main thread -> worker: begin draining */
    /* SIGHUP (reload.c): the main thread leaves a new config (and TLS
     * context) under reload_mu and wakes reload_async; the worker applies
     * it on its own loop (config_apply_reload on cfg_own, ssl_ctx swapped for
     * new connections), so workers never see a config change mid-request. */
    config_t *cfg_own; /* this worker's copy; cfg points here */
    uv_async_t reload_async;
    uv_mutex_t reload_mu;
    config_t *reload_cfg;    /* pending, malloc'd; NULL none */
    SSL_CTX *reload_ssl_ctx; /* pending; NULL: keep (reload.c/main.c own every context) */
    uv_timer_t drain_timer;
    uv_timer_t accept_timer; /* listeners paused after EMFILE: resume polling them */
    bool accept_paused;
    bool accept_error_logged; /* the pause was logged; cleared by the next accepted connection */
    uv_thread_t thread;
    int start_error; /* 0, or why the worker could not start */
    uv_sem_t started;
} worker_t;

/**
 * Start `w` on its own thread; waits until its listeners are bound. `learn`
 * (borrowed, may be NULL) and `budget` (borrowed, shared by every worker's
 * origin pool) must outlive worker_join(). 0 or a negative code.
 */
int worker_start(worker_t *w, int id, const config_t *cfg, SSL_CTX *ssl_ctx, pagemap_t *learn,
                 budget_t *budget);
/**
 * Hand a reloaded config (copied) and, when non-NULL, a new TLS context
 * (borrowed: the caller keeps it alive until worker_join) to the worker;
 * it applies them on its loop. Thread-safe (main thread, SIGHUP).
 */
void worker_reload(worker_t *w, const config_t *cfg, SSL_CTX *ssl_ctx);
/** Ask the worker to drain (thread-safe: called from the main thread). */
void worker_request_stop(worker_t *w);
/** Wait for the worker thread to finish and release it. */
void worker_join(worker_t *w);
/** Called by conn.c after a connection is gone (unlinked, w->nconns decremented), so a draining
 * worker can finish and a worker past a burst gives memory back. */
void worker_conn_closed(worker_t *w);
/** Called by conn.c after w->nconns went up: keeps w->peak_conns. */
static inline void worker_conn_opened(worker_t *w)
{
    if (w->nconns > w->peak_conns)
        w->peak_conns = w->nconns;
}

/* Provided by the frontend (conn.c). */
/**
 * Take over `fd`, a client connection accepted on a listener of w
 * configured by `conf` (borrowed for the call: TLS, cleartext h2 only, or
 * cleartext h2 and HTTP/1.1 told apart by the first bytes); fd is closed on
 * failure.
 */
void conn_accept(worker_t *w, int fd, const config_listen_t *conf);
/** Begin a graceful close of every client connection (h2 GOAWAY; h1 close when idle). */
void conn_drain_all(worker_t *w);
/** Close every client connection now (drain time is up). */
void conn_close_all(worker_t *w);

#endif
