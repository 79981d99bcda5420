/*
 * The evidence rules of the learned map (pagemap.h, "Evidence"): what one
 * committed page visit does to its page's edges, plus the asset metadata
 * and delivery counters that responses and deliveries report.
 */
#include "pagemap.h"
#include "pagemap_impl.h"

#include <stdlib.h>
#include <string.h>

#include "template.h"
#include "herald/error.h"

/* One distinct item of a visit (the copies of one key merged). */
typedef struct vitem {
    const pagemap_item_t *it; /* first copy: url, kind, as, crossorigin */
    const char *key;
    unsigned sources, order;
    uint32_t group;
    bool blocking, strong, conditional, skipped, cancelled;
} vitem_t;

static int cmp_item_ptr(const void *a, const void *b)
{
    const pagemap_item_t *x = *(const pagemap_item_t *const *)a;
    const pagemap_item_t *y = *(const pagemap_item_t *const *)b;
    int c = strcmp(x->key ? x->key : x->url, y->key ? y->key : y->url);
    if (c != 0)
        return c;
    return x < y ? -1 : x > y; /* stable: the first copy leads */
}

/* Deduplicate a visit's items by key, sorted by key; *out is malloc'd (NULL when none). */
static int visit_items(const pagemap_visit_t *v, vitem_t **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (v->nitems == 0 || v->items == NULL)
        return 0;
    const pagemap_item_t **ptrs = malloc(v->nitems * sizeof(*ptrs));
    vitem_t *vi = malloc(v->nitems * sizeof(*vi));
    if (ptrs == NULL || vi == NULL) {
        free(ptrs);
        free(vi);
        return HERALD_ENOMEM;
    }
    size_t np = 0, n = 0;
    for (size_t i = 0; i < v->nitems; i++)
        if (v->items[i].url != NULL && v->items[i].url[0] != '\0')
            ptrs[np++] = &v->items[i];
    qsort(ptrs, np, sizeof(*ptrs), cmp_item_ptr);
    for (size_t i = 0; i < np; i++) {
        const pagemap_item_t *it = ptrs[i];
        const char *key = it->key ? it->key : it->url;
        if (n > 0 && strcmp(vi[n - 1].key, key) == 0) {
            vitem_t *m = &vi[n - 1];
            m->sources |= it->sources;
            m->order = it->order < m->order ? it->order : m->order;
            m->group = m->group != 0 && it->group != 0 ? m->group : 0;
            m->blocking |= it->blocking;
            m->strong |= it->strong;
            m->conditional |= it->conditional;
            m->skipped &= it->skipped;
            m->cancelled |= it->push_cancelled;
            continue;
        }
        if (n == PAGEMAP_MAX_VISIT_ITEMS)
            continue;
        vi[n++] = (vitem_t){.it = it,
                            .key = key,
                            .sources = it->sources,
                            .order = it->order,
                            .group = it->group,
                            .blocking = it->blocking,
                            .strong = it->strong,
                            .conditional = it->conditional,
                            .skipped = it->skipped,
                            .cancelled = it->push_cancelled};
    }
    free(ptrs);
    *out = vi;
    *nout = n;
    return 0;
}

static int cmp_vitem_key(const void *k, const void *b)
{
    return strcmp((const char *)k, ((const vitem_t *)b)->key);
}

static const vitem_t *vitem_find(const vitem_t *vi, size_t n, const char *key)
{
    return n ? bsearch(key, vi, n, sizeof(*vi), cmp_vitem_key) : NULL;
}

static pm_edge_t *edge_of(pagemap_t *pm, pm_page_t *p, const char *key)
{
    return p != NULL ? pm_edge_find(p, pm_asset_find(pm, key)) : NULL;
}

/* The edge's description from discovery (or from a follow-up guess when
 * no discovery ever named it). */
static void edge_describe(pm_edge_t *e, const vitem_t *vi)
{
    const pagemap_item_t *it = vi->it;
    e->kind = (unsigned)it->kind < PAGEMAP_KIND_COUNT_ ? it->kind : PAGEMAP_KIND_OTHER;
    e->cors = it->crossorigin;
    e->order = vi->order;
    e->blocking = vi->blocking;
    e->group = vi->group;
    e->as[0] = '\0';
    if (it->as != NULL) {
        strncpy(e->as, it->as, PAGEMAP_AS_MAX);
        e->as[PAGEMAP_AS_MAX] = '\0';
    }
}

static void clean_hit(pm_edge_t *e, double d, int64_t now)
{
    e->ch = e->ch * d + 1;
    e->cn = e->cn * d + 1;
    e->clean_hits++;
    e->miss_streak = 0;
    e->rejected = false;
    e->absent_streak = 0; /* the page still fetches it: not stale */
    e->last_seen = now;
}

static void clean_miss(pm_edge_t *e, double d)
{
    e->ch = e->ch * d;
    e->cn = e->cn * d + 1;
    e->clean_misses++;
    if (++e->miss_streak >= PAGEMAP_REJECT_MISSES)
        e->rejected = true;
}

/* Whether the client's cache-digest cookie says it may have a's current version. */
static bool digest_names(const pagemap_visit_t *v, const pm_asset_t *a)
{
    if (v->digest == NULL)
        return false;
    return digest_contains(v->digest, a->url, a->etag) ||
           (a->etag != NULL && digest_contains(v->digest, a->url, NULL));
}

/* Is e one of the assets a cold client of the page fetches (PAGEMAP_COLD_SHARE)? */
static bool edge_expected(const pm_edge_t *e)
{
    if (e->state == PAGEMAP_EDGE_BANNED || e->rejected || e->superseded)
        return false;
    if (e->state == PAGEMAP_EDGE_PINNED)
        return true;
    if (e->cn > 0)
        return pm_confidence(e) >= PAGEMAP_DEFAULT_MIN_CONFIDENCE;
    return e->strong && e->absent_streak < PAGEMAP_STALE_SCANS;
}

/*
 * How cold the visit was (pagemap.h, PAGEMAP_COLD_SHARE): `base` when the
 * client is a browser on a multiplexed connection that made follow-up
 * requests, none of them conditional, and cancelled no push; then how many
 * of the page's expected assets that herald did not push (strong or
 * confirmed edges of the page entry, and new strong items of this visit)
 * there were and how many of them it fetched.
 */
typedef struct coldness {
    bool base;
    size_t expected, fetched;
} coldness_t;

static coldness_t visit_cold(pagemap_t *pm, pm_page_t *p, const pagemap_visit_t *v,
                             const vitem_t *vi, size_t nvi)
{
    coldness_t c = {0};
    if (!v->browser || !v->multiplexed)
        return c;
    bool any = false;
    for (size_t k = 0; k < nvi; k++) {
        if (vi[k].conditional || vi[k].cancelled)
            return c;
        any |= (vi[k].sources & PAGEMAP_SRC_FOLLOWUP) != 0;
    }
    c.base = any;
    for (size_t i = 0; p != NULL && i < p->n; i++) {
        const pm_edge_t *e = &p->edges[i];
        if (!edge_expected(e))
            continue;
        const vitem_t *it = vitem_find(vi, nvi, e->asset->h.key);
        if (it != NULL && ((it->sources & PAGEMAP_SRC_PUSH) || it->skipped))
            continue; /* pushed or known to be cached: says nothing */
        c.expected++;
        c.fetched += it != NULL && (it->sources & PAGEMAP_SRC_FOLLOWUP);
    }
    for (size_t k = 0; k < nvi; k++) {
        const vitem_t *it = &vi[k];
        if (!it->strong || !(it->sources & PAGEMAP_SRC_DISCOVERY) || edge_of(pm, p, it->key) ||
            (it->sources & PAGEMAP_SRC_PUSH) || it->skipped)
            continue;
        c.expected++;
        c.fetched += (it->sources & PAGEMAP_SRC_FOLLOWUP) != 0;
    }
    return c;
}

/*
 * Was the visit cold for one asset it did not fetch: judged on the page's
 * *other* expected assets (`expected` says whether this one is among them).
 */
static bool cold_for(const coldness_t *c, bool expected)
{
    size_t others = c->expected - (expected && c->expected > 0);
    return c->base && c->fetched >= 1 && (double)c->fetched >= PAGEMAP_COLD_SHARE * (double)others;
}

/* The visit as a whole (page counters, versions by fetch): cold for an asset it missed. */
static bool cold_visit(const coldness_t *c)
{
    return cold_for(c, true);
}

/*
 * An edge of p that `it` (a URL new to p) replaces as its next version
 * (pagemap.h, "Versions"), or NULL. Only edges this visit's discovery did
 * not name and its client did not fetch (e->named false) qualify; one that
 * herald delivered on the visit may.
 */
static pm_edge_t *find_old_version(pm_page_t *p, const pagemap_visit_t *v, const vitem_t *it,
                                   bool cold)
{
    bool by_html = (it->sources & (PAGEMAP_SRC_HTML | PAGEMAP_SRC_LINK)) && v->html_scanned;
    bool by_css = (it->sources & PAGEMAP_SRC_CSS) && v->css_scanned;
    bool by_fetch =
        (it->sources & PAGEMAP_SRC_FOLLOWUP) && !(it->sources & PAGEMAP_SRC_DELIVERED) && cold;
    if (!by_html && !by_css && !by_fetch)
        return NULL;
    for (size_t i = 0; i < p->n; i++) {
        pm_edge_t *e = &p->edges[i];
        if (e->named || e->superseded || e->state != PAGEMAP_EDGE_LEARNED)
            continue;
        bool named_same_way = (by_html && (e->sources & (PAGEMAP_SRC_HTML | PAGEMAP_SRC_LINK))) ||
                              (by_css && (e->sources & PAGEMAP_SRC_CSS)) || by_fetch;
        if (named_same_way && template_is_version_of(e->asset->h.key, it->key))
            return e;
    }
    return NULL;
}

/*
 * A new edge for `it`: the next version of an old one (which it takes over,
 * evidence and all, leaving the old URL a superseded tombstone), or a fresh
 * one. NULL on ENOMEM; *is_new tells whether evidence starts from nothing.
 */
static pm_edge_t *edge_create(pagemap_t *pm, pm_page_t *p, const pagemap_visit_t *v,
                              const vitem_t *it, bool cold, bool *is_new)
{
    pm_asset_t *a = pm_asset_get(pm, it->key, it->it->url);
    if (a == NULL)
        return NULL;
    pm_edge_t *old = find_old_version(p, v, it, cold);
    if (old != NULL) {
        /* Retarget the old edge to the new URL, then leave a tombstone for the old. */
        pm_asset_t *olda = old->asset; /* the old edge's reference now holds it */
        old->asset = a;
        a->refs++;
        old->seen = old->named = true;
        old->volatile_url = template_is_volatile_url(a->url) || template_is_volatile_url(a->h.key);
        if (old->volatile_url)
            old->hit_visits = 0; /* a per-visit URL: each visit's is another, never two visits' */
        unsigned osrc = old->sources;
        pagemap_kind_t okind = old->kind;
        int64_t ofirst = old->first_seen, olast = old->last_seen;
        *is_new = false;
        /* Only under the cap: making room could evict the edge just retargeted. */
        pm_edge_t *tomb = p->nlearned < pm->cfg.max_assets_per_page
                              ? pm_edge_add(pm, p, olda, PAGEMAP_EDGE_LEARNED)
                              : NULL;
        if (tomb != NULL) {
            tomb->superseded = true;
            tomb->seen = tomb->named = true;
            tomb->sources = osrc;
            tomb->kind = okind;
            tomb->first_seen = ofirst;
            tomb->last_seen = olast;
        }
        if (--olda->refs == 0) /* the tombstone holds it now, or nothing does */
            pm_asset_drop_unused(pm, olda);
        return pm_edge_find(p, a); /* the array may have moved */
    }
    pm_edge_t *e = pm_edge_add(pm, p, a, PAGEMAP_EDGE_LEARNED);
    if (e == NULL) {
        pm_asset_drop_unused(pm, a);
        return NULL;
    }
    *is_new = true;
    e->first_seen = v->now_ms;
    return e;
}

static int commit_supplement(pagemap_t *pm, pm_page_t *p, const pagemap_visit_t *v,
                             const vitem_t *vi, size_t nvi)
{
    int rc = 0;
    for (size_t k = 0; k < nvi; k++) {
        const vitem_t *it = &vi[k];
        if (!(it->sources & PAGEMAP_SRC_DISCOVERY))
            continue;
        pm_edge_t *e = edge_of(pm, p, it->key);
        if (e == NULL) {
            pm_asset_t *a = pm_asset_get(pm, it->key, it->it->url);
            if (a == NULL || (e = pm_edge_add(pm, p, a, PAGEMAP_EDGE_LEARNED)) == NULL) {
                pm_asset_drop_unused(pm, a);
                rc = HERALD_ENOMEM;
                continue;
            }
            e->first_seen = e->last_seen = v->now_ms;
            e->hit_visits = 1;
        } else if (e->state == PAGEMAP_EDGE_BANNED) {
            continue;
        }
        edge_describe(e, it);
        e->strong = it->strong;
        e->sources |= it->sources;
    }
    return rc;
}

static void page_counters(pagemap_t *pm, pm_page_t *p, const pagemap_visit_t *v, bool clean,
                          bool cold)
{
    double d = pm->cfg.decay;
    p->visits = p->visits * d + 1;
    p->visits_total++;
    p->last_visit = v->now_ms;
    p->status = v->status;
    p->set_cookie = v->page_set_cookie;
    if (v->think_ms >= 0)
        p->think =
            p->think < 0 ? v->think_ms : p->think + PAGEMAP_THINK_ALPHA * (v->think_ms - p->think);
    if (v->html_size > 0)
        p->html_size = v->html_size;
    if (v->html_scanned)
        p->scan_validator = v->validator;
    p->followups_seen |= clean;
    p->clean_total += clean;
    if (clean)
        p->fvisits = p->fvisits * d + 1;
    if (cold) {
        p->cold_visits = p->cold_visits * d + 1;
        p->cold_total++;
    }
}

static int commit_entry(pagemap_t *pm, pm_page_t *p, const pagemap_visit_t *v, const vitem_t *vi,
                        size_t nvi, bool clean, const coldness_t *cd)
{
    bool cold = cold_visit(cd);
    if (v->supplement)
        return commit_supplement(pm, p, v, vi, nvi);
    double d = pm->cfg.decay;
    double fvisits_before = p->fvisits;
    page_counters(pm, p, v, clean, cold);
    for (size_t i = 0; i < p->n; i++)
        p->edges[i].seen = p->edges[i].named = false;
    for (size_t k = 0; k < nvi; k++) {
        pm_edge_t *e = edge_of(pm, p, vi[k].key);
        if (e != NULL) {
            e->seen = true;
            e->named = (vi[k].sources & (PAGEMAP_SRC_DISCOVERY | PAGEMAP_SRC_FOLLOWUP)) != 0;
        }
    }
    int rc = 0;
    for (size_t k = 0; k < nvi; k++) {
        const vitem_t *it = &vi[k];
        bool delivered = (it->sources & PAGEMAP_SRC_DELIVERED) != 0;
        bool requested = (it->sources & PAGEMAP_SRC_FOLLOWUP) != 0;
        bool discovered = (it->sources & PAGEMAP_SRC_DISCOVERY) != 0;
        bool counts = !delivered && !it->skipped;
        pm_edge_t *e = edge_of(pm, p, it->key);
        bool is_new = false;
        /* whether it counted among the page's expected assets (visit_cold) */
        bool was_expected = e != NULL ? edge_expected(e) : it->strong && discovered;
        if (e == NULL) {
            if (!discovered && !requested)
                continue; /* a push or a skip of something unknown teaches nothing */
            if ((e = edge_create(pm, p, v, it, cold, &is_new)) == NULL) {
                rc = HERALD_ENOMEM;
                continue;
            }
            e->seen = true;
            if (is_new) {
                edge_describe(e, it);
                /* A URL only a script fetched, new on a page whose earlier
                 * visits with follow-ups did not fetch it, starts missed on
                 * those visits: one visit cannot make it plannable then. */
                if (!discovered && counts)
                    e->cn = fvisits_before;
            }
        }
        if (e->state == PAGEMAP_EDGE_BANNED)
            continue;
        if (!pm_set_str(&e->asset->url, it->it->url))
            rc = HERALD_ENOMEM;
        if (discovered || (e->sources & PAGEMAP_SRC_DISCOVERY) == 0)
            edge_describe(e, it);
        if (discovered) {
            e->strong = it->strong;
            if (it->sources & (PAGEMAP_SRC_HTML | PAGEMAP_SRC_LINK))
                e->absent_streak = 0;
        }
        if (v->html_scanned && (e->sources & PAGEMAP_SRC_HTML) &&
            !(it->sources & (PAGEMAP_SRC_HTML | PAGEMAP_SRC_LINK)))
            e->absent_streak++; /* delivered or fetched, but the HTML no longer names it */
        e->sources |= it->sources;
        if (discovered || requested) {
            e->superseded = false; /* named again: back in use */
            e->hit_visits++;
            e->last_seen = v->now_ms;
        }
        if (!counts)
            continue;
        if (requested)
            clean_hit(e, d, v->now_ms);
        else if (cold_for(cd, was_expected) && !digest_names(v, e->asset))
            clean_miss(e, d);
    }
    for (size_t i = 0; i < p->n; i++) {
        pm_edge_t *e = &p->edges[i];
        if (e->seen || e->superseded || e->state == PAGEMAP_EDGE_BANNED)
            continue;
        bool was_expected = edge_expected(e);
        if (v->html_scanned && (e->sources & PAGEMAP_SRC_HTML))
            e->absent_streak++;
        if (cold_for(cd, was_expected) && !digest_names(v, e->asset))
            clean_miss(e, d);
    }
    return rc;
}

int pagemap_commit_visit(pagemap_t *pm, const pagemap_visit_t *v)
{
    if (pm == NULL || v == NULL || v->page_key == NULL)
        return HERALD_EINVAL;
    if (v->authorized)
        return 0;
    vitem_t *vi = NULL;
    size_t nvi = 0;
    bool learn = v->status >= 200 && v->status <= 299;
    if (learn) {
        int rc = visit_items(v, &vi, &nvi);
        if (rc != 0)
            return rc;
    }
    pthread_mutex_lock(&pm->lock);
    int rc = 0;
    if (!learn) {
        pm_page_t *p = pm_page_find(pm, v->page_key);
        if (p != NULL)
            p->status = v->status;
        goto out;
    }
    /* A visit by a client that uses subresources: it fetched some, or kept a push. */
    bool clean = v->pushes_used;
    for (size_t k = 0; k < nvi; k++)
        clean |= (vi[k].sources & PAGEMAP_SRC_FOLLOWUP) != 0;
    /* Coldness is judged against the page's own entry, before this visit. */
    coldness_t cold = {0};
    if (!v->supplement)
        cold = visit_cold(pm, pm_page_find(pm, v->page_key), v, vi, nvi);
    pm_page_t *p = pm_page_get(pm, v->page_key, NULL);
    if (p == NULL) {
        rc = HERALD_ENOMEM;
        goto out;
    }
    pm_lru_touch(pm, p);
    if (v->template_key != NULL && strcmp(v->template_key, v->page_key) != 0 &&
        !pm_set_str(&p->template_key, v->template_key))
        rc = HERALD_ENOMEM;
    int rc2 = commit_entry(pm, p, v, vi, nvi, clean, &cold);
    rc = rc ? rc : rc2;
    if (!v->supplement)
        atomic_fetch_add_explicit(&pm->visits_committed, 1, memory_order_relaxed);
    if (v->template_key != NULL && strcmp(v->template_key, v->page_key) != 0) {
        pm_page_t *t = pm_page_get(pm, v->template_key, NULL);
        if (t == NULL) {
            rc = HERALD_ENOMEM;
            goto out;
        }
        pm_set_template(pm, t, true);
        pm_lru_touch(pm, t);
        rc2 = commit_entry(pm, t, v, vi, nvi, clean, &cold);
        rc = rc ? rc : rc2;
    }
out:
    pthread_mutex_unlock(&pm->lock);
    free(vi);
    return rc;
}

bool pagemap_should_scan(pagemap_t *pm, const char *page_key, uint64_t validator)
{
    if (pm == NULL || page_key == NULL)
        return true;
    pthread_mutex_lock(&pm->lock);
    pm_page_t *p = pm_page_find(pm, page_key);
    /* Sampled on this map's own count of asks, not on visits_total: folded
     * evidence (a fleet's batches) moves that in steps, which would scan
     * every visit of a step or none. */
    bool scan = p == NULL || p->visits_total < PAGEMAP_SCAN_STABLE_VISITS ||
                (validator != 0 && validator != p->scan_validator) ||
                ++p->scan_asks % PAGEMAP_SCAN_SAMPLE == 0;
    pthread_mutex_unlock(&pm->lock);
    return scan;
}

bool pagemap_has_asset(pagemap_t *pm, const char *asset_key)
{
    if (pm == NULL || asset_key == NULL)
        return false;
    pthread_mutex_lock(&pm->lock);
    bool has = pm_asset_find(pm, asset_key) != NULL;
    pthread_mutex_unlock(&pm->lock);
    return has;
}

int pagemap_observe_asset(pagemap_t *pm, const char *asset_key, const pagemap_asset_meta_t *m)
{
    if (pm == NULL || asset_key == NULL || m == NULL)
        return HERALD_EINVAL;
    pthread_mutex_lock(&pm->lock);
    int rc = 0;
    pm_asset_t *a = pm_asset_find(pm, asset_key);
    if (a == NULL) {
        rc = HERALD_ENOTFOUND;
        goto out;
    }
    a->status = m->status;
    a->size = m->size;
    a->policy = (m->policy & CACHEPOLICY_ALL) | (a->policy & CACHEPOLICY_SET_COOKIE);
    a->fresh_ms = m->fresh_ms;
    bool redirect = m->status == 301 || m->status == 302 || m->status == 307 || m->status == 308;
    if (!pm_set_str(&a->content_type, m->content_type) || !pm_set_str(&a->etag, m->etag) ||
        !pm_set_str(&a->last_modified, m->last_modified) ||
        !pm_set_str(&a->location, redirect ? m->location : NULL))
        rc = HERALD_ENOMEM;
    if (m->pushed && m->status != 200)
        a->unpushable = true;
    else if (m->status == 200)
        a->unpushable = false;
out:
    pthread_mutex_unlock(&pm->lock);
    return rc;
}

int pagemap_note_delivery(pagemap_t *pm, const char *page_key, const char *asset_key,
                          pagemap_delivery_t event, uint64_t bytes)
{
    if (pm == NULL || page_key == NULL || asset_key == NULL)
        return HERALD_EINVAL;
    pthread_mutex_lock(&pm->lock);
    int rc = 0;
    pm_page_t *p = pm_page_find(pm, page_key);
    pm_edge_t *e = p ? pm_edge_find(p, pm_asset_find(pm, asset_key)) : NULL;
    if (e == NULL) {
        rc = HERALD_ENOTFOUND;
        goto out;
    }
    switch (event) {
    case PAGEMAP_DELIVERY_PROMISED:
        e->promised++;
        break;
    case PAGEMAP_DELIVERY_COMPLETED:
        e->completed++;
        p->bytes_pushed += bytes;
        break;
    case PAGEMAP_DELIVERY_CANCELLED:
        e->cancelled++;
        p->bytes_pushed += bytes;
        break;
    case PAGEMAP_DELIVERY_HINTED:
        e->hinted++;
        p->hints_sent++;
        break;
    default:
        rc = HERALD_EINVAL;
    }
out:
    pthread_mutex_unlock(&pm->lock);
    return rc;
}
