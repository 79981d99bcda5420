/*
 * Worker threads. Each binds its own listening sockets with SO_REUSEPORT so
 * the kernel spreads connections across workers, and owns everything that
 * happens on its loop. The main thread talks to a worker only through
 * worker_request_stop() (a uv_async) and worker_join().
 */
#include "worker.h"

#include <assert.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "budget.h"
#include "delivery.h"
#include "learning.h"
#include "log.h"
#include "options.h"
#include "metrics.h"
#include "upstream.h"
#include "speculate.h"

/* Free 16 KiB blocks a worker keeps for reuse, at most 4 MiB: only a worker
 * that once had that much response body queued at the same time keeps it.
 * 64 left a third of the block turnover to malloc with 160 streams of 50 KiB
 * responses in flight; 256 takes nearly all of it. */
enum { WORKER_BLOCK_CACHE = 256 };

static void worker_set_state(worker_t *w, worker_state_t next)
{
    /* RUNNING -> DRAINING -> STOPPED; RUNNING -> STOPPED when nothing was in flight. */
    assert(next > w->state);
    w->state = next;
    w->xctx.stopping = true; /* herald starts no fetches of its own from now on */
}

/* A moment without accepting after EMFILE/ENFILE: clients wait in the
 * backlog meanwhile; retrying costs one accept4() per pause. */
enum { ACCEPT_PAUSE_MS = 100, ACCEPT_BATCH = 64 };

static void on_acceptable(uv_poll_t *p, int status, int events);

static void listeners_poll(worker_t *w, bool on)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (on)
            uv_poll_start(&w->listeners[i].poll, UV_READABLE, on_acceptable);
        else
            uv_poll_stop(&w->listeners[i].poll);
    }
}

static void on_accept_resume(uv_timer_t *t)
{
    worker_t *w = t->data;
    w->accept_paused = false;
    if (w->state == WORKER_RUNNING)
        listeners_poll(w, true);
}

/* Out of descriptors (or kernel memory): stop accepting for a moment rather
 * than retry at once, and say so once per episode. */
static void accept_pause(worker_t *w, const worker_listener_t *l, int err)
{
    if (!w->accept_paused) {
        w->accept_paused = true;
        listeners_poll(w, false);
        uv_timer_start(&w->accept_timer, on_accept_resume, ACCEPT_PAUSE_MS, 0);
    }
    if (w->accept_error_logged)
        return;
    w->accept_error_logged = true;
    struct rlimit rl;
    unsigned long long lim =
        getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long long)rl.rlim_cur : 0;
    LOG_WARN("worker %d: accept on %s: %s (open files limit %llu, %zu client connections): "
             "new connections wait until descriptors free up (retried every %d ms)",
             w->id, l->conf->text, strerror(err), lim, w->front.nconns, ACCEPT_PAUSE_MS);
}

static void on_acceptable(uv_poll_t *p, int status, int events)
{
    worker_listener_t *l = p->data;
    worker_t *w = l->worker;
    if (status < 0) {
        LOG_WARN("worker %d: listener %s: %s", w->id, l->conf->text, uv_strerror(status));
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH && w->state == WORKER_RUNNING && !w->accept_paused; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return;
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                accept_pause(w, l, e);
                return;
            }
            LOG_WARN("worker %d: accept on %s: %s", w->id, l->conf->text, strerror(e));
            return;
        }
        if (w->accept_error_logged) {
            w->accept_error_logged = false;
            LOG_INFO("worker %d: accepting connections again", w->id);
        }
        conn_accept(&w->front, fd, l->conf);
    }
}

static void on_listener_closed(uv_handle_t *h)
{
    worker_listener_t *l = h->data;
    close(l->fd);
    l->fd = -1;
}

static int listener_open(worker_t *w, worker_listener_t *l, const config_listen_t *conf)
{
    l->worker = w;
    l->conf = conf;
    l->fd = -1;
    int fd = socket(conf->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, rc = 0;
    socklen_t len =
        conf->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        rc = -errno;
    if (rc == 0 && conf->addr.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
        rc = -errno;
    if (rc == 0 && bind(fd, (const struct sockaddr *)&conf->addr, len) != 0)
        rc = -errno;
    if (rc == 0 && listen(fd, 1024) != 0)
        rc = -errno;
    if (rc == 0)
        rc = uv_poll_init_socket(&w->loop, &l->poll, fd);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    l->fd = fd;
    l->poll.data = l;
    return uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
}

static void on_pool_closed(void *arg)
{
    worker_t *w = arg;
    __atomic_store_n(&w->upstream, NULL, __ATOMIC_RELAXED); /* metrics read it */
    uv_close((uv_handle_t *)&w->wakeup, NULL);
    uv_close((uv_handle_t *)&w->reload_async, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    uv_close((uv_handle_t *)&w->accept_timer, NULL);
}

static void worker_finish(worker_t *w)
{
    if (w->state == WORKER_STOPPED)
        return;
    worker_set_state(w, WORKER_STOPPED);
    uv_timer_stop(&w->drain_timer);
    upstream_pool_close(w->upstream, on_pool_closed, w);
}

/* Give memory back after a burst: once three quarters of the connections a
 * worker had at its peak are gone (at least WORKER_TRIM_PEAK of them), and
 * when the last is gone after at least WORKER_TRIM_LAST were open at once or
 * while its block cache is large. glibc returns
 * freed memory to the kernel only from the top of a heap, so the buffers of
 * thousands of closed connections would otherwise stay resident for good;
 * malloc_trim() gives back the free pages of every arena. A worker serving
 * one client after another never gets here, so trimming costs nothing on
 * the steady path. */
enum { WORKER_TRIM_PEAK = 64, WORKER_TRIM_LAST = 16, WORKER_TRIM_BLOCKS = 64 };

static void worker_release_memory(worker_t *w)
{
    front_ctx_t *f = &w->front;
    bool burst_over = f->peak_conns >= WORKER_TRIM_PEAK && f->nconns * 4 <= f->peak_conns;
    bool idle =
        f->nconns == 0 && (f->peak_conns >= WORKER_TRIM_LAST || w->blocks.n >= WORKER_TRIM_BLOCKS);
    if (!burst_over && !idle)
        return;
    block_cache_trim(&w->blocks);
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    f->peak_conns = f->nconns;
}

/* A client connection is gone (front_ctx_t.conn_closed). */
static void on_conn_closed(void *owner)
{
    worker_t *w = owner;
    worker_release_memory(w);
    if (w->state == WORKER_DRAINING && w->front.nconns == 0)
        worker_finish(w);
}

static void on_drain_timeout(uv_timer_t *t)
{
    worker_t *w = t->data;
    LOG_WARN("worker %d: drain time is up, closing %zu connection(s)", w->id, w->front.nconns);
    conn_close_all(&w->front);
    if (w->front.nconns == 0)
        worker_finish(w);
}

static void on_wakeup(uv_async_t *a)
{
    worker_t *w = a->data;
    if (w->state != WORKER_RUNNING)
        return;
    for (size_t i = 0; i < w->nlisteners; i++)
        uv_close((uv_handle_t *)&w->listeners[i].poll, on_listener_closed);
    w->nlisteners = 0;
    uv_timer_stop(&w->accept_timer);
    worker_set_state(w, WORKER_DRAINING);
    LOG_INFO("worker %d: listeners closed, draining %zu connection(s)", w->id, w->front.nconns);
    if (w->front.nconns == 0) {
        worker_finish(w);
        return;
    }
    conn_drain_all(&w->front);
    uv_timer_start(&w->drain_timer, on_drain_timeout, (uint64_t)(w->cfg->drain_timeout * 1000), 0);
    if (w->front.nconns == 0)
        worker_finish(w);
}

/* SIGHUP: apply what worker_reload() left, on this worker's loop. */
static void on_reload(uv_async_t *a)
{
    worker_t *w = a->data;
    uv_mutex_lock(&w->reload_mu);
    config_t *ncfg = w->reload_cfg;
    SSL_CTX *nctx = w->reload_ssl_ctx;
    w->reload_cfg = NULL;
    w->reload_ssl_ctx = NULL;
    uv_mutex_unlock(&w->reload_mu);
    if (ncfg != NULL) {
        config_apply_reload(w->cfg_own, ncfg);
        free(ncfg);
    }
    if (nctx != NULL) {
        w->ssl_ctx = nctx; /* new connections only; live ones hold their SSL's reference */
        w->front.ssl_ctx = nctx;
    }
}

void worker_reload(worker_t *w, const config_t *cfg, SSL_CTX *ssl_ctx)
{
    config_t *copy = xmalloc(sizeof(*copy));
    *copy = *cfg;
    uv_mutex_lock(&w->reload_mu);
    free(w->reload_cfg); /* an older reload not applied yet: this one wins */
    w->reload_cfg = copy;
    if (ssl_ctx != NULL)
        w->reload_ssl_ctx = ssl_ctx;
    uv_mutex_unlock(&w->reload_mu);
    uv_async_send(&w->reload_async);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void worker_main(void *arg)
{
    worker_t *w = arg;
    int rc = uv_loop_init(&w->loop);
    if (rc != 0) {
        w->start_error = rc;
        uv_sem_post(&w->started);
        return;
    }
    w->loop.data = w;
    block_cache_init(&w->blocks, WORKER_BLOCK_CACHE);
    /* The exchanges' context: the origin side and the observers, in the
     * order their hooks run: learning classifies a request before delivery
     * plans it, metrics counts what the others left (exchange.h). */
    exchange_ctx_init(&w->xctx, &w->loop, w->cfg, w->id);
    w->learning = learning_attach(&w->xctx, w->learn, w->shared);
    w->delivery = delivery_attach(&w->xctx);
    w->speculation = speculation_attach(&w->xctx, w->learn);
    metrics_attach(&w->xctx);
    front_init(&w->front);
    w->front.loop = &w->loop;
    w->front.cfg = w->cfg;
    w->front.ssl_ctx = w->ssl_ctx;
    w->front.blocks = &w->blocks;
    w->front.xctx = &w->xctx;
    w->front.conn_closed = on_conn_closed;
    w->front.owner = w;
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_async_init(&w->loop, &w->reload_async, on_reload);
    w->reload_async.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_timer_init(&w->loop, &w->accept_timer);
    w->accept_timer.data = w;
    /* libuv keeps one spare descriptor per loop, opened with the loop's
     * first stream: open it now, so that the worker's descriptor count
     * does not grow with its first connection (the tests compare it) */
    uv_tcp_t first; /* in scope until uv_run below has run its close */
    uv_tcp_init(&w->loop, &first);
    uv_close((uv_handle_t *)&first, NULL);
    for (size_t i = 0; i < w->cfg->nlisten && rc == 0; i++) {
        rc = listener_open(w, &w->listeners[i], &w->cfg->listen[i]);
        if (rc != 0)
            LOG_ERROR("cannot listen on %s: %s", w->cfg->listen[i].text, uv_strerror(rc));
        else
            w->nlisteners++;
    }
    if (rc == 0) {
        w->upstream = upstream_pool_create(&w->loop, w->cfg, w->id, w->budget);
        exchange_ctx_origin(&w->xctx, &upstream_origin_ops, w->upstream);
    }
    w->start_error = rc;
    uv_sem_post(&w->started); /* w->started may be gone after this on failure */
    if (rc != 0) {
        for (size_t i = 0; i < w->nlisteners; i++)
            uv_close((uv_handle_t *)&w->listeners[i].poll, on_listener_closed);
        w->nlisteners = 0;
        uv_walk(&w->loop, close_walk_cb, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        block_cache_dispose(&w->blocks);
        speculation_detach(w->speculation);
        delivery_detach(w->delivery);
        learning_detach(w->learning);
        return;
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Anything left (there should be nothing) is closed so the loop can close. */
    uv_walk(&w->loop, close_walk_cb, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&w->loop);
    if (rc != 0)
        LOG_WARN("worker %d: loop closed with handles open: %s", w->id, uv_strerror(rc));
    block_cache_dispose(&w->blocks); /* every connection, and so every block, is gone */
    speculation_detach(w->speculation);
    delivery_detach(w->delivery);
    learning_detach(w->learning);
}

int worker_start(worker_t *w, int id, const config_t *cfg, SSL_CTX *ssl_ctx, pagemap_t *learn,
                 sharedmap_t *shared, budget_t *budget)
{
    memset(w, 0, sizeof(*w));
    w->budget = budget;
    w->id = id;
    w->cfg_own = xmalloc(sizeof(*w->cfg_own)); /* freed in worker_join */
    *w->cfg_own = *cfg;
    w->cfg = w->cfg_own;
    w->ssl_ctx = ssl_ctx;
    w->learn = learn;
    w->shared = shared;
    w->state = WORKER_RUNNING;
    int rc = uv_sem_init(&w->started, 0);
    if (rc == 0 && (rc = uv_mutex_init(&w->reload_mu)) != 0)
        uv_sem_destroy(&w->started);
    if (rc != 0) {
        free(w->cfg_own);
        return rc;
    }
    rc = uv_thread_create(&w->thread, worker_main, w);
    if (rc != 0) {
        uv_sem_destroy(&w->started);
        return rc;
    }
    uv_sem_wait(&w->started);
    uv_sem_destroy(&w->started);
    if (w->start_error != 0) {
        uv_thread_join(&w->thread);
        return w->start_error;
    }
    return 0;
}

void worker_request_stop(worker_t *w)
{
    uv_async_send(&w->wakeup);
}

void worker_join(worker_t *w)
{
    uv_thread_join(&w->thread);
    uv_mutex_destroy(&w->reload_mu);
    free(w->reload_cfg);
    free(w->cfg_own);
    w->cfg_own = w->reload_cfg = NULL;
}

void worker_gauges(void *arg, metrics_gauges_t *out)
{
    const worker_set_t *set = arg;
    memset(out, 0, sizeof(*out));
    for (int i = 0; set != NULL && i < set->n; i++) {
        worker_t *w = &set->v[i];
        /* Worker-owned words read from this thread: relaxed, see metrics.h. */
        out->active_connections += __atomic_load_n(&w->front.nconns, __ATOMIC_RELAXED);
        upstream_pool_t *pool = __atomic_load_n(&w->upstream, __ATOMIC_RELAXED);
        if (pool == NULL)
            continue;
        upstream_stats_t us;
        upstream_pool_stats(pool, &us);
        out->origin.connects += us.connects;
        out->origin.reuses += us.reuses;
        out->origin.retries += us.retries;
        out->origin.errors += us.errors;
        out->origin.timeouts += us.timeouts;
        out->origin.open += us.open;
        out->origin.idle += us.idle;
        out->origin.queued += us.queued;
    }
    if (set != NULL && set->n > 0 && set->v[0].budget != NULL) {
        budget_stats(set->v[0].budget, &out->budget);
        out->have_budget = true;
    }
}
