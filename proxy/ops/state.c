/*
 * Periodic snapshots of the learned map: copy on the loop, serialise and
 * write on the thread pool. See state.h.
 */
#include "state.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "pagemap.h"
#include "snapshot.h"
#include "herald/error.h"
#include "alloc.h"
#include "log.h"

/* One write in flight: the work request, the copy it serialises, its result. */
typedef struct state_write {
    uv_work_t req;       /* data = the state_t */
    pagemap_dump_t dump; /* owned; taken on the loop, read on the pool thread */
    uint64_t gen;        /* generation the dump reflects */
    uint64_t t0;
    size_t bytes;
    int rc;
    char reason[64];
} state_write_t;

struct state {
    uv_loop_t *loop;
    uv_timer_t timer;
    pagemap_t *pm;
    const char *path;
    _Atomic uint64_t edits; /* state_mark_dirty() count */
    uint64_t saved_gen;     /* generation of the last successful write (or the load) */
    state_write_t *inflight;
    state_stats_t stats;
    bool stopped;
    bool timer_closed;
    bool free_pending; /* state_save_sync_and_free ran while the timer was closing */
};

/* Two counters, no walk and no lock: checked on every tick. */
static uint64_t generation(state_t *st)
{
    return pagemap_visits_committed(st->pm) +
           atomic_load_explicit(&st->edits, memory_order_relaxed);
}

static int64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Thread pool: the JSON and the file. The dump is only read here. */
static void write_work(uv_work_t *req)
{
    state_write_t *w = (state_write_t *)req;
    state_t *st = req->data;
    char *json = NULL;
    w->rc = snapshot_export_dump(&w->dump, &json, &w->bytes);
    if (w->rc == 0)
        w->rc = snapshot_write_file(st->path, json, w->bytes);
    free(json);
}

static void write_done(uv_work_t *req, int status)
{
    state_write_t *w = (state_write_t *)req;
    state_t *st = req->data;
    if (status != 0)
        w->rc = status; /* UV_ECANCELED */
    if (w->rc == 0) {
        st->saved_gen = w->gen;
        st->stats.saves++;
        st->stats.last_save_ms = wall_ms();
        st->stats.last_save_bytes = w->bytes;
        st->stats.last_save_s = (double)(uv_hrtime() - w->t0) / 1e9;
        LOG_DEBUG("state: saved %zu pages, %zu bytes to %s in %.3fs", w->dump.n, w->bytes, st->path,
                  st->stats.last_save_s);
    } else {
        st->stats.save_errors++;
        LOG_ERROR("state: cannot save %s: %s", st->path,
                  w->rc < 0 && w->rc > -4096 ? uv_strerror(w->rc) : herald_strerror(w->rc));
    }
    pagemap_dump_dispose(&w->dump);
    free(w);
    st->inflight = NULL;
    st->stats.saving = false;
}

static void on_tick(uv_timer_t *t)
{
    state_t *st = t->data;
    if (st->inflight != NULL || st->stopped)
        return;
    uint64_t gen = generation(st);
    if (gen == st->saved_gen)
        return;
    state_write_t *w = xcalloc(1, sizeof(*w));
    w->gen = gen;
    w->t0 = uv_hrtime();
    /* The copy is taken under the map's lock, here on the loop; the JSON is
     * built from it with the lock released, on the pool. */
    int rc = pagemap_dump(st->pm, &w->dump);
    if (rc != 0) {
        LOG_ERROR("state: cannot copy the map: %s", herald_strerror(rc));
        free(w);
        return;
    }
    w->req.data = st;
    rc = uv_queue_work(st->loop, &w->req, write_work, write_done);
    if (rc != 0) { /* write_done never runs */
        LOG_ERROR("state: cannot queue the write: %s", uv_strerror(rc));
        pagemap_dump_dispose(&w->dump);
        free(w);
        return;
    }
    st->inflight = w;
    st->stats.saving = true;
}

int state_start(uv_loop_t *loop, pagemap_t *pm, const char *path, double interval_s, state_t **out)
{
    state_t *st = xcalloc(1, sizeof(*st));
    st->loop = loop;
    st->pm = pm;
    st->path = path;
    char reason[512] = "";
    uint64_t t0 = uv_hrtime();
    int rc = snapshot_load_file(pm, path, reason, sizeof(reason));
    if (rc == 0) {
        pagemap_stats_t ps;
        pagemap_stats(pm, &ps);
        LOG_INFO("state: loaded %zu pages, %zu edges (%zu pinned, %zu banned) from %s in %.3fs",
                 ps.pages, ps.edges, ps.pinned, ps.banned, path, (double)(uv_hrtime() - t0) / 1e9);
        st->stats.loaded = true;
    } else if (rc == HERALD_ENOTFOUND) {
        LOG_INFO("state: %s does not exist yet: starting with an empty map", path);
    } else if (rc == HERALD_EPARSE || rc == HERALD_EUNSUPPORTED || rc == HERALD_ETOOBIG) {
        LOG_ERROR("state: %s is unusable (%s): starting with an empty map", path, reason);
    } else {
        LOG_ERROR("state: cannot read %s (%s): starting with an empty map", path,
                  rc < 0 && rc > -4096 ? uv_strerror(rc) : herald_strerror(rc));
    }
    st->saved_gen = generation(st);
    uv_timer_init(loop, &st->timer);
    st->timer.data = st;
    uint64_t ms = (uint64_t)(interval_s * 1000);
    if (ms == 0)
        ms = 1;
    uv_timer_start(&st->timer, on_tick, ms, ms);
    *out = st;
    return 0;
}

void state_mark_dirty(state_t *st)
{
    if (st != NULL)
        atomic_fetch_add_explicit(&st->edits, 1, memory_order_relaxed);
}

void state_get_stats(state_t *st, state_stats_t *out)
{
    *out = st->stats;
}

static void on_timer_closed(uv_handle_t *h)
{
    state_t *st = h->data;
    st->timer_closed = true;
    if (st->free_pending)
        free(st);
}

void state_stop(state_t *st)
{
    if (st == NULL || st->stopped)
        return;
    st->stopped = true;
    uv_close((uv_handle_t *)&st->timer, on_timer_closed);
}

int state_save_sync_and_free(state_t *st)
{
    if (st == NULL)
        return 0;
    int rc = 0;
    { /* always: delivery counters may have moved without a new generation */
        uint64_t t0 = uv_hrtime();
        rc = snapshot_save_file(st->pm, st->path);
        if (rc != 0)
            LOG_ERROR("state: cannot save %s at shutdown: %s", st->path,
                      rc < 0 && rc > -4096 ? uv_strerror(rc) : herald_strerror(rc));
        else
            LOG_INFO("state: saved to %s in %.3fs", st->path, (double)(uv_hrtime() - t0) / 1e9);
    }
    if (st->timer_closed)
        free(st);
    else
        st->free_pending = true; /* the loop was not run after state_stop(): leak-free anyway */
    return rc;
}
