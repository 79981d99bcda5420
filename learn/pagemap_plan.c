/*
 * Planning (pagemap.h, "Planning"): the verdict of each edge, and the plan
 * one request gets: which edges, in which order, with what each allows
 * (push, hint), minus the confirmed ones held back to explore.
 */
#include "pagemap.h"
#include "pagemap_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/error.h"

static const char *const verdict_names[] = {
    "pinned",       "confirmed", "strong",        "weak",      "uncertain",
    "rejected",     "stale",     "superseded",    "alternate", "two-visits",
    "other-origin", "status",    "undeliverable", "banned"};

const char *pagemap_verdict_name(pagemap_verdict_t v)
{
    return (unsigned)v < PAGEMAP_VERDICT_COUNT_ ? verdict_names[v] : "unknown";
}

pagemap_verdict_t pm_edge_verdict(const pm_edge_t *e, bool is_template, double min_confidence,
                                  const char **why)
{
    const char *r;
    pagemap_verdict_t v;
    if (e->state == PAGEMAP_EDGE_BANNED) {
        r = "banned by the operator";
        v = PAGEMAP_VERDICT_BANNED;
    } else if (e->state == PAGEMAP_EDGE_PINNED) {
        r = "pinned by the operator";
        v = PAGEMAP_VERDICT_PINNED;
    } else if (e->superseded) {
        r = "superseded by a new version of the URL";
        v = PAGEMAP_VERDICT_SUPERSEDED;
    } else if (e->rejected) {
        r = "cold clean visits in a row did not fetch it";
        v = PAGEMAP_VERDICT_REJECTED;
    } else if ((e->sources & PAGEMAP_SRC_HTML) && e->absent_streak >= PAGEMAP_STALE_SCANS) {
        r = "the page's HTML no longer names it: held back until a clean visit fetches it";
        v = PAGEMAP_VERDICT_STALE;
    } else if (e->cn > 0) {
        bool ok = e->ch > 0 && pm_confidence(e) >= min_confidence;
        r = ok ? "clean visits fetch it" : "clean visits fetch it less often than the minimum";
        v = ok ? PAGEMAP_VERDICT_CONFIRMED : PAGEMAP_VERDICT_UNCERTAIN;
    } else if (e->strong) {
        r = "discovery: every browser fetches it (not yet seen on a clean visit)";
        v = PAGEMAP_VERDICT_STRONG;
    } else {
        r = "discovered as a maybe (CSS, srcset, lazy, preload, follow-up): held back until a "
            "clean visit fetches it";
        v = PAGEMAP_VERDICT_WEAK;
    }
    if ((v == PAGEMAP_VERDICT_CONFIRMED || v == PAGEMAP_VERDICT_STRONG) &&
        (e->volatile_url || is_template) && e->hit_visits < 2) {
        r = is_template ? "template entry: needs 2 sibling visits"
                        : "volatile-looking URL: needs 2 visits";
        v = PAGEMAP_VERDICT_TWO_VISITS;
    }
    if (why != NULL)
        *why = r;
    return v;
}

static bool planned(pagemap_verdict_t v)
{
    return v == PAGEMAP_VERDICT_PINNED || v == PAGEMAP_VERDICT_CONFIRMED ||
           v == PAGEMAP_VERDICT_STRONG;
}

void pagemap_plan_dispose(pagemap_plan_t *plan)
{
    if (plan == NULL)
        return;
    for (size_t i = 0; i < plan->n; i++) {
        free(plan->items[i].url);
        free(plan->items[i].key);
        free(plan->items[i].etag);
        free(plan->items[i].as);
    }
    free(plan->items);
    for (size_t i = 0; i < plan->npreconnect; i++)
        free(plan->preconnect[i]);
    free(plan->preconnect);
    for (size_t i = 0; i < plan->nheld; i++)
        free(plan->held[i]);
    free(plan->held);
    memset(plan, 0, sizeof(*plan));
}

int pm_cmp_edge_plan(const void *a, const void *b)
{
    const pm_edge_t *x = *(const pm_edge_t *const *)a, *y = *(const pm_edge_t *const *)b;
    int rx = pm_kind_rank(x->kind, x->blocking), ry = pm_kind_rank(y->kind, y->blocking);
    if (rx != ry)
        return rx < ry ? -1 : 1;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return strcmp(x->asset->h.key, y->asset->h.key);
}

static bool status_ok(int status)
{
    return status == 0 || status == 200;
}

static bool is_redirect_status(int s)
{
    return s == 301 || s == 302 || s == 307 || s == 308;
}

static bool asset_pushable(const pm_asset_t *a)
{
    return cachepolicy_pushable(a->policy, NULL) && !a->unpushable;
}

cachepolicy_hint_t pm_hint(const pm_asset_t *a, const pm_edge_t *e, double think_ms,
                           const char **why)
{
    int64_t need = (int64_t)(think_ms > 0 ? think_ms : 0) + PAGEMAP_HINT_MARGIN_MS;
    bool cors = e->kind == PAGEMAP_KIND_FONT || e->kind == PAGEMAP_KIND_MODULE ||
                e->cors != PAGEMAP_CORS_NONE;
    return cachepolicy_hintable(a->policy, a->fresh_ms < 0 ? INT64_MAX : a->fresh_ms, need, cors,
                                why);
}

static bool asset_deliverable(const pm_asset_t *a, const pm_edge_t *e, double think_ms)
{
    return asset_pushable(a) || pm_hint(a, e, think_ms, NULL) != CACHEPOLICY_HINT_NO;
}

static bool plan_has(const pagemap_plan_t *out, const char *key)
{
    for (size_t i = 0; i < out->n; i++)
        if (strcmp(out->items[i].key, key) == 0)
            return true;
    return false;
}

static int plan_push_item(pagemap_plan_t *out, size_t *cap, const pm_asset_t *a, const pm_edge_t *e,
                          pagemap_verdict_t verdict, bool is_redirect, double think_ms)
{
    if (out->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        pagemap_plan_item_t *v = realloc(out->items, nc * sizeof(*v));
        if (v == NULL)
            return HERALD_ENOMEM;
        out->items = v;
        *cap = nc;
    }
    pagemap_plan_item_t *it = &out->items[out->n];
    memset(it, 0, sizeof(*it));
    it->url = pm_dup(a->url);
    it->key = pm_dup(a->h.key);
    it->etag = pm_dup_or_null(a->etag);
    it->as = (e->as[0] != '\0') ? pm_dup(e->as) : NULL;
    out->n++; /* counted before checking so dispose frees partial strings */
    if (it->url == NULL || it->key == NULL || (a->etag && it->etag == NULL) ||
        (e->as[0] != '\0' && it->as == NULL))
        return HERALD_ENOMEM;
    /* A redirect target reached through e has no edge of its own: guess its kind. */
    it->kind = (a == e->asset) ? e->kind : pagemap_kind_guess(NULL, NULL, a->h.key);
    if (a != e->asset && it->kind == PAGEMAP_KIND_OTHER)
        it->kind = e->kind;
    it->crossorigin = e->cors;
    it->size = a->size;
    it->confidence = e->cn > 0 && e->state != PAGEMAP_EDGE_PINNED ? pm_confidence(e) : 1.0;
    it->status = a->status;
    it->policy = a->policy;
    it->pushable = asset_pushable(a);
    it->hint = pm_hint(a, e, think_ms, NULL);
    it->is_redirect = is_redirect;
    it->pinned = e->state == PAGEMAP_EDGE_PINNED;
    it->verdict = verdict;
    return 0;
}

static int plan_add_origin(pagemap_plan_t *out, const char *url, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < out->npreconnect; i++)
        if (strlen(out->preconnect[i]) == len && strncasecmp(out->preconnect[i], url, len) == 0)
            return 0;
    char **v = realloc(out->preconnect, (out->npreconnect + 1) * sizeof(*v));
    if (v == NULL)
        return HERALD_ENOMEM;
    out->preconnect = v;
    if ((v[out->npreconnect] = pm_dupn(url, len)) == NULL)
        return HERALD_ENOMEM;
    out->npreconnect++;
    return 0;
}

bool pm_alternate_better(const pm_edge_t *x, const pm_edge_t *y)
{
    if (x->state == PAGEMAP_EDGE_PINNED || y->state == PAGEMAP_EDGE_PINNED)
        return x->state == PAGEMAP_EDGE_PINNED && y->state != PAGEMAP_EDGE_PINNED;
    if (fabs(x->ch - y->ch) > 1e-9)
        return x->ch > y->ch;
    if (fabs(pm_confidence(x) - pm_confidence(y)) > 1e-9)
        return pm_confidence(x) > pm_confidence(y);
    if (x->clean_hits != y->clean_hits)
        return x->clean_hits > y->clean_hits;
    if (x->order != y->order)
        return x->order < y->order;
    return strcmp(x->asset->h.key, y->asset->h.key) < 0;
}

/* Keep one candidate per alternates group (in place); returns the new count. */
static size_t keep_one_per_group(const pm_edge_t **cand, size_t nc)
{
    size_t out = 0;
    for (size_t i = 0; i < nc; i++) {
        const pm_edge_t *e = cand[i];
        bool beaten = false;
        for (size_t j = 0; e->group != 0 && j < nc && !beaten; j++)
            beaten = j != i && cand[j]->group == e->group && pm_alternate_better(cand[j], e);
        if (!beaten)
            cand[out++] = e;
    }
    return out;
}

typedef struct explore_pick {
    const pm_edge_t *e;
    uint64_t h;
} explore_pick_t;

static int cmp_pick(const void *a, const void *b)
{
    uint64_t x = ((const explore_pick_t *)a)->h, y = ((const explore_pick_t *)b)->h;
    return x < y ? -1 : x > y;
}

/*
 * Exploration: on plan number p->plans (counted while `share` > 0), when
 * floor(plans * share) moves, hold back 1 or 2 confirmed (or strong) edges,
 * in rotation by key hash after p->explore_cursor, so that this visit is
 * clean for them. Removes them from cand and lists them in out->held.
 */
/* Count a plan (and whether it explored) for the next drain. */
static int explore_note(pagemap_t *pm, pm_page_t *p, bool explored)
{
    if (!pm->explore_track)
        return 0;
    p->plans_out++;
    p->explored_out += explored;
    if (p->explore_listed || pm->nexplore_keys >= PAGEMAP_EXPLORE_MAX_KEYS)
        return 0;
    if (pm->nexplore_keys == pm->capexplore_keys) {
        size_t cap = pm->capexplore_keys ? pm->capexplore_keys * 2 : 64;
        char **v = realloc(pm->explore_keys, cap * sizeof(*v));
        if (v == NULL)
            return HERALD_ENOMEM;
        pm->explore_keys = v;
        pm->capexplore_keys = cap;
    }
    if ((pm->explore_keys[pm->nexplore_keys] = pm_dup(p->h.key)) == NULL)
        return HERALD_ENOMEM;
    pm->nexplore_keys++;
    p->explore_listed = true;
    return 0;
}

static int explore(pagemap_t *pm, pm_page_t *p, double share, const pm_edge_t **cand, size_t *nc,
                   const pagemap_verdict_t *verdicts, pagemap_plan_t *out)
{
    if (!(share > 0))
        return 0;
    p->plans++;
    if (floor((double)p->plans * share) == floor((double)(p->plans - 1) * share))
        return explore_note(pm, p, false);
    explore_pick_t *picks = malloc((*nc ? *nc : 1) * sizeof(*picks));
    if (picks == NULL)
        return HERALD_ENOMEM;
    size_t np = 0;
    for (size_t i = 0; i < *nc; i++)
        if (verdicts[i] != PAGEMAP_VERDICT_PINNED)
            picks[np++] = (explore_pick_t){cand[i], pm_hash(cand[i]->asset->h.key)};
    size_t want = np >= PAGEMAP_EXPLORE_TWO_FROM ? 2 : 1;
    if (np < want) {
        free(picks);
        return explore_note(pm, p, false);
    }
    qsort(picks, np, sizeof(*picks), cmp_pick);
    size_t start = 0;
    while (start < np && picks[start].h <= p->explore_cursor)
        start++;
    out->held = calloc(want, sizeof(*out->held));
    if (out->held == NULL) {
        free(picks);
        return HERALD_ENOMEM;
    }
    for (size_t k = 0; k < want; k++) {
        const explore_pick_t *pk = &picks[(start + k) % np];
        if ((out->held[out->nheld] = pm_dup(pk->e->asset->h.key)) == NULL) {
            free(picks);
            return HERALD_ENOMEM;
        }
        out->nheld++;
        p->explore_cursor = pk->h;
        for (size_t i = 0; i < *nc; i++) {
            if (cand[i] == pk->e) {
                cand[i] = cand[--*nc];
                break;
            }
        }
    }
    p->explored++;
    free(picks);
    return explore_note(pm, p, true);
}

void pagemap_explore_track(pagemap_t *pm, bool on)
{
    if (pm == NULL)
        return;
    pthread_mutex_lock(&pm->lock);
    pm->explore_track = on;
    if (!on) {
        for (size_t i = 0; i < pm->nexplore_keys; i++) {
            pm_page_t *p = pm_page_find(pm, pm->explore_keys[i]);
            if (p != NULL)
                p->plans_out = p->explored_out = 0, p->explore_listed = false;
            free(pm->explore_keys[i]);
        }
        pm->nexplore_keys = 0;
    }
    pthread_mutex_unlock(&pm->lock);
}

int pagemap_explore_drain(pagemap_t *pm, int (*cb)(void *ctx, const pagemap_explore_delta_t *d),
                          void *ctx)
{
    if (pm == NULL || cb == NULL)
        return HERALD_EINVAL;
    pthread_mutex_lock(&pm->lock);
    int rc = 0;
    for (size_t i = 0; i < pm->nexplore_keys; i++) {
        pm_page_t *p = pm_page_find(pm, pm->explore_keys[i]);
        if (p != NULL) {
            pagemap_explore_delta_t d = {p->h.key, p->plans_out, p->explored_out,
                                         p->explore_cursor};
            if (rc == 0 && p->plans_out > 0)
                rc = cb(ctx, &d);
            p->plans_out = p->explored_out = 0;
            p->explore_listed = false;
        }
        free(pm->explore_keys[i]);
    }
    pm->nexplore_keys = 0;
    pthread_mutex_unlock(&pm->lock);
    return rc;
}

int pagemap_explore_add(pagemap_t *pm, const pagemap_explore_delta_t *d)
{
    if (pm == NULL || d == NULL || d->key == NULL || d->explored > d->plans)
        return HERALD_EINVAL;
    pthread_mutex_lock(&pm->lock);
    pm_page_t *p = pm_page_find(pm, d->key);
    if (p != NULL) {
        p->plans += d->plans;
        p->explored += d->explored;
        if (d->explored > 0)
            p->explore_cursor = d->cursor;
    }
    pthread_mutex_unlock(&pm->lock);
    return p != NULL ? 0 : HERALD_ENOTFOUND;
}

static int build_plan(pagemap_t *pm, pm_page_t *p, const char *authority,
                      const pagemap_plan_opts_t *opts, double think_ms, pagemap_plan_t *out)
{
    if (p->n == 0)
        return 0;
    const pm_edge_t **cand = malloc(p->n * sizeof(*cand));
    pagemap_verdict_t *verdicts = malloc(p->n * sizeof(*verdicts));
    if (cand == NULL || verdicts == NULL) {
        free(cand);
        free(verdicts);
        return HERALD_ENOMEM;
    }
    size_t nc = 0, cap = 0;
    int rc = 0;
    for (size_t i = 0; i < p->n && rc == 0; i++) {
        const pm_edge_t *e = &p->edges[i];
        const pm_asset_t *a = e->asset;
        pagemap_verdict_t v = pm_edge_verdict(e, p->is_template, opts->min_confidence, NULL);
        if (!planned(v))
            continue;
        if (e->kind == PAGEMAP_KIND_PRECONNECT || !pm_same_authority(a->url, authority)) {
            rc = plan_add_origin(out, a->url, pm_origin_len(a->url));
            continue;
        }
        cand[nc] = e;
        verdicts[nc++] = v;
    }
    if (rc == 0) {
        nc = keep_one_per_group(cand, nc);
        /* verdicts[] is indexed like cand[]: recompute after the compaction */
        for (size_t i = 0; i < nc; i++)
            verdicts[i] = pm_edge_verdict(cand[i], p->is_template, opts->min_confidence, NULL);
        rc = explore(pm, p, opts->explore, cand, &nc, verdicts, out);
    }
    qsort(cand, nc, sizeof(*cand), pm_cmp_edge_plan);
    for (size_t i = 0; i < nc && rc == 0; i++) {
        const pm_edge_t *e = cand[i];
        const pm_asset_t *a = e->asset;
        pagemap_verdict_t v = pm_edge_verdict(e, p->is_template, opts->min_confidence, NULL);
        if (plan_has(out, a->h.key))
            continue;
        if (status_ok(a->status)) {
            if (asset_deliverable(a, e, think_ms))
                rc = plan_push_item(out, &cap, a, e, v, false, think_ms);
            continue;
        }
        if (!is_redirect_status(a->status) || a->location == NULL)
            continue;
        const pm_asset_t *t = pm_asset_find(pm, a->location);
        if (t == NULL || t == a || !status_ok(t->status) || !asset_deliverable(t, e, think_ms) ||
            !pm_same_authority(t->url, authority))
            continue;
        const pm_edge_t *te = pm_edge_find(p, t);
        if (te != NULL && te->state == PAGEMAP_EDGE_BANNED)
            continue;
        rc = plan_push_item(out, &cap, a, e, v, true, think_ms);
        if (rc == 0 && !plan_has(out, t->h.key))
            rc = plan_push_item(out, &cap, t, te ? te : e, v, false, think_ms);
    }
    free(cand);
    free(verdicts);
    return rc;
}

int pagemap_plan(pagemap_t *pm, const char *page_key, const char *template_key,
                 const char *authority, int64_t now_ms, const pagemap_plan_opts_t *opts,
                 pagemap_plan_t *out)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (pm == NULL || page_key == NULL || out == NULL)
        return HERALD_EINVAL;
    pagemap_plan_opts_t o = {PAGEMAP_DEFAULT_MIN_CONFIDENCE, 0};
    if (opts != NULL)
        o = *opts;
    out->think_ms = -1;
    char *derived = NULL;
    if (authority == NULL) { /* a page key starts with its authority */
        if ((derived = pm_dupn(page_key, strcspn(page_key, "/?#"))) == NULL)
            return HERALD_ENOMEM;
        authority = derived;
    }
    pthread_mutex_lock(&pm->lock);
    int rc = 0;
    pm_page_t *p = pm_page_find(pm, page_key);
    pm_page_t *t = template_key ? pm_page_find(pm, template_key) : NULL;
    if (p != NULL) {
        pm_lru_touch(pm, p);
        out->visits_total = p->visits_total;
        out->bytes_pushed = p->bytes_pushed;
        out->hints_sent = p->hints_sent;
        out->think_ms = p->think;
        out->page_set_cookie = p->set_cookie;
        if (p->status == 0 || (p->status >= 200 && p->status <= 299)) {
            rc = build_plan(pm, p, authority, &o, p->think, out);
            if (rc == 0 && (out->n > 0 || out->nheld > 0))
                out->source = PAGEMAP_PLAN_PAGE;
        }
    }
    if (rc == 0 && out->source == PAGEMAP_PLAN_NONE && t != NULL && t != p) {
        pm_lru_touch(pm, t);
        pagemap_plan_t tmp = {0};
        rc = build_plan(pm, t, authority, &o, p != NULL && p->think >= 0 ? p->think : t->think,
                        &tmp);
        if (rc == 0 && tmp.n > 0) {
            pagemap_plan_t keep = *out;
            *out = tmp;
            out->visits_total = keep.visits_total;
            out->bytes_pushed = keep.bytes_pushed;
            out->hints_sent = keep.hints_sent;
            out->think_ms = keep.think_ms >= 0 ? keep.think_ms : t->think;
            out->page_set_cookie = p != NULL ? keep.page_set_cookie : t->set_cookie;
            out->source = PAGEMAP_PLAN_TEMPLATE;
            keep.n = 0;
            keep.items = NULL; /* an empty page plan: only its lists remain to free */
            pagemap_plan_dispose(&keep);
        } else {
            pagemap_plan_dispose(&tmp);
        }
    }
    (void)now_ms;
    pthread_mutex_unlock(&pm->lock);
    free(derived);
    if (rc != 0)
        pagemap_plan_dispose(out);
    return rc;
}
