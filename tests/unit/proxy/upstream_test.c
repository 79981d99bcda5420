/*
 * upstream.c against a scripted origin on the same loop: 1xx then the final
 * response, hop-by-hop filtering, keep-alive reuse, the one retry after a
 * keep-alive race, chunked request and response bodies, 504 on silence, 502
 * on refusal and on a cut body, the websocket tunnel, the budget's queue
 * (order, 503 when full, 504 from the queue, waiting bodies, aborts), and
 * pool shutdown with uv_loop_close() == 0.
 */
#include "proxy/list.h"
#include "proxy/upstream.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "proxy/alloc.h"
#include "proxy/headers.h"
#include "proxy/log.h"
#include "tests/unit/testutil.h"

/* ---- the scripted origin ---- */

typedef enum origin_mode {
    ORIGIN_ANSWER,       /* send `reply` for each complete request */
    ORIGIN_CLOSE_REUSED, /* close a connection at its second request, unanswered */
    ORIGIN_SILENT,       /* never answer */
    ORIGIN_TUNNEL,       /* send `reply`, then echo every byte upper-cased */
    ORIGIN_HOLD,         /* keep each request unanswered until origin_release() */
} origin_mode_t;

typedef struct origin {
    uv_tcp_t server;
    origin_mode_t mode;
    const char *reply;
    const char *need; /* a request is complete when this string has arrived */
    char last[8192];  /* the last request's bytes */
    size_t last_len;
    int accepted;
    bool close_after_reply;
    struct oconn *held[16]; /* ORIGIN_HOLD: connections owed a reply */
    int nheld;
    char order[256]; /* request lines' paths, in arrival order, space-separated */
} origin_t;

typedef struct oconn {
    uv_tcp_t h;
    origin_t *o;
    char buf[8192];
    size_t len;
    int served;
    bool tunnel;
} oconn_t;

typedef struct owrite {
    uv_write_t req;
    char data[];
} owrite_t;

static void oconn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void owrite_done(uv_write_t *req, int status)
{
    free(container_of(req, owrite_t, req));
}

static void osend(oconn_t *oc, const char *p, size_t n)
{
    owrite_t *w = xmalloc(sizeof(*w) + n);
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&oc->h, &b, 1, owrite_done) < 0)
        free(w);
}

static void oalloc(uv_handle_t *h, size_t s, uv_buf_t *buf)
{
    oconn_t *oc = h->data;
    *buf = uv_buf_init(oc->buf + oc->len, (unsigned)(sizeof(oc->buf) - oc->len - 1));
}

static void oread(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    oconn_t *oc = s->data;
    origin_t *o = oc->o;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, oconn_closed);
        return;
    }
    if (oc->tunnel) {
        for (ssize_t i = 0; i < nread; i++)
            buf->base[i] = (char)(buf->base[i] >= 'a' && buf->base[i] <= 'z' ? buf->base[i] - 32
                                                                             : buf->base[i]);
        osend(oc, buf->base, (size_t)nread);
        return;
    }
    oc->len += (size_t)nread;
    oc->buf[oc->len] = '\0';
    const char *need = o->need != NULL ? o->need : "\r\n\r\n";
    if (strstr(oc->buf, need) == NULL)
        return;
    memcpy(o->last, oc->buf, oc->len + 1);
    o->last_len = oc->len;
    oc->len = 0;
    oc->served++;
    const char *sp = strchr(o->last, ' ');
    if (sp != NULL) {
        size_t n = strcspn(sp + 1, " ");
        strncat(o->order, sp + 1, n < 60 ? n : 60);
        strncat(o->order, " ", sizeof(o->order) - strlen(o->order) - 1);
    }
    switch (o->mode) {
    case ORIGIN_HOLD:
        if (o->nheld < 16)
            o->held[o->nheld++] = oc;
        return;
    case ORIGIN_CLOSE_REUSED:
        if (oc->served > 1) {
            uv_close((uv_handle_t *)&oc->h, oconn_closed);
            return;
        }
        break;
    case ORIGIN_SILENT:
        return;
    case ORIGIN_TUNNEL:
        oc->tunnel = true;
        break;
    case ORIGIN_ANSWER:
        break;
    }
    osend(oc, o->reply, strlen(o->reply));
    if (o->close_after_reply)
        uv_close((uv_handle_t *)&oc->h, oconn_closed);
}

/* ORIGIN_HOLD: answer every request held so far (oldest first). */
static void origin_release(origin_t *o)
{
    for (int i = 0; i < o->nheld; i++)
        osend(o->held[i], o->reply, strlen(o->reply));
    o->nheld = 0;
}

static void oaccept(uv_stream_t *server, int status)
{
    origin_t *o = server->data;
    oconn_t *oc = xcalloc(1, sizeof(*oc));
    oc->o = o;
    uv_tcp_init(server->loop, &oc->h);
    oc->h.data = oc;
    if (uv_accept(server, (uv_stream_t *)&oc->h) == 0) {
        o->accepted++;
        uv_read_start((uv_stream_t *)&oc->h, oalloc, oread);
    } else {
        uv_close((uv_handle_t *)&oc->h, oconn_closed);
    }
}

/* ---- a recording frontend ---- */

typedef struct front {
    char events[1024]; /* "H103 H200 B5 E" ... */
    char body[8192];
    size_t body_len;
    size_t consumed;
    int error;
    bool done;
    bool tunnel;
    size_t hold; /* what response_body reports as still unsent */
} front_t;

static void ev(front_t *f, const char *s)
{
    strncat(f->events, s, sizeof(f->events) - strlen(f->events) - 1);
}

static void f_head(exchange_t *ex, bool final)
{
    char s[32];
    snprintf(s, sizeof(s), "H%d%s ", ex->status, final ? "" : "i");
    ev(ex->fctx, s);
}

static size_t f_body(exchange_t *ex, const uint8_t *p, size_t n)
{
    front_t *f = ex->fctx;
    /* p is upstream's read buffer, valid during this call: copied */
    if (f->body_len + n < sizeof(f->body))
        memcpy(f->body + f->body_len, p, n);
    f->body_len += n;
    return f->hold;
}

static void f_end(exchange_t *ex)
{
    front_t *f = ex->fctx;
    ev(f, "E");
    f->done = true;
    exchange_frontend_done(ex);
}

static void f_error(exchange_t *ex, int status)
{
    front_t *f = ex->fctx;
    char s[16];
    snprintf(s, sizeof(s), "X%d", status);
    ev(f, s);
    f->error = status;
    f->done = true;
    exchange_frontend_done(ex);
}

static void f_consumed(exchange_t *ex, size_t n)
{
    ((front_t *)ex->fctx)->consumed += n;
}

static void f_tunnel(exchange_t *ex)
{
    front_t *f = ex->fctx;
    f->tunnel = true;
    ev(f, "T ");
}

static const exchange_frontend_ops_t fops = {
    .response_head = f_head,
    .response_body = f_body,
    .response_end = f_end,
    .response_error = f_error,
    .request_consumed = f_consumed,
    .tunnel_open = f_tunnel,
};

/* ---- harness ---- */

typedef struct env {
    uv_loop_t loop;
    exchange_ctx_t xctx; /* no observers: the origin side alone */
    upstream_pool_t *pool;
    config_t cfg;
    budget_t *budget;
    origin_t origin;
    uv_timer_t guard;
} env_t;

/* A new pool on budget b becomes the origin side of e's exchanges. */
static void use_pool(env_t *e, budget_t *b)
{
    e->pool = upstream_pool_create(&e->loop, &e->cfg, 0, b);
    exchange_ctx_origin(&e->xctx, &upstream_origin_ops, e->pool);
}

static exchange_t *request(env_t *e, front_t *f, const char *method, const char *path)
{
    memset(f, 0, sizeof(*f));
    exchange_t *ex = exchange_create(&e->xctx, NULL, &fops, f);
    ex->proto = EXCHANGE_HTTP2;
    ex->method = method;
    ex->scheme = "https";
    ex->authority = "example.com";
    ex->path = path;
    strcpy(ex->client_addr, "192.0.2.9");
    return ex;
}

static void guard_cb(uv_timer_t *t) {}

static bool pool_closed;

static void pool_closed_cb(void *arg)
{
    *(bool *)arg = true;
}

/* Run the loop until f is done (5 s at most). */
static void run_until_done(env_t *e, front_t *f)
{
    uv_timer_start(&e->guard, guard_cb, 5000, 0);
    while (!f->done && uv_timer_get_due_in(&e->guard) > 0)
        uv_run(&e->loop, UV_RUN_ONCE);
    uv_timer_stop(&e->guard);
    CHECK(f->done);
}

static void spin(env_t *e, int ms)
{
    uv_timer_start(&e->guard, guard_cb, (uint64_t)ms, 0);
    while (uv_timer_get_due_in(&e->guard) > 0)
        uv_run(&e->loop, UV_RUN_ONCE);
}

static void get(env_t *e, front_t *f, const char *path)
{
    exchange_t *ex = request(e, f, "GET", path);
    exchange_start(ex);
    exchange_request_end(ex);
    run_until_done(e, f);
}

static void test_forward_and_reuse(env_t *e)
{
    front_t f;
    e->origin.mode = ORIGIN_ANSWER;
    e->origin.reply = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: X-Hop\r\nX-Hop: 1\r\n"
                      "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello";
    get(e, &f, "/first");
    CHECK_STREQ(f.events, "H103i H200 E");
    CHECK_INTEQ(f.body_len, 5);
    CHECK(memcmp(f.body, "hello", 5) == 0);
    CHECK(strstr(e->origin.last, "GET /first HTTP/1.1\r\nHost: example.com\r\n") == e->origin.last);
    CHECK(strstr(e->origin.last, "Via: 2 herald\r\n") != NULL);

    get(e, &f, "/second");
    CHECK_STREQ(f.events, "H103i H200 E");
    upstream_stats_t st;
    upstream_pool_stats(e->pool, &st);
    CHECK_INTEQ(st.connects, 1);
    CHECK_INTEQ(st.reuses, 1);
    CHECK_INTEQ(st.idle, 1);
    CHECK_INTEQ(e->origin.accepted, 1);
}

/* The origin drops a reused connection on our request: retried once, unseen. */
static void test_retry(env_t *e)
{
    front_t f;
    e->origin.mode = ORIGIN_CLOSE_REUSED;
    e->origin.reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    upstream_stats_t before, after;
    upstream_pool_stats(e->pool, &before);
    get(e, &f, "/race");
    CHECK_STREQ(f.events, "H200 E");
    upstream_pool_stats(e->pool, &after);
    CHECK_INTEQ(after.retries - before.retries, 1);
    CHECK_INTEQ(after.connects - before.connects, 1);

    /* a POST is not retried: the origin may have acted on it */
    exchange_t *ex = request(e, &f, "POST", "/race-post");
    exchange_start(ex);
    exchange_request_end(ex);
    run_until_done(e, &f);
    CHECK_STREQ(f.events, "X502");
}

static void test_chunked_both_ways(env_t *e)
{
    front_t f;
    e->origin.mode = ORIGIN_ANSWER;
    e->origin.need = "0\r\n\r\n";
    e->origin.reply = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    exchange_t *ex = request(e, &f, "POST", "/up");
    ex->req_has_body = true;
    exchange_start(ex);
    exchange_request_body(ex, (const uint8_t *)"hello", 5);
    exchange_request_body(ex, (const uint8_t *)"0123456789abcdefX", 17);
    exchange_request_end(ex);
    run_until_done(e, &f);
    e->origin.need = NULL;
    CHECK_STREQ(f.events, "H201 E");
    CHECK_INTEQ(f.body_len, 5);
    CHECK(memcmp(f.body, "abcde", 5) == 0);
    CHECK_INTEQ(f.consumed, 22);
    CHECK(strstr(e->origin.last, "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                                 "11\r\n0123456789abcdefX\r\n0\r\n\r\n") != NULL);
}

static void test_faults(env_t *e)
{
    front_t f;
    /* silence: 504 after origin_timeout */
    e->origin.mode = ORIGIN_SILENT;
    get(e, &f, "/silent");
    CHECK_STREQ(f.events, "X504");

    /* a body cut short: the head went out, then an error (never a clean end) */
    e->origin.mode = ORIGIN_ANSWER;
    e->origin.reply = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort";
    e->origin.close_after_reply = true;
    get(e, &f, "/cut");
    CHECK_STREQ(f.events, "H200 X502");

    /* a close-delimited body ends cleanly at EOF */
    e->origin.reply = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil eof";
    get(e, &f, "/eof");
    CHECK_STREQ(f.events, "H200 E");
    CHECK_INTEQ(f.body_len, 9);
    e->origin.close_after_reply = false;

    /* garbage: 502 */
    e->origin.reply = "HTTP/1.1 abc\r\n\r\n";
    get(e, &f, "/bad");
    CHECK_STREQ(f.events, "X502");

    /* HEAD: Content-Length without a body, connection reusable */
    e->origin.reply = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
    exchange_t *ex = request(e, &f, "HEAD", "/head");
    exchange_start(ex);
    exchange_request_end(ex);
    run_until_done(e, &f);
    CHECK_STREQ(f.events, "H200 E");
    CHECK_INTEQ(f.body_len, 0);
}

/* A frontend holding more than EXCHANGE_HIGH_WATER stops the origin read
 * until exchange_drained(); no timeout runs meanwhile. */
static void test_backpressure(env_t *e)
{
    front_t f;
    enum { BIG = 4 * 1024 * 1024 };
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\n";
    char *reply = xmalloc(sizeof(head) + BIG);
    memcpy(reply, head, sizeof(head) - 1);
    memset(reply + sizeof(head) - 1, 'b', BIG);
    reply[sizeof(head) - 1 + BIG] = '\0';
    e->origin.mode = ORIGIN_ANSWER;
    e->origin.reply = reply;
    exchange_t *ex = request(e, &f, "GET", "/big");
    f.hold = EXCHANGE_HIGH_WATER + 1;
    exchange_start(ex);
    exchange_request_end(ex);
    while (f.body_len == 0)
        uv_run(&e->loop, UV_RUN_ONCE);
    spin(e, 500); /* longer than origin_timeout: paused reads don't time out */
    size_t paused_at = f.body_len;
    CHECK(paused_at < BIG);
    CHECK(!f.done);
    spin(e, 50);
    CHECK_INTEQ(f.body_len, paused_at);
    f.hold = 0;
    exchange_drained(ex);
    run_until_done(e, &f);
    CHECK_STREQ(f.events, "H200 E");
    CHECK_INTEQ(f.body_len, BIG);
    free(reply);
}

static void test_websocket(env_t *e)
{
    front_t f;
    e->origin.mode = ORIGIN_TUNNEL;
    e->origin.reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\n\r\nfirst";
    exchange_t *ex = request(e, &f, "GET", "/ws");
    ex->proto = EXCHANGE_HTTP11;
    ex->req_upgrade_websocket = true;
    exchange_start(ex);
    exchange_request_end(ex);
    while (f.body_len < 5 && !f.done)
        uv_run(&e->loop, UV_RUN_ONCE);
    CHECK_STREQ(f.events, "H101 T ");
    CHECK(strstr(e->origin.last, "Connection: upgrade\r\nUpgrade: websocket\r\n") != NULL);
    exchange_request_body(ex, (const uint8_t *)"ping", 4);
    while (f.body_len < 9 && !f.done)
        uv_run(&e->loop, UV_RUN_ONCE);
    CHECK_INTEQ(f.body_len, 9);
    CHECK(memcmp(f.body, "firstPING", 9) == 0);
    /* the client goes: the tunnel is closed, no callback after */
    exchange_abort(ex);
    exchange_frontend_done(ex);
    spin(e, 50);
    CHECK_STREQ(f.events, "H101 T ");
}

/* Run the loop until cond(e) holds (5 s at most). */
static bool run_until(env_t *e, bool (*cond)(env_t *))
{
    uv_timer_start(&e->guard, guard_cb, 5000, 0);
    while (!cond(e) && uv_timer_get_due_in(&e->guard) > 0)
        uv_run(&e->loop, UV_RUN_ONCE);
    uv_timer_stop(&e->guard);
    return cond(e);
}

static bool two_held(env_t *e)
{
    return e->origin.nheld >= 2;
}

static exchange_t *start_get(env_t *e, front_t *f, const char *path, exchange_role_t role)
{
    exchange_t *ex = request(e, f, "GET", path);
    ex->role = role;
    exchange_start(ex);
    exchange_request_end(ex);
    return ex;
}

/*
 * A budget of 2 connections and a queue of 3 (a fresh pool): 2 requests go
 * to the origin, 3 wait, the 6th is refused with 503 (from a callback, not
 * inside exchange_start). The waiters then take the 2 connections in
 * arrival order, a client request before an older pushed fetch; a waiting
 * POST's body reaches the origin after its head; an aborted waiter
 * vanishes; the origin sees 2 connections in all.
 */
static void test_queue(env_t *e)
{
    budget_t *b = budget_create(2, 3, 1);
    upstream_pool_t *old = e->pool;
    bool closed = false;
    upstream_pool_close(old, pool_closed_cb, &closed);
    spin(e, 20);
    CHECK(closed);
    use_pool(e, b);
    e->origin.mode = ORIGIN_HOLD;
    e->origin.need = NULL;
    e->origin.reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    e->origin.order[0] = '\0';
    e->cfg.origin_timeout = 5;
    int accepted = e->origin.accepted;

    front_t f[7];
    start_get(e, &f[0], "/a", EXCHANGE_ROLE_PAGE);
    start_get(e, &f[1], "/b", EXCHANGE_ROLE_PAGE);
    start_get(e, &f[2], "/push", EXCHANGE_ROLE_PUSHED);
    exchange_t *post = request(e, &f[3], "POST", "/post");
    post->req_has_body = true;
    post->req_content_length = 4;
    exchange_start(post);
    exchange_request_body(post, (const uint8_t *)"data", 4);
    exchange_request_end(post);
    exchange_t *gone = start_get(e, &f[5], "/aborted", EXCHANGE_ROLE_PAGE);
    start_get(e, &f[4], "/full", EXCHANGE_ROLE_PAGE);
    CHECK(!f[4].done); /* refused, but not from inside exchange_start */
    CHECK(run_until(e, two_held));
    spin(e, 20);
    CHECK_STREQ(f[4].events, "X503");
    CHECK_STREQ(e->origin.order, "/a /b ");
    CHECK_INTEQ(e->origin.accepted - accepted, 2);
    upstream_stats_t st;
    upstream_pool_stats(e->pool, &st);
    CHECK_INTEQ(st.queued, 3);
    CHECK_INTEQ(f[3].consumed, 0); /* the body waits with its request */

    /* a waiter whose client goes leaves the queue without a trace */
    exchange_abort(gone);
    exchange_frontend_done(gone);
    upstream_pool_stats(e->pool, &st);
    CHECK_INTEQ(st.queued, 2);

    /* the origin answers: the client POST goes before the older push */
    origin_release(&e->origin);
    CHECK(run_until(e, two_held));
    CHECK_STREQ(e->origin.order, "/a /b /post /push ");
    origin_release(&e->origin);
    run_until_done(e, &f[2]);
    run_until_done(e, &f[3]);
    for (int i = 0; i < 4; i++)
        CHECK_STREQ(f[i].events, "H200 E");
    CHECK_INTEQ(f[3].consumed, 4);
    CHECK_STREQ(f[5].events, "");
    CHECK_INTEQ(e->origin.accepted - accepted, 2);
    budget_stats_t bs;
    budget_stats(b, &bs);
    CHECK_INTEQ(bs.queue_full, 1);
    CHECK_INTEQ(bs.waited, 2);
    CHECK_INTEQ(bs.queued, 0);
    CHECK_INTEQ(bs.in_use, 2);
    upstream_pool_stats(e->pool, &st);
    CHECK_INTEQ(st.idle, 2);

    /* origin_timeout counts from the enqueue: a waiter behind two uploads
     * that never end (no origin timeout runs for them) gets its 504 from
     * the queue */
    e->cfg.origin_timeout = 0.2;
    e->origin.mode = ORIGIN_SILENT;
    exchange_t *up[2];
    for (int i = 0; i < 2; i++) {
        up[i] = request(e, &f[i], "POST", i ? "/up2" : "/up1");
        up[i]->req_has_body = true;
        exchange_start(up[i]);
    }
    start_get(e, &f[6], "/late", EXCHANGE_ROLE_PAGE);
    run_until_done(e, &f[6]);
    CHECK_STREQ(f[6].events, "X504");
    CHECK(!f[0].done && !f[1].done);
    for (int i = 0; i < 2; i++) {
        exchange_abort(up[i]);
        exchange_frontend_done(up[i]);
    }
    budget_stats(b, &bs);
    CHECK_INTEQ(bs.queue_timeouts, 1);
    e->cfg.origin_timeout = 0.3;
    e->origin.mode = ORIGIN_ANSWER;
    e->origin.nheld = 0;

    /* a request still waiting when the pool closes (herald's own fetches
     * have no client to abort them first) gets a 502, after the call */
    e->origin.mode = ORIGIN_SILENT;
    for (int i = 0; i < 2; i++) {
        up[i] = request(e, &f[i], "POST", "/hold");
        up[i]->req_has_body = true;
        exchange_start(up[i]);
    }
    start_get(e, &f[6], "/waiting", EXCHANGE_ROLE_PAGE);
    spin(e, 20);
    closed = false;
    upstream_pool_close(e->pool, pool_closed_cb, &closed);
    CHECK_STREQ(f[6].events, "");
    spin(e, 20);
    CHECK_STREQ(f[6].events, "X502");
    CHECK(!closed); /* the two uploads still hold their connections */
    for (int i = 0; i < 2; i++) {
        exchange_abort(up[i]);
        exchange_frontend_done(up[i]);
    }
    spin(e, 20);
    CHECK(closed);
    e->origin.mode = ORIGIN_ANSWER;
    budget_stats(b, &bs);
    CHECK_INTEQ(bs.in_use, 0);
    CHECK_INTEQ(bs.queued, 0);
    budget_destroy(b);
    use_pool(e, e->budget);
}

static void test_refused(env_t *e)
{
    front_t f;
    struct sockaddr_in *sin = (struct sockaddr_in *)&e->cfg.origin_addr;
    uint16_t port = sin->sin_port;
    sin->sin_port = 0; /* connect(2) to port 0 is refused */
    get(e, &f, "/refused");
    CHECK_STREQ(f.events, "X502");
    sin->sin_port = port;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, h->type == UV_TCP && h->data != NULL && h->data != arg ? oconn_closed : NULL);
}

int main(void)
{
    env_t *e = xcalloc(1, sizeof(*e));
    log_set_level(LOG_LEVEL_FATAL); /* the faults below are expected */
    CHECK_INTEQ(uv_loop_init(&e->loop), 0);
    e->cfg.origin_timeout = 0.3;
    e->cfg.origin_idle_timeout = 10;
    strcpy(e->cfg.origin_host, "127.0.0.1");

    uv_timer_init(&e->loop, &e->guard);
    uv_tcp_init(&e->loop, &e->origin.server);
    e->origin.server.data = &e->origin;
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    CHECK_INTEQ(uv_tcp_bind(&e->origin.server, (struct sockaddr *)&sin, 0), 0);
    CHECK_INTEQ(uv_listen((uv_stream_t *)&e->origin.server, 16, oaccept), 0);
    int len = sizeof(e->cfg.origin_addr);
    uv_tcp_getsockname(&e->origin.server, (struct sockaddr *)&e->cfg.origin_addr, &len);
    e->cfg.origin_port = ntohs(((struct sockaddr_in *)&e->cfg.origin_addr)->sin_port);

    e->cfg.origin_max_connections = 4;
    e->cfg.origin_queue = 16;
    e->budget = budget_create(e->cfg.origin_max_connections, e->cfg.origin_queue, 1);
    exchange_ctx_init(&e->xctx, &e->loop, &e->cfg, 0);
    use_pool(e, e->budget);
    test_forward_and_reuse(e);
    test_retry(e);
    test_chunked_both_ways(e);
    test_faults(e);
    test_backpressure(e);
    test_websocket(e);
    test_queue(e);
    test_refused(e);

    upstream_pool_close(e->pool, pool_closed_cb, &pool_closed);
    spin(e, 20);
    CHECK(pool_closed);
    uv_close((uv_handle_t *)&e->guard, NULL);
    uv_close((uv_handle_t *)&e->origin.server, NULL);
    /* origin connections still open: closed here, freed by their close cb */
    uv_walk(&e->loop, close_walk, &e->origin);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    CHECK_INTEQ(uv_loop_close(&e->loop), 0);
    budget_destroy(e->budget);
    free(e);
    return TESTUTIL_SUMMARY();
}
