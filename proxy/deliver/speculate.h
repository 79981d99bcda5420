/*
 * Next pages for the browser (docs/learning.md, "Next pages"): with
 * --speculation=prefetch|prerender, a page's HTML response gets a
 * `Speculation-Rules` header naming herald's rule set for the page
 * (--speculation-path, `?page=PATH`), which herald answers itself with the
 * learned next pages (pagemap_speculation, speculation_rules_json); the
 * origin never sees that path. Browser prefetches (learning classified them
 * EXCHANGE_ROLE_PREFETCH: no 103, no push, behind page requests in the
 * origin queue) are limited per client address, and whether they get used is
 * measured (learn/prefetch.h) from the same client's later requests.
 *
 * speculation is an exchange observer (speculation_attach), registered
 * after learning (it reads the page keys learning made); everything runs on
 * the exchange's worker loop except speculation_stats_get().
 */
#ifndef HERALD_PROXY_SPECULATION_H
#define HERALD_PROXY_SPECULATION_H

#include <stdbool.h>
#include <stdint.h>

#include "pagemap.h"
#include "exchange.h"

/** A client's prefetch budget: this many times --speculation-max at once... */
#define SPECULATION_BURST 2
/** ...refilled at one prefetch per this many milliseconds. */
#define SPECULATION_REFILL_MS 1000
/** Client addresses with a prefetch budget per worker (a fixed table; colliding ones evict). */
#define SPECULATION_CLIENTS 1024

typedef struct speculation speculation_t;

/**
 * Register speculation as an observer of x's exchanges (after learning),
 * with `pm` (borrowed, outlives the worker; NULL = learning off: rule sets
 * are empty and no header is added). Never NULL; free with
 * speculation_detach() after the worker's loop ended.
 */
speculation_t *speculation_attach(exchange_ctx_t *x, pagemap_t *pm);
/** Free S (pending prefetch records are dropped uncounted). NULL is a no-op. */
void speculation_detach(speculation_t *S);

/**
 * True when ex is a GET or HEAD of herald's rule-set path
 * (--speculation-path, with or without a query) while --speculation is on:
 * herald answers it and learning ignores it.
 */
bool speculation_own_request(const exchange_t *ex);

/** Deny patterns taken from --speculation-deny, at most (more are ignored). */
#define SPECULATION_MAX_DENY 64

/**
 * The rule-set selection options of `cfg` (--speculation-min, -max, -deny;
 * the wall clock now). The deny patterns are split into deny[0..
 * SPECULATION_MAX_DENY) pointing into *buf (malloc'd: the caller frees it
 * once done with *o). An empty --speculation-deny denies nothing.
 */
void speculation_spec_opts(const config_t *cfg, pagemap_spec_opts_t *o, const char **deny,
                           char **buf);

/** Process-wide counters (for /metrics and /stats). */
typedef struct speculation_stats {
    uint64_t headers;    /* Speculation-Rules headers added to page responses */
    uint64_t origin_own; /* page responses left alone: the origin sent its own header */
    uint64_t rule_sets;  /* rule sets answered */
    uint64_t rule_urls;  /* URLs in them */
    uint64_t limited;    /* prefetches refused (503) by the per-client limit */
    uint64_t sent, used, unused, unknown; /* prefetches served 2xx and their outcomes */
} speculation_stats_t;

/** Copy the counters (atomics, any thread). */
void speculation_stats_get(speculation_stats_t *out);

#endif
