/*
 * The exchange: one request and its response, whatever the client spoke
 * (HTTP/2 stream, HTTP/1.x message, pushed stream). Frontends (h2.c, h1.c)
 * translate into and out of it; upstream.c, and later push and learning, see
 * only the exchange.
 *
 * Ownership and lifetime
 *   A frontend creates the exchange with exchange_create() once the request
 *   head is complete and fills the request fields. It calls
 *   exchange_frontend_done() when it no longer needs the exchange (stream
 *   closed, h1 response written or connection gone). upstream.c attaches with
 *   ex->upstream and detaches with exchange_upstream_done(). The exchange is
 *   freed when both sides are done; everything in ex->pool goes with it.
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

#include "parser/link.h"
#include "proxy/headers.h"
#include "proxy/mempool.h"

typedef struct exchange exchange_t;
typedef struct worker worker_t;
typedef struct upstream_conn upstream_conn_t;

enum { EXCHANGE_HIGH_WATER = 64 * 1024, EXCHANGE_LOW_WATER = 16 * 1024 };

/** The protocol the client spoke for this exchange. */
typedef enum exchange_proto {
    EXCHANGE_HTTP10,
    EXCHANGE_HTTP11,
    EXCHANGE_HTTP2,
} exchange_proto_t;

/** What the exchange is to the learner (used from the learn/deliver issue on). */
typedef enum exchange_role {
    EXCHANGE_ROLE_UNKNOWN = 0,
    EXCHANGE_ROLE_PAGE,   /* a navigation / HTML page */
    EXCHANGE_ROLE_ASSET,  /* a follow-up request for a subresource */
    EXCHANGE_ROLE_PUSHED, /* a stream herald pushed */
    EXCHANGE_ROLE_OWN,    /* herald's own fetch (a stylesheet learning scans), no client */
} exchange_role_t;

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
    worker_t *worker;
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
    bool frontend_done;
    bool upstream_done;
    bool started;
    bool head_sent; /* a final response head went to the frontend */
    bool aborted;
    bool failed;              /* response_error was delivered */
    bool retried;             /* upstream retried once on a fresh connection */
    bool logged;              /* access log line written */
    uint64_t bytes_to_client; /* response body bytes the frontend wrote, for the log */

    /* ---- learning ---- */
    struct learning_conn *lconn; /* the client connection's learning state, set by the frontend
                                    at creation (borrowed: learning.c refs it); NULL = none */
    struct learning_ex *learn;   /* learning.c's state for ex, owned by learning.c */

    /* ---- delivery ---- */
    struct delivery_ex *deliver;        /* delivery.c's state for ex, owned by delivery.c */
    struct delivery_conn *deliver_conn; /* the connection's push state (h2 frontend sets it;
                                           delivery_conn_ref'd by delivery.c), NULL on h1 */
    bool client_push;                   /* h2: the peer's SETTINGS_ENABLE_PUSH is 1 */
    uint32_t client_max_streams;        /* h2: the peer's SETTINGS_MAX_CONCURRENT_STREAMS */
    bool suppress_head;                 /* delivery: do not forward this 1xx head (cleared after) */

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

/** A new exchange for `w`; the frontend fills the request fields. Never NULL. */
exchange_t *exchange_create(worker_t *w, const exchange_frontend_ops_t *fops, void *fctx);
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
