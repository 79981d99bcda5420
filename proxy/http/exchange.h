/*
 * The exchange: one request and its response, whatever the client spoke
 * (HTTP/2 stream, HTTP/1.x message, pushed stream). Frontends (h2.c, h1.c)
 * translate into and out of it; upstream.c, and later push and learning, see
 * only the exchange.
 *
 * Ownership and lifetime (one place decides: release(), exchange.c)
 *   Two holders keep an exchange alive: the frontend, from exchange_create()
 *   until it calls exchange_frontend_done() (stream closed, h1 response
 *   written or connection gone), and the origin side, from exchange_start()
 *   until it calls exchange_upstream_done(). The exchange is freed when the
 *   last holder lets go; an exchange never started has only the frontend.
 *   Everything in ex->pool goes with it, after every observer's on_free.
 *
 * States (exchange_set_state() asserts the transitions)
 *   NEW        the frontend fills the request; nothing else sees it yet
 *   CANCELLED  the client went away before exchange_start()
 *   STARTED    observers ran on_request, the origin side has it; no final
 *              response head yet
 *   HEAD_SENT  the final response head went to the frontend; body flowing
 *   COMPLETE   the response ended
 *   FAILED     the response failed (response_error was delivered)
 *   ABORTED    the client went away or reset the stream while started
 *   NEW -> STARTED | CANCELLED; STARTED -> HEAD_SENT | FAILED | ABORTED;
 *   HEAD_SENT -> COMPLETE | FAILED | ABORTED. COMPLETE, FAILED, ABORTED and
 *   CANCELLED are final (an abort after the end changes nothing).
 *
 * Observers and the origin (exchange_ctx_t)
 *   exchange.c calls no learning, delivery or metrics code by name: each of
 *   them registers an exchange_observer_t on the worker's context, and the
 *   origin side (upstream.c) its exchange_origin_ops_t. Every response event
 *   passes through the observers, in registration order, before the
 *   frontend sees it; on_free runs in the reverse order.
 *
 * Flow, request direction (frontend -> origin)
 *   exchange_start(ex)                 request head complete; origin fetch starts
 *   exchange_request_body(ex, p, n)    body bytes (copied; p only valid in call)
 *   exchange_request_end(ex)           body complete (or none: call right away)
 *   fops->request_consumed(ex, n)      upstream wrote n body bytes to the origin:
 *                                      the frontend may now let more in
 *                                      (h2: nghttp2_session_consume; h1: resume
 *                                      reading). Bytes not yet consumed are the
 *                                      backpressure: a slow origin never drains
 *                                      a window it cannot take.
 *
 * Flow, response direction (origin -> frontend)
 *   fops->response_head(ex, final)     ex->status/ex->resp_headers are set (for a
 *                                      1xx, final == false and the headers are
 *                                      those of the 1xx; they are replaced by
 *                                      the final response's)
 *   fops->response_body(ex, p, n)      body bytes; p valid only during the call:
 *                                      the frontend copies. Returns the number of
 *                                      bytes the frontend now holds unsent for
 *                                      this exchange; above EXCHANGE_HIGH_WATER
 *                                      upstream stops reading the origin until
 *                                      the frontend calls exchange_drained().
 *   fops->response_end(ex)             the origin's response is complete
 *   fops->response_error(ex, status)   the response failed. If no final head was
 *                                      delivered, the frontend answers `status`
 *                                      (502/504) itself; otherwise it must not
 *                                      end cleanly: h2 RST_STREAM(INTERNAL_ERROR),
 *                                      h1 close the connection.
 *   fops->tunnel_open(ex)              (h1 only) the origin answered 101 to an
 *                                      Upgrade: websocket request and the head
 *                                      was delivered; from now on request and
 *                                      response bodies are raw tunnel bytes,
 *                                      and response_end means the origin closed.
 *
 * Aborts
 *   exchange_abort(ex)                 the client is gone or reset the stream:
 *                                      upstream stops at once (the origin
 *                                      connection is closed unless the response
 *                                      was already complete). No fops callback
 *                                      runs for ex after this returns.
 */
#ifndef HERALD_EXCHANGE_H
#define HERALD_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "link.h"
#include "config.h"
#include "headers.h"
#include "mempool.h"

typedef struct exchange exchange_t;
typedef struct exchange_ctx exchange_ctx_t;
typedef struct upstream_conn upstream_conn_t;

/** Observers of one worker, at most. */
#define EXCHANGE_MAX_OBSERVERS 8

enum { EXCHANGE_HIGH_WATER = 64 * 1024, EXCHANGE_LOW_WATER = 16 * 1024 };

/** The protocol the client spoke for this exchange. */
typedef enum exchange_proto {
    EXCHANGE_HTTP10,
    EXCHANGE_HTTP11,
    EXCHANGE_HTTP2,
} exchange_proto_t;

/** What the exchange is to the learner. */
typedef enum exchange_role {
    EXCHANGE_ROLE_UNKNOWN = 0,
    EXCHANGE_ROLE_PAGE,     /* a navigation / HTML page */
    EXCHANGE_ROLE_ASSET,    /* a follow-up request for a subresource */
    EXCHANGE_ROLE_PUSHED,   /* a stream herald pushed */
    EXCHANGE_ROLE_OWN,      /* herald's own fetch (a stylesheet learning scans), no client */
    EXCHANGE_ROLE_PREFETCH, /* a page request with Sec-Purpose: prefetch: no 103, no push */
} exchange_role_t;

/** The life of an exchange; see the header comment. */
typedef enum exchange_state {
    EXCHANGE_NEW,
    EXCHANGE_CANCELLED,
    EXCHANGE_STARTED,
    EXCHANGE_HEAD_SENT,
    EXCHANGE_COMPLETE,
    EXCHANGE_FAILED,
    EXCHANGE_ABORTED,
} exchange_state_t;

/** Who holds an exchange (bits of exchange_t.holders). */
enum exchange_holder {
    EXCHANGE_HOLD_FRONTEND = 1u << 0,
    EXCHANGE_HOLD_ORIGIN = 1u << 1,
};

/**
 * What the origin side does with an exchange (upstream.c's; exchange.c
 * calls these only). start() takes the origin hold: from then on the origin
 * side ends in exchange_upstream_done(ex) exactly once.
 */
typedef struct exchange_origin_ops {
    void (*start)(exchange_t *ex);
    /** Request body bytes (copied; data valid during the call). */
    void (*request_body)(exchange_t *ex, const uint8_t *data, size_t len);
    void (*request_end)(exchange_t *ex);
    /** The frontend drained below EXCHANGE_LOW_WATER: read the origin again. */
    void (*resume)(exchange_t *ex);
    /** Stop now; ends in exchange_upstream_done(). */
    void (*abort)(exchange_t *ex);
} exchange_origin_ops_t;

/**
 * A client connection as the exchanges see it: who the client is, and what
 * each observer keeps per connection (learning's session, delivery's push
 * diary and pacer). The frontend opens one when it knows the protocol
 * (exchange_client_open) and closes it when the connection closes
 * (exchange_client_close, after aborting its exchanges); every exchange of
 * the connection holds a reference, so the struct outlives the connection
 * while an exchange still runs at the origin. After the close, `closed` is
 * set and every observer's state pointer is NULL.
 */
typedef struct exchange_client exchange_client_t;

/**
 * What the deliver layer offers the h2 frontend for a connection that may
 * push: a pacer for what goes ahead of a page's HTML (pace.h). Set by an
 * observer in on_client_open; `pacer` is the observer's, valid until its
 * on_client_close. Times are uv_hrtime() nanoseconds; `out_total` counts
 * every plaintext byte the connection has written.
 */
typedef struct exchange_pacer_ops {
    /** A timing PING is due behind `out_total` bytes: true, and its 8 opaque bytes. */
    bool (*ping_due)(void *pacer, uint64_t out_total, uint8_t opaque[8]);
    /** A PING with `opaque` leaves behind `out_total` bytes (ignored when not the pacer's). */
    void (*ping_sent)(void *pacer, const uint8_t opaque[8], uint64_t out_total, uint64_t now);
    /**
     * The ACK of a PING with `opaque` arrived. 1: the pacer's, and its rate
     * moved (held pushes may go); 0: the pacer's, nothing moved; -1: not the
     * pacer's PING.
     */
    int (*ping_acked)(void *pacer, const uint8_t opaque[8], uint64_t now);
    /** The connection's output grew to `out_total`. */
    void (*output)(void *pacer, uint64_t out_total, uint64_t now);
    /**
     * Bytes of a DATA frame of `want` bytes that pushed exchange ex may send
     * now (counted as sent): want, a part, or 0 to hold the stream until
     * paced() says to look again.
     */
    size_t (*push_take)(void *pacer, exchange_t *ex, size_t want);
    /** A pushed stream was held (push_take said 0) that was not held before. */
    void (*held)(void *pacer);
    /**
     * Let waiting work start now that room grew; returns in how many
     * nanoseconds held pushes should be offered again (0: none is held).
     * Called outside the frontend's protocol callbacks: fetches may start.
     */
    uint64_t (*paced)(void *pacer);
} exchange_pacer_ops_t;

struct exchange_client {
    exchange_ctx_t *ctx;
    exchange_proto_t proto; /* HTTP11 for an HTTP/1.x connection, HTTP2 */
    int fd;                 /* the client socket (TCP_INFO), -1 when unknown */
    bool tls;
    bool closed;   /* exchange_client_close ran: the connection is gone */
    char addr[48]; /* printable peer address */
    uint16_t port;
    unsigned refs;                         /* the frontend's (until close) and one per exchange */
    const exchange_pacer_ops_t *pacer_ops; /* NULL: nothing paces this connection */
    void *pacer;
    void *state[EXCHANGE_MAX_OBSERVERS]; /* per observer slot, its own; NULL = none */
};

/**
 * Something that watches every exchange of a worker (learning, delivery,
 * metrics). Any hook may be NULL. `data` is what the observer registered
 * with (exchange_ctx_observe), the same for every call on one worker. Its
 * per-exchange state is its own (a field of exchange_t it owns, freed in
 * on_free); its per-connection state goes in client->state[slot].
 */
typedef struct exchange_observer {
    const char *name;
    /** A client connection opened (proto known); may set client->state[slot] and the pacer. */
    void (*on_client_open)(void *data, exchange_client_t *client);
    /** It closed (its exchanges are aborted already); drop client->state[slot]. */
    void (*on_client_close)(void *data, exchange_client_t *client);
    /** The request head is complete, before the origin is asked (may deliver early). */
    void (*on_request)(void *data, exchange_t *ex);
    /**
     * exchange_start() is done with ex: its request went to the origin (or
     * it is answered or failed already). What on_request set going that may
     * wait (the pushes' own origin requests) starts here, so the page's
     * request reaches the origin first.
     */
    void (*on_started)(void *data, exchange_t *ex);
    /** A response head (final or 1xx) before the frontend; may edit ex->resp_headers. */
    void (*on_response_head)(void *data, exchange_t *ex, bool final);
    /**
     * Response body bytes before the frontend. Returns the bytes to pass on:
     * `bytes` itself, or a filtered copy the observer owns until its next
     * call for ex; *out_len gets their length.
     */
    const uint8_t *(*on_response_body)(void *data, exchange_t *ex, const uint8_t *bytes, size_t len,
                                       size_t *out_len);
    /** The response ended (ok) or failed. */
    void (*on_response_end)(void *data, exchange_t *ex, bool ok);
    /** The exchange is finished for the client: once, from exchange_log(). */
    void (*on_complete)(void *data, const exchange_t *ex);
    /** ex is about to be freed (reverse registration order). */
    void (*on_free)(void *data, exchange_t *ex);
} exchange_observer_t;

/**
 * What every exchange of a worker shares: its loop and config, the origin
 * side and the observers, set up at start-up on the worker's thread and
 * read-only afterwards (but `stopping`).
 */
struct exchange_ctx {
    uv_loop_t *loop;
    const config_t *cfg; /* the worker's copy (a reload changes it in place, on the loop) */
    int id;              /* the worker's number, 0.. */
    bool stopping;       /* the worker drains: herald starts no fetches of its own */
    const exchange_origin_ops_t *origin;
    void *origin_data; /* the origin side's per-worker state (upstream.c's pool) */
    const exchange_observer_t *observers[EXCHANGE_MAX_OBSERVERS];
    void *observer_data[EXCHANGE_MAX_OBSERVERS];
    size_t nobservers;
};

/** Initialise ctx for a worker's loop and config (both borrowed: they outlive ctx). */
void exchange_ctx_init(exchange_ctx_t *ctx, uv_loop_t *loop, const config_t *cfg, int id);
/** Set the origin side: `origin` (static) with its per-worker `data`. */
void exchange_ctx_origin(exchange_ctx_t *ctx, const exchange_origin_ops_t *origin, void *data);
/**
 * Register an observer (`obs` static, `data` borrowed: it outlives every
 * exchange of ctx); returns its slot in exchange_client_t.state. Hooks run
 * in registration order (on_free and on_client_close in reverse). Aborts
 * past EXCHANGE_MAX_OBSERVERS.
 */
size_t exchange_ctx_observe(exchange_ctx_t *ctx, const exchange_observer_t *obs, void *data);

/**
 * A client connection of ctx: peer `addr` (copied) and `port`, socket `fd`
 * (-1 unknown). Calls every observer's on_client_open. Held by the caller
 * until exchange_client_close(). Never NULL.
 */
exchange_client_t *exchange_client_open(exchange_ctx_t *ctx, exchange_proto_t proto, int fd,
                                        bool tls, const char *addr, uint16_t port);
/**
 * The connection is gone (its exchanges aborted first): on_client_close
 * runs (reverse order), the observers' states are cleared, and the caller's
 * reference is dropped. NULL is a no-op.
 */
void exchange_client_close(exchange_client_t *cl);

typedef struct exchange_frontend_ops {
    void (*response_head)(exchange_t *ex, bool final);
    size_t (*response_body)(exchange_t *ex, const uint8_t *data, size_t len);
    void (*response_end)(exchange_t *ex);
    void (*response_error)(exchange_t *ex, int status);
    void (*request_consumed)(exchange_t *ex, size_t n);
    void (*tunnel_open)(exchange_t *ex);
    /**
     * (h2 only; NULL elsewhere) Promise `path` on `parent`'s stream with a
     * PUSH_PROMISE (:method GET, the parent's scheme and authority, plus its
     * accept, accept-encoding, accept-language, user-agent and cookie) and
     * return the pushed stream's exchange (role EXCHANGE_ROLE_PUSHED, request
     * fields filled, not started: the caller runs exchange_start() and
     * exchange_request_end() when it wants the origin fetch). Must be called
     * before parent's final response head. NULL when the client does not
     * allow push or nghttp2 refuses. `path` is copied. The frontend owns the
     * returned exchange like any other of its streams.
     */
    exchange_t *(*push_promise)(exchange_t *parent, const char *path);
    /**
     * (NULL where impossible) Send one non-final `103 Early Hints` on ex
     * carrying `links` (Link header lines, borrowed for the call) before any
     * final head. h1 sends it only to HTTP/1.1 clients with --hints-h1=on.
     * Returns whether it was sent.
     */
    bool (*early_hints)(exchange_t *ex, const headers_t *links);
} exchange_frontend_ops_t;

/** The `Link` lines of a response head, parsed once (exchange_resp_links). */
typedef struct exchange_link_line {
    size_t header;    /* index of the line in ex->resp_headers when parsed */
    bool bad;         /* it did not parse: not ours to judge (list is empty) */
    link_list_t list; /* the line's links, resolved against the base */
    char **keys;      /* per link: the normalised URL (malloc'd), NULL when it has none */
} exchange_link_line_t;

typedef struct exchange_links {
    exchange_link_line_t *lines; /* malloc'd */
    size_t n;
    bool parsed;
} exchange_links_t;

struct exchange {
    exchange_ctx_t *ctx;
    exchange_client_t *client; /* its connection (a reference), NULL for herald's own fetches */
    mempool_t pool;

    /* ---- request, filled by the frontend before exchange_start() ---- */
    exchange_proto_t proto;
    const char *method;         /* NUL-terminated, in pool */
    const char *scheme;         /* "http" or "https" */
    const char *authority;      /* :authority or Host; may be "" for HTTP/1.0 */
    const char *path;           /* origin-form: path and query */
    headers_t req_headers;      /* as received, pseudo-headers excluded, hop-by-hop included */
    int64_t req_content_length; /* -1 when unknown (chunked / h2 without the header) */
    bool req_has_body; /* a body follows the head (length > 0, chunked, or h2 without END_STREAM) */
    bool req_upgrade_websocket; /* h1 Upgrade: websocket */
    bool client_tls;
    char client_addr[48]; /* printable peer address, no port */
    uint16_t client_port;

    /* ---- response, filled by upstream before fops->response_head() ---- */
    int status;
    headers_t resp_headers;      /* filtered for the client: hop-by-hop removed */
    int64_t resp_content_length; /* -1 when unknown */
    uint64_t resp_body_bytes;    /* body bytes received from the origin so far */
    uint64_t req_body_bytes;     /* body bytes received from the client so far */

    /* ---- timing (uv_hrtime() nanoseconds) ---- */
    uint64_t t_start;         /* request head complete */
    uint64_t t_upstream_sent; /* request head written to the origin */
    uint64_t t_first_byte;    /* first response byte from the origin */
    uint64_t t_end;           /* response complete or failed */
    int64_t wall_start_us;    /* CLOCK_REALTIME at t_start, for the access log */

    /* ---- links ---- */
    const exchange_frontend_ops_t *fops;
    void *fctx;                /* the frontend's per-exchange context */
    upstream_conn_t *upstream; /* set by upstream.c while attached */
    exchange_role_t role;

    /* ---- state ---- */
    exchange_state_t state;   /* exchange_set_state() */
    uint8_t holders;          /* EXCHANGE_HOLD_* */
    uint8_t retries;          /* fresh origin connections tried after a reused one failed */
    bool logged;              /* the access log line is written (exchange_log) */
    uint64_t bytes_to_client; /* response body bytes the frontend wrote, for the log */

    /* ---- observers' state ---- */
    struct learning_ex *learn;   /* learning.c's state for ex, owned by learning.c */
    struct delivery_ex *deliver; /* delivery.c's state for ex, owned by delivery.c */
    bool client_push;            /* h2: the peer's SETTINGS_ENABLE_PUSH is 1 */
    uint32_t client_max_streams; /* h2: the peer's SETTINGS_MAX_CONCURRENT_STREAMS */
    bool suppress_head;          /* delivery: do not forward this 1xx head (cleared after) */
    /* An observer answers ex itself (set in on_request, with the origin hold
     * taken): exchange_start() does not ask the origin; the observer ends
     * in exchange_upstream_done(ex) like an origin side. */
    bool answered_here;

    /* ---- the current response head's Link lines (exchange_resp_links) ---- */
    exchange_links_t links;
};

/**
 * Whether a pushed exchange's final `status` goes to the client. A pushed
 * 4xx/5xx does not: the h2 frontend resets the stream with
 * RST_STREAM(CANCEL) once the origin's response has ended, and delivery does
 * not count it as delivered.
 */
static inline bool exchange_push_status_ok(int status)
{
    return status < 400;
}

/**
 * A new exchange of `ctx` (borrowed: it outlives the exchange) on `client`
 * (a reference is taken; NULL for herald's own fetches), held by the
 * frontend; the frontend fills the request fields. Never NULL.
 */
exchange_t *exchange_create(exchange_ctx_t *ctx, exchange_client_t *client,
                            const exchange_frontend_ops_t *fops, void *fctx);
/** Move ex to `to`; aborts on a transition the header comment does not list. */
void exchange_set_state(exchange_t *ex, exchange_state_t to);
/** exchange_start() ran (and the client had not left before it). */
static inline bool exchange_started(const exchange_t *ex)
{
    return ex->state != EXCHANGE_NEW && ex->state != EXCHANGE_CANCELLED;
}
/** A final response head reached the frontend (while the response runs or after it ended). */
static inline bool exchange_head_sent(const exchange_t *ex)
{
    return ex->state == EXCHANGE_HEAD_SENT || ex->state == EXCHANGE_COMPLETE;
}
/** Hand the completed request head to upstream. */
void exchange_start(exchange_t *ex);
/** Request body bytes; copied. */
void exchange_request_body(exchange_t *ex, const uint8_t *data, size_t len);
/** The request body is complete (call right after exchange_start when there is none). */
void exchange_request_end(exchange_t *ex);
/** The frontend's unsent bytes for ex fell below EXCHANGE_LOW_WATER: read the origin again. */
void exchange_drained(exchange_t *ex);
/** The client went away or reset the stream; see the header comment. */
void exchange_abort(exchange_t *ex);
/** The frontend is done with ex; frees it if upstream is done too. */
void exchange_frontend_done(exchange_t *ex);
/** upstream.c is done with ex; frees it if the frontend is done too. */
void exchange_upstream_done(exchange_t *ex);
/*
 * The response direction goes through these (upstream.c calls them, never
 * ex->fops directly) so learning and delivery see every response before the
 * frontend does. Same contracts as the fops of the same names.
 */
void exchange_response_head(exchange_t *ex, bool final);
size_t exchange_response_body(exchange_t *ex, const uint8_t *data, size_t len);
void exchange_response_end(exchange_t *ex);
void exchange_response_error(exchange_t *ex, int status);

/**
 * The `Link` header lines of the response head now in ex->resp_headers
 * (a 1xx or the final one), parsed and resolved against `base` (the page's
 * URL) on the first call for that head and shared by every later caller
 * (learning and delivery read the same parse). Owned by ex: valid until the
 * next response head or the exchange's end. A line that does not parse is
 * `bad` with no links. Never NULL.
 */
const exchange_links_t *exchange_resp_links(exchange_t *ex, const char *base);

/** Write ex's access log line once (frontends call it when the response is finished). */
void exchange_log(exchange_t *ex);
/**
 * Format ex's access log line (with its newline) into buf[0..cap); returns
 * its length (truncated lines still end in a newline). The format is
 * documented in exchange.c. `now` (uv_hrtime) ends rt; 0 means t_end.
 */
size_t exchange_log_format(const exchange_t *ex, uint64_t now, char *buf, size_t cap);

#endif
