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
 * Hook points (called by exchange.c only): learning_on_request() when the
 * request head is complete, then the response hooks as upstream delivers
 * the response, learning_on_free() when the exchange is freed.
 *
 * A client connection has one learning_conn_t (conn.c creates it at
 * accept, releases it at close; the frontends copy it into ex->lconn); it
 * holds the session and a timer for its visits' windows. A visit is
 * committed when its window expires (or the connection closes), its page
 * was served and its discovery finished. After the commit, same-origin
 * stylesheets that the visit's CSS @imports but the client never fetched
 * are fetched once by herald and scanned; what they name is committed as a
 * supplement, so nghttp-like clients that read HTML only still teach the
 * fonts of imported sheets.
 *
 * Everything below runs on the exchange's worker loop (not thread-safe),
 * except learning_store() which is shared by all workers (pagemap locks).
 */
#ifndef HERALD_LEARNING_H
#define HERALD_LEARNING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "learn/pagemap.h"
#include "proxy/exchange.h"

typedef struct learning_conn learning_conn_t;

/* ---- hooks (registered on every worker: learning_observer) ------------ */

/** The hooks below as an exchange observer (exchange_ctx_observe). */
extern const exchange_observer_t learning_observer;

void learning_on_request(exchange_t *ex);
void learning_on_response_head(exchange_t *ex, bool final);
void learning_on_response_body(exchange_t *ex, const uint8_t *data, size_t len);
void learning_on_response_end(exchange_t *ex, bool ok);
void learning_on_free(exchange_t *ex);

/* ---- per-connection state (conn.c, frontends) ------------------------ */

/**
 * A connection's learning state on worker w (w->learn is the store; NULL
 * store = learning off, then NULL is returned and every call below accepts
 * NULL). Owned by the connection: release it with learning_conn_release()
 * when the connection closes. Never fails (aborts on out of memory).
 */
learning_conn_t *learning_conn_create(worker_t *w);

/**
 * The connection is gone: visits still open are committed now (or as soon
 * as their discovery work finishes); the object frees itself once its
 * timer is closed and no exchange or visit refers to it. NULL is a no-op.
 */
void learning_conn_release(learning_conn_t *lc);

/**
 * True when the client itself requested `url_key` (a normalised absolute
 * URL, e.g. pagemap_plan_item_t.key) on this connection: DELIVERY skips it.
 * NULL lc → false.
 */
bool learning_conn_requested(const learning_conn_t *lc, const char *url_key);

/**
 * True when herald already promised `url_key` on this connection (the push
 * diary; filled by learning_note_delivery(PROMISED)). NULL lc → false.
 */
bool learning_conn_pushed(const learning_conn_t *lc, const char *url_key);

/* ---- queries for DELIVERY, valid after learning_on_request(ex) ------- */

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

/** The shared store (NULL when learning is off). */
pagemap_t *learning_store(const exchange_t *ex);

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
 * pushed->role = EXCHANGE_ROLE_PUSHED and pushed->lconn. The pushed response
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

#endif
