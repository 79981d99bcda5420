/*
 * HTTP/1.x frontend session. See h1.h.
 *
 * One request at a time: llhttp is paused after each message and resumed
 * when its response is finished, so pipelined requests wait as raw bytes in
 * `in`. The request head is collected in the session's own pool and copied
 * into the exchange once it is complete and valid.
 */
#include "proxy/h1.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "herald/error.h"
#include "proxy/alloc.h"
#include "proxy/list.h"
#include "proxy/exchange.h"
#include "proxy/headers.h"
#include "proxy/log.h"
#include "proxy/mempool.h"

typedef struct h1_session h1_session_t;

enum { H1_MAX_URL = 8192 };

/** The session's states (request side); see h1_set_state() for the legal moves. */
typedef enum h1_state {
    H1_IDLE,    /* between requests (keep-alive) or before the first */
    H1_HEAD,    /* receiving a request head */
    H1_BODY,    /* exchange started; receiving the request body */
    H1_WAIT,    /* request complete; its response is under way */
    H1_UPGRADE, /* WebSocket request forwarded; waiting for the origin's 101 */
    H1_TUNNEL,  /* raw bytes both ways */
    H1_DONE,    /* no more requests: the connection closes after its output */
} h1_state_t;

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

struct h1_session {
    conn_t *c;
    llhttp_t parser;
    h1_state_t state;
    conn_buf_t in; /* unparsed input (pipelined or arrived while paused) */
    bool parser_paused;
    bool in_parse; /* inside llhttp_execute: the parser must not be resumed */

    /* request head being collected */
    mempool_t hpool;
    headers_t hdrs;
    sbuf_t url;
    sbuf_t field; /* current header name, then its value appended */
    size_t field_name_len;
    bool in_value;
    size_t head_bytes;
    int err_status; /* 0, or the status a parse failure should answer */
    const char *err_text;
    bool websocket;
    bool is_head;

    /* the exchange in progress */
    exchange_t *ex;
    size_t unconsumed; /* request body bytes upstream has not written yet */
    bool keep_alive;
    bool resp_head_sent;
    bool resp_chunked;
    bool resp_no_body;
    bool upstream_paused;
    bool draining;
};

static const exchange_frontend_ops_t h1_fops;
static const llhttp_settings_t h1_settings;

static void h1_set_state(h1_session_t *s, h1_state_t next)
{
    h1_state_t cur = s->state;
    bool ok = false;
    switch (next) {
    case H1_IDLE:
        ok = cur == H1_WAIT;
        break;
    case H1_HEAD:
        ok = cur == H1_IDLE;
        break;
    case H1_BODY:
        ok = cur == H1_HEAD;
        break;
    case H1_WAIT:
        ok = cur == H1_BODY;
        break;
    case H1_UPGRADE:
        ok = cur == H1_HEAD;
        break;
    case H1_TUNNEL:
        ok = cur == H1_UPGRADE;
        break;
    case H1_DONE:
        ok = true;
        break;
    }
    assert(ok && "illegal h1 state transition");
    (void)ok;
    s->state = next;
}

static void sbuf_append(sbuf_t *b, const char *p, size_t n)
{
    b->p = alloc_grow(b->p, &b->cap, b->len + n + 1, 256);
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

/* "<len in hex>\r\n" into line (at least 20 bytes); returns its length. */
static int hex_line(char *line, size_t len)
{
    char tmp[16];
    int k = 0;
    do {
        tmp[k++] = "0123456789abcdef"[len & 15];
        len >>= 4;
    } while (len > 0);
    int n = 0;
    while (k > 0)
        line[n++] = tmp[--k];
    line[n++] = '\r';
    line[n++] = '\n';
    return n;
}

static void put(h1_session_t *s, const char *str)
{
    conn_write(s->c, str, strlen(str));
}

/* Recompute whether the socket should be read: body backpressure and a bound on buffered input. */
static void update_read(h1_session_t *s)
{
    const config_t *cfg = s->c->f->cfg;
    bool stop = s->unconsumed > EXCHANGE_HIGH_WATER ||
                s->in.len > cfg->max_header_size + EXCHANGE_HIGH_WATER;
    if (stop)
        conn_read_pause(s->c);
    else
        conn_read_resume(s->c);
}

/* A complete small response written by herald itself. */
static void send_simple(h1_session_t *s, int status, const char *text, bool keep_alive)
{
    char head[512];
    size_t blen = strlen(text) + 1;
    /* 503: the origin queue was full; worth another try soon */
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n%sConnection: %s\r\n\r\n",
                     status, reason_phrase(status), blen, status == 503 ? "Retry-After: 1\r\n" : "",
                     keep_alive ? "keep-alive" : "close");
    conn_write(s->c, head, (size_t)n);
    if (!s->is_head) {
        put(s, text);
        put(s, "\n");
    }
    conn_flush_soon(s->c);
}

/* The connection takes no more requests; whatever is queued still goes out. */
static void finish_connection(h1_session_t *s)
{
    if (s->state != H1_DONE)
        h1_set_state(s, H1_DONE);
    conn_close_after_write(s->c);
}

/* Release the current exchange after its response is complete or failed. */
static void release_exchange(h1_session_t *s)
{
    exchange_t *ex = s->ex;
    if (ex == NULL)
        return;
    s->ex = NULL;
    s->unconsumed = 0;
    exchange_log(ex);
    exchange_frontend_done(ex);
}

/* The response is fully queued: next request, or close. */
static void finish_response(h1_session_t *s)
{
    release_exchange(s);
    s->resp_head_sent = s->resp_chunked = s->resp_no_body = s->upstream_paused = false;
    if (s->state == H1_WAIT && s->keep_alive && !s->draining) {
        h1_set_state(s, H1_IDLE);
        conn_timer_set(s->c, s->c->f->cfg->idle_timeout);
        if (!s->in_parse && s->in.len == 0) {
            /* Nothing pipelined and not inside llhttp: ready for the next request now. */
            llhttp_resume(&s->parser);
            s->parser_paused = false;
            update_read(s);
        } else {
            /* Inside llhttp (a synchronous answer) or with a pipelined request
             * waiting: resume the parser and parse from the loop instead, not
             * from inside upstream's read callback. */
            conn_defer(s->c);
        }
        conn_flush_soon(s->c);
    } else {
        finish_connection(s);
    }
}

/* A request failed before any exchange could take it (or its exchange is dropped). */
static void reject(h1_session_t *s, int status, const char *text)
{
    if (s->ex != NULL) {
        exchange_t *ex = s->ex;
        bool head_sent = s->resp_head_sent;
        exchange_abort(ex);
        if (!head_sent)
            ex->status = status;
        release_exchange(s);
        if (head_sent) {
            h1_set_state(s, H1_DONE);
            conn_close(s->c);
            return;
        }
    }
    send_simple(s, status, text, false);
    finish_connection(s);
}

/* ---- llhttp callbacks: spans point into the input of llhttp_execute ---- */

static h1_session_t *of(llhttp_t *p)
{
    return container_of(p, h1_session_t, parser);
}

static int on_message_begin(llhttp_t *p)
{
    h1_session_t *s = of(p);
    if (s->state != H1_IDLE)
        return HPE_USER;
    h1_set_state(s, H1_HEAD);
    mempool_dispose(&s->hpool);
    mempool_init(&s->hpool);
    memset(&s->hdrs, 0, sizeof(s->hdrs));
    s->url.len = s->field.len = 0;
    s->field_name_len = 0;
    s->in_value = false;
    s->head_bytes = 0;
    s->err_status = 0;
    s->err_text = NULL;
    s->websocket = s->is_head = false;
    conn_timer_set(s->c, s->c->f->cfg->header_timeout);
    return 0;
}

static int head_limit(h1_session_t *s, size_t n)
{
    s->head_bytes += n;
    if (s->head_bytes > s->c->f->cfg->max_header_size) {
        s->err_status = 431;
        s->err_text = "request header too large";
        return HPE_USER;
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    h1_session_t *s = of(p);
    if (s->url.len + n > H1_MAX_URL) {
        s->err_status = 414;
        s->err_text = "request URL too long";
        return HPE_USER;
    }
    sbuf_append(&s->url, at, n); /* copied: `at` points into the input */
    return head_limit(s, n);
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    h1_session_t *s = of(p);
    sbuf_append(&s->field, at, n);
    return head_limit(s, n + 4);
}

static int on_header_field_complete(llhttp_t *p)
{
    h1_session_t *s = of(p);
    s->field_name_len = s->field.len;
    s->in_value = true;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    h1_session_t *s = of(p);
    sbuf_append(&s->field, at, n);
    return head_limit(s, n);
}

static int on_header_value_complete(llhttp_t *p)
{
    h1_session_t *s = of(p);
    if (s->hdrs.n >= s->c->f->cfg->max_headers) {
        s->err_status = 431;
        s->err_text = "too many request headers";
        return HPE_USER;
    }
    if (s->field.len == 0)
        sbuf_append(&s->field, "", 0);
    headers_add(&s->hdrs, &s->hpool, s->field.p, s->field_name_len, s->field.p + s->field_name_len,
                s->field.len - s->field_name_len);
    s->field.len = 0;
    s->field_name_len = 0;
    s->in_value = false;
    return 0;
}

static bool has_token(const char *v, const char *token)
{
    return v != NULL && strcasestr(v, token) != NULL;
}

/* Split an absolute-form target (http://host/path) into authority and path. */
static void split_target(h1_session_t *s, const char **authority, const char **path)
{
    const char *u = s->url.p ? s->url.p : "";
    const char *rest = NULL;
    if (strncasecmp(u, "http://", 7) == 0)
        rest = u + 7;
    else if (strncasecmp(u, "https://", 8) == 0)
        rest = u + 8;
    if (rest == NULL) {
        *path = u;
        return;
    }
    const char *slash = strpbrk(rest, "/?");
    size_t alen = slash ? (size_t)(slash - rest) : strlen(rest);
    *authority = mempool_strndup(&s->hpool, rest, alen);
    *path = slash ? (*slash == '/' ? slash : mempool_strndup(&s->hpool, "/", 1)) : "/";
    if (slash && *slash == '?') {
        size_t n = strlen(slash);
        char *p = mempool_alloc(&s->hpool, n + 2);
        p[0] = '/';
        memcpy(p + 1, slash, n + 1);
        *path = p;
    }
}

static int on_headers_complete(llhttp_t *p)
{
    h1_session_t *s = of(p);
    conn_t *c = s->c;
    uint8_t method = llhttp_get_method(p);
    s->is_head = method == HTTP_HEAD;
    bool http10 = llhttp_get_http_major(p) == 1 && llhttp_get_http_minor(p) == 0;
    if (llhttp_get_http_major(p) != 1) {
        s->err_status = 400;
        s->err_text = "unsupported HTTP version";
        return HPE_USER;
    }
    if (method == HTTP_CONNECT) {
        s->err_status = 501;
        s->err_text = "CONNECT is not supported by this proxy";
        return HPE_USER;
    }
    if (p->upgrade) {
        const header_t *up = headers_find(&s->hdrs, "upgrade");
        if (up != NULL && has_token(up->value, "websocket")) {
            s->websocket = true;
        } else if (up != NULL && has_token(up->value, "h2c")) {
            p->upgrade = 0; /* RFC 7540 3.2: a server may ignore h2c; serve HTTP/1.1 */
        } else {
            s->err_status = 501;
            s->err_text = "this Upgrade protocol is not supported (only websocket)";
            return HPE_USER;
        }
    }
    const header_t *host = headers_find(&s->hdrs, "host");
    const char *authority = host ? host->value : "";
    const char *path = "/";
    split_target(s, &authority, &path);
    if (host == NULL && !http10 && authority[0] == '\0') {
        s->err_status = 400;
        s->err_text = "missing Host header";
        return HPE_USER;
    }
    s->keep_alive = llhttp_should_keep_alive(p) && !s->websocket;

    exchange_t *ex = exchange_create(c->f->xctx, c->client, &h1_fops, s);
    ex->proto = http10 ? EXCHANGE_HTTP10 : EXCHANGE_HTTP11;
    const char *mname = llhttp_method_name((llhttp_method_t)method);
    ex->method = mempool_strndup(&ex->pool, mname, strlen(mname));
    ex->scheme = c->tls != NULL ? "https" : "http";
    ex->authority = mempool_strndup(&ex->pool, authority, strlen(authority));
    ex->path = mempool_strndup(&ex->pool, path, strlen(path));
    for (size_t i = 0; i < s->hdrs.n; i++) {
        const header_t *h = &s->hdrs.v[i];
        headers_add(&ex->req_headers, &ex->pool, h->name, h->name_len, h->value, h->value_len);
    }
    bool chunked = (p->flags & F_CHUNKED) != 0;
    ex->req_content_length =
        (p->flags & F_CONTENT_LENGTH) && !chunked ? (int64_t)p->content_length : -1;
    ex->req_has_body = chunked || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
    ex->req_upgrade_websocket = s->websocket;
    ex->client_tls = c->tls != NULL;
    _Static_assert(sizeof(ex->client_addr) == sizeof(c->peer_addr), "address sizes");
    memcpy(ex->client_addr, c->peer_addr, sizeof(ex->client_addr));
    ex->client_port = c->peer_port;
    s->ex = ex;
    s->unconsumed = 0;
    if (s->websocket) {
        h1_set_state(s, H1_UPGRADE);
        conn_timer_set(c, 0);
    } else {
        h1_set_state(s, H1_BODY);
        conn_timer_set(c, ex->req_has_body ? c->f->cfg->body_timeout : 0);
    }
    exchange_start(ex); /* may answer synchronously (response_error); s stays valid */
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    h1_session_t *s = of(p);
    if (s->state != H1_BODY || s->ex == NULL)
        return 0; /* response already finished: the body is discarded */
    s->unconsumed += n;
    conn_timer_set(s->c, s->c->f->cfg->body_timeout);
    exchange_request_body(s->ex, (const uint8_t *)at, n); /* copied by the exchange */
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    h1_session_t *s = of(p);
    if (s->state == H1_UPGRADE)
        return 0; /* llhttp stops with HPE_PAUSED_UPGRADE; the rest is tunnel bytes */
    /* One request at a time: the next waits until this response is done
     * (h1_session_deferred resumes the parser). */
    s->parser_paused = true;
    if (s->state == H1_BODY) {
        h1_set_state(s, H1_WAIT);
        conn_timer_set(s->c, 0);
        if (s->ex != NULL)
            exchange_request_end(s->ex); /* may finish the response synchronously */
    }
    return HPE_PAUSED;
}

static const llhttp_settings_t h1_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- input ---- */

static bool can_parse(const h1_session_t *s)
{
    return !s->parser_paused && (s->state == H1_IDLE || s->state == H1_HEAD || s->state == H1_BODY);
}

/* Run llhttp over p[0..n); returns bytes consumed, or -1 after answering an error. */
static ssize_t parse(h1_session_t *s, const uint8_t *p, size_t n)
{
    s->in_parse = true;
    llhttp_errno_t e = llhttp_execute(&s->parser, (const char *)p, n);
    s->in_parse = false;
    if (e == HPE_OK)
        return (ssize_t)n;
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        const char *pos = llhttp_get_error_pos(&s->parser);
        if (e == HPE_PAUSED_UPGRADE)
            s->parser_paused = true;
        return pos ? (ssize_t)(pos - (const char *)p) : (ssize_t)n;
    }
    if (s->state == H1_DONE || conn_is_closing(s->c))
        return -1;
    int status = s->err_status ? s->err_status : 400;
    LOG_DEBUG("h1 %s:%u: bad request (%d): %s", s->c->peer_addr, s->c->peer_port, status,
              llhttp_get_error_reason(&s->parser));
    reject(s, status, s->err_text ? s->err_text : "bad request");
    return -1;
}

static void in_consume(h1_session_t *s, size_t n)
{
    memmove(s->in.p, s->in.p + n, s->in.len - n);
    s->in.len -= n;
}

static void in_append(h1_session_t *s, const uint8_t *p, size_t n)
{
    s->in.p = alloc_grow(s->in.p, &s->in.cap, s->in.len + n, 4096);
    memcpy(s->in.p + s->in.len, p, n); /* copied: p is the read buffer */
    s->in.len += n;
}

/* Parse what waits in `in` as far as the state allows. */
static void process_buffered(h1_session_t *s)
{
    while (s->in.len > 0 && can_parse(s) && !conn_is_closing(s->c)) {
        /* llhttp spans point into s->in; nothing appends to it while we parse. */
        ssize_t used = parse(s, s->in.p, s->in.len);
        if (used < 0) {
            s->in.len = 0;
            return;
        }
        in_consume(s, (size_t)used);
    }
}

static int h1_recv(void *arg, const uint8_t *data, size_t len)
{
    h1_session_t *s = arg;
    if (s->state == H1_TUNNEL) {
        if (s->ex != NULL) {
            s->unconsumed += len;
            exchange_request_body(s->ex, data, len); /* copied */
            update_read(s);
        }
        return 0;
    }
    if (s->state == H1_DONE)
        return 0; /* no more requests on this connection: discard */
    if (s->in.len > 0 || !can_parse(s)) {
        in_append(s, data, len);
        process_buffered(s);
        if (!conn_is_closing(s->c))
            update_read(s);
        return 0;
    }
    ssize_t used = parse(s, data, len); /* spans point into data (the read buffer) */
    if (used < 0 || conn_is_closing(s->c))
        return 0;
    if ((size_t)used < len && s->state != H1_DONE)
        in_append(s, data + used, len - (size_t)used);
    update_read(s);
    return 0;
}

static void h1_deferred(void *arg)
{
    h1_session_t *s = arg;
    if (s->state == H1_IDLE && s->parser_paused) {
        llhttp_resume(&s->parser);
        s->parser_paused = false;
    }
    process_buffered(s);
    if (!conn_is_closing(s->c)) {
        update_read(s);
        conn_flush_soon(s->c);
    }
}

static void h1_written(void *arg)
{
    h1_session_t *s = arg;
    if (s->ex != NULL && s->upstream_paused && conn_buffered(s->c) < EXCHANGE_LOW_WATER) {
        s->upstream_paused = false;
        exchange_drained(s->ex);
    }
}

static bool h1_idle(const void *arg)
{
    const h1_session_t *s = arg;
    return s == NULL || s->ex == NULL;
}

static void h1_timeout(void *arg)
{
    h1_session_t *s = arg;
    switch (s->state) {
    case H1_IDLE:
        conn_close(s->c);
        break;
    case H1_HEAD:
    case H1_BODY:
        LOG_DEBUG("h1 %s:%u: request timeout", s->c->peer_addr, s->c->peer_port);
        if (s->ex != NULL && s->resp_head_sent) {
            reject(s, 408, "");
            return;
        }
        reject(s, 408, "request timeout");
        break;
    default:
        break;
    }
}

static void h1_drain(void *arg)
{
    h1_session_t *s = arg;
    s->draining = true;
    if (s->state == H1_IDLE)
        finish_connection(s);
}

static void h1_abort(void *arg)
{
    h1_session_t *s = arg;
    if (s->ex != NULL) {
        exchange_abort(s->ex);
        release_exchange(s);
    }
    if (s->state != H1_DONE)
        h1_set_state(s, H1_DONE);
}

/* ---- response (exchange callbacks) ---- */

static bool skip_resp_header(const header_t *h, bool chunked)
{
    return headers_name_eq(h->name, h->name_len, "connection") ||
           headers_name_eq(h->name, h->name_len, "keep-alive") ||
           headers_name_eq(h->name, h->name_len, "transfer-encoding") ||
           headers_name_eq(h->name, h->name_len, "proxy-connection") ||
           headers_name_eq(h->name, h->name_len, "upgrade") ||
           (chunked && headers_name_eq(h->name, h->name_len, "content-length"));
}

static void write_status_and_headers(h1_session_t *s, exchange_t *ex, bool chunked)
{
    char line[128];
    int n =
        snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", ex->status, reason_phrase(ex->status));
    conn_write(s->c, line, (size_t)n);
    for (size_t i = 0; i < ex->resp_headers.n; i++) {
        const header_t *h = &ex->resp_headers.v[i];
        if (skip_resp_header(h, chunked))
            continue;
        conn_write(s->c, h->name, h->name_len);
        conn_write(s->c, ": ", 2);
        conn_write(s->c, h->value, h->value_len);
        conn_write(s->c, "\r\n", 2);
    }
}

static void on_response_head(exchange_t *ex, bool final)
{
    h1_session_t *s = ex->fctx;
    if (ex->status == 101) {
        if (s->state != H1_UPGRADE)
            return; /* a 101 we did not ask for: never forwarded */
        write_status_and_headers(s, ex, false);
        put(s, "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
        s->resp_head_sent = true;
        conn_flush_soon(s->c);
        return;
    }
    if (!final) {
        if (ex->proto == EXCHANGE_HTTP10)
            return; /* 1xx never goes to HTTP/1.0 clients */
        write_status_and_headers(s, ex, false);
        put(s, "\r\n");
        conn_flush_soon(s->c);
        return;
    }
    s->resp_head_sent = true;
    s->resp_no_body = s->is_head || ex->status == 204 || ex->status == 304 || ex->status < 200;
    if (s->draining || s->state == H1_UPGRADE)
        s->keep_alive = false;
    bool add_length = false;
    if (!s->resp_no_body) {
        if (ex->resp_content_length >= 0)
            add_length = headers_find(&ex->resp_headers, "content-length") == NULL;
        else if (ex->proto == EXCHANGE_HTTP11)
            s->resp_chunked = true;
        else
            s->keep_alive = false; /* close-delimited */
    }
    write_status_and_headers(s, ex, s->resp_chunked);
    char extra[64];
    if (add_length) {
        int n = snprintf(extra, sizeof(extra), "Content-Length: %" PRId64 "\r\n",
                         ex->resp_content_length);
        conn_write(s->c, extra, (size_t)n);
    }
    if (s->resp_chunked)
        put(s, "Transfer-Encoding: chunked\r\n");
    if (!s->keep_alive)
        put(s, "Connection: close\r\n");
    else if (ex->proto == EXCHANGE_HTTP10)
        put(s, "Connection: keep-alive\r\n");
    put(s, "\r\n");
    conn_flush_soon(s->c);
}

static size_t on_response_body(exchange_t *ex, const uint8_t *data, size_t len)
{
    h1_session_t *s = ex->fctx;
    conn_t *c = s->c;
    if (len > 0 && (!s->resp_no_body || s->state == H1_TUNNEL)) {
        if (s->resp_chunked) {
            char line[24];
            int n = hex_line(line, len);
            conn_write(c, line, (size_t)n);
            conn_write(c, data, len); /* copied: data is upstream's read buffer */
            conn_write(c, "\r\n", 2);
        } else {
            conn_write(c, data, len);
        }
        ex->bytes_to_client += len;
        conn_flush_soon(c);
    }
    size_t buffered = conn_buffered(c);
    if (buffered > EXCHANGE_HIGH_WATER)
        s->upstream_paused = true;
    return buffered;
}

static void on_response_end(exchange_t *ex)
{
    h1_session_t *s = ex->fctx;
    if (s->state == H1_TUNNEL) {
        release_exchange(s);
        finish_connection(s);
        return;
    }
    if (s->resp_chunked)
        put(s, "0\r\n\r\n");
    conn_flush_soon(s->c);
    finish_response(s);
}

static void on_response_error(exchange_t *ex, int status)
{
    h1_session_t *s = ex->fctx;
    if (!s->resp_head_sent) {
        ex->status = status;
        bool keep = s->keep_alive && s->state == H1_WAIT && !s->draining;
        if (!keep)
            s->keep_alive = false;
        send_simple(s, status,
                    status == 504   ? "origin timed out"
                    : status == 503 ? "origin busy: too many requests waiting"
                                    : "origin unavailable",
                    keep);
        finish_response(s);
        return;
    }
    /* Part of the response went out: only a broken connection tells the client. */
    release_exchange(s);
    h1_set_state(s, H1_DONE);
    conn_close(s->c);
}

static void on_request_consumed(exchange_t *ex, size_t n)
{
    h1_session_t *s = ex->fctx;
    s->unconsumed = n > s->unconsumed ? 0 : s->unconsumed - n;
    if (s->state == H1_BODY)
        conn_timer_set(s->c, s->c->f->cfg->body_timeout);
    update_read(s);
}

static void on_tunnel_open(exchange_t *ex)
{
    h1_session_t *s = ex->fctx;
    if (s->state != H1_UPGRADE)
        return;
    h1_set_state(s, H1_TUNNEL);
    if (s->in.len > 0) {
        /* Bytes the client sent right after its upgrade request. */
        s->unconsumed += s->in.len;
        exchange_request_body(ex, s->in.p, s->in.len);
        s->in.len = 0;
    }
    update_read(s);
}

/* One 103 before the response: only HTTP/1.1 with --hints-h1 (browsers
 * ignore it on h1; HTTP/1.0 clients may not survive a 1xx). */
static bool on_early_hints(exchange_t *ex, const headers_t *links)
{
    h1_session_t *s = ex->fctx;
    if (ex->proto != EXCHANGE_HTTP11 || !s->c->f->cfg->hints_h1 || s->resp_head_sent ||
        s->ex != ex || s->websocket || links->n == 0)
        return false;
    put(s, "HTTP/1.1 103 Early Hints\r\n");
    for (size_t i = 0; i < links->n; i++) {
        put(s, "Link: ");
        conn_write(s->c, links->v[i].value, links->v[i].value_len); /* copied */
        put(s, "\r\n");
    }
    put(s, "\r\n");
    conn_flush_soon(s->c);
    return true;
}

static const exchange_frontend_ops_t h1_fops = {
    .response_head = on_response_head,
    .response_body = on_response_body,
    .response_end = on_response_end,
    .response_error = on_response_error,
    .request_consumed = on_request_consumed,
    .tunnel_open = on_tunnel_open,
    .push_promise = NULL, /* no push on HTTP/1.x */
    .early_hints = on_early_hints,
};

/* ---- lifecycle ---- */

static void *h1_create(conn_t *c)
{
    h1_session_t *s = xcalloc(1, sizeof(*s));
    s->c = c;
    s->state = H1_IDLE;
    mempool_init(&s->hpool);
    llhttp_init(&s->parser, HTTP_REQUEST, &h1_settings);
    conn_timer_set(c, c->f->cfg->header_timeout);
    return s;
}

static void h1_destroy(void *arg)
{
    h1_session_t *s = arg;
    assert(s->ex == NULL);
    mempool_dispose(&s->hpool);
    free(s->in.p);
    free(s->url.p);
    free(s->field.p);
    free(s);
}

const conn_session_ops_t h1_session_ops = {
    .name = "h1",
    .proto = EXCHANGE_HTTP11,
    .create = h1_create,
    .destroy = h1_destroy,
    .recv = h1_recv,
    .written = h1_written,
    .idle = h1_idle,
    .timeout = h1_timeout,
    .deferred = h1_deferred,
    .drain = h1_drain,
    .abort = h1_abort,
    .flush_on_error = false,
};
