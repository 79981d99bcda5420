/*
 * The adapter between the proxy and learn/ (docs/learning.md has the model):
 * what herald observes of each exchange becomes events of a per-connection
 * session (learn/session.h) and of page visits (learn/visit.h), with
 * normalised URL keys and clock values; page and CSS bodies are teed into
 * parser/ discovery, whose assets become visit items; each visit is
 * committed once to the shared pagemap. HTML discovery runs on libuv's
 * thread pool (gumbo is the expensive part), as does CSS over 64 KiB;
 * smaller stylesheets are tokenized on the loop at the end of their
 * response, so their evidence is in the visit before the client can close
 * the connection.
 *
 * learning is an exchange observer (learning_attach): exchange.c calls its
 * hooks when a connection opens and closes, when a request head is
 * complete, as the response arrives, and when the exchange is freed.
 *
 * A client connection has one learning state (made when the frontend opens
 * the connection's exchange_client_t, released when it closes it); it
 * holds the session and a timer for its visits' windows. A visit is
 * committed when its window expires (or the connection closes), its page
 * was served and its discovery finished. After the commit, same-origin
 * stylesheets that the visit's CSS @imports but the client never fetched
 * are fetched once by herald and scanned; what they name is committed as a
 * supplement, so nghttp-like clients that read HTML only still teach the
 * fonts of imported sheets.
 *
 * Everything below runs on the exchange's worker loop (not thread-safe),
 * except learning_visits_open(); the pagemap is shared by all workers (it
 * locks itself).
 */
#ifndef HERALD_LEARNING_H
#define HERALD_LEARNING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagemap.h"
#include "exchange.h"

typedef struct learning learning_t;
typedef struct sharedmap sharedmap_t;

/* ---- set-up, on each worker ------------------------------------------ */

/**
 * Register learning as an observer of x's exchanges and connections, with
 * `pm` as the store (borrowed: it outlives the worker; NULL = learning off,
 * then nothing is observed) and `shared` the fleet's shared map its
 * commits go through (borrowed, outlives the worker; NULL = no
 * --shared-map). Call before the worker's first connection; register
 * delivery after it (delivery reads what learning classified). Never
 * NULL; free with learning_detach() after the worker's loop ended.
 */
learning_t *learning_attach(exchange_ctx_t *x, pagemap_t *pm, sharedmap_t *shared);
void learning_detach(learning_t *L);

/* ---- the client connection ------------------------------------------- */
/*
 * A connection's learning state (its session: what it requested, what was
 * pushed to it, the visits in their windows) is made in on_client_open and
 * released in on_client_close: visits still open are committed then (or as
 * soon as their discovery work finishes).
 */

/**
 * True when the client of ex itself requested `url_key` (a normalised
 * absolute URL, e.g. pagemap_plan_item_t.key) on its connection: delivery
 * skips it. False once the connection is gone or when learning did not see
 * ex.
 */
bool learning_client_requested(const exchange_t *ex, const char *url_key);
/**
 * True when herald already promised `url_key` on ex's connection (the push
 * diary; filled by learning_note_delivery(PROMISED)). As above otherwise.
 */
bool learning_client_pushed(const exchange_t *ex, const char *url_key);

/* ---- queries for delivery, valid once learning saw ex's request ---- */

/** True when ex was classified as a page request (a navigation GET/HEAD). */
bool learning_is_page(const exchange_t *ex);

/**
 * The page key / template key of a page request (template key NULL when
 * it equals the page key), and the page's normalised absolute URL
 * ("http://host/path?q"). NULL when ex is not a page. The strings live in
 * ex->pool: valid until the exchange is freed.
 */
const char *learning_page_key(const exchange_t *ex);
const char *learning_template_key(const exchange_t *ex);
const char *learning_page_url(const exchange_t *ex);

/**
 * Copy out the plan for page request ex (pagemap_plan with its page key,
 * template key, :authority, --min-confidence and --explore). *out is the caller's:
 * pagemap_plan_dispose(). Returns 0 (an empty plan, source NONE, when ex is
 * not a page or learning is off), HERALD_EINVAL or HERALD_ENOMEM.
 */
int learning_plan(const exchange_t *ex, pagemap_plan_t *out);

/* ---- what DELIVERY did, reported back so the visit's evidence is right */

/**
 * Link a pushed exchange to the page that caused it: call after filling
 * pushed's request fields and before exchange_start(pushed). Sets
 * pushed->role = EXCHANGE_ROLE_PUSHED. The pushed response
 * is then observed as the page visit's evidence (its metadata with
 * pushed=true; a pushed CSS is scanned, so its fonts are learned for the
 * page). `page` must be a page exchange (learning_is_page); otherwise the
 * pushed exchange is only observed for metadata.
 */
void learning_link_pushed(exchange_t *page, exchange_t *pushed);

/**
 * Report a delivery of `url_key` (normalised, the plan item's key) for the
 * visit of `ex` (the page exchange or a pushed exchange linked to it):
 *  PROMISED  the item enters the visit as pushed (no evidence of it from
 *            this visit) and the push diary of the connection;
 *  COMPLETED the pushed stream was fully sent (bytes = body bytes);
 *  CANCELLED the client reset the pushed stream: it had the asset;
 *  HINTED    named in a 103: no evidence of it from this visit.
 * This also calls pagemap_note_delivery() for the page's counters: DELIVERY
 * must not call pagemap_note_delivery itself. Works after the page exchange
 * is freed when `ex` is the pushed one (the visit is refcounted).
 */
void learning_note_delivery(exchange_t *ex, const char *url_key, pagemap_delivery_t event,
                            uint64_t bytes);

/**
 * The plan item `url_key` was not delivered because the client has it
 * (digest cookie, push diary, requested on the connection): it enters the
 * visit as skipped (no evidence). `ex` as for learning_note_delivery.
 */
void learning_note_skipped(exchange_t *ex, const char *url_key);

/**
 * The value of cookie `name` in ex's Cookie request headers, or NULL. The
 * result points into ex's headers (valid while ex lives); *len gets its
 * length.
 */
const char *learning_cookie_value(const exchange_t *ex, const char *name, size_t *len);

/**
 * Visits opened and not yet finished, over all workers: a visit is finished
 * once it is committed (or dropped as unusable) and the stylesheets its CSS
 * imports have been fetched. Tests wait for 0 after closing a client
 * instead of sleeping. Any thread; a relaxed read, a few events stale at
 * most.
 */
uint64_t learning_visits_open(void);

/**
 * Visits opened since start, over all workers, and requests that opened
 * none because their URL answered before with something other than HTML
 * while they did not say they want a page (no fetch metadata, Accept absent
 * or any: curl, API clients, load generators). Any thread; relaxed reads.
 */
uint64_t learning_visits_opened(void);
uint64_t learning_not_pages(void);

#endif
