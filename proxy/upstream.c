/*
 * The origin side of an exchange: a per-worker pool of HTTP/1.1 keep-alive
 * connections to the one origin (cfg->origin_addr), the request written with
 * a byte-accounted write queue, the response parsed with llhttp and streamed
 * to the exchange's frontend with backpressure.
 *
 * One upstream_conn_t serves at most one exchange at a time. A connection
 * returns to the idle list (LIFO, so the warmest socket is reused first) only
 * when its response was complete, the origin allows keep-alive and the whole
 * request was handed to the kernel. Idle connections keep a read posted so
 * that an origin closing them is noticed, and close after
 * cfg->origin_idle_timeout.
 */
#include "proxy/upstream.h"

#include <assert.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "proxy/alloc.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/worker.h"

enum {
    READ_BUF_SIZE = 64 * 1024,
    /* Bytes of header names and values, and fields, in one origin response
     * head: the same bounds nghttpx applies (64 KiB). Beyond them the origin
     * is broken or hostile and the client gets a 502, not a header block
     * its own SETTINGS_MAX_HEADER_LIST_SIZE would refuse. */
    MAX_RESPONSE_HEAD = 64 * 1024,
    MAX_RESPONSE_FIELDS = 256,
    /* Idle connections kept per worker: after a burst, the oldest beyond
     * this close at once instead of holding origin sockets until their
     * idle timeout (nginx's upstream `keepalive` cap, set generously). */
    MAX_IDLE = 256,
};

/**
 * A connection's life:
 *   CONNECTING -> ACTIVE      connected, serving its exchange
 *   ACTIVE     -> IDLE        response complete and reusable: in the idle list
 *   IDLE       -> ACTIVE      taken for a new exchange
 *   ACTIVE     -> TUNNEL      101 to a websocket upgrade: raw bytes both ways
 *   any        -> CLOSING     uv_close() called; freed when both handles closed
 */
typedef enum upstream_conn_state {
    UPSTREAM_CONNECTING,
    UPSTREAM_ACTIVE,
    UPSTREAM_IDLE,
    UPSTREAM_TUNNEL,
    UPSTREAM_CLOSING,
    UPSTREAM_NSTATES,
} upstream_conn_state_t;

struct upstream_pool {
    worker_t *worker;
    uv_loop_t *loop;
    const config_t *cfg;
    worker_link_t idle; /* upstream_conn_t.link; newest first */
    upstream_stats_t stats;
    /* One read buffer for every connection of the pool: each read_cb hands
     * all its bytes on (llhttp, the frontend copies) before it returns and
     * libuv reads one stream at a time, so nothing is left in it between
     * reads; an idle or paused connection costs no buffer. */
    char *rbuf;
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
};

struct upstream_conn {
    uv_tcp_t tcp;     /* data = this */
    uv_timer_t timer; /* data = this: origin_timeout, or the idle timeout */
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    upstream_pool_t *pool;
    worker_link_t link; /* in pool->idle while IDLE */
    upstream_conn_state_t state;
    int handles_open; /* tcp + timer until their close callbacks ran */
    bool reading;
    bool paused;     /* read stopped: the frontend holds too much */
    bool want_pause; /* set by on_body, acted on after llhttp_execute */

    /* ---- the exchange being served; reset by attach() ---- */
    exchange_t *ex;
    unsigned gen;     /* bumped per exchange: stale write_cbs ignore ex */
    const char *head; /* request head, in ex->pool (kept for a retry) */
    size_t head_len;
    bool reused;  /* served an exchange before (keep-alive race possible) */
    bool chunked; /* request body is chunk-encoded */
    bool is_head; /* HEAD request: the response has no body */
    bool req_end_queued;
    bool tunnel_shut; /* tunnel: uv_shutdown sent to the origin */
    bool write_failed;
    uint64_t body_queued; /* request body bytes queued on this connection */
    int deferred_status;  /* delivered from the close callback (failure
                           * during a call from the frontend) */
    llhttp_t parser;
    bool resp_started; /* a response byte arrived */
    bool final_head;
    bool upgrading; /* 101 to a websocket request delivered */
    bool complete;
    bool keep_alive;
    headers_t raw;       /* the head being parsed, strings in ex->pool */
    headers_buf_t hname; /* current header name (spans may split across reads) */
    headers_buf_t hvalue;
    size_t head_bytes;
};

/* One uv_write: the bytes live in data[] (copied) or, for the request head,
 * in ex->pool (a connection with unwritten bytes is closed before its
 * exchange can be freed, and libuv reads no buffer after uv_close). */
typedef struct wreq {
    uv_write_t req;
    upstream_conn_t *c;
    unsigned gen;
    size_t body_bytes; /* request body bytes inside, for request_consumed */
    bool is_head;
    uv_buf_t buf;
    char data[];
} wreq_t;

static void conn_close(upstream_conn_t *c);
static void rearm_timer(upstream_conn_t *c);
static void start_reading(upstream_conn_t *c);

static void set_state(upstream_conn_t *c, upstream_conn_state_t to)
{
    static const bool legal[UPSTREAM_NSTATES][UPSTREAM_NSTATES] = {
        [UPSTREAM_CONNECTING] = {[UPSTREAM_ACTIVE] = true, [UPSTREAM_CLOSING] = true},
        [UPSTREAM_ACTIVE] =
            {[UPSTREAM_IDLE] = true, [UPSTREAM_TUNNEL] = true, [UPSTREAM_CLOSING] = true},
        [UPSTREAM_IDLE] = {[UPSTREAM_ACTIVE] = true, [UPSTREAM_CLOSING] = true},
        [UPSTREAM_TUNNEL] = {[UPSTREAM_CLOSING] = true},
        [UPSTREAM_CLOSING] = {0},
    };
    assert(legal[c->state][to]);
    c->state = to;
}

/* ---- pool ---- */

upstream_pool_t *upstream_pool_create(worker_t *w)
{
    upstream_pool_t *pool = xcalloc(1, sizeof(*pool));
    pool->worker = w;
    pool->loop = &w->loop;
    pool->cfg = w->cfg;
    pool->rbuf = xmalloc(READ_BUF_SIZE);
    worker_link_init(&pool->idle);
    return pool;
}

static void pool_maybe_done(upstream_pool_t *pool)
{
    if (!pool->closing || pool->stats.open > 0 || pool->close_cb == NULL)
        return;
    void (*cb)(void *) = pool->close_cb;
    void *arg = pool->close_arg;
    free(pool->rbuf);
    free(pool);
    cb(arg);
}

void upstream_pool_close(upstream_pool_t *pool, void (*cb)(void *arg), void *arg)
{
    pool->closing = true;
    pool->close_cb = cb;
    pool->close_arg = arg;
    while (pool->idle.next != &pool->idle)
        conn_close(container_of(pool->idle.next, upstream_conn_t, link));
    /* with nothing open the callback runs right here */
    pool_maybe_done(pool);
}

void upstream_pool_stats(const upstream_pool_t *pool, upstream_stats_t *out)
{
    *out = pool->stats;
}

/* ---- connection lifetime ---- */

static void close_cb(uv_handle_t *h)
{
    upstream_conn_t *c = h->data;
    if (--c->handles_open > 0)
        return;
    upstream_pool_t *pool = c->pool;
    exchange_t *ex = c->ex;
    if (ex != NULL) {
        /* a failure during a frontend call, delivered now so the frontend
         * never sees a callback from inside its own call */
        c->ex = NULL;
        ex->upstream = NULL;
        ex->t_end = uv_hrtime();
        ex->failed = true;
        int status = c->deferred_status != 0 ? c->deferred_status : 502;
        if (!ex->head_sent)
            ex->status = status;
        pool->stats.errors++;
        exchange_response_error(ex, status);
        exchange_upstream_done(ex);
    }
    pool->stats.open--;
    headers_buf_dispose(&c->hname);
    headers_buf_dispose(&c->hvalue);
    free(c);
    pool_maybe_done(pool);
}

static void conn_close(upstream_conn_t *c)
{
    if (c->state == UPSTREAM_CLOSING)
        return;
    if (c->state == UPSTREAM_IDLE) {
        worker_link_remove(&c->link);
        c->pool->stats.idle--;
    }
    set_state(c, UPSTREAM_CLOSING);
    /* pending writes complete with UV_ECANCELED before close_cb */
    uv_close((uv_handle_t *)&c->tcp, close_cb);
    uv_close((uv_handle_t *)&c->timer, close_cb);
}

static void detach(upstream_conn_t *c)
{
    c->ex->upstream = NULL;
    c->ex = NULL;
}

/* Deliver a failure to c's exchange now (from a libuv callback) and close c. */
static void fail(upstream_conn_t *c, int status)
{
    exchange_t *ex = c->ex;
    conn_close(c);
    if (ex == NULL)
        return;
    detach(c);
    ex->t_end = uv_hrtime();
    ex->failed = true;
    if (!ex->head_sent)
        ex->status = status;
    c->pool->stats.errors++;
    exchange_response_error(ex, status);
    exchange_upstream_done(ex);
}

/* A failure during a call from the frontend: delivered from close_cb. */
static void fail_deferred(upstream_conn_t *c, int status)
{
    c->deferred_status = status;
    conn_close(c);
}

static void conn_timer_cb(uv_timer_t *t)
{
    upstream_conn_t *c = t->data;
    if (c->state == UPSTREAM_IDLE) {
        conn_close(c);
        return;
    }
    if (c->ex == NULL)
        return;
    c->pool->stats.timeouts++;
    LOG_WARN("origin %s:%u timed out %s (%s %s)", c->pool->cfg->origin_host,
             c->pool->cfg->origin_port,
             c->state == UPSTREAM_CONNECTING ? "connecting"
             : c->resp_started               ? "mid-response"
                                             : "waiting for the response head",
             c->ex->method, c->ex->path);
    fail(c, 504);
}

static void arm(upstream_conn_t *c, double secs)
{
    if (secs <= 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, conn_timer_cb, (uint64_t)(secs * 1000.0 + 0.5), 0);
}

/*
 * origin_timeout is an inactivity timeout while the origin owes us
 * something: the connect, the response, or taking queued bytes. It does not
 * run while reading is paused (a slow client is not the origin's fault) or
 * while the origin waits for request body the client has not sent yet.
 */
static void rearm_timer(upstream_conn_t *c)
{
    switch (c->state) {
    case UPSTREAM_CONNECTING:
        arm(c, c->pool->cfg->origin_timeout);
        break;
    case UPSTREAM_ACTIVE:
        if (!c->paused && (c->req_end_queued || c->resp_started ||
                           uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > 0))
            arm(c, c->pool->cfg->origin_timeout);
        else
            uv_timer_stop(&c->timer);
        break;
    case UPSTREAM_IDLE:
        arm(c, c->pool->cfg->origin_idle_timeout);
        break;
    case UPSTREAM_TUNNEL:
    case UPSTREAM_CLOSING:
    case UPSTREAM_NSTATES:
        uv_timer_stop(&c->timer);
        break;
    }
}

static void connect_cb(uv_connect_t *req, int status)
{
    upstream_conn_t *c = req->data;
    if (status == UV_ECANCELED || c->state == UPSTREAM_CLOSING)
        return;
    if (status < 0) {
        LOG_WARN("origin %s:%u connect: %s", c->pool->cfg->origin_host, c->pool->cfg->origin_port,
                 uv_strerror(status));
        fail(c, status == UV_ETIMEDOUT ? 504 : 502);
        return;
    }
    set_state(c, UPSTREAM_ACTIVE);
    uv_tcp_nodelay(&c->tcp, 1);
    start_reading(c);
    rearm_timer(c);
    /* writes queued while connecting are flushed by libuv now */
}

/* A new connection, connecting. *err is 0 or the negative errno of a
 * uv_tcp_connect that failed at once (the connection is then still
 * returned, to be closed by the caller through fail_deferred). */
static upstream_conn_t *conn_new(upstream_pool_t *pool, int *err)
{
    upstream_conn_t *c = xcalloc(1, sizeof(*c));
    c->pool = pool;
    worker_link_init(&c->link);
    headers_buf_init(&c->hname);
    headers_buf_init(&c->hvalue);
    c->state = UPSTREAM_CONNECTING;
    int r = uv_tcp_init(pool->loop, &c->tcp);
    if (r < 0) {
        LOG_FATAL("uv_tcp_init: %s", uv_strerror(r));
        abort();
    }
    uv_timer_init(pool->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->connect_req.data = c;
    c->handles_open = 2;
    pool->stats.open++;
    pool->stats.connects++;
    uv_tcp_nodelay(&c->tcp, 1);
    *err = uv_tcp_connect(&c->connect_req, &c->tcp,
                          (const struct sockaddr *)&pool->cfg->origin_addr, connect_cb);
    if (*err < 0)
        LOG_WARN("origin %s:%u connect: %s", pool->cfg->origin_host, pool->cfg->origin_port,
                 uv_strerror(*err));
    else
        arm(c, pool->cfg->origin_timeout);
    return c;
}

static upstream_conn_t *take_idle(upstream_pool_t *pool)
{
    if (pool->idle.next == &pool->idle)
        return NULL;
    upstream_conn_t *c = container_of(pool->idle.next, upstream_conn_t, link);
    worker_link_remove(&c->link);
    pool->stats.idle--;
    pool->stats.reuses++;
    set_state(c, UPSTREAM_ACTIVE);
    uv_timer_stop(&c->timer);
    return c;
}

static void to_idle(upstream_conn_t *c)
{
    upstream_pool_t *pool = c->pool;
    if (pool->stats.idle >= MAX_IDLE) /* the least recently used goes */
        conn_close(container_of(pool->idle.prev, upstream_conn_t, link));
    set_state(c, UPSTREAM_IDLE);
    worker_link_insert(&c->pool->idle, &c->link);
    c->pool->stats.idle++;
    c->paused = false;
    c->want_pause = false;
    start_reading(c); /* to notice the origin closing it */
    rearm_timer(c);
}

/* ---- writing ---- */

static void write_cb(uv_write_t *req, int status)
{
    wreq_t *w = container_of(req, wreq_t, req);
    upstream_conn_t *c = w->c;
    exchange_t *ex = w->gen == c->gen ? c->ex : NULL;
    size_t body = w->body_bytes;
    bool is_head = w->is_head;
    free(w); /* the bytes went to the kernel (or were cancelled) */

    if (status == UV_ECANCELED)
        return;
    if (status < 0) {
        c->write_failed = true;
        if (ex != NULL && c->state == UPSTREAM_ACTIVE && !c->resp_started) {
            /* let the read side decide (an early response may be in
             * flight); if nothing comes, EOF/reset ends it. A reset on a
             * reused connection is the keep-alive race: see read_cb. */
            LOG_INFO("origin write: %s", uv_strerror(status));
        } else if (c->state == UPSTREAM_TUNNEL && ex != NULL) {
            /* the origin is gone: its EOF will end the tunnel */
        } else if (c->state == UPSTREAM_IDLE) {
            conn_close(c);
        }
        return;
    }
    if (ex == NULL)
        return;
    if (is_head && ex->t_upstream_sent == 0)
        ex->t_upstream_sent = uv_hrtime();
    if (body > 0) {
        /* the frontend may let `body` more bytes in (its backpressure) */
        ex->fops->request_consumed(ex, body);
        if (c->ex != ex)
            return; /* aborted inside the callback */
    }
    rearm_timer(c);
}

/* Queue the concatenation of up to three pieces (copied), or with `borrow`
 * the single piece p1 without copying (the head in ex->pool). */
static int queue_write(upstream_conn_t *c, const char *p1, size_t n1, const char *p2, size_t n2,
                       const char *p3, size_t n3, size_t body_bytes, bool borrow)
{
    size_t total = n1 + n2 + n3;
    if (borrow) {
        /* A request head (the only borrowed piece): try it in place first.
         * When the kernel takes it all there is no write request and no
         * epoll_ctl round trip (libuv pays one each time its write queue
         * drains). Body writes keep the queue: their completion feeds the
         * frontend's flow control, which must not run re-entrantly. */
        uv_buf_t b = uv_buf_init((char *)p1, (unsigned)n1);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n == (int)n1) {
            if (c->ex != NULL && c->ex->t_upstream_sent == 0)
                c->ex->t_upstream_sent = uv_hrtime();
            rearm_timer(c);
            return 0;
        }
        if (n > 0) {
            p1 += n;
            n1 -= (size_t)n;
            total = n1;
        }
    }
    wreq_t *w = xmalloc(sizeof(*w) + (borrow ? 0 : total));
    w->c = c;
    w->gen = c->gen;
    w->body_bytes = body_bytes;
    w->is_head = borrow;
    if (borrow) {
        w->buf = uv_buf_init((char *)p1, (unsigned)n1);
    } else {
        if (n1 > 0)
            memcpy(w->data, p1, n1);
        if (n2 > 0)
            memcpy(w->data + n1, p2, n2);
        if (n3 > 0)
            memcpy(w->data + n1 + n2, p3, n3);
        w->buf = uv_buf_init(w->data, (unsigned)total);
    }
    /* uv_write needs w->buf's bytes until write_cb (see wreq_t) */
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, write_cb);
    if (r < 0) {
        free(w); /* a failed call never runs its callback */
        LOG_WARN("origin write: %s", uv_strerror(r));
    }
    return r;
}

/* ---- parsing the response ---- */

static int on_message_begin(llhttp_t *p)
{
    upstream_conn_t *c = p->data;
    c->raw = (headers_t){0};
    c->hname.len = c->hvalue.len = 0;
    c->head_bytes = 0;
    return 0;
}

static int head_span(llhttp_t *p, headers_buf_t *b, const char *at, size_t len)
{
    upstream_conn_t *c = p->data;
    c->head_bytes += len;
    if (c->head_bytes > MAX_RESPONSE_HEAD) {
        llhttp_set_error_reason(p, "response head too large");
        return HPE_USER;
    }
    /* at points into the read buffer, valid only during llhttp_execute: copied */
    headers_buf_append(b, at, len);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    return head_span(p, &((upstream_conn_t *)p->data)->hname, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    return head_span(p, &((upstream_conn_t *)p->data)->hvalue, at, len);
}

static int on_header_value_complete(llhttp_t *p)
{
    upstream_conn_t *c = p->data;
    if (c->raw.n >= MAX_RESPONSE_FIELDS) {
        llhttp_set_error_reason(p, "too many response header fields");
        return HPE_USER;
    }
    headers_add(&c->raw, &c->ex->pool, c->hname.p ? c->hname.p : "", c->hname.len,
                c->hvalue.p ? c->hvalue.p : "", c->hvalue.len);
    c->hname.len = c->hvalue.len = 0;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    upstream_conn_t *c = p->data;
    exchange_t *ex = c->ex;
    int status = p->status_code;
    bool upgrade = status == 101 && ex->req_upgrade_websocket;
    if (status == 101 && !upgrade) {
        llhttp_set_error_reason(p, "101 to a request that asked for no upgrade");
        return -1;
    }
    char proto[48];
    size_t pl = headers_u64_digits(p->http_major, proto);
    proto[pl++] = '.';
    proto[pl + headers_u64_digits(p->http_minor, proto + pl)] = '\0';
    ex->status = status;
    ex->resp_headers = (headers_t){0}; /* a 1xx's headers are replaced */
    headers_filter_response(&c->raw, &ex->resp_headers, &ex->pool, proto, upgrade);
    c->raw = (headers_t){0};

    if (status < 200 && !upgrade) {
        /* 100/102/103...: llhttp reports it as a complete message and
         * parses the real response next on the same stream */
        exchange_response_head(ex, false);
        return c->ex == ex ? 0 : -1;
    }
    c->final_head = true;
    ex->head_sent = true;
    if (p->flags & F_CHUNKED)
        ex->resp_content_length = -1;
    else if (p->flags & F_CONTENT_LENGTH)
        ex->resp_content_length = (int64_t)p->content_length;
    else
        ex->resp_content_length = -1;
    c->upgrading = upgrade;
    exchange_response_head(ex, true);
    if (c->ex != ex)
        return -1; /* aborted inside the callback */
    if (upgrade)
        return 2; /* no body; llhttp_execute returns HPE_PAUSED_UPGRADE */
    return c->is_head ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    upstream_conn_t *c = p->data;
    exchange_t *ex = c->ex;
    ex->resp_body_bytes += len;
    /* at points into the read buffer, valid only during this call: the frontend copies */
    size_t held = exchange_response_body(ex, (const uint8_t *)at, len);
    if (c->ex != ex)
        return HPE_USER;
    if (held > EXCHANGE_HIGH_WATER)
        c->want_pause = true;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    upstream_conn_t *c = p->data;
    if (!c->final_head || c->upgrading)
        return 0; /* a 1xx, or the 101 (execute then returns PAUSED_UPGRADE) */
    c->complete = true;
    c->keep_alive = llhttp_should_keep_alive(p);
    return HPE_PAUSED; /* stop here: bytes after the response are not ours */
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* The response is complete: pool or close c, then tell the frontend. */
static void finish_ok(upstream_conn_t *c)
{
    exchange_t *ex = c->ex;
    ex->t_end = uv_hrtime();
    bool reusable = c->keep_alive && c->req_end_queued && !c->write_failed &&
                    uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0 &&
                    !c->pool->closing && c->state == UPSTREAM_ACTIVE;
    detach(c);
    /* before response_end, so an exchange started from inside it can reuse c */
    if (reusable)
        to_idle(c);
    else
        conn_close(c);
    exchange_response_end(ex);
    exchange_upstream_done(ex);
}

static void do_pause(upstream_conn_t *c)
{
    c->want_pause = false;
    c->paused = true;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    rearm_timer(c);
}

static void deliver_tunnel(upstream_conn_t *c, const char *data, size_t n)
{
    exchange_t *ex = c->ex;
    ex->resp_body_bytes += n;
    /* data points into the read buffer, valid only during the call: the frontend copies */
    size_t held = exchange_response_body(ex, (const uint8_t *)data, n);
    if (c->ex == ex && held > EXCHANGE_HIGH_WATER)
        do_pause(c);
}

static void tunnel_end(upstream_conn_t *c)
{
    exchange_t *ex = c->ex;
    ex->t_end = uv_hrtime();
    detach(c);
    conn_close(c);
    exchange_response_end(ex);
    exchange_upstream_done(ex);
}

static void tunnel_begin(upstream_conn_t *c, const char *rest, size_t n)
{
    exchange_t *ex = c->ex;
    set_state(c, UPSTREAM_TUNNEL);
    rearm_timer(c); /* a websocket may stay quiet for long: no timeout */
    ex->fops->tunnel_open(ex);
    if (c->ex != ex)
        return;
    /* bytes after the 101 head came in the same read: the tunnel's first */
    if (n > 0)
        deliver_tunnel(c, rest, n);
}

static bool is_idempotent(const char *m)
{
    static const char *const ok[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(m, ok[i]) == 0)
            return true;
    return false;
}

static void start_fresh(upstream_pool_t *pool, exchange_t *ex, const char *head, size_t head_len,
                        bool ended);

/*
 * The connection died before any response byte. On a reused connection this
 * is the keep-alive race (the origin closed it as we sent): an idempotent
 * request with no body bytes given to it yet is sent again, once, on a fresh
 * connection.
 */
static void conn_lost(upstream_conn_t *c, int err)
{
    exchange_t *ex = c->ex;
    if (c->reused && !c->resp_started && c->body_queued == 0 && !ex->retried &&
        is_idempotent(ex->method) && !c->pool->closing) {
        upstream_pool_t *pool = c->pool;
        bool ended = c->req_end_queued;
        ex->retried = true;
        pool->stats.retries++;
        LOG_INFO("origin closed a reused connection (%s): retrying %s %s", uv_strerror(err),
                 ex->method, ex->path);
        const char *head = c->head;
        size_t head_len = c->head_len;
        detach(c);
        conn_close(c);
        start_fresh(pool, ex, head, head_len, ended);
        return;
    }
    LOG_WARN("origin %s:%u closed the connection before responding (%s): %s %s",
             c->pool->cfg->origin_host, c->pool->cfg->origin_port, uv_strerror(err), ex->method,
             ex->path);
    fail(c, 502);
}

static void parse(upstream_conn_t *c, const char *data, size_t n)
{
    exchange_t *ex = c->ex;
    /* llhttp's spans point into data (the read buffer) and are copied by the callbacks */
    llhttp_errno_t e = llhttp_execute(&c->parser, data, n);
    if (c->ex != ex)
        return; /* aborted or failed inside a callback */
    const char *pos;
    switch (e) {
    case HPE_OK:
        break;
    case HPE_PAUSED: /* on_message_complete of the final response */
        pos = llhttp_get_error_pos(&c->parser);
        if (pos != NULL && pos < data + n)
            c->keep_alive = false; /* the origin sent more than the response */
        finish_ok(c);
        return;
    case HPE_PAUSED_UPGRADE:
        if (c->upgrading) {
            pos = llhttp_get_error_pos(&c->parser);
            if (pos == NULL)
                pos = data + n;
            tunnel_begin(c, pos, (size_t)(data + n - pos));
            return;
        }
        /* llhttp saw an upgrade we did not ask for */
        __attribute__((fallthrough));
    default:
        LOG_ERROR("malformed response from origin %s:%u to %s %s: %s (%s)",
                  c->pool->cfg->origin_host, c->pool->cfg->origin_port, ex->method, ex->path,
                  llhttp_errno_name(e),
                  llhttp_get_error_reason(&c->parser) ? llhttp_get_error_reason(&c->parser) : "");
        fail(c, 502);
        return;
    }
    if (c->want_pause)
        do_pause(c);
    else
        rearm_timer(c);
}

static void active_read(upstream_conn_t *c, ssize_t nread, const char *data)
{
    exchange_t *ex = c->ex;
    if (ex == NULL) {
        conn_close(c);
        return;
    }
    if (nread < 0) {
        if (!c->resp_started) {
            conn_lost(c, (int)nread);
            return;
        }
        if (nread == UV_EOF) {
            /* a close-delimited body ends cleanly here; anything else is cut */
            llhttp_errno_t e = llhttp_finish(&c->parser);
            if (c->ex != ex)
                return;
            if (c->complete) {
                c->keep_alive = false;
                finish_ok(c);
                return;
            }
            LOG_WARN("origin closed mid-response (%s) to %s %s", llhttp_errno_name(e), ex->method,
                     ex->path);
        } else {
            LOG_WARN("origin read: %s (%s %s)", uv_strerror((int)nread), ex->method, ex->path);
        }
        fail(c, 502);
        return;
    }
    if (!c->resp_started) {
        c->resp_started = true;
        ex->t_first_byte = uv_hrtime();
    }
    parse(c, data, (size_t)nread);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    upstream_conn_t *c = h->data;
    /* the pool's buffer: read_cb consumes it fully before any other read */
    *buf = uv_buf_init(c->pool->rbuf, READ_BUF_SIZE);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    upstream_conn_t *c = s->data;
    /* buf is the pool's rbuf (alloc_cb): its bytes are ours until we return */
    if (nread == 0)
        return; /* EAGAIN, not EOF */
    switch (c->state) {
    case UPSTREAM_IDLE:
        /* EOF (the origin closed it) or bytes nobody asked for: drop it */
        conn_close(c);
        break;
    case UPSTREAM_ACTIVE:
        active_read(c, nread, buf->base);
        break;
    case UPSTREAM_TUNNEL:
        if (c->ex == NULL)
            conn_close(c);
        else if (nread < 0)
            tunnel_end(c);
        else
            deliver_tunnel(c, buf->base, (size_t)nread);
        break;
    case UPSTREAM_CONNECTING:
    case UPSTREAM_CLOSING:
    case UPSTREAM_NSTATES:
        break;
    }
}

static void start_reading(upstream_conn_t *c)
{
    if (c->reading)
        return;
    int r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (r == 0)
        c->reading = true;
    else
        LOG_WARN("origin read start: %s", uv_strerror(r));
}

/* ---- the calls exchange.c makes ---- */

/* Bind ex to c for one request/response; head is in ex->pool. */
static void attach(upstream_conn_t *c, exchange_t *ex, const char *head, size_t head_len)
{
    c->gen++;
    c->ex = ex;
    ex->upstream = c;
    c->head = head;
    c->head_len = head_len;
    c->chunked = ex->req_has_body && ex->req_content_length < 0 && !ex->req_upgrade_websocket;
    c->is_head = strcmp(ex->method, "HEAD") == 0;
    c->req_end_queued = false;
    c->tunnel_shut = false;
    c->write_failed = false;
    c->body_queued = 0;
    c->deferred_status = 0;
    c->resp_started = c->final_head = c->upgrading = c->complete = c->keep_alive = false;
    c->want_pause = c->paused = false;
    c->raw = (headers_t){0};
    c->hname.len = c->hvalue.len = 0;
    llhttp_init(&c->parser, HTTP_RESPONSE, &parser_settings);
    c->parser.data = c;
}

/* Queue the head (and, when the request already ended, its last chunk). */
static void send_request(upstream_conn_t *c, bool ended)
{
    if (queue_write(c, c->head, c->head_len, NULL, 0, NULL, 0, 0, true) < 0) {
        fail_deferred(c, 502);
        return;
    }
    if (ended) {
        c->req_end_queued = true;
        if (c->chunked && queue_write(c, "0\r\n\r\n", 5, NULL, 0, NULL, 0, 0, false) < 0) {
            fail_deferred(c, 502);
            return;
        }
    }
    if (c->state == UPSTREAM_ACTIVE) {
        start_reading(c);
        rearm_timer(c);
    }
}

/* A fresh connection for ex: connect, then queue the request. */
static void start_fresh(upstream_pool_t *pool, exchange_t *ex, const char *head, size_t head_len,
                        bool ended)
{
    int r;
    upstream_conn_t *c = conn_new(pool, &r);
    attach(c, ex, head, head_len);
    if (r < 0)
        fail_deferred(c, 502); /* uv_tcp_connect failed at once: no connect_cb */
    else
        send_request(c, ended);
}

static const char *via_proto(exchange_proto_t p)
{
    switch (p) {
    case EXCHANGE_HTTP10:
        return "1.0";
    case EXCHANGE_HTTP11:
        return "1.1";
    case EXCHANGE_HTTP2:
        return "2";
    }
    return "1.1";
}

void upstream_start(exchange_t *ex)
{
    upstream_pool_t *pool = ex->worker->upstream;
    const config_t *cfg = pool->cfg;

    /* Host falls back to the origin's own name only without :authority */
    char hostport[300];
    hostport[0] = '\0';
    bool need_hostport = cfg->origin_host_header[0] == '\0' &&
                         (ex->authority == NULL || ex->authority[0] == '\0');
    if (need_hostport) {
        if (strchr(cfg->origin_host, ':') != NULL)
            snprintf(hostport, sizeof(hostport), "[%s]:%u", cfg->origin_host, cfg->origin_port);
        else if (cfg->origin_port == 80)
            snprintf(hostport, sizeof(hostport), "%s", cfg->origin_host);
        else
            snprintf(hostport, sizeof(hostport), "%s:%u", cfg->origin_host, cfg->origin_port);
    }

    headers_request_t in = {
        .method = ex->method,
        .path = ex->path,
        .authority = ex->authority,
        .scheme = ex->scheme,
        .headers = &ex->req_headers,
        .client_addr = ex->client_addr,
        .via_proto = via_proto(ex->proto),
        .has_body = ex->req_has_body,
        .content_length = ex->req_content_length,
        .websocket = ex->req_upgrade_websocket,
        .host_override = cfg->origin_host_header,
        .origin_hostport = hostport,
        .trust_forwarded = cfg->trust_forwarded,
    };
    char mem[2048]; /* most heads fit: no heap buffer */
    headers_buf_t b;
    headers_buf_init_on(&b, mem, sizeof(mem));
    headers_build_request(&in, &b);
    /* the head lives in ex->pool: written from there, and again on a retry */
    size_t head_len = b.len;
    const char *head = mempool_strndup(&ex->pool, b.p, b.len);
    headers_buf_dispose(&b);

    upstream_conn_t *c = take_idle(pool);
    if (c != NULL) {
        c->reused = true;
        attach(c, ex, head, head_len);
        send_request(c, false);
        return;
    }
    start_fresh(pool, ex, head, head_len, false);
}

void upstream_request_body(exchange_t *ex, const uint8_t *data, size_t len)
{
    upstream_conn_t *c = ex->upstream;
    if (c == NULL || len == 0 || c->state == UPSTREAM_CLOSING)
        return;
    c->body_queued += len;
    int r;
    /* data is valid only during this call: queue_write copies it */
    if (c->chunked && c->state != UPSTREAM_TUNNEL) {
        char size[24];
        int k = snprintf(size, sizeof(size), "%zx\r\n", len);
        r = queue_write(c, size, (size_t)k, (const char *)data, len, "\r\n", 2, len, false);
    } else {
        r = queue_write(c, (const char *)data, len, NULL, 0, NULL, 0, len, false);
    }
    if (r < 0) {
        fail_deferred(c, 502);
        return;
    }
    rearm_timer(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    /* nothing to do: the origin answers our FIN by closing (EOF) */
}

void upstream_request_end(exchange_t *ex)
{
    upstream_conn_t *c = ex->upstream;
    if (c == NULL || c->state == UPSTREAM_CLOSING)
        return;
    if (c->state == UPSTREAM_TUNNEL) {
        /* the client closed its side of the tunnel: pass the FIN on */
        if (!c->tunnel_shut) {
            c->tunnel_shut = true;
            c->shutdown_req.data = c;
            uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, shutdown_cb);
        }
        return;
    }
    if (c->req_end_queued)
        return;
    c->req_end_queued = true;
    if (c->chunked && queue_write(c, "0\r\n\r\n", 5, NULL, 0, NULL, 0, 0, false) < 0) {
        fail_deferred(c, 502);
        return;
    }
    rearm_timer(c);
}

void upstream_resume(exchange_t *ex)
{
    upstream_conn_t *c = ex->upstream;
    if (c == NULL)
        return;
    c->want_pause = false;
    if (!c->paused)
        return;
    if (c->state != UPSTREAM_ACTIVE && c->state != UPSTREAM_TUNNEL)
        return;
    c->paused = false;
    start_reading(c);
    rearm_timer(c);
}

void upstream_abort(exchange_t *ex)
{
    upstream_conn_t *c = ex->upstream;
    if (c == NULL)
        return;
    detach(c);
    /* attached means the response is not complete: the connection is unusable */
    conn_close(c);
    exchange_upstream_done(ex);
}
