/*
 * The exchange's lifetime and its hand-offs between a frontend and
 * upstream.c (see exchange.h), and its access log line.
 */
#include "exchange.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <uv.h>

#include "herald/error.h"
#include "url.h"
#include "alloc.h"
#include "log.h"

/* An exchange and its pool's first chunk in one allocation: the headers
 * and strings of a usual request and response fit, so most exchanges cost
 * one malloc. `ex` comes first: free(ex) frees the block. */
typedef struct exchange_block {
    exchange_t ex;
    alignas(max_align_t) unsigned char pool[3072];
} exchange_block_t;

void exchange_ctx_init(exchange_ctx_t *ctx, uv_loop_t *loop, const config_t *cfg, int id)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->loop = loop;
    ctx->cfg = cfg;
    ctx->id = id;
}

void exchange_ctx_origin(exchange_ctx_t *ctx, const exchange_origin_ops_t *origin, void *data)
{
    ctx->origin = origin;
    ctx->origin_data = data;
}

size_t exchange_ctx_observe(exchange_ctx_t *ctx, const exchange_observer_t *obs, void *data)
{
    if (ctx->nobservers == EXCHANGE_MAX_OBSERVERS)
        abort();
    ctx->observers[ctx->nobservers] = obs;
    ctx->observer_data[ctx->nobservers] = data;
    return ctx->nobservers++;
}

/* Run hook `h` of every observer of ctx, in registration order. */
#define EACH_OBSERVER(ctx, h, ...)                                                                 \
    for (size_t i_ = 0; (ctx) != NULL && i_ < (ctx)->nobservers; i_++)                             \
        if ((ctx)->observers[i_]->h != NULL)                                                       \
    (ctx)->observers[i_]->h((ctx)->observer_data[i_], __VA_ARGS__)

/* The same in the reverse order. */
#define EACH_OBSERVER_REVERSE(ctx, h, ...)                                                         \
    for (size_t i_ = (ctx) != NULL ? (ctx)->nobservers : 0; i_-- > 0;)                             \
        if ((ctx)->observers[i_]->h != NULL)                                                       \
    (ctx)->observers[i_]->h((ctx)->observer_data[i_], __VA_ARGS__)

static void client_unref(exchange_client_t *cl)
{
    if (cl != NULL && --cl->refs == 0)
        free(cl);
}

exchange_client_t *exchange_client_open(exchange_ctx_t *ctx, exchange_proto_t proto, int fd,
                                        bool tls, const char *addr, uint16_t port)
{
    exchange_client_t *cl = xcalloc(1, sizeof(*cl));
    cl->ctx = ctx;
    cl->proto = proto;
    cl->fd = fd;
    cl->tls = tls;
    cl->refs = 1;
    if (addr != NULL)
        snprintf(cl->addr, sizeof(cl->addr), "%s", addr);
    cl->port = port;
    EACH_OBSERVER(ctx, on_client_open, cl);
    return cl;
}

void exchange_client_close(exchange_client_t *cl)
{
    if (cl == NULL)
        return;
    cl->closed = true;
    EACH_OBSERVER_REVERSE(cl->ctx, on_client_close, cl);
    memset(cl->state, 0, sizeof(cl->state));
    cl->pacer_ops = NULL;
    cl->pacer = NULL;
    cl->fd = -1;
    client_unref(cl);
}

exchange_t *exchange_create(exchange_ctx_t *ctx, exchange_client_t *client,
                            const exchange_frontend_ops_t *fops, void *fctx)
{
    exchange_block_t *b = xmalloc(sizeof(*b));
    exchange_t *ex = &b->ex;
    memset(ex, 0, sizeof(*ex)); /* the pool's memory needs no zeroing */
    ex->ctx = ctx;
    ex->client = client;
    if (client != NULL)
        client->refs++;
    ex->state = EXCHANGE_NEW;
    ex->holders = EXCHANGE_HOLD_FRONTEND;
    mempool_init_on(&ex->pool, b->pool, sizeof(b->pool));
    ex->fops = fops;
    ex->fctx = fctx;
    ex->req_content_length = -1;
    ex->resp_content_length = -1;
    ex->t_start = uv_hrtime();
    struct timeval tv;
    gettimeofday(&tv, NULL);
    ex->wall_start_us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
    return ex;
}

static void links_dispose(exchange_links_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        for (size_t k = 0; k < l->lines[i].list.n; k++)
            free(l->lines[i].keys[k]);
        free(l->lines[i].keys);
        link_list_dispose(&l->lines[i].list);
    }
    free(l->lines);
    memset(l, 0, sizeof(*l));
}

const exchange_links_t *exchange_resp_links(exchange_t *ex, const char *base)
{
    exchange_links_t *l = &ex->links;
    if (l->parsed)
        return l;
    l->parsed = true;
    for (size_t i = 0; i < ex->resp_headers.n; i++) {
        const header_t *h = &ex->resp_headers.v[i];
        if (!headers_name_eq(h->name, h->name_len, "link"))
            continue;
        l->lines = xrealloc(l->lines, (l->n + 1) * sizeof(*l->lines));
        exchange_link_line_t *line = &l->lines[l->n++];
        memset(line, 0, sizeof(*line));
        line->header = i;
        int rc = link_parse(h->value, h->value_len, base, &line->list, NULL);
        if (rc == HERALD_ENOMEM)
            alloc_fail(__FILE__, __LINE__, h->value_len);
        if (rc != 0) {
            line->bad = true;
            link_list_dispose(&line->list);
            continue;
        }
        line->keys = xcalloc(line->list.n + 1, sizeof(*line->keys));
        for (size_t k = 0; k < line->list.n; k++) {
            rc = url_normalize(line->list.v[k].url, &line->keys[k]);
            if (rc == HERALD_ENOMEM)
                alloc_fail(__FILE__, __LINE__, 0);
            if (rc != 0)
                line->keys[k] = NULL;
        }
    }
    return l;
}

void exchange_set_state(exchange_t *ex, exchange_state_t to)
{
    bool ok;
    switch (ex->state) {
    case EXCHANGE_NEW:
        ok = to == EXCHANGE_STARTED || to == EXCHANGE_CANCELLED;
        break;
    case EXCHANGE_STARTED:
        ok = to == EXCHANGE_HEAD_SENT || to == EXCHANGE_FAILED || to == EXCHANGE_ABORTED;
        break;
    case EXCHANGE_HEAD_SENT:
        ok = to == EXCHANGE_COMPLETE || to == EXCHANGE_FAILED || to == EXCHANGE_ABORTED;
        break;
    default:
        ok = false; /* final */
        break;
    }
    if (!ok) {
        LOG_FATAL("exchange %s: illegal state change %d -> %d", ex->path ? ex->path : "-",
                  (int)ex->state, (int)to);
        abort();
    }
    ex->state = to;
}

static bool final_state(const exchange_t *ex)
{
    return ex->state == EXCHANGE_COMPLETE || ex->state == EXCHANGE_FAILED ||
           ex->state == EXCHANGE_ABORTED || ex->state == EXCHANGE_CANCELLED;
}

/*
 * The one place an exchange is freed: when its last holder lets go. Every
 * observer's on_free runs first, in the reverse order of registration
 * (delivery reports a cancelled push to learning, which still has its state).
 */
static void release(exchange_t *ex, uint8_t holder)
{
    ex->holders &= (uint8_t)~holder;
    if (ex->holders != 0)
        return;
    if (!ex->logged)
        exchange_log(ex);
    EACH_OBSERVER_REVERSE(ex->ctx, on_free, ex);
    links_dispose(&ex->links);
    client_unref(ex->client);
    mempool_dispose(&ex->pool);
    free(ex);
}

void exchange_start(exchange_t *ex)
{
    exchange_set_state(ex, EXCHANGE_STARTED);
    /* In registration order: learning classifies the request, then delivery
     * may push or hint before the origin is even asked. */
    EACH_OBSERVER(ex->ctx, on_request, ex);
    /* Unless an observer's delivery failed the client's stream, or it answers. */
    if (ex->state == EXCHANGE_STARTED && !ex->answered_here) {
        ex->holders |= EXCHANGE_HOLD_ORIGIN;
        ex->ctx->origin->start(ex);
    }
    EACH_OBSERVER(ex->ctx, on_started, ex);
}

void exchange_request_body(exchange_t *ex, const uint8_t *data, size_t len)
{
    ex->req_body_bytes += len;
    /* data is only valid during this call: the origin side copies it */
    if (ex->upstream != NULL)
        ex->ctx->origin->request_body(ex, data, len);
}

void exchange_request_end(exchange_t *ex)
{
    if (ex->upstream != NULL)
        ex->ctx->origin->request_end(ex);
}

void exchange_drained(exchange_t *ex)
{
    if (ex->upstream != NULL)
        ex->ctx->origin->resume(ex);
}

void exchange_abort(exchange_t *ex)
{
    if (final_state(ex))
        return;
    exchange_set_state(ex, ex->state == EXCHANGE_NEW ? EXCHANGE_CANCELLED : EXCHANGE_ABORTED);
    if (ex->t_end == 0)
        ex->t_end = uv_hrtime();
    /* May free ex (exchange_upstream_done) when the frontend let go already. */
    if (ex->upstream != NULL)
        ex->ctx->origin->abort(ex);
}

void exchange_frontend_done(exchange_t *ex)
{
    if (ex->upstream != NULL) {
        /* The frontend leaves mid-response: stop the origin side first; it
         * ends in exchange_upstream_done(), and the last holder frees ex. */
        ex->holders &= (uint8_t)~EXCHANGE_HOLD_FRONTEND;
        if (!final_state(ex))
            exchange_set_state(ex, EXCHANGE_ABORTED);
        ex->ctx->origin->abort(ex);
        return;
    }
    if (ex->state == EXCHANGE_NEW)
        exchange_set_state(ex, EXCHANGE_CANCELLED);
    release(ex, EXCHANGE_HOLD_FRONTEND);
}

void exchange_upstream_done(exchange_t *ex)
{
    release(ex, EXCHANGE_HOLD_ORIGIN);
}

/* ---- access log ---- */

typedef struct out {
    char *p;
    size_t len, cap;
} out_t;

static void out_printf(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(out_t *o, const char *fmt, ...)
{
    if (o->len >= o->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (k > 0)
        o->len = o->len + (size_t)k < o->cap ? o->len + (size_t)k : o->cap;
}

/* A client-supplied string inside "...": `"`, `\` and bytes outside
 * printable ASCII become \xHH, so a line can't be forged or split. */
static void out_quoted(out_t *o, const char *s, size_t n)
{
    out_printf(o, "\"");
    if (s == NULL || n == 0) {
        out_printf(o, "-\"");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            out_printf(o, "\\x%02X", c);
        else
            out_printf(o, "%c", c);
    }
    out_printf(o, "\"");
}

static void out_header(out_t *o, const exchange_t *ex, const char *name)
{
    const header_t *h = headers_find(&ex->req_headers, name);
    out_quoted(o, h ? h->value : NULL, h ? h->value_len : 0);
}

static const char *proto_name(exchange_proto_t p)
{
    switch (p) {
    case EXCHANGE_HTTP10:
        return "HTTP/1.0";
    case EXCHANGE_HTTP11:
        return "HTTP/1.1";
    case EXCHANGE_HTTP2:
        return "HTTP/2";
    }
    return "-";
}

/* Printable request-line parts: escape like out_quoted but without quotes. */
static void out_plain(out_t *o, const char *s)
{
    if (s == NULL || s[0] == '\0') {
        out_printf(o, "-");
        return;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            out_printf(o, "\\x%02X", c);
        else
            out_printf(o, "%c", c);
    }
}

/*
 * The combined log format followed by herald's fields:
 *
 *   ADDR - - [DD/Mon/YYYY:HH:MM:SS +0000] "METHOD PATH PROTO" STATUS BYTES
 *   "REFERER" "USER-AGENT" rt=SECONDS ut=SECONDS up_bytes=N req_bytes=N
 *
 * time is the request start in UTC; STATUS is 0 when no response head was
 * received (client gone first) and the error status after a failure; BYTES
 * is response body bytes written to the client (bytes_to_client); rt is
 * request head received to this line being written (the frontend logs when
 * the response is finished); ut is request head written to the origin to
 * the origin's response complete ("-" when the origin was never reached,
 * seconds with millisecond precision both); up_bytes is the
 * response body received from the origin; req_bytes the request body
 * received from the client. Missing headers print as "-".
 */
size_t exchange_log_format(const exchange_t *ex, uint64_t now, char *buf, size_t cap)
{
    if (cap < 2)
        return 0;
    out_t o = {.p = buf, .len = 0, .cap = cap - 1}; /* keep room for '\n' */
    time_t secs = (time_t)(ex->wall_start_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char when[40];
    strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", &tm);

    out_printf(&o, "%s - - [%s] \"", ex->client_addr[0] ? ex->client_addr : "-", when);
    out_plain(&o, ex->method);
    out_printf(&o, " ");
    out_plain(&o, ex->path);
    out_printf(&o, " %s\" %d %llu ", proto_name(ex->proto), ex->status,
               (unsigned long long)ex->bytes_to_client);
    out_header(&o, ex, "referer");
    out_printf(&o, " ");
    out_header(&o, ex, "user-agent");

    /* rt runs until the line is written (the frontend finished the
     * response); ut until the origin's response was complete. */
    uint64_t rend = now != 0 ? now : ex->t_end;
    uint64_t uend = ex->t_end != 0 ? ex->t_end : now;
    double rt = rend > ex->t_start ? (double)(rend - ex->t_start) / 1e9 : 0.0;
    out_printf(&o, " rt=%.3f", rt);
    if (ex->t_upstream_sent != 0) {
        double ut = uend > ex->t_upstream_sent ? (double)(uend - ex->t_upstream_sent) / 1e9 : 0.0;
        out_printf(&o, " ut=%.3f", ut);
    } else {
        out_printf(&o, " ut=-");
    }
    out_printf(&o, " up_bytes=%llu req_bytes=%llu", (unsigned long long)ex->resp_body_bytes,
               (unsigned long long)ex->req_body_bytes);
    buf[o.len++] = '\n';
    return o.len;
}

void exchange_log(exchange_t *ex)
{
    if (ex->logged)
        return;
    ex->logged = true;
    EACH_OBSERVER(ex->ctx, on_complete, ex); /* metrics: status, protocol, latency */
    if (!log_access_enabled())
        return; /* formatting costs ~8% of CPU at small bodies: skip it when unused */
    char line[4096];
    size_t n = exchange_log_format(ex, uv_hrtime(), line, sizeof(line));
    log_access_write(line, n);
}

void exchange_response_head(exchange_t *ex, bool final)
{
    links_dispose(&ex->links); /* a new head: its Link lines are parsed on demand */
    if (final && ex->state == EXCHANGE_STARTED)
        exchange_set_state(ex, EXCHANGE_HEAD_SENT);
    EACH_OBSERVER(ex->ctx, on_response_head, ex, final);
    if (!final && ex->suppress_head) {
        ex->suppress_head = false; /* delivery already sent every link of this 1xx */
        return;
    }
    ex->fops->response_head(ex, final);
}

size_t exchange_response_body(exchange_t *ex, const uint8_t *data, size_t len)
{
    /* Each observer sees what the ones before it passed on (delivery drops
     * SSE push comments); a filtered copy is its owner's until its next call. */
    for (size_t i = 0; i < ex->ctx->nobservers; i++) {
        const exchange_observer_t *o = ex->ctx->observers[i];
        if (o->on_response_body != NULL)
            data = o->on_response_body(ex->ctx->observer_data[i], ex, data, len, &len);
    }
    return ex->fops->response_body(ex, data, len);
}

static void response_ended(exchange_t *ex, bool ok)
{
    EACH_OBSERVER(ex->ctx, on_response_end, ex, ok);
}

void exchange_response_end(exchange_t *ex)
{
    if (ex->state == EXCHANGE_HEAD_SENT)
        exchange_set_state(ex, EXCHANGE_COMPLETE);
    response_ended(ex, true);
    ex->fops->response_end(ex);
}

void exchange_response_error(exchange_t *ex, int status)
{
    if (!final_state(ex))
        exchange_set_state(ex, EXCHANGE_FAILED);
    response_ended(ex, false);
    ex->fops->response_error(ex, status);
}
