/*
 * The origin side: a keep-alive pool of HTTP/1.1 connections per worker,
 * responses parsed with llhttp, streamed to the exchange's frontend.
 * See exchange.h for the flow; these are the calls exchange.c makes.
 */
#ifndef HERALD_UPSTREAM_H
#define HERALD_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/exchange.h"

typedef struct upstream_pool upstream_pool_t;

/** A pool for worker w (on w's loop). Never NULL. */
upstream_pool_t *upstream_pool_create(worker_t *w);
/**
 * Close every idle connection and free the pool once all its connections are
 * closed; busy connections must have been aborted first (the worker aborts
 * every exchange before calling this). `cb` runs when the pool is gone:
 * from a close callback, or before this returns when nothing was open.
 */
void upstream_pool_close(upstream_pool_t *pool, void (*cb)(void *arg), void *arg);

/** Start forwarding ex (request head complete). */
void upstream_start(exchange_t *ex);
/** Queue request body bytes (copied). */
void upstream_request_body(exchange_t *ex, const uint8_t *data, size_t len);
/** No more request body. */
void upstream_request_end(exchange_t *ex);
/** The frontend drained: resume reading the origin if paused. */
void upstream_resume(exchange_t *ex);
/** Stop everything for ex now; closes the origin connection unless reusable. */
void upstream_abort(exchange_t *ex);

/** Counters for logs and, later, /metrics. */
typedef struct upstream_stats {
    uint64_t connects, reuses, retries, errors, timeouts;
    uint32_t open, idle;
} upstream_stats_t;
void upstream_pool_stats(const upstream_pool_t *pool, upstream_stats_t *out);

#endif
