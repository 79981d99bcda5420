/*
 * The origin side of an exchange: a per-worker pool of HTTP/1.1 keep-alive
 * connections to the one origin (cfg->origin_addr) drawing on the process'
 * connection budget (see upstream.h and budget.h), the request written with
 * a byte-accounted write queue, the response parsed with llhttp and streamed
 * to the exchange's frontend with backpressure.
 *
 * One upstream_conn_t serves at most one exchange at a time. A request that
 * must wait for a connection gets an upstream_conn_t without a socket
 * (QUEUED) in one of the pool's queues; its body bytes wait in it. When its
 * turn comes it either becomes a connection itself (a new connect, or a
 * descriptor handed over by another worker) or hands its exchange to a free
 * connection of this worker and is freed.
 *
 * A connection is free again only when its response was complete, the
 * origin allows keep-alive and the whole request was handed to the kernel.
 * A free connection goes to the longest-waiting request, or to the idle list
 * (taken oldest first, so every idle connection keeps being used under
 * steady load and none times out only to be reopened a moment later). Idle
 * connections keep a read posted so that an origin closing them is noticed,
 * and close after cfg->origin_idle_timeout.
 */
#include "upstream.h"

#include <assert.h>
#include <fcntl.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "alloc.h"
#include "list.h"
#include "config.h"
#include "lazytimer.h"
#include "log.h"

enum {
    READ_BUF_SIZE = 64 * 1024,
    /* Bytes of header names and values, and fields, in one origin response
     * head: the same bounds nghttpx applies (64 KiB). Beyond them the origin
     * is broken or hostile and the client gets a 502, not a header block
     * its own SETTINGS_MAX_HEADER_LIST_SIZE would refuse. */
    MAX_RESPONSE_HEAD = 64 * 1024,
    MAX_RESPONSE_FIELDS = 256,
    /* grants taken from the mailbox at a time */
    GRANT_BATCH = 64,
    /* a full queue is reported at most this often (with a count) */
    FULL_LOG_MS = 10 * 1000,
};

/**
 * A connection's life:
 *   QUEUED     -> CONNECTING  no socket yet (a request waiting, or an object
 *                             just made): a unit of budget came, connect
 *   QUEUED     -> ACTIVE      a connection's descriptor came from another worker
 *   QUEUED     -> CLOSING     the queue was full: the 503 is delivered from
 *                             the close callback of its timer
 *   (a QUEUED object that hands its exchange to a free connection, or whose
 *   request is aborted or times out in the queue, is freed without closing)
 *   CONNECTING -> ACTIVE      connected, serving its exchange
 *   ACTIVE     -> IDLE        response complete and reusable: in the idle list
 *   IDLE       -> ACTIVE      taken for a new exchange
 *   ACTIVE     -> TUNNEL      101 to a websocket upgrade: raw bytes both ways
 *   any        -> CLOSING     uv_close() called; freed when its handles closed
 */
typedef enum upstream_conn_state {
    UPSTREAM_QUEUED,
    UPSTREAM_CONNECTING,
    UPSTREAM_ACTIVE,
    UPSTREAM_IDLE,
    UPSTREAM_TUNNEL,
    UPSTREAM_CLOSING,
    UPSTREAM_NSTATES,
} upstream_conn_state_t;

struct upstream_pool {
    uv_loop_t *loop;
    const config_t *cfg;
    budget_t *budget;
    int slot;    /* ours in the budget: the worker's id */
    list_t idle; /* upstream_conn_t.link; newest first, taken from the tail */
    /* requests waiting for a connection, per class: upstream_conn_t.link of
     * QUEUED objects, newest first, served from the tail */
    list_t waitq[BUDGET_NCLASSES];
    uint32_t nwait[BUDGET_NCLASSES];
    upstream_stats_t stats;
    uv_async_t wake;   /* data = this: grants in our mailbox, or "serve the waiters" */
    uv_timer_t qtimer; /* data = this: origin_timeout of the oldest waiter */
    int handles_open;  /* wake + qtimer until their close callbacks ran */
    size_t nobjs;      /* upstream_conn_t objects alive (they point at the pool) */
    int balancing;     /* inside balance(): a nested call only asks for another round */
    bool again;
    uint64_t full_log_ms; /* when a full queue was last reported (loop time) */
    uint64_t full_count;  /* rejections since */
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
    uv_tcp_t tcp;      /* data = this */
    lazytimer_t timer; /* t.data = this: origin_timeout, or the idle timeout (lazy:
                        * pushed back per request) */
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    upstream_pool_t *pool;
    list_t link; /* in pool->idle while IDLE, in pool->waitq while queued */
    upstream_conn_state_t state;
    int handles_open; /* tcp + timer until their close callbacks ran */
    bool reading;
    bool paused;     /* read stopped: the frontend holds too much */
    bool want_pause; /* set by on_body, acted on after llhttp_execute */
    bool has_slot;   /* holds a unit of the budget: given back (or on) when closed */
    bool counted;    /* has a socket: in pool->stats.open */
    bool in_queue;   /* QUEUED and linked in pool->waitq[cls] */
    bool push_busy;  /* counted in the budget's push_busy */
    bool rejected;   /* the queue was full: the 503 comes from close_cb */

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
    budget_class_t cls;   /* while queued */
    uint64_t t_queued;    /* uv_hrtime() when queued */
    uint64_t charge_ns;   /* time the exchange waited in the queue: taken off
                           * origin_timeout until the first response byte */
    list_t pending;       /* wreq_t.link: body bytes given while QUEUED, newest first */
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
 * exchange can be freed, and libuv reads no buffer after uv_close). While
 * the request waits for a connection, body pieces wait in c->pending. */
typedef struct wreq {
    uv_write_t req;
    upstream_conn_t *c;
    unsigned gen;
    size_t body_bytes; /* request body bytes inside, for request_consumed */
    bool is_head;
    list_t link; /* in c->pending until written */
    uv_buf_t buf;
    char data[];
} wreq_t;

/* Pushed fetches, browser prefetches and herald's own fetches queue behind
 * client requests and hold at most their share of the budget (budget.h). */
static bool background(const exchange_t *ex)
{
    return ex->role == EXCHANGE_ROLE_PUSHED || ex->role == EXCHANGE_ROLE_OWN ||
           ex->role == EXCHANGE_ROLE_PREFETCH;
}
static void conn_close(upstream_conn_t *c);
static void rearm_timer(upstream_conn_t *c);
static void start_reading(upstream_conn_t *c);
static void send_request(upstream_conn_t *c, bool ended);
static void fail_deferred(upstream_conn_t *c, int status);
static void balance(upstream_pool_t *pool);
static void write_cb(uv_write_t *req, int status);
static void attach(upstream_conn_t *c, exchange_t *ex, const char *head, size_t head_len);

static void set_state(upstream_conn_t *c, upstream_conn_state_t to)
{
    static const bool legal[UPSTREAM_NSTATES][UPSTREAM_NSTATES] = {
        [UPSTREAM_QUEUED] =
            {[UPSTREAM_CONNECTING] = true, [UPSTREAM_ACTIVE] = true, [UPSTREAM_CLOSING] = true},
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

static list_t *list_oldest(list_t *head)
{
    return head->prev != head ? head->prev : NULL;
}

/* ---- pool ---- */

static void wake_cb(uv_async_t *a);
static void qtimer_cb(uv_timer_t *t);

upstream_pool_t *upstream_pool_create(uv_loop_t *loop, const config_t *cfg, int slot,
                                      budget_t *budget)
{
    upstream_pool_t *pool = xcalloc(1, sizeof(*pool));
    pool->loop = loop;
    pool->cfg = cfg;
    pool->budget = budget;
    pool->slot = slot;
    pool->rbuf = xmalloc(READ_BUF_SIZE);
    list_init(&pool->idle);
    for (int k = 0; k < BUDGET_NCLASSES; k++)
        list_init(&pool->waitq[k]);
    uv_async_init(pool->loop, &pool->wake, wake_cb);
    pool->wake.data = pool;
    uv_timer_init(pool->loop, &pool->qtimer);
    pool->qtimer.data = pool;
    pool->handles_open = 2;
    budget_register(budget, pool->slot, &pool->wake);
    return pool;
}

static void pool_maybe_done(upstream_pool_t *pool)
{
    if (!pool->closing || pool->nobjs > 0 || pool->handles_open > 0 || pool->close_cb == NULL)
        return;
    void (*cb)(void *) = pool->close_cb;
    void *arg = pool->close_arg;
    free(pool->rbuf);
    free(pool);
    cb(arg);
}

static void pool_handle_closed(uv_handle_t *h)
{
    upstream_pool_t *pool = h->data;
    pool->handles_open--;
    pool_maybe_done(pool);
}

/* The worker is the one writer of its pool's counters; the admin thread
 * reads them (upstream_pool_stats): relaxed atomic stores and loads, no
 * read-modify-write needed. */
#define STAT_ADD(field, delta) __atomic_store_n(&(field), (field) + (delta), __ATOMIC_RELAXED)
#define STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

void upstream_pool_stats(const upstream_pool_t *pool, upstream_stats_t *out)
{
    const upstream_stats_t *s = &pool->stats;
    out->connects = STAT_GET(s->connects);
    out->reuses = STAT_GET(s->reuses);
    out->retries = STAT_GET(s->retries);
    out->errors = STAT_GET(s->errors);
    out->timeouts = STAT_GET(s->timeouts);
    out->open = STAT_GET(s->open);
    out->idle = STAT_GET(s->idle);
    out->queued = STAT_GET(s->queued);
}

/* ---- connection objects ---- */

static upstream_conn_t *conn_alloc(upstream_pool_t *pool)
{
    upstream_conn_t *c = xcalloc(1, sizeof(*c));
    c->pool = pool;
    c->state = UPSTREAM_QUEUED;
    list_init(&c->link);
    list_init(&c->pending);
    headers_buf_init(&c->hname);
    headers_buf_init(&c->hvalue);
    pool->nobjs++;
    return c;
}

/* Free c, whose handles are closed or were never opened. */
static void conn_free(upstream_conn_t *c)
{
    upstream_pool_t *pool = c->pool;
    list_t *l;
    while ((l = list_oldest(&c->pending)) != NULL) {
        list_remove(l);
        free(container_of(l, wreq_t, link));
    }
    headers_buf_dispose(&c->hname);
    headers_buf_dispose(&c->hvalue);
    free(c);
    pool->nobjs--;
    pool_maybe_done(pool);
}

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
        int status = c->deferred_status != 0 ? c->deferred_status : 502;
        if (!exchange_head_sent(ex))
            ex->status = status;
        if (!c->rejected)
            STAT_ADD(pool->stats.errors, 1);
        exchange_response_error(ex, status);
        exchange_upstream_done(ex);
    }
    if (c->counted)
        STAT_ADD(pool->stats.open, -1);
    conn_free(c);
}

static void push_release(upstream_conn_t *c)
{
    if (c->push_busy) {
        c->push_busy = false;
        budget_push_busy(c->pool->budget, -1);
    }
}

static void idle_unlink(upstream_conn_t *c)
{
    upstream_pool_t *pool = c->pool;
    list_remove(&c->link);
    STAT_ADD(pool->stats.idle, -1);
    budget_publish_idle(pool->budget, pool->slot, pool->stats.idle);
}

/* A unit of budget came free on this worker (a connection closed). */
static void slot_freed(upstream_pool_t *pool)
{
    budget_release(pool->budget);
    /* after the release: a request queued meanwhile finds the unit itself */
    if (budget_queued_total(pool->budget) > 0)
        balance(pool);
}

static void conn_close(upstream_conn_t *c)
{
    if (c->state == UPSTREAM_CLOSING)
        return;
    assert(c->state != UPSTREAM_QUEUED);
    if (c->state == UPSTREAM_IDLE)
        idle_unlink(c);
    set_state(c, UPSTREAM_CLOSING);
    push_release(c);
    /* pending writes complete with UV_ECANCELED before close_cb */
    uv_close((uv_handle_t *)&c->tcp, close_cb);
    uv_close((uv_handle_t *)&c->timer.t, close_cb);
    /* the socket is closed now: its unit serves the next request at once */
    if (c->has_slot) {
        c->has_slot = false;
        slot_freed(c->pool);
    }
}

static void detach(upstream_conn_t *c)
{
    push_release(c);
    c->ex->upstream = NULL;
    c->ex = NULL;
}

/* Deliver a failure to c's exchange now (from a libuv callback) and close c. */
static void fail(upstream_conn_t *c, int status)
{
    exchange_t *ex = c->ex;
    upstream_pool_t *pool = c->pool;
    if (ex != NULL)
        detach(c);
    conn_close(c);
    if (ex == NULL)
        return;
    ex->t_end = uv_hrtime();
    if (!exchange_head_sent(ex))
        ex->status = status;
    STAT_ADD(pool->stats.errors, 1);
    exchange_response_error(ex, status);
    exchange_upstream_done(ex);
}

/* A failure during a call from the frontend: delivered from close_cb. */
static void fail_deferred(upstream_conn_t *c, int status)
{
    c->deferred_status = status;
    conn_close(c);
}

/* The origin timeout left to c's exchange: what it waited in the queue is
 * taken off until the origin's first response byte. */
static double owed_timeout(const upstream_conn_t *c)
{
    double t = c->pool->cfg->origin_timeout;
    if (!c->resp_started && c->charge_ns > 0) {
        t -= (double)c->charge_ns / 1e9;
        if (t < 0.001)
            t = 0.001;
    }
    return t;
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
    STAT_ADD(c->pool->stats.timeouts, 1);
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
        lazytimer_stop(&c->timer);
        return;
    }
    lazytimer_start(&c->timer, (uint64_t)(secs * 1000.0 + 0.5));
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
        arm(c, owed_timeout(c));
        break;
    case UPSTREAM_ACTIVE:
        if (!c->paused && (c->req_end_queued || c->resp_started ||
                           uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > 0))
            arm(c, owed_timeout(c));
        else
            lazytimer_stop(&c->timer);
        break;
    case UPSTREAM_IDLE:
        arm(c, c->pool->cfg->origin_idle_timeout);
        break;
    case UPSTREAM_QUEUED: /* no timer: the pool's queue timer covers it */
        break;
    case UPSTREAM_TUNNEL:
    case UPSTREAM_CLOSING:
    case UPSTREAM_NSTATES:
        lazytimer_stop(&c->timer);
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

/* Give the QUEUED object c its handles (it has a unit of budget). */
static void open_handles(upstream_conn_t *c)
{
    upstream_pool_t *pool = c->pool;
    int r = uv_tcp_init(pool->loop, &c->tcp);
    if (r < 0) {
        LOG_FATAL("uv_tcp_init: %s", uv_strerror(r));
        abort();
    }
    lazytimer_init(pool->loop, &c->timer, conn_timer_cb);
    c->tcp.data = c;
    c->timer.t.data = c;
    c->connect_req.data = c;
    c->handles_open = 2;
    c->counted = true;
    STAT_ADD(pool->stats.open, 1);
}

/* Connect the QUEUED object c (it holds a unit of budget). 0, or the
 * negative errno of a uv_tcp_connect that failed at once: c is then
 * CONNECTING with its handles open, for the caller to close through
 * fail_deferred (no connect_cb runs). */
static int conn_connect(upstream_conn_t *c)
{
    upstream_pool_t *pool = c->pool;
    assert(c->has_slot);
    open_handles(c);
    set_state(c, UPSTREAM_CONNECTING);
    STAT_ADD(pool->stats.connects, 1);
    uv_tcp_nodelay(&c->tcp, 1);
    int err = uv_tcp_connect(&c->connect_req, &c->tcp,
                             (const struct sockaddr *)&pool->cfg->origin_addr, connect_cb);
    if (err < 0)
        LOG_WARN("origin %s:%u connect: %s", pool->cfg->origin_host, pool->cfg->origin_port,
                 uv_strerror(err));
    else
        arm(c, owed_timeout(c));
    return err;
}

/* The QUEUED object c takes over `fd`, an idle connection another worker
 * handed us with its unit of budget. 0, or a negative errno: c is then
 * ACTIVE with its handles open (and fd closed), for the caller to close. */
static int conn_import(upstream_conn_t *c, int fd)
{
    assert(c->has_slot);
    open_handles(c);
    set_state(c, UPSTREAM_ACTIVE);
    c->reused = true;
    int r = uv_tcp_open(&c->tcp, fd);
    if (r < 0) {
        close(fd);
        LOG_WARN("origin connection from another worker: %s", uv_strerror(r));
        return r;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    return 0;
}

static upstream_conn_t *take_idle(upstream_pool_t *pool)
{
    list_t *l = list_oldest(&pool->idle);
    if (l == NULL)
        return NULL;
    upstream_conn_t *c = container_of(l, upstream_conn_t, link);
    idle_unlink(c);
    set_state(c, UPSTREAM_ACTIVE);
    lazytimer_stop(&c->timer);
    return c;
}

static void to_idle(upstream_conn_t *c)
{
    upstream_pool_t *pool = c->pool;
    set_state(c, UPSTREAM_IDLE);
    c->reused = true;
    list_insert(&pool->idle, &c->link);
    STAT_ADD(pool->stats.idle, 1);
    budget_publish_idle(pool->budget, pool->slot, pool->stats.idle);
    c->paused = false;
    c->want_pause = false;
    start_reading(c); /* to notice the origin closing it */
    rearm_timer(c);
}

/* Hand c (ACTIVE or IDLE, no exchange) with its unit of budget to worker
 * `to` as a descriptor: the origin keeps its connection, `to` a new handle
 * on it. False (c untouched) when that is impossible. */
static bool export_conn(upstream_conn_t *c, int to)
{
    upstream_pool_t *pool = c->pool;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
        return false;
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0)
        return false;
    /* stop our reads first: from now on the bytes are the other worker's */
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (!budget_send(pool->budget, to, copy)) {
        close(copy);
        start_reading(c);
        return false;
    }
    c->has_slot = false; /* it went with the descriptor */
    /* closes our descriptor only: the socket lives on in `copy` */
    conn_close(c);
    return true;
}

/* ---- the queue ---- */

static void publish_head(upstream_pool_t *pool, budget_class_t cls)
{
    list_t *l = list_oldest(&pool->waitq[cls]);
    budget_publish_head(pool->budget, pool->slot, cls,
                        l != NULL ? container_of(l, upstream_conn_t, link)->t_queued : BUDGET_NONE);
}

static void arm_qtimer(upstream_pool_t *pool)
{
    uint64_t oldest = BUDGET_NONE;
    for (int k = 0; k < BUDGET_NCLASSES; k++) {
        list_t *l = list_oldest(&pool->waitq[k]);
        if (l != NULL && container_of(l, upstream_conn_t, link)->t_queued < oldest)
            oldest = container_of(l, upstream_conn_t, link)->t_queued;
    }
    if (oldest == BUDGET_NONE) {
        uv_timer_stop(&pool->qtimer);
        return;
    }
    uint64_t due = oldest + (uint64_t)(pool->cfg->origin_timeout * 1e9);
    uint64_t now = uv_hrtime();
    uint64_t ms = due > now ? (due - now) / 1000000 + 1 : 0;
    uv_timer_start(&pool->qtimer, qtimer_cb, ms, 0);
}

static void enqueue(upstream_pool_t *pool, upstream_conn_t *q, budget_class_t cls)
{
    q->cls = cls;
    q->t_queued = uv_hrtime();
    q->in_queue = true;
    list_insert(&pool->waitq[cls], &q->link);
    if (++pool->nwait[cls] == 1)
        publish_head(pool, cls);
    STAT_ADD(pool->stats.queued, 1);
    if (!uv_is_active((uv_handle_t *)&pool->qtimer))
        arm_qtimer(pool);
}

/* Take q out of its queue: `served` when it gets a connection now. */
static void dequeue(upstream_conn_t *q, bool served, bool timed_out)
{
    upstream_pool_t *pool = q->pool;
    bool was_head = list_oldest(&pool->waitq[q->cls]) == &q->link;
    list_remove(&q->link);
    q->in_queue = false;
    pool->nwait[q->cls]--;
    STAT_ADD(pool->stats.queued, -1);
    if (was_head)
        publish_head(pool, q->cls);
    uint64_t waited = uv_hrtime() - q->t_queued;
    q->charge_ns = waited;
    budget_queue_leave(pool->budget, q->cls, waited, served, timed_out);
}

static upstream_conn_t *dequeue_oldest(upstream_pool_t *pool, budget_class_t cls)
{
    list_t *l = list_oldest(&pool->waitq[cls]);
    if (l == NULL)
        return NULL;
    upstream_conn_t *q = container_of(l, upstream_conn_t, link);
    dequeue(q, true, false);
    return q;
}

/* A queued request leaves with an error (from a libuv callback). */
static void fail_waiter(upstream_conn_t *q, int status)
{
    upstream_pool_t *pool = q->pool;
    exchange_t *ex = q->ex;
    detach(q);
    conn_free(q);
    ex->t_end = uv_hrtime();
    ex->status = status;
    STAT_ADD(pool->stats.timeouts, 1);
    exchange_response_error(ex, status);
    exchange_upstream_done(ex);
}

static void qtimer_cb(uv_timer_t *t)
{
    upstream_pool_t *pool = t->data;
    uint64_t limit = (uint64_t)(pool->cfg->origin_timeout * 1e9);
    uint64_t now = uv_hrtime();
    unsigned n = 0;
    for (int k = 0; k < BUDGET_NCLASSES; k++) {
        list_t *l;
        while ((l = list_oldest(&pool->waitq[k])) != NULL) {
            upstream_conn_t *q = container_of(l, upstream_conn_t, link);
            if (now - q->t_queued < limit)
                break;
            dequeue(q, false, true);
            fail_waiter(q, 504);
            n++;
        }
    }
    if (n > 0)
        LOG_WARN("origin %s:%u: %u request(s) waited --origin-timeout (%gs) for one of the "
                 "--origin-max-connections: 504",
                 pool->cfg->origin_host, pool->cfg->origin_port, n, pool->cfg->origin_timeout);
    arm_qtimer(pool);
}

/* q (QUEUED, not in a queue) gets `status` without a connection: from the
 * close callback of its timer, as we may be inside the frontend's call. */
static void refuse(upstream_conn_t *q, int status)
{
    upstream_pool_t *pool = q->pool;
    q->rejected = status == 503;
    q->deferred_status = status;
    lazytimer_init(pool->loop, &q->timer, conn_timer_cb);
    q->timer.t.data = q;
    q->handles_open = 1;
    set_state(q, UPSTREAM_CLOSING);
    uv_close((uv_handle_t *)&q->timer.t, close_cb);
}

/* The queue is full: 503. */
static void reject(upstream_conn_t *q)
{
    upstream_pool_t *pool = q->pool;
    budget_stats_t bs;
    pool->full_count++;
    uint64_t now = uv_now(pool->loop);
    if (pool->full_log_ms == 0 || now - pool->full_log_ms >= FULL_LOG_MS) {
        budget_stats(pool->budget, &bs);
        LOG_WARN("origin queue full (%u requests wait for %u connections): %llu request(s) "
                 "answered 503",
                 bs.queued, bs.max, (unsigned long long)pool->full_count);
        pool->full_log_ms = now;
        pool->full_count = 0;
    }
    refuse(q, 503);
}

/* ---- who gets a free connection ---- */

/* Move q's exchange (and its waiting body bytes) to c, a free connection
 * of this worker; q is freed. */
static void hand_over(upstream_conn_t *q, upstream_conn_t *c)
{
    exchange_t *ex = q->ex;
    const char *head = q->head;
    size_t head_len = q->head_len;
    bool ended = q->req_end_queued;
    c->reused = true; /* it served the request before this one */
    uint64_t body = q->body_queued, charge = q->charge_ns;
    q->ex = NULL;
    ex->upstream = NULL;
    /* c->gen changes in attach(): send_request gives the pending writes the new one */
    attach(c, ex, head, head_len);
    c->req_end_queued = ended;
    c->body_queued = body;
    c->charge_ns = charge;
    list_t *l;
    while ((l = list_oldest(&q->pending)) != NULL) {
        list_remove(l);
        list_insert(&c->pending, l);
    }
    conn_free(q);
    send_request(c, false);
}

/* Serve the oldest local waiter of `cls` with c (free, ACTIVE). */
static void serve_with_conn(upstream_pool_t *pool, budget_class_t cls, upstream_conn_t *c)
{
    upstream_conn_t *q = dequeue_oldest(pool, cls);
    assert(q != NULL);
    hand_over(q, c);
}

/* Serve the oldest local waiter of `cls` with a unit of budget we hold:
 * it connects. */
static void serve_with_unit(upstream_pool_t *pool, budget_class_t cls)
{
    upstream_conn_t *q = dequeue_oldest(pool, cls);
    assert(q != NULL);
    q->has_slot = true;
    if (conn_connect(q) < 0)
        fail_deferred(q, 502);
    else
        send_request(q, false);
}

/* c (ACTIVE, reusable, no exchange) is free: the longest-waiting request
 * gets it, here or on another worker; else it waits in the idle list. */
static void release_conn(upstream_pool_t *pool, upstream_conn_t *c)
{
    if (pool->closing) {
        conn_close(c);
        return;
    }
    if (budget_queued_total(pool->budget) > 0) {
        budget_class_t cls;
        int to = budget_pick(pool->budget, pool->slot, &cls);
        if (to == pool->slot) {
            serve_with_conn(pool, cls, c);
            return;
        }
        if (to >= 0 && export_conn(c, to))
            return;
    }
    to_idle(c);
    /* after publishing the idle one: a request queued meanwhile is served */
    if (budget_queued_total(pool->budget) > 0)
        balance(pool);
}

/*
 * While requests wait anywhere and this worker has an idle connection or
 * the budget a free unit, give it to the longest-waiting one. Then, when
 * our own requests still wait (and may be served) while another worker
 * keeps idle connections, wake that worker to hand one over.
 */
static void balance(upstream_pool_t *pool)
{
    budget_t *b = pool->budget;
    if (pool->balancing) {
        pool->again = true;
        return;
    }
    pool->balancing = 1;
    do {
        pool->again = false;
        for (int guard = 0; guard < 4096 && budget_queued_total(b) > 0; guard++) {
            budget_class_t cls;
            int to = budget_pick(b, pool->closing ? -1 : pool->slot, &cls);
            if (to < 0)
                break;
            upstream_conn_t *c = pool->closing ? NULL : take_idle(pool);
            if (c != NULL) {
                if (to == pool->slot) {
                    serve_with_conn(pool, cls, c);
                } else if (!export_conn(c, to)) {
                    to_idle(c);
                    break;
                }
                continue;
            }
            if (!budget_try_acquire(b))
                break;
            if (to == pool->slot) {
                serve_with_unit(pool, cls);
            } else if (!budget_send(b, to, -1)) {
                budget_release(b);
                break;
            }
        }
    } while (pool->again);
    pool->balancing = 0;
    bool can_wait_for_idle =
        pool->nwait[BUDGET_CLIENT] > 0 || (pool->nwait[BUDGET_PUSH] > 0 && budget_push_ok(b));
    if (can_wait_for_idle && !pool->closing) {
        int other = budget_find_idle(b, pool->slot);
        if (other >= 0)
            budget_wake(b, other);
    }
}

/* A grant from another worker: a connection (fd >= 0) or a unit of budget. */
static void take_grant(upstream_pool_t *pool, int fd)
{
    budget_t *b = pool->budget;
    budget_class_t cls;
    int to = budget_pick(b, pool->slot, &cls);
    if (fd < 0) {
        if (to == pool->slot)
            serve_with_unit(pool, cls);
        else if (to < 0 || !budget_send(b, to, -1))
            slot_freed(pool);
        return;
    }
    if (to >= 0 && to != pool->slot && budget_send(b, to, fd))
        return;
    upstream_conn_t *q = to == pool->slot ? dequeue_oldest(pool, cls) : NULL;
    upstream_conn_t *c = q != NULL ? q : conn_alloc(pool);
    c->has_slot = true;
    if (conn_import(c, fd) < 0) {
        if (q != NULL)
            fail_deferred(q, 502);
        else
            conn_close(c);
        return;
    }
    if (q != NULL)
        send_request(q, false);
    else
        release_conn(pool, c);
}

static void wake_cb(uv_async_t *a)
{
    upstream_pool_t *pool = a->data;
    int grants[GRANT_BATCH];
    size_t n;
    while (!pool->closing && (n = budget_take(pool->budget, pool->slot, grants, GRANT_BATCH)) > 0)
        for (size_t i = 0; i < n; i++) {
            take_grant(pool, grants[i]);
            budget_grant_done(pool->budget); /* its waiter, if any, left the queue */
        }
    if (!pool->closing)
        balance(pool);
}

void upstream_pool_close(upstream_pool_t *pool, void (*cb)(void *arg), void *arg)
{
    budget_t *b = pool->budget;
    pool->closing = true;
    pool->close_cb = cb;
    pool->close_arg = arg;
    /* The worker aborted its clients' exchanges; herald's own fetches (no
     * client behind them) may still wait: they fail, as they would once
     * the origin connections they wait for are gone. */
    for (int k = 0; k < BUDGET_NCLASSES; k++) {
        list_t *l;
        while ((l = list_oldest(&pool->waitq[k])) != NULL) {
            upstream_conn_t *q = container_of(l, upstream_conn_t, link);
            dequeue(q, false, false);
            refuse(q, 502);
        }
    }
    budget_stats_t bs;
    budget_stats(b, &bs);
    int *grants = xmalloc(sizeof(int) * bs.max);
    size_t n = budget_unregister(b, pool->slot, grants, bs.max);
    /* what other workers handed us in the meantime goes back */
    for (size_t i = 0; i < n; i++) {
        if (grants[i] >= 0)
            close(grants[i]);
        budget_grant_done(b);
        slot_freed(pool);
    }
    free(grants);
    list_t *l;
    while ((l = list_oldest(&pool->idle)) != NULL)
        conn_close(container_of(l, upstream_conn_t, link));
    uv_close((uv_handle_t *)&pool->wake, pool_handle_closed);
    uv_close((uv_handle_t *)&pool->qtimer, pool_handle_closed);
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
    if (c->state == UPSTREAM_QUEUED) {
        /* no connection yet: the bytes wait in c (copied), written by
         * send_request() in order after the head */
        assert(!borrow);
        wreq_t *w = xmalloc(sizeof(*w) + total);
        w->c = c;
        w->gen = c->gen;
        w->body_bytes = body_bytes;
        w->is_head = false;
        memcpy(w->data, p1, n1);
        if (n2 > 0)
            memcpy(w->data + n1, p2, n2);
        if (n3 > 0)
            memcpy(w->data + n1 + n2, p3, n3);
        w->buf = uv_buf_init(w->data, (unsigned)total);
        list_insert(&c->pending, &w->link);
        return 0;
    }
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

/* The response is complete: free c for the next request (or close it),
 * then tell the frontend. */
static void finish_ok(upstream_conn_t *c)
{
    exchange_t *ex = c->ex;
    upstream_pool_t *pool = c->pool;
    ex->t_end = uv_hrtime();
    bool reusable = c->keep_alive && c->req_end_queued && !c->write_failed &&
                    uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0 && !pool->closing &&
                    c->state == UPSTREAM_ACTIVE;
    detach(c);
    /* before response_end, so that the next request (queued, or started
     * from inside the callback) gets c */
    if (reusable)
        release_conn(pool, c);
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
                        bool ended, uint64_t charge_ns);

/*
 * The connection died before any response byte. On a reused connection this
 * is the keep-alive race (the origin closed it as we sent): an idempotent
 * request with no body bytes given to it yet is sent again, once, on a fresh
 * connection, which takes over the dead one's unit of budget.
 */
static void conn_lost(upstream_conn_t *c, int err)
{
    exchange_t *ex = c->ex;
    if (c->reused && !c->resp_started && c->body_queued == 0 && ex->retries == 0 &&
        is_idempotent(ex->method) && !c->pool->closing && c->has_slot) {
        upstream_pool_t *pool = c->pool;
        bool ended = c->req_end_queued;
        uint64_t charge = c->charge_ns;
        ex->retries++;
        STAT_ADD(pool->stats.retries, 1);
        LOG_INFO("origin closed a reused connection (%s): retrying %s %s", uv_strerror(err),
                 ex->method, ex->path);
        const char *head = c->head;
        size_t head_len = c->head_len;
        detach(c);
        c->has_slot = false; /* start_fresh's connection takes it */
        conn_close(c);
        start_fresh(pool, ex, head, head_len, ended, charge);
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
    case UPSTREAM_QUEUED:
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
    c->charge_ns = 0;
    c->resp_started = c->final_head = c->upgrading = c->complete = c->keep_alive = false;
    c->want_pause = c->paused = false;
    c->raw = (headers_t){0};
    c->hname.len = c->hvalue.len = 0;
    llhttp_init(&c->parser, HTTP_RESPONSE, &parser_settings);
    c->parser.data = c;
}

/* Queue the head, then the body bytes that waited in c while the request
 * was queued, and, when the request already ended, its last chunk. */
static void send_request(upstream_conn_t *c, bool ended)
{
    exchange_t *ex = c->ex;
    upstream_pool_t *pool = c->pool;
    if (c->reused)
        STAT_ADD(pool->stats.reuses, 1);
    if (background(ex) && !c->push_busy) {
        c->push_busy = true;
        budget_push_busy(pool->budget, +1);
    }
    if (queue_write(c, c->head, c->head_len, NULL, 0, NULL, 0, 0, true) < 0) {
        fail_deferred(c, 502);
        return;
    }
    list_t *l;
    while ((l = list_oldest(&c->pending)) != NULL) {
        wreq_t *w = container_of(l, wreq_t, link);
        list_remove(l);
        w->c = c;
        w->gen = c->gen;
        /* uv_write needs w->buf's bytes until write_cb (see wreq_t) */
        int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, write_cb);
        if (r < 0) {
            free(w); /* a failed call never runs its callback */
            LOG_WARN("origin write: %s", uv_strerror(r));
            fail_deferred(c, 502);
            return;
        }
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

/* A fresh connection for ex, with a unit of budget the caller holds. */
static void start_fresh(upstream_pool_t *pool, exchange_t *ex, const char *head, size_t head_len,
                        bool ended, uint64_t charge_ns)
{
    upstream_conn_t *c = conn_alloc(pool);
    c->has_slot = true;
    attach(c, ex, head, head_len);
    c->charge_ns = charge_ns;
    if (conn_connect(c) < 0)
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
    upstream_pool_t *pool = ex->ctx->origin_data;
    const config_t *cfg = pool->cfg;

    /* Host falls back to the origin's own name only without :authority */
    char hostport[300];
    hostport[0] = '\0';
    bool need_hostport =
        cfg->origin_host_header[0] == '\0' && (ex->authority == NULL || ex->authority[0] == '\0');
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

    if (pool->closing) {
        /* herald's own fetch started while the worker stops: no connection for it */
        upstream_conn_t *q = conn_alloc(pool);
        attach(q, ex, head, head_len);
        refuse(q, 502);
        return;
    }
    /* Hot path: nobody is ahead of ex, and this worker has an idle
     * connection or the budget a free unit. Client requests go before
     * pushed fetches, which also keep within their share of the budget. */
    budget_t *bud = pool->budget;
    budget_class_t cls = background(ex) ? BUDGET_PUSH : BUDGET_CLIENT;
    bool may_go = cls == BUDGET_CLIENT ? budget_queued(bud, BUDGET_CLIENT) == 0
                                       : budget_queued_total(bud) == 0 && budget_push_ok(bud);
    if (may_go) {
        upstream_conn_t *c = take_idle(pool);
        if (c != NULL) {
            attach(c, ex, head, head_len);
            send_request(c, false);
            return;
        }
        if (budget_try_acquire(bud)) {
            start_fresh(pool, ex, head, head_len, false, 0);
            return;
        }
    }
    /* Wait for a connection: the request (and body bytes that come
     * meanwhile) waits in a socketless upstream_conn_t. */
    upstream_conn_t *q = conn_alloc(pool);
    attach(q, ex, head, head_len);
    if (!budget_queue_enter(bud, cls)) {
        reject(q);
        return;
    }
    enqueue(pool, q, cls);
    /* capacity freed while we decided to wait is found here */
    balance(pool);
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
    if (c->state == UPSTREAM_QUEUED) {
        /* it leaves the queue; no socket was ever opened for it */
        if (c->in_queue)
            dequeue(c, false, false);
        conn_free(c);
    } else {
        /* attached means the response is not complete: the connection is unusable */
        conn_close(c);
    }
    exchange_upstream_done(ex);
}

const exchange_origin_ops_t upstream_origin_ops = {
    .start = upstream_start,
    .request_body = upstream_request_body,
    .request_end = upstream_request_end,
    .resume = upstream_resume,
    .abort = upstream_abort,
};
