/* One page visit's evidence (see visit.h). */
#include "visit.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "speculation.h"
#include "template.h"
#include "herald/error.h"

/** One asset of a visit, with the facts of its response when it passed through. */
typedef struct item {
    char *url, *key;
    pagemap_kind_t kind;
    char as[PAGEMAP_AS_MAX + 1];
    pagemap_cors_t cors;
    unsigned order, sources;
    uint32_t group;
    bool blocking, strong;
    bool kind_sure;     /* kind from Sec-Fetch-Dest */
    bool fetch_pending; /* requested as a follow-up, response not yet served */
    bool conditional, skipped, cancelled, chased;
    bool has_meta;
    pagemap_asset_meta_t meta; /* strings malloc'd, owned by the item */
} item_t;

struct visit {
    int refs;
    visit_state_t state;
    char *url, *page_key, *template_key, *authority, *client;
    uint64_t t_ms;
    bool chasing;
    bool authorized, multiplexed, cookie, counts, counts_template;
    char *from_key, *from_template; /* the transition's source page, NULL none */
    bool dormant;                   /* a prefetch not activated yet */
    bool nav_from, nav_pair, nav_tfrom, nav_tpair, nav_done;
    int status;
    double think_ms;
    uint64_t html_size;
    bool head_seen, is_html, set_cookie;
    bool page_done, failed;
    bool html_scanned, css_scanned, browser, sampled, pushes_used;
    unsigned holds, chases;
    bool have_digest;
    digest_t digest;
    uint64_t validator;
    size_t n_done; /* items[0, n_done) are committed */
    unsigned next_order;
    item_t *items;
    size_t n, cap;
};

/* strdup through malloc, so allocation-failure tests reach it. */
static char *dup(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    return c ? memcpy(c, s, n) : NULL;
}

static void meta_dispose(pagemap_asset_meta_t *m)
{
    free((char *)m->content_type);
    free((char *)m->etag);
    free((char *)m->last_modified);
    free((char *)m->location);
    memset(m, 0, sizeof(*m));
}

/* A copy of m whose strings are the copy's own; false on ENOMEM (out zeroed). */
static bool meta_copy(const pagemap_asset_meta_t *m, pagemap_asset_meta_t *out)
{
    *out = *m;
    out->content_type = dup(m->content_type);
    out->etag = dup(m->etag);
    out->last_modified = dup(m->last_modified);
    out->location = dup(m->location);
    if ((m->content_type && !out->content_type) || (m->etag && !out->etag) ||
        (m->last_modified && !out->last_modified) || (m->location && !out->location)) {
        meta_dispose(out);
        return false;
    }
    return true;
}

/* The transition's source from the Referer (visit_from_page_key); 0 or HERALD_ENOMEM. */
static int nav_source(visit_t *v, const visit_page_t *pg)
{
    if (pg->referer == NULL || pg->reload || !template_same_origin(pg->referer, pg->url) ||
        speculation_is_rules_url(pg->referer))
        return 0;
    char *from = NULL, *tmpl = NULL;
    int rc = template_url_page_key(pg->referer, &from);
    if (rc == HERALD_EINVAL || (rc == 0 && strcmp(from, pg->page_key) == 0)) {
        free(from);
        return 0; /* unusable, or the page itself */
    }
    if (rc == 0)
        rc = template_key(from, &tmpl);
    if (rc != 0) {
        free(from);
        return rc == HERALD_EINVAL ? 0 : rc;
    }
    if (strcmp(tmpl, from) == 0) {
        free(tmpl);
        tmpl = NULL;
    }
    v->from_key = from;
    v->from_template = tmpl;
    return 0;
}

int visit_create(const visit_page_t *pg, visit_t **out)
{
    if (pg == NULL || out == NULL || pg->url == NULL || pg->page_key == NULL ||
        pg->authority == NULL)
        return HERALD_EINVAL;
    visit_t *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return HERALD_ENOMEM;
    v->refs = 1;
    v->state = VISIT_OPEN;
    v->url = dup(pg->url);
    v->page_key = dup(pg->page_key);
    v->authority = dup(pg->authority);
    v->client = dup(pg->client ? pg->client : "");
    if (v->client == NULL) {
        visit_unref(v);
        return HERALD_ENOMEM;
    }
    if (pg->template_key != NULL && strcmp(pg->template_key, pg->page_key) != 0)
        v->template_key = dup(pg->template_key);
    if (!v->url || !v->page_key || !v->authority ||
        (pg->template_key && !v->template_key && strcmp(pg->template_key, pg->page_key))) {
        visit_unref(v);
        return HERALD_ENOMEM;
    }
    v->t_ms = pg->t_ms;
    v->authorized = pg->authorized;
    v->multiplexed = pg->multiplexed;
    v->cookie = pg->cookie;
    v->counts = pg->counts;
    v->counts_template = pg->counts_template;
    v->dormant = pg->prefetch;
    if (v->dormant)
        v->counts = v->counts_template = false;
    v->think_ms = -1;
    if (nav_source(v, pg) != 0) {
        visit_unref(v);
        return HERALD_ENOMEM;
    }
    *out = v;
    return 0;
}

void visit_ref(visit_t *v)
{
    v->refs++;
}

void visit_unref(visit_t *v)
{
    if (v == NULL || --v->refs > 0)
        return;
    for (size_t i = 0; i < v->n; i++) {
        free(v->items[i].url);
        free(v->items[i].key);
        meta_dispose(&v->items[i].meta);
    }
    free(v->items);
    free(v->url);
    free(v->page_key);
    free(v->template_key);
    free(v->authority);
    free(v->client);
    free(v->from_key);
    free(v->from_template);
    if (v->have_digest)
        digest_dispose(&v->digest);
    free(v);
}

visit_state_t visit_state(const visit_t *v)
{
    return v->state;
}

void visit_set_state(visit_t *v, visit_state_t to)
{
    if (!(to > v->state))
        abort(); /* a visit never goes back */
    v->state = to;
}

const char *visit_url(const visit_t *v)
{
    return v->url;
}
const char *visit_page_key(const visit_t *v)
{
    return v->page_key;
}
const char *visit_template_key(const visit_t *v)
{
    return v->template_key;
}
const char *visit_client(const visit_t *v)
{
    return v->client;
}
const char *visit_authority(const visit_t *v)
{
    return v->authority;
}
uint64_t visit_started(const visit_t *v)
{
    return v->t_ms;
}
bool visit_authorized(const visit_t *v)
{
    return v->authorized;
}
const char *visit_from_page_key(const visit_t *v)
{
    return v->from_key;
}
const char *visit_from_template_key(const visit_t *v)
{
    return v->from_template;
}

void visit_set_nav_counts(visit_t *v, bool from, bool pair, bool template_from, bool template_pair)
{
    v->nav_from = from;
    v->nav_pair = pair;
    v->nav_tfrom = template_from;
    v->nav_tpair = template_pair;
}

bool visit_dormant(const visit_t *v)
{
    return v->dormant;
}

void visit_activate(visit_t *v, bool counts, bool counts_template)
{
    if (!v->dormant)
        return;
    v->dormant = false;
    v->counts = counts;
    v->counts_template = counts_template;
}

void visit_set_digest(visit_t *v, digest_t *d)
{
    if (v->have_digest)
        digest_dispose(&v->digest);
    v->digest = *d;
    v->have_digest = true;
    memset(d, 0, sizeof(*d));
}

void visit_page_head(visit_t *v, int status, bool is_html, double think_ms, bool set_cookie)
{
    v->head_seen = true;
    v->status = status;
    v->is_html = is_html;
    v->think_ms = think_ms;
    v->set_cookie = set_cookie;
}

void visit_page_end(visit_t *v, bool ok, uint64_t html_size)
{
    if (!ok)
        v->failed = true;
    else
        v->html_size = html_size;
    v->page_done = true;
}

void visit_set_validator(visit_t *v, uint64_t validator)
{
    v->validator = validator;
}

bool visit_not_html(const visit_t *v)
{
    return v->head_seen && !v->is_html;
}

bool visit_page_done(const visit_t *v)
{
    return v->page_done;
}

void visit_hold(visit_t *v)
{
    v->holds++;
}

void visit_release(visit_t *v)
{
    if (v->holds == 0)
        abort();
    v->holds--;
}

bool visit_idle(const visit_t *v)
{
    return v->page_done && v->holds == 0;
}

bool visit_ready(const visit_t *v)
{
    return v->state == VISIT_EXPIRED && visit_idle(v);
}

bool visit_sampled(const visit_t *v)
{
    return v->sampled;
}

void visit_set_sampled(visit_t *v)
{
    v->sampled = true;
}

bool visit_chasing(const visit_t *v)
{
    return v->chasing;
}

void visit_set_chasing(visit_t *v, bool on)
{
    v->chasing = on;
}

/* ---- items ---- */

static item_t *find(const visit_t *v, const char *key)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->items[i].key, key) == 0)
            return &v->items[i];
    return NULL;
}

static void set_as(item_t *it, const char *as)
{
    it->as[0] = '\0';
    if (as == NULL)
        as = pagemap_kind_as(it->kind);
    if (as != NULL) {
        strncpy(it->as, as, PAGEMAP_AS_MAX);
        it->as[PAGEMAP_AS_MAX] = '\0';
    }
}

/* A guess of how the browser fetches a kind, before discovery says better. */
static void describe_guess(item_t *it, pagemap_kind_t kind)
{
    it->kind = kind;
    set_as(it, NULL);
    it->cors = kind == PAGEMAP_KIND_FONT ? PAGEMAP_CORS_ANONYMOUS : PAGEMAP_CORS_NONE;
    it->blocking = kind == PAGEMAP_KIND_STYLE;
}

/*
 * The item for key, created if new; *rc gets HERALD_ENOMEM when it could not
 * be made. NULL (rc 0) when the visit is full, or committed unless `late`
 * (discovery in a stylesheet herald fetched itself after the commit).
 */
static item_t *item_get(visit_t *v, const char *url, const char *key, pagemap_kind_t kind,
                        unsigned order, bool late, int *rc)
{
    *rc = 0;
    if (v->state == VISIT_COMMITTED && !(late && v->chasing))
        return NULL;
    item_t *it = find(v, key);
    if (it != NULL) {
        if (order < it->order)
            it->order = order;
        return it;
    }
    if (v->n == VISIT_MAX_ITEMS)
        return NULL;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        item_t *items = realloc(v->items, cap * sizeof(*items));
        if (items == NULL) {
            *rc = HERALD_ENOMEM;
            return NULL;
        }
        v->items = items;
        v->cap = cap;
    }
    it = &v->items[v->n];
    memset(it, 0, sizeof(*it));
    it->url = dup(url);
    it->key = dup(key);
    if (it->url == NULL || it->key == NULL) {
        free(it->url);
        free(it->key);
        *rc = HERALD_ENOMEM;
        return NULL;
    }
    v->n++;
    it->order = order;
    describe_guess(it, kind);
    return it;
}

int visit_found(visit_t *v, const visit_found_t *f, unsigned source)
{
    unsigned base = source == PAGEMAP_SRC_CSS    ? VISIT_ORDER_CSS
                    : source == PAGEMAP_SRC_LINK ? VISIT_ORDER_LINK
                                                 : 0;
    int rc;
    item_t *it =
        item_get(v, f->url, f->key, f->kind, base + f->order, source == PAGEMAP_SRC_CSS, &rc);
    if (it == NULL)
        return rc;
    bool first = (it->sources & PAGEMAP_SRC_DISCOVERY) == 0;
    if (first) {
        /* discovery knows the kind and fetch mode better than a follow-up guess */
        it->kind = f->kind;
        set_as(it, f->as);
        it->cors = f->crossorigin;
        it->blocking = f->blocking;
        it->group = f->group;
        it->strong = f->strong;
    } else {
        it->blocking |= f->blocking;
        it->strong |= f->strong;
        if (f->group == 0)
            it->group = 0; /* also named on its own: not only an alternate */
    }
    it->sources |= source;
    return 0;
}

void visit_scanned(visit_t *v, unsigned source)
{
    if (source == PAGEMAP_SRC_HTML)
        v->html_scanned = true;
    else if (source == PAGEMAP_SRC_CSS)
        v->css_scanned = true;
}

int visit_fetch(visit_t *v, const visit_fetch_t *f)
{
    int rc;
    item_t *it =
        item_get(v, f->url, f->key, f->kind, VISIT_ORDER_FOLLOWUP + v->next_order, false, &rc);
    if (it == NULL)
        return rc;
    v->next_order++;
    if (!(it->sources & PAGEMAP_SRC_FOLLOWUP))
        it->fetch_pending = true;
    it->sources |= PAGEMAP_SRC_FOLLOWUP;
    it->conditional |= f->conditional;
    if (f->kind_sure && !(it->sources & PAGEMAP_SRC_DISCOVERY)) {
        describe_guess(it, f->kind);
        it->kind_sure = true;
    }
    v->browser |= f->browser;
    return 0;
}

int visit_fetch_served(visit_t *v, const char *key, const pagemap_asset_meta_t *m)
{
    item_t *it = find(v, key);
    if (it == NULL || v->state == VISIT_COMMITTED)
        return 0;
    it->fetch_pending = false;
    if (m == NULL)
        return 0;
    if (m->status == 304)
        it->conditional = true;
    pagemap_asset_meta_t copy;
    if (!meta_copy(m, &copy))
        return HERALD_ENOMEM;
    meta_dispose(&it->meta);
    it->meta = copy;
    it->has_meta = m->status != 304;
    if (!it->kind_sure && (it->sources & ~(unsigned)(PAGEMAP_SRC_FOLLOWUP | PAGEMAP_SRC_PUSH |
                                                     PAGEMAP_SRC_HINT)) == 0) {
        pagemap_kind_t k = pagemap_kind_guess(NULL, m->content_type, it->key);
        if (k != PAGEMAP_KIND_OTHER)
            describe_guess(it, k);
    }
    return 0;
}

int visit_delivered(visit_t *v, const char *url, const char *key, visit_delivery_t what)
{
    if (v->state == VISIT_COMMITTED)
        return 0;
    int rc;
    if (what == VISIT_PUSH_COMPLETED) {
        v->pushes_used = true;
        return 0;
    }
    item_t *it = find(v, key);
    if (it == NULL && what != VISIT_PUSH_CANCELLED) {
        it = item_get(v, url, key, pagemap_kind_guess(NULL, NULL, key),
                      VISIT_ORDER_FOLLOWUP + v->next_order++, false, &rc);
        if (it == NULL)
            return rc;
    }
    if (it == NULL)
        return 0;
    switch (what) {
    case VISIT_PUSHED:
        it->sources |= PAGEMAP_SRC_PUSH;
        break;
    case VISIT_PUSH_CANCELLED:
        it->cancelled = true;
        break;
    case VISIT_PUSH_COMPLETED:
        break;
    case VISIT_HINTED:
        it->sources |= PAGEMAP_SRC_HINT;
        break;
    case VISIT_SKIPPED:
        it->skipped = true;
        break;
    }
    return 0;
}

bool visit_has(const visit_t *v, const char *key, unsigned sources)
{
    const item_t *it = find(v, key);
    return it != NULL && (it->sources & sources) != 0;
}

/* Length of "scheme://authority" of an absolute URL, 0 when not absolute. */
static size_t origin_len(const char *url)
{
    const char *p = strstr(url, "://");
    if (p == NULL || p != url + strcspn(url, ":/?#"))
        return 0;
    return (size_t)(p + 3 - url) + strcspn(p + 3, "/?#");
}

bool visit_next_chase(visit_t *v, const char **url, const char **key)
{
    if (!v->sampled || v->failed || !v->is_html)
        return false;
    size_t ol = origin_len(v->url);
    for (size_t i = 0; i < v->n && v->chases < VISIT_MAX_CHASES; i++) {
        item_t *it = &v->items[i];
        if (it->kind != PAGEMAP_KIND_STYLE || !(it->sources & PAGEMAP_SRC_CSS) || it->chased ||
            (it->sources & (PAGEMAP_SRC_FOLLOWUP | PAGEMAP_SRC_PUSH)))
            continue;
        if (ol == 0 || origin_len(it->key) != ol || strncasecmp(it->key, v->url, ol) != 0)
            continue;
        it->chased = true;
        v->chases++;
        *url = it->url;
        *key = it->key;
        return true;
    }
    return false;
}

void visit_restrict(visit_t *v, bool page, bool tpl)
{
    v->counts = v->counts && page;
    v->counts_template = v->counts_template && tpl;
}

/* The page's navigation: its response facts and, when it counts, its transition. */
static int commit_nav(const visit_t *v, pagemap_t *pm, int64_t wall_ms)
{
    if (!v->head_seen || v->failed)
        return 0;
    pagemap_nav_t n = {.page_key = v->page_key,
                       .url = v->url,
                       .from_page_key = v->from_key,
                       .from_template_key = v->from_template,
                       .client = v->client,
                       .now_ms = wall_ms,
                       .status = v->status,
                       .html = v->is_html,
                       .set_cookie = v->set_cookie,
                       .authorized = v->authorized,
                       .count_from = v->nav_from && !v->dormant,
                       .count_pair = v->nav_pair && !v->dormant,
                       .count_template_from = v->nav_tfrom && !v->dormant,
                       .count_template_pair = v->nav_tpair && !v->dormant};
    return pagemap_commit_navigation(pm, &n);
}

int visit_commit(visit_t *v, pagemap_t *pm, int64_t wall_ms, bool supplement)
{
    return visit_commit_tap(v, pm, wall_ms, supplement, NULL);
}

int visit_commit_tap(visit_t *v, pagemap_t *pm, int64_t wall_ms, bool supplement,
                     const visit_tap_t *tap)
{
    int nrc = 0;
    if (!supplement && !v->nav_done) {
        v->nav_done = true;
        nrc = commit_nav(v, pm, wall_ms);
    }
    if (v->failed || !v->is_html || !v->counts)
        return nrc;
    size_t from = v->n_done;
    v->n_done = v->n;
    if (supplement && from == v->n)
        return nrc;
    pagemap_item_t *pi = calloc(v->n > from ? v->n - from : 1, sizeof(*pi));
    if (pi == NULL)
        return HERALD_ENOMEM;
    size_t n = 0;
    for (size_t i = from; i < v->n; i++) {
        const item_t *it = &v->items[i];
        unsigned src = it->sources;
        if (it->fetch_pending)
            src &= ~(unsigned)PAGEMAP_SRC_FOLLOWUP; /* requested, never served */
        if (src == 0 && !it->skipped && !it->cancelled)
            continue;
        pi[n++] = (pagemap_item_t){.url = it->url,
                                   .key = it->key,
                                   .kind = it->kind,
                                   .as = it->as[0] ? it->as : NULL,
                                   .crossorigin = it->cors,
                                   .order = it->order,
                                   .sources = src,
                                   .group = it->group,
                                   .blocking = it->blocking,
                                   .strong = it->strong,
                                   .conditional = it->conditional,
                                   /* fetched after all: the client did not have it */
                                   .skipped = it->skipped && !(src & PAGEMAP_SRC_FOLLOWUP),
                                   .push_cancelled = it->cancelled};
    }
    pagemap_visit_t pv = {.page_key = v->page_key,
                          .template_key =
                              supplement || !v->counts_template ? NULL : v->template_key,
                          .now_ms = wall_ms,
                          .think_ms = supplement ? -1 : v->think_ms,
                          .html_size = supplement ? 0 : v->html_size,
                          .status = v->status,
                          .html_scanned = v->html_scanned,
                          .css_scanned = v->css_scanned,
                          .browser = v->browser,
                          .multiplexed = v->multiplexed,
                          .pushes_used = v->pushes_used,
                          .authorized = v->authorized,
                          .page_cookie = v->cookie,
                          .page_set_cookie = v->set_cookie,
                          .validator = v->validator,
                          .digest = v->have_digest ? &v->digest : NULL,
                          .supplement = supplement,
                          .items = pi,
                          .nitems = n};
    bool defer = tap != NULL && tap->defer;
    bool held = defer && tap->visit != NULL && tap->visit(tap->ctx, &pv);
    int rc = 0;
    if (!held) {
        rc = pagemap_commit_visit(pm, &pv);
        if (rc == 0 && !defer && tap != NULL && tap->visit != NULL)
            tap->visit(tap->ctx, &pv);
    }
    free(pi);
    /* Metadata of responses seen before their edge existed (a first visit). */
    for (size_t i = from; rc == 0 && i < v->n; i++) {
        if (!v->items[i].has_meta)
            continue;
        if (held && tap->asset != NULL && tap->asset(tap->ctx, v->items[i].key, &v->items[i].meta))
            continue; /* with the held visit: applied after it */
        int orc = pagemap_observe_asset(pm, v->items[i].key, &v->items[i].meta);
        if (orc == HERALD_ENOMEM)
            rc = orc; /* ENOTFOUND: the edge was capped away; nothing to record */
        else if (orc == 0 && !held && tap != NULL && tap->asset != NULL)
            tap->asset(tap->ctx, v->items[i].key, &v->items[i].meta);
    }
    return rc ? rc : nrc;
}
