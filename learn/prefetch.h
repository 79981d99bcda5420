/*
 * Whether the prefetches herald's rule sets asked for get used, measured
 * without the browser's help (docs/learning.md, "Next pages"). The proxy
 * reports each prefetch it served (prefetch_sent) and every other request
 * of the same client (prefetch_request); a prefetched page B is
 *  - USED when, within PREFETCH_LIFETIME_MS, the client requests anything
 *    with `Referer: B` (B's subresources, or a navigation onward from B)
 *    and no navigation request for B came first;
 *  - UNUSED when a navigation request for B comes first (the browser did
 *    not take it from its prefetch cache);
 *  - UNKNOWN when neither happens within the lifetime (the visitor did not
 *    go there, or every subresource was cached): unknown is not unused.
 * Each outcome is counted here and on the next page's edge of the page the
 * prefetch came from (pagemap_note_prefetch, with that page's template).
 *
 * A client is an opaque string (its address); at most PREFETCH_PER_CLIENT
 * pending prefetches per client and PREFETCH_MAX_CLIENTS clients are kept,
 * the oldest given up as UNKNOWN. Not thread-safe: one owner (a worker), or
 * the caller's lock. No network, no logging; allocation failure is
 * HERALD_ENOMEM and loses only the record being made.
 */
#ifndef HERALD_PREFETCH_H
#define HERALD_PREFETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagemap.h"

/** How long Chrome keeps a prefetched response for a navigation. */
#define PREFETCH_LIFETIME_MS (5 * 60 * 1000)
/** Pending prefetches per client, at most (the oldest becomes UNKNOWN). */
#define PREFETCH_PER_CLIENT 8
/** Clients with pending prefetches, at most (the least recently active are given up). */
#define PREFETCH_MAX_CLIENTS 1024

typedef struct prefetch prefetch_t;

typedef struct prefetch_stats {
    uint64_t sent, used, unused, unknown; /* sent == used + unused + unknown + pending */
    size_t pending;                       /* prefetches waiting for an outcome */
    size_t clients;                       /* clients with pending prefetches */
} prefetch_stats_t;

/**
 * A new tracker that reports outcomes to `pm` (borrowed; it must outlive
 * every call that reports, NULL = count only). Returns 0, HERALD_EINVAL
 * (NULL out) or HERALD_ENOMEM.
 */
int prefetch_create(pagemap_t *pm, prefetch_t **out);

/**
 * Free the tracker. Pending prefetches are counted nowhere (the map may be
 * gone already at shutdown). NULL is a no-op.
 */
void prefetch_destroy(prefetch_t *t);

/**
 * The client `client` prefetched `url_key` (the normalised absolute URL
 * of a page request carrying `Sec-Purpose: prefetch`, served 2xx) from the
 * page `referer_key` (its normalised Referer, NULL none: then the outcome
 * is counted here only). Counts PAGEMAP_PREFETCH_SENT on the map. A pending
 * prefetch of the same URL by the client is replaced (its outcome
 * UNKNOWN). `now` is a monotonic clock in ms, `wall_ms` the wall clock the
 * map stores. Strings are borrowed. Returns 0, HERALD_EINVAL (NULL or
 * empty client, URL not absolute) or HERALD_ENOMEM (nothing recorded).
 */
int prefetch_sent(prefetch_t *t, const char *client, const char *url_key, const char *referer_key,
                  uint64_t now, int64_t wall_ms);

/**
 * Any other request of `client` (not a prefetch): `url_key` its
 * normalised URL, `referer_key` its normalised Referer (NULL none),
 * `navigation` whether it is a page request (Sec-Fetch-Mode: navigate).
 * Settles the client's pending prefetches it answers (UNUSED when it
 * navigates to one, USED when its Referer names one) and those whose
 * lifetime is over (UNKNOWN). O(1) for a client with nothing pending.
 */
void prefetch_request(prefetch_t *t, const char *client, const char *url_key,
                      const char *referer_key, bool navigation, uint64_t now, int64_t wall_ms);

/** Settle every pending prefetch whose lifetime is over at `now` as UNKNOWN. */
void prefetch_expire(prefetch_t *t, uint64_t now, int64_t wall_ms);

/** The earliest `now` at which prefetch_expire has something to settle, UINT64_MAX when none. */
uint64_t prefetch_next_due(const prefetch_t *t);

/** Pending prefetches of `client` (for a per-client limit); 0 for NULL. */
size_t prefetch_pending(const prefetch_t *t, const char *client);

/** Copy the counters into *out. */
void prefetch_stats(const prefetch_t *t, prefetch_stats_t *out);

#endif
