/*
 * Worker threads. Each binds its own listening sockets with SO_REUSEPORT so
 * the kernel spreads connections across workers, and owns everything that
 * happens on its loop. The main thread talks to a worker only through
 * worker_request_stop() (a uv_async) and worker_join().
 */
#include "proxy/worker.h"

#include <assert.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/alloc.h"
#include "proxy/log.h"
#include "proxy/upstream.h"

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
}

static void on_connection(uv_stream_t *server, int status)
{
    worker_listener_t *l = container_of((uv_tcp_t *)server, worker_listener_t, handle);
    if (status < 0) {
        LOG_WARN("worker %d: accept on %s: %s", l->worker->id, l->conf->text, uv_strerror(status));
        return;
    }
    if (l->worker->state != WORKER_RUNNING)
        return;
    conn_accept(l->worker, server, l->conf);
}

static int listener_open(worker_t *w, worker_listener_t *l, const config_listen_t *conf)
{
    l->worker = w;
    l->conf = conf;
    /* libuv 1.44 has no flag for SO_REUSEPORT: create the socket first
     * (uv_tcp_init_ex with the family), set the option on its fd, then bind. */
    int rc = uv_tcp_init_ex(&w->loop, &l->handle, conf->addr.ss_family);
    if (rc != 0)
        return rc;
    uv_os_fd_t fd;
    rc = uv_fileno((uv_handle_t *)&l->handle, &fd);
    if (rc == 0) {
        int one = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
            rc = -errno;
        if (rc == 0 && conf->addr.ss_family == AF_INET6 &&
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
            rc = -errno;
    }
    if (rc == 0)
        rc = uv_tcp_bind(&l->handle, (const struct sockaddr *)&conf->addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->handle, 1024, on_connection);
    if (rc != 0)
        uv_close((uv_handle_t *)&l->handle, NULL);
    return rc;
}

static void on_pool_closed(void *arg)
{
    worker_t *w = arg;
    w->upstream = NULL;
    uv_close((uv_handle_t *)&w->wakeup, NULL);
    uv_close((uv_handle_t *)&w->reload_async, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
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
    bool burst_over = w->peak_conns >= WORKER_TRIM_PEAK && w->nconns * 4 <= w->peak_conns;
    bool idle =
        w->nconns == 0 && (w->peak_conns >= WORKER_TRIM_LAST || w->blocks.n >= WORKER_TRIM_BLOCKS);
    if (!burst_over && !idle)
        return;
    block_cache_trim(&w->blocks);
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    w->peak_conns = w->nconns;
}

void worker_conn_closed(worker_t *w)
{
    worker_release_memory(w);
    if (w->state == WORKER_DRAINING && w->nconns == 0)
        worker_finish(w);
}

static void on_drain_timeout(uv_timer_t *t)
{
    worker_t *w = t->data;
    LOG_WARN("worker %d: drain time is up, closing %zu connection(s)", w->id, w->nconns);
    conn_close_all(w);
    if (w->nconns == 0)
        worker_finish(w);
}

static void on_wakeup(uv_async_t *a)
{
    worker_t *w = a->data;
    if (w->state != WORKER_RUNNING)
        return;
    for (size_t i = 0; i < w->nlisteners; i++)
        uv_close((uv_handle_t *)&w->listeners[i].handle, NULL);
    w->nlisteners = 0;
    worker_set_state(w, WORKER_DRAINING);
    LOG_INFO("worker %d: listeners closed, draining %zu connection(s)", w->id, w->nconns);
    if (w->nconns == 0) {
        worker_finish(w);
        return;
    }
    conn_drain_all(w);
    uv_timer_start(&w->drain_timer, on_drain_timeout, (uint64_t)(w->cfg->drain_timeout * 1000), 0);
    if (w->nconns == 0)
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
    if (nctx != NULL)
        w->ssl_ctx = nctx; /* new connections only; live ones hold their SSL's reference */
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
    worker_link_init(&w->conns);
    block_cache_init(&w->blocks, WORKER_BLOCK_CACHE);
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_async_init(&w->loop, &w->reload_async, on_reload);
    w->reload_async.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    for (size_t i = 0; i < w->cfg->nlisten && rc == 0; i++) {
        rc = listener_open(w, &w->listeners[i], &w->cfg->listen[i]);
        if (rc != 0)
            LOG_ERROR("cannot listen on %s: %s", w->cfg->listen[i].text, uv_strerror(rc));
        else
            w->nlisteners++;
    }
    if (rc == 0)
        w->upstream = upstream_pool_create(w);
    w->start_error = rc;
    uv_sem_post(&w->started); /* w->started may be gone after this on failure */
    if (rc != 0) {
        uv_walk(&w->loop, close_walk_cb, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        block_cache_dispose(&w->blocks);
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
}

int worker_start(worker_t *w, int id, const config_t *cfg, SSL_CTX *ssl_ctx, pagemap_t *learn)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->cfg_own = xmalloc(sizeof(*w->cfg_own)); /* freed in worker_join */
    *w->cfg_own = *cfg;
    w->cfg = w->cfg_own;
    w->ssl_ctx = ssl_ctx;
    w->learn = learn;
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
