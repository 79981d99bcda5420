/*
 * Delivery: plans become pushes or one 103, see delivery.h.
 *
 * Per exchange, delivery_ex_t says what the exchange is to delivery: a page
 * (its copied-out plan, what was sent, the digest cookie being built), a
 * pushed stream (its fetch progress, the plan item key it reports under),
 * or an SSE stream whose comment lines ask for pushes. Per connection,
 * delivery_conn_t holds the fetch slots and the queue of pushed streams
 * waiting for one.
 */
#include "delivery.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "digest.h"
#include "pagemap.h"
#include "link.h"
#include "url.h"
#include "alloc.h"
#include "list.h"
#include "config.h"
#include "learning.h"
#include "log.h"
#include "pace.h"
#include "ssefilter.h"
#include "timeline.h"

/** What an exchange is to delivery (fixed when its delivery_ex_t is made). */
typedef enum delivery_role {
    DELIVERY_ROLE_OTHER, /* only an SSE stream gets state without being a page */
    DELIVERY_ROLE_PAGE,
    DELIVERY_ROLE_PUSHED,
} delivery_role_t;

/** A pushed stream's fetch progress; moves go through push_set_state(). */
typedef enum delivery_push_state {
    DELIVERY_PUSH_DEFERRED, /* promised; the fetch waits for the page's response to end */
    DELIVERY_PUSH_QUEUED,   /* ready; waits for a fetch slot on the connection */
    DELIVERY_PUSH_FETCHING, /* exchange_start ran; holds a slot */
    DELIVERY_PUSH_DONE,     /* the origin's response ended (or failed); slot given back */
} delivery_push_state_t;

typedef struct delivery_ex delivery_ex_t;
typedef struct delivery_conn delivery_conn_t;

/* One per worker: registered as an exchange observer (delivery_attach). */
struct delivery {
    exchange_ctx_t *x;
    size_t slot; /* ours in exchange_client_t.state: the connection's delivery_conn_t */
};

struct delivery_conn {
    int refs;
    char addr[48]; /* the client's, for debug lines */
    uint16_t port;
    pace_conn_t *pace; /* the path estimate and queue model (owned) */
    unsigned fetching; /* pushed streams in DELIVERY_PUSH_FETCHING */
    unsigned limit;    /* fetch slots: min(peer MAX_CONCURRENT_STREAMS, DELIVERY_MAX_FETCHES) */
    list_t queue;      /* delivery_ex_t.link of QUEUED pushes, plan order */
    list_t aheads;     /* delivery_ahead_t.link of pages still waiting for their HTML */
    bool hold;         /* a page's on_request queues pushes; on_started starts them */
};

/*
 * What a page's pushes may send before its HTML: shared by the page and
 * each push it promised from its plan (refcounted: a push may outlive the
 * page's stream). Once the page's final head is in (`arrived`) only a short
 * queue is kept while its body streams; open once its response has ended
 * (or the page went): from then on its pushes follow the HTML freely.
 */
typedef struct delivery_ahead {
    int refs;
    bool open;
    bool arrived;        /* the page's final head is here: the budget no longer applies */
    uint64_t t_html;     /* uv_hrtime() the HTML is expected; 0: think time unknown */
    uint64_t cap;        /* --push-budget */
    uint64_t sent;       /* pushed bytes let out ahead of the HTML */
    uint64_t fetched;    /* expected bytes of the pushes fetched while waiting */
    unsigned held;       /* times its pushes were held back */
    delivery_ex_t *page; /* NULL once open */
    list_t link;         /* in the connection's `aheads` until open */
    delivery_conn_t *dc; /* borrowed: the page and its pushes hold references */
} delivery_ahead_t;

struct delivery_ex {
    exchange_t *ex;
    delivery_role_t role;
    delivery_conn_t *dc; /* a reference, or NULL (h1) */
    timeline_t *tl;      /* a reference to the page's timeline, once it delivered */
    int tl_idx;          /* pushed: its item in tl (-1: none) */

    /* page */
    pagemap_plan_t plan;     /* copied out at request arrival; owned */
    delivery_ahead_t *ahead; /* a reference; NULL unless its plan was pushed */
    bool push_mode;          /* pushes go to this client */
    unsigned npushed, nhinted;
    char **sent; /* normalised URLs pushed or hinted (malloc'd) */
    size_t nsent, capsent;
    list_t deferred;     /* delivery_ex_t.link of DEFERRED pushes of this page */
    digest_t old_digest; /* the client's cookie, when it sent a valid one */
    bool have_old_digest;
    digest_builder_t db; /* the cookie to set: what the client has after this visit */
    bool db_used;

    /* pushed */
    delivery_push_state_t pstate;
    delivery_ahead_t *page_ahead; /* a reference to its page's, when promised from the plan */
    uint64_t expect;              /* bytes the plan expects (the fetch decision counted these) */
    list_t link;                  /* in the page's `deferred` or the connection's `queue` */
    char *key; /* plan item key reported to learning (malloc'd); NULL: SSE push */
    bool completed;
    bool failed; /* the origin's answer was unusable: herald reset the stream itself */

    /* SSE */
    bool sse;               /* filter this event stream for push comments */
    ssefilter_t sse_filter; /* zeroed by calloc: ssefilter_init not needed */
};

static struct {
    atomic_uint_fast64_t promised, completed, cancelled, pushed_bytes, hints_sent, hinted_links,
        skipped, digest_hits;
} stats;

void delivery_stats_get(delivery_stats_t *out)
{
    out->promised = atomic_load(&stats.promised);
    out->completed = atomic_load(&stats.completed);
    out->cancelled = atomic_load(&stats.cancelled);
    out->pushed_bytes = atomic_load(&stats.pushed_bytes);
    out->hints_sent = atomic_load(&stats.hints_sent);
    out->hinted_links = atomic_load(&stats.hinted_links);
    out->skipped = atomic_load(&stats.skipped);
    out->digest_hits = atomic_load(&stats.digest_hits);
}

/* ---- the connection ---- */

static delivery_conn_t *conn_create(const exchange_client_t *cl, double bandwidth_hint)
{
    delivery_conn_t *dc = xcalloc(1, sizeof(*dc));
    dc->refs = 1;
    snprintf(dc->addr, sizeof(dc->addr), "%s", cl->addr);
    dc->port = cl->port;
    dc->pace = pace_conn_create(cl->fd, cl->addr, bandwidth_hint);
    dc->limit = DELIVERY_MAX_FETCHES;
    list_init(&dc->queue);
    list_init(&dc->aheads);
    return dc;
}

static delivery_conn_t *conn_ref(delivery_conn_t *dc)
{
    if (dc != NULL)
        dc->refs++;
    return dc;
}

static void conn_release(delivery_conn_t *dc)
{
    if (dc == NULL || --dc->refs > 0)
        return;
    assert(dc->queue.next == &dc->queue);   /* queued pushes hold references */
    assert(dc->aheads.next == &dc->aheads); /* waiting pages hold references */
    pace_conn_destroy(dc->pace);
    free(dc);
}

/* ---- pushed streams ---- */

static void push_set_state(delivery_ex_t *p, delivery_push_state_t next)
{
    bool ok = false;
    switch (next) {
    case DELIVERY_PUSH_DEFERRED:
        ok = false;
        break;
    case DELIVERY_PUSH_QUEUED:
        ok = p->pstate == DELIVERY_PUSH_DEFERRED;
        break;
    case DELIVERY_PUSH_FETCHING:
        ok = p->pstate == DELIVERY_PUSH_QUEUED;
        break;
    case DELIVERY_PUSH_DONE:
        ok = p->pstate == DELIVERY_PUSH_FETCHING;
        break;
    }
    assert(ok && "illegal push transition");
    (void)ok;
    p->pstate = next;
}

static void pump(delivery_conn_t *dc);

static void push_start(delivery_ex_t *p)
{
    push_set_state(p, DELIVERY_PUSH_FETCHING);
    p->dc->fetching++;
    timeline_item_t *ti = timeline_item(p->tl, p->tl_idx);
    if (ti != NULL)
        ti->fetch_ms = timeline_ms(p->tl, uv_hrtime());
    exchange_t *ex = p->ex;
    /* May fail synchronously (on_response_end runs); ex stays
     * valid: the frontend holds it until the stream closes. */
    exchange_start(ex);
    exchange_request_end(ex);
}

/* Start queued pushes while fetch slots are free. */
static void pump(delivery_conn_t *dc)
{
    while (dc->queue.next != &dc->queue && dc->fetching < dc->limit) {
        delivery_ex_t *p = container_of(dc->queue.next, delivery_ex_t, link);
        list_remove(&p->link);
        list_init(&p->link);
        push_start(p);
    }
}

static void push_enqueue(delivery_ex_t *p)
{
    push_set_state(p, DELIVERY_PUSH_QUEUED);
    list_insert(p->dc->queue.prev, &p->link); /* at the tail: plan order */
    if (!p->dc->hold)
        pump(p->dc);
}

/* The connection state of ex's client while the connection is open (h2 only). */
static delivery_conn_t *client_dc(const delivery_t *D, const exchange_t *ex)
{
    return ex->client != NULL ? ex->client->state[D->slot] : NULL;
}

static delivery_ex_t *dx_create(exchange_t *ex, delivery_role_t role, delivery_conn_t *dc)
{
    delivery_ex_t *dx = xcalloc(1, sizeof(*dx));
    dx->ex = ex;
    dx->role = role;
    dx->dc = conn_ref(dc);
    list_init(&dx->deferred);
    list_init(&dx->link);
    dx->tl_idx = -1;
    ex->deliver = dx;
    return dx;
}

/* The page's timeline (timeline.h), begun when it first delivers something. */
static timeline_t *page_timeline(delivery_ex_t *page)
{
    if (page->tl == NULL) {
        const char *key = learning_page_key(page->ex);
        if (key != NULL)
            page->tl = timeline_begin(key, page->ex->t_start, page->ex->wall_start_us / 1000);
    }
    return page->tl;
}

/*
 * Promise `path` on parent's stream and set up the pushed exchange; it
 * starts DEFERRED. `key` (borrowed, NULL for SSE pushes) is what learning
 * hears about. Returns NULL when the frontend refused.
 */
static delivery_ex_t *promise(exchange_t *parent, const char *path, const char *key)
{
    exchange_t *pex = parent->fops->push_promise(parent, path);
    if (pex == NULL)
        return NULL;
    learning_link_pushed(parent, pex);
    delivery_ex_t *p = dx_create(pex, DELIVERY_ROLE_PUSHED, parent->deliver->dc);
    p->pstate = DELIVERY_PUSH_DEFERRED;
    if (p->dc != NULL && parent->client_max_streams > 0) {
        uint32_t lim = parent->client_max_streams;
        p->dc->limit = lim < DELIVERY_MAX_FETCHES ? lim : DELIVERY_MAX_FETCHES;
    }
    if (key != NULL) {
        p->key = xstrdup(key);
        learning_note_delivery(parent, key, PAGEMAP_DELIVERY_PROMISED, 0);
        p->tl = timeline_ref(page_timeline(parent->deliver));
        if (p->tl != NULL)
            p->tl_idx = timeline_add(p->tl, path, TIMELINE_PUSH, uv_hrtime());
    }
    atomic_fetch_add(&stats.promised, 1);
    return p;
}

/* The page's head arrived (or the page went): its deferred pushes may fetch now. */
static void release_deferred(delivery_ex_t *page)
{
    while (page->deferred.next != &page->deferred) {
        delivery_ex_t *p = container_of(page->deferred.next, delivery_ex_t, link);
        list_remove(&p->link);
        list_init(&p->link);
        push_enqueue(p);
    }
}

/* ---- pacing ahead of the HTML ---- */

static delivery_ahead_t *ahead_create(delivery_ex_t *page, uint64_t t_html, uint64_t cap)
{
    delivery_ahead_t *a = xcalloc(1, sizeof(*a));
    a->refs = 1;
    a->t_html = t_html;
    a->cap = cap;
    a->page = page;
    a->dc = page->dc;
    list_insert(&a->dc->aheads, &a->link);
    return a;
}

static delivery_ahead_t *ahead_ref(delivery_ahead_t *a)
{
    a->refs++;
    return a;
}

/*
 * The page's final head arrived. Its body may not be here yet: were the
 * pushes let go now, they would fill the gap before it, in front of it on
 * the path. Until it has ended they keep a short queue (the room at the HTML's
 * due time, pace.h), which nghttp2 fills from the page's own stream first.
 */
static void ahead_arrived(delivery_ahead_t *a)
{
    if (a == NULL || a->open)
        return;
    uint64_t now = uv_hrtime();
    LOG_DEBUG("delivery: HTML head %+.1f ms from expected; %llu pushed bytes went ahead, "
              "%.0f queued",
              a->t_html ? ((double)now - (double)a->t_html) / 1e6 : 0.0,
              (unsigned long long)a->sent, pace_conn_queued(a->dc->pace, now));
    if (a->t_html == 0 || a->t_html > now)
        a->t_html = now;
    a->arrived = true;
}

/* The page's response is over (or the page went): its pushes are held no more. */
static void ahead_open(delivery_ahead_t *a)
{
    if (a == NULL || a->open)
        return;
    a->open = true;
    a->page = NULL;
    list_remove(&a->link);
}

static void ahead_release(delivery_ahead_t *a)
{
    if (a == NULL || --a->refs > 0)
        return;
    assert(a->open && "the page opens it before it goes");
    free(a);
}

/* Bytes the page's pushes may still let out ahead of its HTML at `now` (<= 0: hold). */
static int64_t ahead_room(const delivery_ahead_t *a, uint64_t now)
{
    int64_t room = pace_conn_room(a->dc->pace, a->t_html, now);
    int64_t left = a->sent < a->cap ? (int64_t)(a->cap - a->sent) : 0;
    return room < left || a->arrived ? room : left;
}

/* Fetch deferred plan items while the room is more than the fetched ones still owe. */
static void top_up(delivery_ahead_t *a, uint64_t now)
{
    while (!a->open && a->page != NULL && a->page->deferred.next != &a->page->deferred) {
        int64_t room = ahead_room(a, now);
        uint64_t owed = a->fetched > a->sent ? a->fetched - a->sent : 0;
        if (room <= 0 || (uint64_t)room <= owed)
            return;
        delivery_ex_t *p = container_of(a->page->deferred.next, delivery_ex_t, link);
        list_remove(&p->link);
        list_init(&p->link);
        a->fetched += p->expect;
        push_enqueue(p); /* a synchronous failure ends p, not the page */
    }
}

static size_t push_take(exchange_t *ex, size_t want)
{
    delivery_ex_t *dx = ex->deliver;
    if (dx == NULL || dx->role != DELIVERY_ROLE_PUSHED || dx->page_ahead == NULL ||
        dx->page_ahead->open)
        return want;
    delivery_ahead_t *a = dx->page_ahead;
    int64_t room = ahead_room(a, uv_hrtime());
    if (room <= 0) {
        a->held++;
        return 0;
    }
    size_t k = want;
    if ((uint64_t)room < k)
        k = room < PACE_MIN_CHUNK ? PACE_MIN_CHUNK : (size_t)room;
    if (k > want)
        k = want;
    a->sent += k;
    return k;
}

static uint64_t conn_paced(delivery_conn_t *dc)
{
    uint64_t now = uv_hrtime(), due = 0;
    list_t *next;
    for (list_t *l = dc->aheads.next; l != &dc->aheads; l = next) {
        delivery_ahead_t *a = container_of(l, delivery_ahead_t, link);
        next = l->next;
        top_up(a, now);
        bool waiting =
            a->held > 0 || (a->page != NULL && a->page->deferred.next != &a->page->deferred);
        a->held = 0;
        if (a->open || a->t_html == 0 || !waiting)
            continue;
        uint64_t w = pace_conn_recheck(dc->pace, a->t_html, now);
        if (due == 0 || w < due)
            due = w;
    }
    return due;
}

/* ---- what the client has ---- */

static bool sent_has(const delivery_ex_t *dx, const char *key)
{
    for (size_t i = 0; i < dx->nsent; i++)
        if (strcmp(dx->sent[i], key) == 0)
            return true;
    return false;
}

static void sent_add(delivery_ex_t *dx, const char *key)
{
    if (dx->nsent == dx->capsent) {
        dx->capsent = dx->capsent ? dx->capsent * 2 : 16;
        dx->sent = xrealloc(dx->sent, dx->capsent * sizeof(*dx->sent));
    }
    dx->sent[dx->nsent++] = xstrdup(key);
}

static bool client_has(const delivery_ex_t *dx, const char *url, const char *key, const char *etag)
{
    /* An entry without ETag was made when herald had not seen the asset's
     * ETag yet (pushed from HTML discovery alone): it stands for the
     * version pushed then. Known ETags must match, so a change re-pushes. */
    if (dx->have_old_digest && (digest_contains(&dx->old_digest, url, etag) ||
                                (etag != NULL && digest_contains(&dx->old_digest, url, NULL)))) {
        atomic_fetch_add(&stats.digest_hits, 1); /* admin: herald_digest_hits_total */
        return true;
    }
    return learning_client_pushed(dx->ex, key) || learning_client_requested(dx->ex, key);
}

static bool digest_enabled(const config_t *cfg)
{
    return cfg->digest_cookie[0] != '\0' && strcmp(cfg->digest_cookie, "off") != 0;
}

/* The path-and-query of an absolute URL ("/" when it has none). */
static const char *url_path(const char *url)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return url[0] == '/' ? url : NULL;
    p = strchr(p + 3, '/');
    return p != NULL ? p : "/";
}

static bool is_navigation(const exchange_t *ex)
{
    const header_t *m = headers_find(&ex->req_headers, "sec-fetch-mode");
    return m == NULL || (m->value_len == 8 && strncasecmp(m->value, "navigate", 8) == 0);
}

/* ---- push ---- */

/*
 * Promise every plan item the client lacks. Items that start within the
 * room ahead of the HTML (pace.h: the path's rate x the think time left,
 * less what is queued, at most --push-budget) are fetched now, and the
 * pacer lets their bytes out as the room allows (push_take); the
 * rest wait, fetched when the room grows (top_up) or when the page's head
 * arrives, and then follow the HTML.
 */
static void deliver_push(delivery_ex_t *dx)
{
    exchange_t *ex = dx->ex;
    const config_t *cfg = ex->ctx->cfg;
    uint64_t now = uv_hrtime();
    uint64_t t_html = dx->plan.think_ms >= 0 ? now + (uint64_t)(dx->plan.think_ms * 1e6) : 0;
    dx->ahead = ahead_create(dx, t_html, cfg->push_budget);
    int64_t room = ahead_room(dx->ahead, now);
    pace_source_t src;
    double rate = pace_conn_rate(dx->dc->pace, &src);
    (void)rate; /* for the debug line */
    pace_note_start(src);
    uint64_t used = 0;
    bool over = false;
    for (size_t i = 0; i < dx->plan.n; i++) {
        const pagemap_plan_item_t *it = &dx->plan.items[i];
        if ((it->is_redirect && !cfg->push_redirects) || !it->pushable)
            continue; /* a hint-only asset goes in the 103 (deliver_hints) */
        if (client_has(dx, it->url, it->key, it->etag)) {
            learning_note_skipped(ex, it->key);
            atomic_fetch_add(&stats.skipped, 1);
            if (dx->db_used)
                digest_builder_add(&dx->db, it->url, it->etag);
            continue;
        }
        const char *path = url_path(it->url);
        if (path == NULL || sent_has(dx, it->key))
            continue;
        delivery_ex_t *p = promise(ex, path, it->key);
        if (p == NULL)
            break; /* the client or nghttp2 takes no more */
        dx->npushed++;
        sent_add(dx, it->key);
        if (dx->db_used)
            digest_builder_add(&dx->db, it->url, it->etag);
        p->page_ahead = ahead_ref(dx->ahead);
        p->expect = it->size > 0 ? (uint64_t)it->size : DELIVERY_UNKNOWN_SIZE;
        if (!over && room > 0 && used < (uint64_t)room) {
            /* starts within the room: fetched now, its tail held if need be */
            used += p->expect;
            dx->ahead->fetched += p->expect;
            push_enqueue(p);
        } else {
            /* In plan order: once one item starts past the room, the rest wait. */
            over = true;
            list_insert(dx->deferred.prev, &p->link);
        }
    }
    LOG_DEBUG("delivery: %s: %u promised, %llu bytes fetched for a room of %lld (%.0f B/s from "
              "%s, think %.1f ms)",
              ex->path, dx->npushed, (unsigned long long)used, (long long)room, rate,
              pace_source_name(src), dx->plan.think_ms);
}

/* Origin Link: rel=preload on the page's final response: push what the plan did not. */
static void push_origin_links(delivery_ex_t *dx)
{
    exchange_t *ex = dx->ex;
    const char *page_url = learning_page_url(ex);
    if (page_url == NULL)
        return;
    const exchange_links_t *ls = exchange_resp_links(ex, page_url);
    for (size_t i = 0; i < ls->n; i++) {
        const exchange_link_line_t *line = &ls->lines[i];
        for (size_t k = 0; k < line->list.n; k++) {
            const link_t *l = &line->list.v[k];
            const char *key = line->keys[k];
            if (!(l->rel & LINK_REL_PRELOAD) || l->nopush || key == NULL ||
                !url_same_origin(l->url, page_url))
                continue;
            const char *path = url_path(l->url);
            if (path != NULL && !sent_has(dx, key) && !client_has(dx, l->url, key, NULL)) {
                delivery_ex_t *p = promise(ex, path, key);
                if (p != NULL) {
                    dx->npushed++;
                    sent_add(dx, key);
                    /* the origin has answered: no think time left to fill */
                    list_insert(dx->deferred.prev, &p->link);
                }
            }
        }
    }
}

/* ---- hints ---- */

bool delivery_plan_link(const pagemap_plan_item_t *it, link_t *out)
{
    const char *as = it->as != NULL ? it->as : pagemap_kind_as(it->kind);
    if (as == NULL || it->kind == PAGEMAP_KIND_OTHER)
        return false; /* "fetch" preloads need the request's exact mode: not guessed */
    asset_crossorigin_t cors = (asset_crossorigin_t)it->crossorigin;
    if (it->kind == PAGEMAP_KIND_FONT && cors == ASSET_CORS_NONE)
        cors = ASSET_CORS_ANONYMOUS; /* fonts are always fetched in CORS mode */
    *out = link_preload(it->url, as, cors, NULL, false);
    return true;
}

/*
 * Whether the browser will use a preload of it for the page's own request
 * (cachepolicy_hintable). Vary: Cookie only while the cookies stay the
 * same: the page's response is not known to set one (and, see
 * deliver_hints, no other asset of the 103 sets one).
 */
static bool hint_usable(const delivery_ex_t *dx, const pagemap_plan_item_t *it)
{
    switch (it->hint) {
    case CACHEPOLICY_HINT_YES:
        return true;
    case CACHEPOLICY_HINT_IF_COOKIE_STABLE:
        return !dx->plan.page_set_cookie;
    default:
        return false;
    }
}

/*
 * One 103 with a preload for every plan item not delivered yet (a push
 * client gets the ones that may not be pushed) and the preconnects. When a
 * Vary: Cookie asset is hinted, assets whose responses set a cookie are
 * left out: their cookie would make the page's own request of the Vary:
 * Cookie one differ from its preload (measured by bench/hint_reuse).
 */
static void deliver_hints(delivery_ex_t *dx)
{
    exchange_t *ex = dx->ex;
    const char *page_url = learning_page_url(ex);
    headers_t links = {0}; /* values in ex->pool */
    const char **keys = xcalloc(dx->plan.n + 1, sizeof(*keys));
    size_t nkeys = 0;
    bool vary_cookie = false;
    for (size_t i = 0; i < dx->plan.n; i++)
        vary_cookie |= dx->plan.items[i].hint == CACHEPOLICY_HINT_IF_COOKIE_STABLE &&
                       hint_usable(dx, &dx->plan.items[i]) && !sent_has(dx, dx->plan.items[i].key);
    for (size_t i = 0; i < dx->plan.n; i++) {
        const pagemap_plan_item_t *it = &dx->plan.items[i];
        link_t l;
        if (it->is_redirect || !hint_usable(dx, it) || !delivery_plan_link(it, &l) ||
            sent_has(dx, it->key) || (vary_cookie && (it->policy & CACHEPOLICY_SET_COOKIE)))
            continue; /* a redirect's target follows it in the plan */
        if (client_has(dx, it->url, it->key, it->etag)) {
            learning_note_skipped(ex, it->key);
            atomic_fetch_add(&stats.skipped, 1);
            continue;
        }
        char *v = NULL;
        if (link_format(&l, page_url, &v) != 0)
            continue;
        headers_add(&links, &ex->pool, "link", 4, v, strlen(v)); /* copied into the pool */
        free(v);
        sent_add(dx, it->key);
        keys[nkeys++] = it->key;
    }
    for (size_t i = 0; i < dx->plan.npreconnect; i++) {
        link_t l = link_preconnect(dx->plan.preconnect[i], ASSET_CORS_NONE);
        char *v = NULL;
        if (link_format(&l, NULL, &v) != 0)
            continue;
        headers_add(&links, &ex->pool, "link", 4, v, strlen(v));
        free(v);
    }
    if (links.n > 0 && ex->fops->early_hints(ex, &links)) {
        dx->nhinted = (unsigned)nkeys;
        atomic_fetch_add(&stats.hints_sent, 1);
        atomic_fetch_add(&stats.hinted_links, nkeys);
        uint64_t now = uv_hrtime();
        timeline_t *tl = page_timeline(dx);
        if (tl != NULL)
            tl->hints_ms = timeline_ms(tl, now);
        for (size_t i = 0; i < nkeys; i++) {
            learning_note_delivery(ex, keys[i], PAGEMAP_DELIVERY_HINTED, 0);
            if (tl != NULL)
                timeline_add(tl, keys[i], TIMELINE_HINT, now);
        }
    }
    free(keys);
}

/* ---- hooks ---- */

/* Behind a trusted proxy the client network is the one X-Forwarded-For names. */
static void note_forwarded(exchange_t *ex, delivery_conn_t *dc)
{
    const header_t *last = NULL;
    for (size_t i = 0; i < ex->req_headers.n; i++)
        if (headers_name_eq(ex->req_headers.v[i].name, ex->req_headers.v[i].name_len,
                            "x-forwarded-for"))
            last = &ex->req_headers.v[i];
    if (last != NULL)
        pace_conn_forwarded(dc->pace, last->value, last->value_len);
}

static void on_request(void *data, exchange_t *ex)
{
    const delivery_t *D = data;
    const config_t *cfg = ex->ctx->cfg;
    delivery_conn_t *dc = client_dc(D, ex);
    if (cfg->trust_forwarded && dc != NULL && ex->role != EXCHANGE_ROLE_PUSHED)
        note_forwarded(ex, dc);
    if (ex->role == EXCHANGE_ROLE_PUSHED || ex->role == EXCHANGE_ROLE_PREFETCH ||
        !learning_is_page(ex))
        return; /* a pushed exchange got its state when it was promised; a prefetch gets nothing */
    delivery_ex_t *dx = dx_create(ex, DELIVERY_ROLE_PAGE, dc);
    if (strcmp(ex->method, "GET") != 0 || learning_plan(ex, &dx->plan) != 0)
        return;
    bool push = cfg->push && ex->client_push && ex->client_max_streams > 0 &&
                ex->fops->push_promise != NULL && dc != NULL;
    bool hints = cfg->hints && is_navigation(ex) && ex->fops->early_hints != NULL &&
                 (ex->proto == EXCHANGE_HTTP2 || (ex->proto == EXCHANGE_HTTP11 && cfg->hints_h1));
    /* Known before the plan is looked at: even a page with nothing learned
     * yet gets the origin's own Link: rel=preload pushed (push_origin_links). */
    dx->push_mode = push;
    if (dx->plan.n == 0 && dx->plan.npreconnect == 0)
        return;
    if (!push && !hints)
        return;
    if (digest_enabled(cfg)) {
        size_t len = 0;
        const char *v = learning_cookie_value(ex, cfg->digest_cookie, &len);
        if (v != NULL && digest_parse(v, len, &dx->old_digest, NULL) == 0)
            dx->have_old_digest = true;
        if (push) {
            digest_builder_init(&dx->db, DIGEST_DEFAULT_LOG2P);
            dx->db.min_log2n = 8; /* keeps N, so old values merge exactly */
            dx->db_used = true;
        }
    }
    if (push) {
        /* The page's own request goes to the origin before the pushes'
         * (on_started): the HTML is what the client waits for longest. */
        dc->hold = true;
        deliver_push(dx);
    }
    if (hints)
        deliver_hints(dx); /* after the pushes: what may not be pushed is hinted */
}

static void remove_header(headers_t *h, size_t i)
{
    memmove(&h->v[i], &h->v[i + 1], (h->n - i - 1) * sizeof(h->v[0]));
    h->n--;
}

/* The origin's own 103: forward only the links herald has not sent (or nothing). */
static void filter_origin_hints(delivery_ex_t *dx)
{
    exchange_t *ex = dx->ex;
    const char *page_url = learning_page_url(ex);
    if (dx->nsent == 0 || page_url == NULL)
        return;
    const exchange_links_t *ls = exchange_resp_links(ex, page_url);
    bool kept_links = false;
    /* Backwards: removing a line shifts the header indexes after it. */
    for (size_t i = ls->n; i-- > 0;) {
        const exchange_link_line_t *line = &ls->lines[i];
        header_t *h = &ex->resp_headers.v[line->header];
        if (line->bad) {
            kept_links = true; /* not ours to judge: forwarded as is */
            continue;
        }
        /* The value rebuilt from the links not sent yet, in the pool. */
        size_t cap = h->value_len + 1, len = 0;
        char *out = mempool_alloc(&ex->pool, cap);
        size_t ndup = 0;
        for (size_t k = 0; k < line->list.n; k++) {
            const link_t *l = &line->list.v[k];
            char *one = NULL;
            if ((l->rel & (LINK_REL_PRELOAD | LINK_REL_MODULEPRELOAD)) && line->keys[k] != NULL &&
                sent_has(dx, line->keys[k])) {
                ndup++;
                continue;
            }
            if (link_format(l, NULL, &one) != 0)
                continue;
            size_t ol = strlen(one);
            if (len + ol + 3 > cap) {
                size_t ncap = (len + ol + 3) * 2;
                char *n = mempool_alloc(&ex->pool, ncap);
                memcpy(n, out, len);
                out = n, cap = ncap;
            }
            if (len > 0)
                out[len++] = ',', out[len++] = ' ';
            memcpy(out + len, one, ol);
            len += ol;
            free(one);
        }
        if (ndup == 0) {
            kept_links = true;
        } else if (len == 0) {
            remove_header(&ex->resp_headers, line->header); /* every link of it was sent */
        } else {
            out[len] = '\0';
            h->value = out;
            h->value_len = len;
            kept_links = true;
        }
    }
    if (ls->n > 0 && !kept_links)
        ex->suppress_head = true;
}

static void add_digest_cookie(delivery_ex_t *dx)
{
    exchange_t *ex = dx->ex;
    const config_t *cfg = ex->ctx->cfg;
    if (dx->have_old_digest)
        digest_builder_add_digest(&dx->db, &dx->old_digest);
    if (dx->db.n == 0)
        return;
    char *v = NULL;
    size_t vl = 0;
    if (digest_builder_finish(&dx->db, &v, &vl) != 0)
        return;
    char *line = mempool_alloc(&ex->pool, strlen(cfg->digest_cookie) + vl + 64);
    int n = sprintf(line, "%s=%s; Path=/; HttpOnly; SameSite=Lax%s", cfg->digest_cookie, v,
                    ex->client_tls ? "; Secure" : "");
    free(v);
    headers_add_ref(&ex->resp_headers, &ex->pool, "set-cookie", 10, line, (size_t)n);
}

static void add_x_herald(delivery_ex_t *dx)
{
    exchange_t *ex = dx->ex;
    static const char *const src[] = {"none", "page", "template"};
    unsigned s = (unsigned)dx->plan.source;
    char *line = mempool_alloc(&ex->pool, 80);
    int n = snprintf(line, 80, "push=%u; hint=%u; plan=%s; explore=%zu", dx->npushed, dx->nhinted,
                     s < 3 ? src[s] : "none", dx->plan.nheld);
    headers_add_ref(&ex->resp_headers, &ex->pool, "x-herald", 8, line, (size_t)n);
}

static bool is_event_stream(const exchange_t *ex)
{
    const header_t *ct = headers_find(&ex->resp_headers, "content-type");
    return ct != NULL && ct->value_len >= 17 &&
           strncasecmp(ct->value, "text/event-stream", 17) == 0;
}

static void on_response_head(void *data, exchange_t *ex, bool final)
{
    delivery_ex_t *dx = ex->deliver;
    const config_t *cfg = ex->ctx->cfg;
    if (!final) {
        if (dx != NULL && dx->role == DELIVERY_ROLE_PAGE && ex->status == 103)
            filter_origin_hints(dx);
        return;
    }
    if (dx != NULL && dx->role == DELIVERY_ROLE_PAGE) {
        bool ok = ex->status >= 200 && ex->status < 300;
        if (ok && dx->push_mode)
            push_origin_links(dx);
        if (dx->tl != NULL) {
            dx->tl->head_ms = timeline_ms(dx->tl, uv_hrtime());
            dx->tl->status = ex->status;
        }
        /* The HTML is here: the rest of the plan is fetched to follow it. */
        ahead_arrived(dx->ahead);
        release_deferred(dx);
        if (ok && dx->db_used)
            add_digest_cookie(dx);
        if (cfg->x_herald_header)
            add_x_herald(dx);
        return;
    }
    if (dx == NULL && ex->status == 200 && cfg->sse_push && cfg->push && ex->client_push &&
        ex->proto == EXCHANGE_HTTP2 && ex->fops->push_promise != NULL && is_event_stream(ex)) {
        dx = dx_create(ex, DELIVERY_ROLE_OTHER, client_dc(data, ex));
        dx->sse = true;
    }
}

/* ---- SSE push comments ---- */

/* ssefilter callback: ": herald-push PATH" in ex's event stream. */
static void sse_push(void *ctx, const char *line, size_t len)
{
    delivery_ex_t *dx = ctx;
    if (len == 0 || line[0] != '/' || len > 2048)
        return;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] <= 0x20 || (unsigned char)line[i] >= 0x7f)
            return;
    char *path = mempool_strndup(&dx->ex->pool, line, len);
    delivery_ex_t *p = promise(dx->ex, path, NULL);
    if (p != NULL)
        push_enqueue(p); /* promised now: before the next event is forwarded */
}

static const uint8_t *on_response_body(void *data, exchange_t *ex, const uint8_t *bytes, size_t len,
                                       size_t *out_len)
{
    delivery_ex_t *dx = ex->deliver;
    if (dx == NULL || !dx->sse) {
        *out_len = len;
        return bytes;
    }
    return ssefilter_run(&dx->sse_filter, bytes, len, sse_push, dx, out_len);
}

static void on_response_end(void *data, exchange_t *ex, bool ok)
{
    delivery_ex_t *dx = ex->deliver;
    if (dx == NULL)
        return;
    if (dx->role == DELIVERY_ROLE_PAGE) {
        if (dx->tl != NULL)
            dx->tl->html_end_ms = timeline_ms(dx->tl, uv_hrtime());
        ahead_open(dx->ahead);
        release_deferred(dx); /* the HTML is out (or failed): the rest of the plan follows */
        return;
    }
    if (dx->role != DELIVERY_ROLE_PUSHED || dx->pstate != DELIVERY_PUSH_FETCHING)
        return;
    if (!ok || !exchange_push_status_ok(ex->status))
        dx->failed = true;
    else {
        dx->completed = true;
        atomic_fetch_add(&stats.completed, 1);
        atomic_fetch_add(&stats.pushed_bytes, ex->resp_body_bytes);
        if (dx->key != NULL)
            learning_note_delivery(ex, dx->key, PAGEMAP_DELIVERY_COMPLETED, ex->resp_body_bytes);
    }
    timeline_item_t *ti = timeline_item(dx->tl, dx->tl_idx);
    if (ti != NULL) {
        ti->fetched_ms = timeline_ms(dx->tl, uv_hrtime());
        ti->first_byte_ms = ex->t_first_byte ? timeline_ms(dx->tl, ex->t_first_byte) : -1;
        ti->bytes = ex->resp_body_bytes;
    }
    push_set_state(dx, DELIVERY_PUSH_DONE);
    dx->dc->fetching--;
    pump(dx->dc);
    if (dx->page_ahead != NULL)
        top_up(dx->page_ahead, uv_hrtime()); /* a fetch slot is free: the room may take another */
}

static void on_free(void *data, exchange_t *ex)
{
    delivery_ex_t *dx = ex->deliver;
    if (dx == NULL)
        return;
    ex->deliver = NULL;
    if (dx->role == DELIVERY_ROLE_PAGE) {
        ahead_open(dx->ahead);
        release_deferred(dx);
        ahead_release(dx->ahead);
        pagemap_plan_dispose(&dx->plan);
        digest_dispose(&dx->old_digest);
        if (dx->db_used)
            digest_builder_dispose(&dx->db);
        for (size_t i = 0; i < dx->nsent; i++)
            free(dx->sent[i]);
        free(dx->sent);
    } else if (dx->role == DELIVERY_ROLE_PUSHED) {
        bool slot = dx->pstate == DELIVERY_PUSH_FETCHING;
        list_remove(&dx->link); /* from a page's deferred list or the queue */
        if (!dx->completed) {
            atomic_fetch_add(&stats.cancelled, 1);
            /* reset by the client (or never sent): it had the asset. A
             * push herald reset itself says nothing of the client. */
            if (dx->key != NULL && !dx->failed)
                learning_note_delivery(ex, dx->key, PAGEMAP_DELIVERY_CANCELLED, 0);
        }
        if (slot) {
            dx->dc->fetching--;
            pump(dx->dc);
        }
        timeline_item_t *ti = timeline_item(dx->tl, dx->tl_idx);
        if (ti != NULL) {
            ti->end_ms = timeline_ms(dx->tl, uv_hrtime());
            ti->outcome = dx->completed ? TIMELINE_COMPLETED
                          : dx->failed  ? TIMELINE_FAILED
                                        : TIMELINE_CANCELLED;
        }
        ahead_release(dx->page_ahead);
        free(dx->key);
    }
    timeline_release(dx->tl); /* the last one stores the page's timeline */
    ssefilter_dispose(&dx->sse_filter);
    conn_release(dx->dc);
    free(dx);
}

/* ---- the connection's pacer, as the h2 frontend sees it ---- */

static bool pacer_ping_due(void *p, uint64_t out_total, uint8_t opaque[8])
{
    delivery_conn_t *dc = p;
    uint64_t seq;
    if (!pace_conn_ping_due(dc->pace, out_total, &seq))
        return false;
    pace_ping_opaque(seq, opaque);
    return true;
}

static void pacer_ping_sent(void *p, const uint8_t opaque[8], uint64_t out_total, uint64_t now)
{
    delivery_conn_t *dc = p;
    uint64_t seq;
    if (pace_ping_seq(opaque, &seq))
        pace_conn_ping_sent(dc->pace, seq, out_total, now);
}

static int pacer_ping_acked(void *p, const uint8_t opaque[8], uint64_t now)
{
    delivery_conn_t *dc = p;
    uint64_t seq;
    if (!pace_ping_seq(opaque, &seq))
        return -1;
    bool moved = pace_conn_ping_acked(dc->pace, seq, now);
    if (log_enabled(LOG_LEVEL_DEBUG)) {
        pace_source_t src = PACE_SRC_FALLBACK;
        double rate = pace_conn_rate(dc->pace, &src);
        LOG_DEBUG("h2 %s:%u: PING %llu ACK: %.0f B/s (%s), rtt %.2f ms", dc->addr, dc->port,
                  (unsigned long long)seq, rate, pace_source_name(src), pace_conn_rtt_ms(dc->pace));
    }
    return moved ? 1 : 0;
}

static void pacer_output(void *p, uint64_t out_total, uint64_t now)
{
    delivery_conn_t *dc = p;
    pace_conn_output(dc->pace, out_total, now);
}

static size_t pacer_push_take(void *p, exchange_t *ex, size_t want)
{
    return push_take(ex, want);
}

static void pacer_held(void *p)
{
    pace_note_hold();
}

static uint64_t pacer_paced(void *p)
{
    return conn_paced(p);
}

static const exchange_pacer_ops_t pacer_ops = {
    .ping_due = pacer_ping_due,
    .ping_sent = pacer_ping_sent,
    .ping_acked = pacer_ping_acked,
    .output = pacer_output,
    .push_take = pacer_push_take,
    .held = pacer_held,
    .paced = pacer_paced,
};

/* ---- the observer ---- */

/* Pushes go over HTTP/2 only: an h1 connection gets no delivery state (103s need none). */
static void on_client_open(void *data, exchange_client_t *cl)
{
    const delivery_t *D = data;
    if (cl->proto != EXCHANGE_HTTP2)
        return;
    delivery_conn_t *dc = conn_create(cl, D->x->cfg->bandwidth_hint);
    cl->state[D->slot] = dc;
    cl->pacer_ops = &pacer_ops;
    cl->pacer = dc;
}

static void on_client_close(void *data, exchange_client_t *cl)
{
    const delivery_t *D = data;
    conn_release(cl->state[D->slot]); /* exchanges still running hold their own */
}

static void on_started(void *data, exchange_t *ex)
{
    delivery_conn_t *dc = client_dc(data, ex);
    if (dc == NULL || !dc->hold)
        return;
    dc->hold = false;
    pump(dc);
}

static const exchange_observer_t delivery_observer = {
    .name = "delivery",
    .on_client_open = on_client_open,
    .on_client_close = on_client_close,
    .on_request = on_request,
    .on_started = on_started,
    .on_response_head = on_response_head,
    .on_response_body = on_response_body,
    .on_response_end = on_response_end,
    .on_free = on_free,
};

delivery_t *delivery_attach(exchange_ctx_t *x)
{
    delivery_t *D = xcalloc(1, sizeof(*D));
    D->x = x;
    D->slot = exchange_ctx_observe(x, &delivery_observer, D);
    return D;
}

void delivery_detach(delivery_t *D)
{
    free(D);
}
