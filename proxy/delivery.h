/*
 * Delivery (DESIGN.md, "Delivery policy"): at request arrival, turn the
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
 * rate, and at most --push-budget; the h2 frontend asks
 * delivery_push_take() before each pushed DATA frame and holds the stream
 * when the answer is 0. Items that start within that room are fetched from
 * the origin at once; the rest when the room grows, or when the page's head
 * arrives, and then follow the HTML. Fetches run at most
 * min(peer MAX_CONCURRENT_STREAMS, DELIVERY_MAX_FETCHES) at a time per
 * connection; the others wait in plan order.
 *
 * Hook points (called by exchange.c only) and the connection object (h2.c).
 * Everything runs on the exchange's worker loop.
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

typedef struct delivery_conn delivery_conn_t;

/**
 * Per-connection push state for an h2 session on worker w; `fd` is the
 * client socket (for TCP_INFO; -1 unknown), `peer_addr` its printable peer
 * address (copied; it keys the memory of client networks). The caller
 * holds one reference and drops it with delivery_conn_release() when the
 * session goes; exchanges that use it hold their own. Never NULL.
 */
delivery_conn_t *delivery_conn_create(worker_t *w, int fd, const char *peer_addr);
/** Drop a reference; freed with the last. NULL is a no-op. */
void delivery_conn_release(delivery_conn_t *dc);
/** The connection's pacer (owned by dc: valid while the caller holds its reference). */
struct pace_conn *delivery_conn_pacer(delivery_conn_t *dc);
/**
 * Bytes of a DATA frame of `want` bytes that pushed stream ex may send now
 * (counted as sent): `want` when nothing holds it, 0 to hold the stream
 * until delivery_conn_paced() says to look again, or a part.
 */
size_t delivery_push_take(exchange_t *ex, size_t want);
/**
 * Let waiting plan items of the connection's pages fetch when their room
 * grew. Returns in how many nanoseconds held pushes should be offered again
 * (0: nothing is held). Call outside nghttp2 callbacks: fetches may start.
 */
uint64_t delivery_conn_paced(delivery_conn_t *dc);

/** The hooks below as an exchange observer (exchange_ctx_observe). */
extern const exchange_observer_t delivery_observer;

/** Request head complete, before the origin is asked: plan and deliver. */
void delivery_on_request(exchange_t *ex);
/**
 * A response head from the origin, before the frontend sees it (may edit
 * ex->resp_headers, and set ex->suppress_head to drop a 1xx).
 */
void delivery_on_response_head(exchange_t *ex, bool final);
/**
 * Response body bytes before the frontend sees them. Returns the bytes to
 * forward: `data`/`len` unchanged, or a filtered copy (SSE push comments
 * removed) in a buffer delivery owns, valid until the next call for ex;
 * *out_len gets its length.
 */
const uint8_t *delivery_on_response_body(exchange_t *ex, const uint8_t *data, size_t len,
                                         size_t *out_len);
/** The response ended (ok) or failed. */
void delivery_on_response_end(exchange_t *ex, bool ok);
/** ex is being freed (called before learning_on_free). */
void delivery_on_free(exchange_t *ex);

/** Process-wide delivery counters (for the admin issue). */
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
