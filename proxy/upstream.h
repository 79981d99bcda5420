/*
 * The origin side: HTTP/1.1 keep-alive connections to the one origin,
 * responses parsed with llhttp and streamed to the exchange's frontend.
 * See exchange.h for the flow; these are the calls exchange.c makes.
 *
 * One budget, per-worker pools
 *   A legacy origin serves a fixed number of connections at once (Apache
 *   prefork's MaxRequestWorkers, a PHP-FPM pool), so herald opens at most
 *   --origin-max-connections for the whole process, whatever the number of
 *   workers, and keeps every one of them open (idle, until
 *   --origin-idle-timeout) rather than close one it may need a moment later.
 *   The cap is one shared counter (budget.h), not a static split, so a
 *   worker that SO_REUSEPORT gives more clients can use more of it.
 *
 *   Each worker keeps its own pool, on its own loop: idle connections, and
 *   two FIFO queues of requests waiting for a connection (client requests,
 *   then pushed fetches: a push never goes before a waiting page, and pushes
 *   may hold at most three quarters of the cap). The hot path takes no lock:
 *   a request takes an idle connection of its own worker, or one unit of the
 *   budget with a compare-and-swap and connects; a response that completes
 *   hands its connection straight to the next local waiter.
 *
 *   A request that finds neither waits (bounded by --origin-queue in total:
 *   beyond it 503 with Retry-After; its origin timeout counts from the
 *   moment it was queued, so the wait is part of it). Each worker publishes
 *   when the head of each of its queues arrived; whoever frees a connection
 *   or a unit of budget gives it to the longest-waiting request process-wide
 *   (its own within 2 ms of that, to keep connections on their worker). A
 *   free connection moves to another worker as its file descriptor (dup,
 *   close here, uv_tcp_open there: the origin sees the same connection), a
 *   unit of budget as a permission to connect, both through that worker's
 *   mailbox and uv_async wakeup: the same idea as h2o's socket pool, which
 *   exports idle sockets between threads.
 *
 * Retries: a request that fails on a reused connection before any response
 * byte (the keep-alive race) is sent again, once, on a fresh connection when
 * its method is idempotent and no body byte was sent; the fresh connection
 * takes the failed one's unit of budget, so a retry never queues again.
 */
#ifndef HERALD_UPSTREAM_H
#define HERALD_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/budget.h"
#include "proxy/exchange.h"

typedef struct upstream_pool upstream_pool_t;

/**
 * A pool on `loop` with `cfg` (borrowed: the worker's, it outlives the
 * pool), drawing on `budget` (borrowed: shared by every worker's pool, it
 * must outlive them) as slot `slot` (the worker's number). Never NULL.
 * Make it the origin side of a worker's exchanges with
 * exchange_ctx_origin(x, &upstream_origin_ops, pool).
 */
upstream_pool_t *upstream_pool_create(uv_loop_t *loop, const config_t *cfg, int slot,
                                      budget_t *budget);
/**
 * Close every idle connection and free the pool once all its connections are
 * closed; busy and queued exchanges must have been aborted first (the worker
 * aborts every exchange before calling this). `cb` runs when the pool is
 * gone, from a close callback.
 */
void upstream_pool_close(upstream_pool_t *pool, void (*cb)(void *arg), void *arg);

/** The origin side of an exchange (exchange_ctx_origin, with the pool as data): the functions
 * below. */
extern const exchange_origin_ops_t upstream_origin_ops;

/** Start forwarding ex (request head complete): at once, or after waiting in the queue. */
void upstream_start(exchange_t *ex);
/** Queue request body bytes (copied; held while the request waits for a connection). */
void upstream_request_body(exchange_t *ex, const uint8_t *data, size_t len);
/** No more request body. */
void upstream_request_end(exchange_t *ex);
/** The frontend drained: resume reading the origin if paused. */
void upstream_resume(exchange_t *ex);
/** Stop everything for ex now; closes the origin connection unless reusable. */
void upstream_abort(exchange_t *ex);

/** One pool's counters, for logs and /metrics. */
typedef struct upstream_stats {
    uint64_t connects, reuses, retries, errors, timeouts;
    uint32_t open, idle, queued;
} upstream_stats_t;
/** Copy pool's counters: any thread (relaxed atomic loads of the worker's stores). */
void upstream_pool_stats(const upstream_pool_t *pool, upstream_stats_t *out);

#endif
