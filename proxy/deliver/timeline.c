/*
 * Timelines of delivered visits, see timeline.h. The store is a list in
 * recording order (newest first), searched by page key: a few hundred
 * entries at most, read by the admin and written once per delivered visit.
 */
#include "timeline.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "herald/error.h"
#include "alloc.h"
#include "list.h"

typedef struct stored {
    list_t link; /* in `store`, newest first */
    timeline_t *t;
} stored_t;

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;
static list_t store; /* guarded by mu */
static size_t nstored;

static void global_init(void)
{
    if (uv_mutex_init(&mu) != 0)
        alloc_fail(__FILE__, __LINE__, 0);
    list_init(&store);
}

timeline_t *timeline_begin(const char *page, uint64_t t0, int64_t wall_ms)
{
    timeline_t *t = xcalloc(1, sizeof(*t));
    t->page = xstrdup(page);
    t->t0 = t0;
    t->wall_ms = wall_ms;
    t->hints_ms = t->head_ms = t->html_end_ms = -1;
    t->refs = 1;
    return t;
}

timeline_t *timeline_ref(timeline_t *t)
{
    if (t != NULL)
        t->refs++;
    return t;
}

void timeline_dispose(timeline_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].url);
    free(t->v);
    free(t->page);
    t->v = NULL;
    t->page = NULL;
    t->n = t->cap = 0;
}

static void destroy(timeline_t *t)
{
    timeline_dispose(t);
    free(t);
}

/* The entry for page, or NULL; mu held. */
static stored_t *find(const char *page)
{
    for (list_t *l = store.next; l != &store; l = l->next) {
        stored_t *s = container_of(l, stored_t, link);
        if (strcmp(s->t->page, page) == 0)
            return s;
    }
    return NULL;
}

static void drop(stored_t *s)
{
    list_remove(&s->link);
    nstored--;
    destroy(s->t);
    free(s);
}

static void store_put(timeline_t *t)
{
    uv_once(&once, global_init);
    stored_t *n = xcalloc(1, sizeof(*n));
    n->t = t;
    uv_mutex_lock(&mu);
    stored_t *old = find(t->page);
    if (old != NULL)
        drop(old);
    list_insert(&store, &n->link); /* newest first */
    nstored++;
    while (nstored > TIMELINE_MAX_PAGES)
        drop(container_of(store.prev, stored_t, link));
    uv_mutex_unlock(&mu);
}

void timeline_release(timeline_t *t)
{
    if (t == NULL || --t->refs > 0)
        return;
    assert(t->refs == 0);
    store_put(t);
}

double timeline_ms(const timeline_t *t, uint64_t now)
{
    return now > t->t0 ? (double)(now - t->t0) / 1e6 : 0.0;
}

int timeline_add(timeline_t *t, const char *url, timeline_via_t via, uint64_t now)
{
    if (t->n >= TIMELINE_MAX_ITEMS) {
        t->dropped++;
        return -1;
    }
    t->v = alloc_grow(t->v, &t->cap, (t->n + 1) * sizeof(*t->v), 8 * sizeof(*t->v));
    timeline_item_t *it = &t->v[t->n];
    memset(it, 0, sizeof(*it));
    it->url = xstrdup(url);
    it->via = via;
    it->outcome = via == TIMELINE_PUSH ? TIMELINE_OPEN : TIMELINE_COMPLETED;
    it->at_ms = timeline_ms(t, now);
    it->fetch_ms = it->first_byte_ms = it->fetched_ms = it->end_ms = -1;
    return (int)t->n++;
}

timeline_item_t *timeline_item(timeline_t *t, int idx)
{
    return t != NULL && idx >= 0 && (size_t)idx < t->n ? &t->v[idx] : NULL;
}

int timeline_store_get(const char *page, timeline_t *out)
{
    uv_once(&once, global_init);
    memset(out, 0, sizeof(*out));
    uv_mutex_lock(&mu);
    stored_t *s = find(page);
    if (s != NULL) {
        *out = *s->t;
        out->page = xstrdup(s->t->page);
        out->v = s->t->n > 0 ? xcalloc(s->t->n, sizeof(*out->v)) : NULL;
        out->cap = s->t->n * sizeof(*out->v);
        for (size_t i = 0; i < s->t->n; i++) {
            out->v[i] = s->t->v[i];
            out->v[i].url = xstrdup(s->t->v[i].url);
        }
        out->refs = 0;
    }
    uv_mutex_unlock(&mu);
    return s != NULL ? 0 : HERALD_ENOTFOUND;
}

void timeline_store_forget(const char *page)
{
    uv_once(&once, global_init);
    uv_mutex_lock(&mu);
    stored_t *s = find(page);
    if (s != NULL)
        drop(s);
    uv_mutex_unlock(&mu);
}

size_t timeline_store_count(void)
{
    uv_once(&once, global_init);
    uv_mutex_lock(&mu);
    size_t n = nstored;
    uv_mutex_unlock(&mu);
    return n;
}

void timeline_store_clear(void)
{
    uv_once(&once, global_init);
    uv_mutex_lock(&mu);
    while (store.next != &store)
        drop(container_of(store.next, stored_t, link));
    uv_mutex_unlock(&mu);
}

const char *timeline_via_name(timeline_via_t v)
{
    return v == TIMELINE_HINT ? "hint" : "push";
}

const char *timeline_outcome_name(timeline_outcome_t o)
{
    static const char *const names[] = {"open", "completed", "cancelled", "failed"};
    return (unsigned)o < 4 ? names[o] : "?";
}
