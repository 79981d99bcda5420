/*
 * Delivery (docs/architecture.md, "Delivery"): at request arrival, turn the
 * learned plan for a page into HTTP/2 pushes or one 103 Early Hints, before
 * the origin has answered; and act on what the origin itself says (its 103
 * and Link headers, SSE push comments). Protocol-neutral: it drives the
 * frontend through exchange_frontend_ops_t (push_promise, early_hints) and
 * reports what it did to learning.c (learning_note_delivery/_skipped).
 *
 * Push executor. Every plan item the client does not have is promised at
 * once (PUSH_PROMISEs precede the page's HEADERS). What is sent ahead of the
 * HTML is paced (pace.h): the pushes' DATA may fill the queue in front of
 * the HTML up to what the think time left can carry at the path's measured
 * rate, and at most --push-budget; the h2 frontend asks the connection's
 * pacer (push_take) before each pushed DATA frame and holds the stream
 * when the answer is 0. Items that start within that room are fetched from
 * the origin at once; the rest when the room grows, or when the page's head
 * arrives, and then follow the HTML. Fetches run at most
 * min(peer MAX_CONCURRENT_STREAMS, DELIVERY_MAX_FETCHES) at a time per
 * connection; the others wait in plan order.
 *
 * Delivery is an exchange observer (delivery_attach); everything runs on
 * the exchange's worker loop.
 */
#ifndef HERALD_DELIVERY_H
#define HERALD_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "learn/pagemap.h"
#include "parser/link.h"
#include "proxy/exchange.h"

/** Origin fetches for pushed streams running at once on one connection, at most. */
#define DELIVERY_MAX_FETCHES 16
/** Size assumed for a plan item whose size was never observed, for the budget. */
#define DELIVERY_UNKNOWN_SIZE (16 * 1024)

typedef struct delivery delivery_t;

/**
 * Register delivery as an observer of x's exchanges and connections (after
 * learning: it reads what learning classified). An HTTP/2 connection gets
 * its push state and pacer when it opens (exchange_client_t.pacer_ops, which
 * the h2 frontend asks before each pushed DATA frame and around its PINGs);
 * the pacer's settings come from x->cfg. Never NULL; free with
 * delivery_detach() after the worker's loop ended.
 */
delivery_t *delivery_attach(exchange_ctx_t *x);
void delivery_detach(delivery_t *D);

/** Process-wide delivery counters (for /stats and /metrics). */
typedef struct delivery_stats {
    uint64_t promised, completed, cancelled; /* pushed streams */
    uint64_t pushed_bytes;                   /* body bytes of completed pushes */
    uint64_t hints_sent;                     /* 103 responses herald made */
    uint64_t hinted_links;                   /* preload links in them */
    uint64_t skipped;                        /* plan items the client had */
    uint64_t digest_hits;                    /* of those, found in the cache digest */
} delivery_stats_t;

/** Copy the counters (atomics, any thread). */
void delivery_stats_get(delivery_stats_t *out);

/**
 * The preload Link for a plan item: its `as` (or the kind's), crossorigin
 * (fonts always anonymous). false when the kind has no preload destination.
 * The link borrows it->url: valid while the plan is.
 */
bool delivery_plan_link(const pagemap_plan_item_t *it, link_t *out);

#endif
