/*
 * Process counters for GET /stats and GET /metrics (docs/architecture.md, "Admin").
 *
 * Threads. Each worker counts requests into its own slot
 * (metrics_note_request(), on the worker's loop) with relaxed atomic adds,
 * so workers never contend; the admin thread sums the slots with relaxed
 * loads. Gauges that live in worker-owned structs (client connections, the
 * origin pools' counters) are summed by the caller into metrics_gauges_t
 * with relaxed loads of aligned machine words: a value may be a few events
 * stale, never torn, and is only read while the workers run (the admin
 * listener closes before the workers are told to stop). Delivery counters come from
 * delivery_stats_get(), the path estimates (client networks, pacing) from pace_stats_get(), the
 * origin budget's (queue, cap) from budget_stats() and the learned map's from pagemap_stats().
 */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "budget.h"
#include "exchange.h"
#include "pace.h"
#include "upstream.h"
#include "speculate.h"

typedef struct pagemap pagemap_t;

/** What the workers hold themselves, summed by whoever owns the workers. */
typedef struct metrics_gauges {
    uint64_t active_connections; /* client connections open */
    upstream_stats_t origin;     /* every worker's origin pool, summed */
    bool have_budget;
    budget_stats_t budget; /* the process' origin budget */
} metrics_gauges_t;

/** Fills *out for metrics_collect (any thread while the workers run). */
typedef void (*metrics_gauges_fn)(void *arg, metrics_gauges_t *out);

/** Status classes counted: 0 (no response), 1xx .. 5xx. */
enum { METRICS_STATUS_CLASSES = 6, METRICS_PROTOS = 3, METRICS_MAX_WORKERS = 256 };
/** Latency histogram upper bounds in seconds (+Inf is implicit). */
enum { METRICS_LATENCY_BUCKETS = 12 };

/** Summed counters, as metrics_collect() fills them. */
typedef struct metrics_snapshot {
    uint64_t requests[METRICS_PROTOS][METRICS_STATUS_CLASSES];
    uint64_t requests_total;
    uint64_t latency_buckets[METRICS_LATENCY_BUCKETS + 1]; /* cumulative, last = +Inf */
    double latency_sum_s;
    uint64_t origin_connects, origin_reuses, origin_retries, origin_errors, origin_timeouts;
    uint64_t origin_open, origin_idle;
    /* the process-wide origin budget (budget.h) */
    uint64_t origin_max, origin_queue_max, origin_in_use, origin_queued;
    uint64_t origin_queue_full, origin_queue_timeouts, origin_waited, origin_handoffs;
    double origin_wait_s_total, origin_wait_s_max;
    uint64_t active_connections;
    uint64_t promised, completed, cancelled, pushed_bytes, hints_sent, hinted_links, skipped;
    uint64_t digest_hits;
    uint64_t pages, templates, edges, pinned, banned, assets, visits_committed;
    uint64_t visits_open; /* learning_visits_open() */
    uint64_t visits_opened, not_pages;
    pace_stats_t pace;        /* path estimates: client networks, PINGs, pacing */
    speculation_stats_t spec; /* next pages: rule sets, prefetches and their use */
    double uptime_s;
} metrics_snapshot_t;

/** Record the process start time (call once from main before the workers start). */
void metrics_init(void);

/**
 * Count one finished exchange (status class, protocol, request head to
 * response end latency). Called by exchange.c's log point on ex's worker
 * loop; ex is borrowed for the call.
 */
void metrics_note_request(const exchange_t *ex);
/** Register metrics_note_request as an observer of x's exchanges (on_complete). */
void metrics_attach(exchange_ctx_t *x);

/**
 * Sum every worker's counters and read the shared ones, with the gauges `g`
 * (borrowed for the call; NULL: none) and the map `pm` (NULL: none). Any
 * thread.
 */
void metrics_collect(const metrics_gauges_t *g, pagemap_t *pm, metrics_snapshot_t *out);

/**
 * The Prometheus text exposition (version 0.0.4) of `s`: every metric
 * named herald_..., counters ending in _total, with HELP and TYPE lines.
 * Returns a malloc'd NUL-terminated string owned by the caller (free()).
 */
char *metrics_render_prometheus(const metrics_snapshot_t *s);

/** Upper bound of latency bucket i (seconds), i < METRICS_LATENCY_BUCKETS. */
double metrics_latency_bound(int i);

#endif
