/*
 * A worker: one thread, one uv loop, its own SO_REUSEPORT listeners, its own
 * client connections and its own origin connection pool. Workers share only
 * the read-only config, the TLS context, the learned map and the origin budget.
 */
#ifndef HERALD_WORKER_H
#define HERALD_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "block.h"
#include "config.h"
#include "conn.h"
#include "exchange.h"
#include "metrics.h"

/* the fleet's shared map (proxy/deliver/sharedmap.h) */
typedef struct sharedmap sharedmap_t;

typedef struct ssl_ctx_st SSL_CTX;
typedef struct upstream_pool upstream_pool_t;
typedef struct pagemap pagemap_t;
typedef struct budget budget_t;
typedef struct learning learning_t;
typedef struct delivery delivery_t;

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
    front_ctx_t front;   /* what the client connections see of the worker */
    budget_t *budget;    /* the process' origin budget (main.c owns it), shared by the pools */
    /* the learned map shared by all workers (main.c owns it); NULL = off */
    pagemap_t *learn;
    /* the fleet's shared map (main.c owns it); NULL = no --shared-map */
    sharedmap_t *shared;
    learning_t *learning; /* the observers' per-worker state (owned) */
    delivery_t *delivery;
    struct speculation *speculation;
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
 * (borrowed, may be NULL), `shared` (borrowed, NULL without --shared-map)
 * and `budget` (borrowed, shared by every worker's origin pool) must
 * outlive worker_join(). 0 or a negative code.
 */
int worker_start(worker_t *w, int id, const config_t *cfg, SSL_CTX *ssl_ctx, pagemap_t *learn,
                 sharedmap_t *shared, budget_t *budget);
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
/** A set of running workers, for worker_gauges. */
typedef struct worker_set {
    worker_t *v;
    int n;
} worker_set_t;

/**
 * metrics_gauges_fn over a worker_set_t (`arg`): client connections and
 * origin pool counters summed, and the budget's. Any thread while the
 * workers run (relaxed loads of worker-owned words).
 */
void worker_gauges(void *arg, metrics_gauges_t *out);

#endif
