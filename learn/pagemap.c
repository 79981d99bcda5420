/*
 * The learned map's store: two chained hash tables (pages, assets) with
 * power-of-two bucket counts, an intrusive LRU list of pages, and per page a
 * small array of edges (max_assets_per_page is small, so linear scans by
 * asset pointer are cheaper than another index); caps and eviction; the
 * admin's copies, steering, dump and restore. Evidence is in
 * pagemap_evidence.c, planning in pagemap_plan.c.
 */
#include "pagemap.h"
#include "pagemap_impl.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "template.h"
#include "herald/error.h"

/* ---- small helpers ------------------------------------------------------ */

uint64_t pm_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* strdup through malloc, so allocation-failure tests reach it (glibc's strdup is internal). */
char *pm_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    return c ? memcpy(c, s, n) : NULL;
}

char *pm_dupn(const char *s, size_t len)
{
    char *c = malloc(len + 1);
    if (c == NULL)
        return NULL;
    memcpy(c, s, len);
    c[len] = '\0';
    return c;
}

char *pm_dup_or_null(const char *s)
{
    return s ? pm_dup(s) : NULL;
}

/* Replace *dst with a copy of src; false on ENOMEM (dst unchanged). */
bool pm_set_str(char **dst, const char *src)
{
    if (src == NULL) {
        free(*dst);
        *dst = NULL;
        return true;
    }
    if (*dst != NULL && strcmp(*dst, src) == 0)
        return true;
    char *c = pm_dup(src);
    if (c == NULL)
        return false;
    free(*dst);
    *dst = c;
    return true;
}

static pm_hnode_t *table_find(const pm_table_t *t, const char *key, uint64_t h)
{
    if (t->nb == 0)
        return NULL;
    for (pm_hnode_t *n = t->b[h & (t->nb - 1)]; n; n = n->next)
        if (n->hash == h && strcmp(n->key, key) == 0)
            return n;
    return NULL;
}

static int table_insert(pm_table_t *t, pm_hnode_t *node)
{
    if (t->n + 1 > t->nb) {
        size_t nb = t->nb ? t->nb * 2 : 64;
        pm_hnode_t **b = calloc(nb, sizeof(*b));
        if (b == NULL)
            return HERALD_ENOMEM;
        for (size_t i = 0; i < t->nb; i++) {
            for (pm_hnode_t *n = t->b[i], *next; n; n = next) {
                next = n->next;
                n->next = b[n->hash & (nb - 1)];
                b[n->hash & (nb - 1)] = n;
            }
        }
        free(t->b);
        t->b = b;
        t->nb = nb;
    }
    node->next = t->b[node->hash & (t->nb - 1)];
    t->b[node->hash & (t->nb - 1)] = node;
    t->n++;
    return 0;
}

static void table_remove(pm_table_t *t, pm_hnode_t *node)
{
    pm_hnode_t **pp = &t->b[node->hash & (t->nb - 1)];
    while (*pp && *pp != node)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = node->next;
        t->n--;
    }
}

/* The tables for pagemap_next.c (its targets table). */
pm_hnode_t *pm_table_find(const pm_table_t *t, const char *key, uint64_t h)
{
    return table_find(t, key, h);
}
int pm_table_insert(pm_table_t *t, pm_hnode_t *node)
{
    return table_insert(t, node);
}
void pm_table_remove(pm_table_t *t, pm_hnode_t *node)
{
    table_remove(t, node);
}

double pm_confidence(const pm_edge_t *e)
{
    return e->cn > 0 ? e->ch / e->cn : 0.0;
}

/* Criticality: CSS, blocking scripts, fonts, module/deferred scripts, images, others. */
int pm_kind_rank(pagemap_kind_t kind, bool blocking)
{
    switch (kind) {
    case PAGEMAP_KIND_STYLE:
        return 0;
    case PAGEMAP_KIND_SCRIPT:
        return blocking ? 1 : 3;
    case PAGEMAP_KIND_FONT:
        return 2;
    case PAGEMAP_KIND_MODULE:
        return 3;
    case PAGEMAP_KIND_IMAGE:
    case PAGEMAP_KIND_ICON:
        return 4;
    default:
        return 5;
    }
}

static const char *const kind_names[] = {"style", "script",   "module", "font",      "image",
                                         "icon",  "manifest", "other",  "preconnect"};

const char *pagemap_kind_name(pagemap_kind_t kind)
{
    return (unsigned)kind < PAGEMAP_KIND_COUNT_ ? kind_names[kind] : "other";
}

int pagemap_kind_parse(const char *name, pagemap_kind_t *out)
{
    for (unsigned i = 0; name && i < PAGEMAP_KIND_COUNT_; i++) {
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (pagemap_kind_t)i;
            return 0;
        }
    }
    return HERALD_EINVAL;
}

/* Case-insensitive: does v contain t? */
static bool has_word(const char *v, const char *t)
{
    size_t n = strlen(t);
    for (const char *p = v; *p; p++)
        if (strncasecmp(p, t, n) == 0)
            return true;
    return false;
}

static pagemap_kind_t kind_of_extension(const char *url)
{
    size_t end = strcspn(url, "?#");
    const char *dot = NULL;
    for (size_t i = 0; i < end; i++) {
        if (url[i] == '.')
            dot = url + i;
        else if (url[i] == '/')
            dot = NULL;
    }
    if (dot == NULL)
        return PAGEMAP_KIND_OTHER;
    size_t len = (size_t)(url + end - dot - 1);
    static const struct {
        const char *ext;
        pagemap_kind_t kind;
    } map[] = {{"css", PAGEMAP_KIND_STYLE},  {"js", PAGEMAP_KIND_SCRIPT},
               {"mjs", PAGEMAP_KIND_MODULE}, {"woff2", PAGEMAP_KIND_FONT},
               {"woff", PAGEMAP_KIND_FONT},  {"ttf", PAGEMAP_KIND_FONT},
               {"otf", PAGEMAP_KIND_FONT},   {"png", PAGEMAP_KIND_IMAGE},
               {"jpg", PAGEMAP_KIND_IMAGE},  {"jpeg", PAGEMAP_KIND_IMAGE},
               {"gif", PAGEMAP_KIND_IMAGE},  {"webp", PAGEMAP_KIND_IMAGE},
               {"avif", PAGEMAP_KIND_IMAGE}, {"svg", PAGEMAP_KIND_IMAGE},
               {"ico", PAGEMAP_KIND_ICON},   {"webmanifest", PAGEMAP_KIND_MANIFEST}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strlen(map[i].ext) == len && strncasecmp(dot + 1, map[i].ext, len) == 0)
            return map[i].kind;
    return PAGEMAP_KIND_OTHER;
}

pagemap_kind_t pagemap_kind_guess(const char *dest, const char *ct, const char *url)
{
    if (dest != NULL) {
        static const struct {
            const char *dest;
            pagemap_kind_t kind;
        } map[] = {{"style", PAGEMAP_KIND_STYLE},
                   {"script", PAGEMAP_KIND_SCRIPT},
                   {"font", PAGEMAP_KIND_FONT},
                   {"image", PAGEMAP_KIND_IMAGE},
                   {"manifest", PAGEMAP_KIND_MANIFEST}};
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
            if (strcasecmp(dest, map[i].dest) == 0)
                return map[i].kind;
    }
    if (ct != NULL) {
        if (strncasecmp(ct, "text/css", 8) == 0)
            return PAGEMAP_KIND_STYLE;
        if (has_word(ct, "javascript") || has_word(ct, "ecmascript"))
            return PAGEMAP_KIND_SCRIPT;
        if (strncasecmp(ct, "font/", 5) == 0 || has_word(ct, "font-woff") ||
            has_word(ct, "opentype") || has_word(ct, "truetype"))
            return PAGEMAP_KIND_FONT;
        if (strncasecmp(ct, "image/", 6) == 0)
            return PAGEMAP_KIND_IMAGE;
        if (has_word(ct, "manifest+json"))
            return PAGEMAP_KIND_MANIFEST;
    }
    return url != NULL ? kind_of_extension(url) : PAGEMAP_KIND_OTHER;
}

const char *pagemap_kind_as(pagemap_kind_t kind)
{
    switch (kind) {
    case PAGEMAP_KIND_STYLE:
        return "style";
    case PAGEMAP_KIND_SCRIPT:
    case PAGEMAP_KIND_MODULE:
        return "script";
    case PAGEMAP_KIND_FONT:
        return "font";
    case PAGEMAP_KIND_IMAGE:
    case PAGEMAP_KIND_ICON:
        return "image";
    case PAGEMAP_KIND_MANIFEST:
        return "manifest";
    case PAGEMAP_KIND_PRECONNECT:
        return NULL;
    default:
        return "fetch";
    }
}

/* host[:port] of an absolute URL; a URL without "://" has none (len 0). */
static const char *url_authority(const char *url, size_t *len)
{
    const char *p = strstr(url, "://");
    if (p == NULL || p != url + strcspn(url, ":/?#")) {
        *len = 0;
        return NULL;
    }
    p += 3;
    *len = strcspn(p, "/?#");
    return p;
}

/* Length of "scheme://authority" of an absolute URL, 0 when not absolute. */
size_t pm_origin_len(const char *url)
{
    size_t alen;
    const char *a = url_authority(url, &alen);
    return a ? (size_t)(a - url) + alen : 0;
}

bool pm_same_authority(const char *url, const char *authority)
{
    size_t alen;
    const char *a = url_authority(url, &alen);
    if (a == NULL || authority == NULL)
        return true; /* relative: the page's own */
    return strlen(authority) == alen && strncasecmp(a, authority, alen) == 0;
}

/* ---- assets ------------------------------------------------------------ */

static void asset_free(pm_asset_t *a)
{
    free(a->h.key);
    free(a->url);
    free(a->content_type);
    free(a->etag);
    free(a->last_modified);
    free(a->location);
    free(a);
}

pm_asset_t *pm_asset_find(pagemap_t *pm, const char *key)
{
    return (pm_asset_t *)table_find(&pm->assets, key, pm_hash(key));
}

/* The asset for key (created with refs 0 when missing), or NULL on ENOMEM. */
pm_asset_t *pm_asset_get(pagemap_t *pm, const char *key, const char *url)
{
    uint64_t h = pm_hash(key);
    pm_asset_t *a = (pm_asset_t *)table_find(&pm->assets, key, h);
    if (a != NULL)
        return a;
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->h.hash = h;
    a->h.key = pm_dup(key);
    a->url = pm_dup(url ? url : key);
    a->fresh_ms = -1;
    if (a->h.key == NULL || a->url == NULL || table_insert(&pm->assets, &a->h) != 0) {
        asset_free(a);
        return NULL;
    }
    return a;
}

static void asset_release(pagemap_t *pm, pm_asset_t *a)
{
    if (a != NULL && --a->refs == 0) {
        table_remove(&pm->assets, &a->h);
        asset_free(a);
    }
}

/* Drop an asset that got no edge after pm_asset_get (refs still 0). */
void pm_asset_drop_unused(pagemap_t *pm, pm_asset_t *a)
{
    if (a != NULL && a->refs == 0) {
        table_remove(&pm->assets, &a->h);
        asset_free(a);
    }
}

/* ---- pages and edges --------------------------------------------------- */

static void lru_unlink(pagemap_t *pm, pm_page_t *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        pm->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        pm->tail = p->prev;
    p->prev = p->next = NULL;
}

static void lru_push_front(pagemap_t *pm, pm_page_t *p)
{
    p->prev = NULL;
    p->next = pm->head;
    if (pm->head)
        pm->head->prev = p;
    pm->head = p;
    if (pm->tail == NULL)
        pm->tail = p;
}

void pm_lru_touch(pagemap_t *pm, pm_page_t *p)
{
    if (pm->head != p) {
        lru_unlink(pm, p);
        lru_push_front(pm, p);
    }
}

void pm_count_edge(pagemap_t *pm, const pm_edge_t *e, int dir)
{
    pm->nedges += (size_t)dir;
    if (e->state == PAGEMAP_EDGE_PINNED)
        pm->npinned += (size_t)dir;
    else if (e->state == PAGEMAP_EDGE_BANNED)
        pm->nbanned += (size_t)dir;
}

void pm_set_template(pagemap_t *pm, pm_page_t *p, bool is_template)
{
    if (p->is_template != is_template)
        pm->ntemplates += is_template ? 1 : (size_t)-1;
    p->is_template = is_template;
}

static void edge_remove_at(pagemap_t *pm, pm_page_t *p, size_t i)
{
    pm_edge_t *e = &p->edges[i];
    pm_count_edge(pm, e, -1);
    if (e->state == PAGEMAP_EDGE_LEARNED)
        p->nlearned--;
    asset_release(pm, e->asset);
    p->edges[i] = p->edges[p->n - 1];
    p->n--;
}

static size_t page_overrides(const pm_page_t *p)
{
    return p->n - p->nlearned + pm_next_overrides(p);
}

static void page_free(pagemap_t *pm, pm_page_t *p)
{
    while (p->n > 0)
        edge_remove_at(pm, p, p->n - 1);
    pm_next_clear(pm, p, false);
    pm_set_template(pm, p, false);
    free(p->edges);
    free(p->nexts);
    free(p->h.key);
    free(p->template_key);
    free(p);
}

static void page_remove(pagemap_t *pm, pm_page_t *p)
{
    table_remove(&pm->pages, &p->h);
    lru_unlink(pm, p);
    page_free(pm, p);
}

void pm_page_remove(pagemap_t *pm, pm_page_t *p)
{
    page_remove(pm, p);
}

pm_page_t *pm_page_find(pagemap_t *pm, const char *key)
{
    return (pm_page_t *)table_find(&pm->pages, key, pm_hash(key));
}

/* Evict least recently used pages until one more fits; pages with pins or bans stay. */
static void pages_make_room(pagemap_t *pm)
{
    pm_page_t *p = pm->tail;
    while (pm->pages.n >= pm->cfg.max_pages && p != NULL) {
        pm_page_t *prev = p->prev;
        if (page_overrides(p) == 0) {
            page_remove(pm, p);
            pm->pages_evicted++;
        }
        p = prev;
    }
}

pm_page_t *pm_page_get(pagemap_t *pm, const char *key, bool *created)
{
    uint64_t h = pm_hash(key);
    pm_page_t *p = (pm_page_t *)table_find(&pm->pages, key, h);
    if (created)
        *created = false;
    if (p != NULL)
        return p;
    pages_make_room(pm);
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->h.hash = h;
    p->h.key = pm_dup(key);
    p->think = -1;
    if (p->h.key == NULL || table_insert(&pm->pages, &p->h) != 0) {
        free(p->h.key);
        free(p);
        return NULL;
    }
    lru_push_front(pm, p);
    if (created)
        *created = true;
    return p;
}

pm_edge_t *pm_edge_find(pm_page_t *p, const pm_asset_t *a)
{
    for (size_t i = 0; a && i < p->n; i++)
        if (p->edges[i].asset == a)
            return &p->edges[i];
    return NULL;
}

/* How much an edge is worth keeping: superseded and rejected ones least,
 * then by clean confidence (discovery alone: strong as sure, weak as a
 * maybe). */
static double keep_score(const pm_edge_t *e)
{
    if (e->superseded)
        return -2;
    if (e->rejected)
        return -1;
    if (e->cn > 0)
        return pm_confidence(e);
    return e->strong ? 1.0 : 0.25;
}

/* Is a worse than b for keeping (evicted first)? */
static bool edge_worse(const pm_edge_t *a, const pm_edge_t *b)
{
    double ca = keep_score(a), cb = keep_score(b);
    if (ca != cb)
        return ca < cb;
    if (a->last_seen != b->last_seen)
        return a->last_seen < b->last_seen;
    int ra = pm_kind_rank(a->kind, a->blocking), rb = pm_kind_rank(b->kind, b->blocking);
    if (ra != rb)
        return ra > rb;
    return a->order > b->order;
}

static void evict_worst_learned(pagemap_t *pm, pm_page_t *p)
{
    size_t worst = p->n;
    for (size_t i = 0; i < p->n; i++) {
        if (p->edges[i].state != PAGEMAP_EDGE_LEARNED)
            continue;
        if (worst == p->n || edge_worse(&p->edges[i], &p->edges[worst]))
            worst = i;
    }
    if (worst < p->n) {
        edge_remove_at(pm, p, worst);
        pm->edges_evicted++;
    }
}

/*
 * Append a zeroed edge to asset a (taking a reference); a learned edge first
 * makes room under the cap. NULL on ENOMEM (a untouched).
 */
pm_edge_t *pm_edge_add(pagemap_t *pm, pm_page_t *p, pm_asset_t *a, pagemap_edge_state_t state)
{
    if (state == PAGEMAP_EDGE_LEARNED)
        while (p->nlearned >= pm->cfg.max_assets_per_page && p->nlearned > 0)
            evict_worst_learned(pm, p);
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        pm_edge_t *v = realloc(p->edges, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        p->edges = v;
        p->cap = cap;
    }
    pm_edge_t *e = &p->edges[p->n++];
    memset(e, 0, sizeof(*e));
    e->asset = a;
    e->state = state;
    e->volatile_url = template_is_volatile_url(a->url) || template_is_volatile_url(a->h.key);
    a->refs++;
    if (state == PAGEMAP_EDGE_LEARNED)
        p->nlearned++;
    pm_count_edge(pm, e, 1);
    return e;
}

static void edge_set_state(pagemap_t *pm, pm_page_t *p, pm_edge_t *e, pagemap_edge_state_t state)
{
    if (e->state == PAGEMAP_EDGE_LEARNED && state != PAGEMAP_EDGE_LEARNED)
        p->nlearned--;
    else if (e->state != PAGEMAP_EDGE_LEARNED && state == PAGEMAP_EDGE_LEARNED)
        p->nlearned++;
    pm_count_edge(pm, e, -1);
    e->state = state;
    pm_count_edge(pm, e, 1);
}

/* ---- lifecycle --------------------------------------------------------- */

void pagemap_config_init(pagemap_config_t *cfg)
{
    cfg->max_pages = PAGEMAP_DEFAULT_MAX_PAGES;
    cfg->max_assets_per_page = PAGEMAP_DEFAULT_MAX_ASSETS_PER_PAGE;
    cfg->decay = PAGEMAP_DEFAULT_DECAY;
}

int pagemap_create(const pagemap_config_t *cfg, pagemap_t **out)
{
    pagemap_config_t c;
    if (cfg == NULL)
        pagemap_config_init(&c);
    else
        c = *cfg;
    if (out == NULL || c.max_pages < 1 || c.max_assets_per_page < 1 || !(c.decay > 0) ||
        c.decay > 1)
        return HERALD_EINVAL;
    pagemap_t *pm = calloc(1, sizeof(*pm));
    if (pm == NULL)
        return HERALD_ENOMEM;
    if (pthread_mutex_init(&pm->lock, NULL) != 0) {
        free(pm);
        return HERALD_ENOMEM;
    }
    pm->cfg = c;
    *out = pm;
    return 0;
}

static void clear_all(pagemap_t *pm)
{
    while (pm->head)
        page_remove(pm, pm->head);
}

void pagemap_destroy(pagemap_t *pm)
{
    if (pm == NULL)
        return;
    clear_all(pm);
    for (size_t i = 0; i < pm->nexplore_keys; i++)
        free(pm->explore_keys[i]);
    free(pm->explore_keys);
    free(pm->pages.b);
    free(pm->assets.b);
    free(pm->targets.b);
    pthread_mutex_destroy(&pm->lock);
    free(pm);
}

/* ---- inspection and steering ------------------------------------------- */

void pagemap_page_info_dispose(pagemap_page_info_t *p)
{
    if (p == NULL)
        return;
    free(p->key);
    free(p->template_key);
    p->key = p->template_key = NULL;
}

void pagemap_edge_info_dispose(pagemap_edge_info_t *e)
{
    if (e == NULL)
        return;
    free(e->key);
    free(e->url);
    free(e->as);
    free(e->content_type);
    free(e->etag);
    free(e->last_modified);
    free(e->location);
    e->key = e->url = e->as = e->content_type = e->etag = e->last_modified = e->location = NULL;
}

void pagemap_page_infos_free(pagemap_page_info_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        pagemap_page_info_dispose(&v[i]);
    free(v);
}

void pagemap_edge_infos_free(pagemap_edge_info_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        pagemap_edge_info_dispose(&v[i]);
    free(v);
}

static int copy_page_info(const pm_page_t *p, pagemap_page_info_t *o)
{
    memset(o, 0, sizeof(*o));
    o->key = pm_dup(p->h.key);
    o->template_key = pm_dup_or_null(p->template_key);
    if (o->key == NULL || (p->template_key && o->template_key == NULL)) {
        pagemap_page_info_dispose(o);
        return HERALD_ENOMEM;
    }
    o->is_template = p->is_template;
    o->visits = p->visits;
    o->visits_total = p->visits_total;
    o->last_visit_ms = p->last_visit;
    o->think_ms = p->think;
    o->html_size = p->html_size;
    o->status = p->status;
    o->bytes_pushed = p->bytes_pushed;
    o->hints_sent = p->hints_sent;
    o->followups_seen = p->followups_seen;
    o->set_cookie = p->set_cookie;
    o->cold_visits = p->cold_visits;
    o->followup_visits = p->fvisits;
    o->clean_total = p->clean_total;
    o->cold_total = p->cold_total;
    o->plans = p->plans;
    o->explored = p->explored;
    o->explore_cursor = p->explore_cursor;
    o->scan_validator = p->scan_validator;
    o->nedges = p->n;
    o->navs = p->navs;
    o->navs_total = p->navs_total;
    o->nnext = p->nnext;
    return 0;
}

static int copy_edge_info(const pm_edge_t *e, const pm_page_t *p, pagemap_edge_info_t *o)
{
    const pm_asset_t *a = e->asset;
    memset(o, 0, sizeof(*o));
    o->key = pm_dup(a->h.key);
    o->url = pm_dup(a->url);
    o->as = e->as[0] ? pm_dup(e->as) : NULL;
    o->content_type = pm_dup_or_null(a->content_type);
    o->etag = pm_dup_or_null(a->etag);
    o->last_modified = pm_dup_or_null(a->last_modified);
    o->location = pm_dup_or_null(a->location);
    if (!o->key || !o->url || (e->as[0] && !o->as) || (a->content_type && !o->content_type) ||
        (a->etag && !o->etag) || (a->last_modified && !o->last_modified) ||
        (a->location && !o->location)) {
        pagemap_edge_info_dispose(o);
        return HERALD_ENOMEM;
    }
    o->kind = e->kind;
    o->crossorigin = e->cors;
    o->order = e->order;
    o->sources = e->sources;
    o->group = e->group;
    o->blocking = e->blocking;
    o->volatile_url = e->volatile_url;
    o->strong = e->strong;
    o->rejected = e->rejected;
    o->superseded = e->superseded;
    o->hits = e->ch;
    o->visits = e->cn;
    o->confidence = pm_confidence(e);
    o->clean_hits = e->clean_hits;
    o->clean_misses = e->clean_misses;
    o->miss_streak = e->miss_streak;
    o->absent_streak = e->absent_streak;
    o->hit_visits = e->hit_visits;
    o->first_seen_ms = e->first_seen;
    o->last_seen_ms = e->last_seen;
    o->promised = e->promised;
    o->completed = e->completed;
    o->cancelled = e->cancelled;
    o->hinted = e->hinted;
    o->state = e->state;
    o->verdict =
        pm_edge_verdict(e, p->is_template, PAGEMAP_DEFAULT_MIN_CONFIDENCE, &o->verdict_reason);
    o->pushable = cachepolicy_pushable(a->policy, &o->unpushable_why) && !a->unpushable;
    if (a->unpushable && o->unpushable_why == NULL)
        o->unpushable_why = "a push of it came back non-200";
    o->hint = pm_hint(a, e, p->think, &o->hint_why);
    o->size = a->size;
    o->status = a->status;
    o->policy = a->policy;
    o->fresh_ms = a->fresh_ms;
    o->unpushable = a->unpushable;
    return 0;
}

static int copy_edges(const pm_page_t *p, pagemap_edge_info_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (p->n == 0)
        return 0;
    const pm_edge_t **sorted = malloc(p->n * sizeof(*sorted));
    pagemap_edge_info_t *v = calloc(p->n, sizeof(*v));
    if (sorted == NULL || v == NULL) {
        free(sorted);
        free(v);
        return HERALD_ENOMEM;
    }
    for (size_t i = 0; i < p->n; i++)
        sorted[i] = &p->edges[i];
    qsort(sorted, p->n, sizeof(*sorted), pm_cmp_edge_plan);
    for (size_t i = 0; i < p->n; i++) {
        if (copy_edge_info(sorted[i], p, &v[i]) != 0) {
            pagemap_edge_infos_free(v, i);
            free(sorted);
            return HERALD_ENOMEM;
        }
    }
    /* A planned candidate of an alternates set that another one beats. */
    for (size_t i = 0; i < p->n; i++) {
        bool ok =
            v[i].verdict == PAGEMAP_VERDICT_CONFIRMED || v[i].verdict == PAGEMAP_VERDICT_STRONG;
        for (size_t j = 0; ok && sorted[i]->group != 0 && j < p->n; j++) {
            bool other_ok = v[j].verdict == PAGEMAP_VERDICT_CONFIRMED ||
                            v[j].verdict == PAGEMAP_VERDICT_STRONG ||
                            v[j].verdict == PAGEMAP_VERDICT_PINNED;
            if (j != i && other_ok && sorted[j]->group == sorted[i]->group &&
                pm_alternate_better(sorted[j], sorted[i])) {
                v[i].verdict = PAGEMAP_VERDICT_ALTERNATE;
                v[i].verdict_reason = "another candidate of its srcset or picture is fetched more";
                ok = false;
            }
        }
    }
    free(sorted);
    *out = v;
    *n = p->n;
    return 0;
}

static int cmp_page_key(const void *a, const void *b)
{
    return strcmp((*(const pm_page_t *const *)a)->h.key, (*(const pm_page_t *const *)b)->h.key);
}

int pagemap_list(pagemap_t *pm, size_t offset, size_t limit, const char *filter,
                 pagemap_page_info_t **out, size_t *n, size_t *total)
{
    if (pm == NULL || out == NULL || n == NULL)
        return HERALD_EINVAL;
    *out = NULL;
    *n = 0;
    if (total)
        *total = 0;
    pthread_mutex_lock(&pm->lock);
    int rc = 0;
    size_t nm = 0;
    const pm_page_t **m = malloc((pm->pages.n ? pm->pages.n : 1) * sizeof(*m));
    if (m == NULL) {
        rc = HERALD_ENOMEM;
        goto out;
    }
    for (const pm_page_t *p = pm->head; p; p = p->next)
        if (filter == NULL || *filter == '\0' || strstr(p->h.key, filter) != NULL)
            m[nm++] = p;
    qsort(m, nm, sizeof(*m), cmp_page_key);
    if (total)
        *total = nm;
    size_t count = offset < nm ? nm - offset : 0;
    if (count > limit)
        count = limit;
    if (count > 0) {
        pagemap_page_info_t *v = calloc(count, sizeof(*v));
        if (v == NULL) {
            rc = HERALD_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < count; i++) {
            if (copy_page_info(m[offset + i], &v[i]) != 0) {
                pagemap_page_infos_free(v, i);
                rc = HERALD_ENOMEM;
                goto out;
            }
        }
        *out = v;
        *n = count;
    }
out:
    pthread_mutex_unlock(&pm->lock);
    free(m);
    return rc;
}

int pagemap_page_get(pagemap_t *pm, const char *page_key, pagemap_page_info_t *info,
                     pagemap_edge_info_t **edges, size_t *nedges)
{
    if (pm == NULL || page_key == NULL || info == NULL)
        return HERALD_EINVAL;
    memset(info, 0, sizeof(*info));
    if (edges && nedges) {
        *edges = NULL;
        *nedges = 0;
    }
    pthread_mutex_lock(&pm->lock);
    int rc = 0;
    const pm_page_t *p = pm_page_find(pm, page_key);
    if (p == NULL)
        rc = HERALD_ENOTFOUND;
    else if ((rc = copy_page_info(p, info)) == 0 && edges && nedges &&
             (rc = copy_edges(p, edges, nedges)) != 0)
        pagemap_page_info_dispose(info);
    pthread_mutex_unlock(&pm->lock);
    return rc;
}

int pagemap_edge_set_state(pagemap_t *pm, const char *page_key, const char *asset_key,
                           pagemap_edge_state_t state)
{
    if (pm == NULL || page_key == NULL || asset_key == NULL || *asset_key == '\0' ||
        (unsigned)state > PAGEMAP_EDGE_BANNED)
        return HERALD_EINVAL;
    pthread_mutex_lock(&pm->lock);
    int rc = 0;
    pm_page_t *p = pm_page_find(pm, page_key);
    pm_edge_t *e = p ? pm_edge_find(p, pm_asset_find(pm, asset_key)) : NULL;
    if (e != NULL) {
        pm_asset_t *a = e->asset;
        if (e->state != PAGEMAP_EDGE_LEARNED && state == PAGEMAP_EDGE_LEARNED) {
            /* back under the cap of learned edges: make room (never for itself) */
            edge_set_state(pm, p, e, PAGEMAP_EDGE_PINNED);
            while (p->nlearned >= pm->cfg.max_assets_per_page && p->nlearned > 0)
                evict_worst_learned(pm, p);
            e = pm_edge_find(p, a); /* eviction moves edges in the array */
        }
        edge_set_state(pm, p, e, state);
    } else if (state == PAGEMAP_EDGE_LEARNED) {
        rc = HERALD_ENOTFOUND;
    } else {
        bool created = false;
        if (p == NULL && (p = pm_page_get(pm, page_key, &created)) == NULL) {
            rc = HERALD_ENOMEM;
            goto out;
        }
        pm_asset_t *a = pm_asset_get(pm, asset_key, asset_key);
        if (a == NULL || (e = pm_edge_add(pm, p, a, state)) == NULL) {
            pm_asset_drop_unused(pm, a);
            if (created)
                page_remove(pm, p);
            rc = HERALD_ENOMEM;
            goto out;
        }
        e->kind = pagemap_kind_guess(NULL, NULL, asset_key);
        e->blocking = e->kind == PAGEMAP_KIND_STYLE;
    }
out:
    pthread_mutex_unlock(&pm->lock);
    return rc;
}

int pagemap_forget_edge(pagemap_t *pm, const char *page_key, const char *asset_key)
{
    if (pm == NULL || page_key == NULL || asset_key == NULL)
        return HERALD_EINVAL;
    pthread_mutex_lock(&pm->lock);
    int rc = HERALD_ENOTFOUND;
    pm_page_t *p = pm_page_find(pm, page_key);
    pm_edge_t *e = p ? pm_edge_find(p, pm_asset_find(pm, asset_key)) : NULL;
    if (e != NULL) {
        edge_remove_at(pm, p, (size_t)(e - p->edges));
        rc = 0;
    }
    pthread_mutex_unlock(&pm->lock);
    return rc;
}

int pagemap_forget_page(pagemap_t *pm, const char *page_key)
{
    if (pm == NULL || page_key == NULL)
        return HERALD_EINVAL;
    pthread_mutex_lock(&pm->lock);
    int rc = 0;
    pm_page_t *p = pm_page_find(pm, page_key);
    if (p == NULL) {
        rc = HERALD_ENOTFOUND;
    } else if (page_overrides(p) == 0) {
        page_remove(pm, p);
    } else {
        for (size_t i = p->n; i-- > 0;)
            if (p->edges[i].state == PAGEMAP_EDGE_LEARNED)
                edge_remove_at(pm, p, i);
        p->visits = 0;
        p->cold_visits = 0;
        p->fvisits = 0;
        p->clean_total = p->cold_total = 0;
        p->plans = p->explored = p->explore_cursor = 0;
        p->visits_total = 0;
        p->think = -1;
        p->html_size = 0;
        p->status = 0;
        p->bytes_pushed = p->hints_sent = 0;
        p->followups_seen = false;
        pm_next_clear(pm, p, true);
        p->navs = 0;
        p->navs_total = 0;
    }
    pthread_mutex_unlock(&pm->lock);
    return rc;
}

void pagemap_stats(pagemap_t *pm, pagemap_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (pm == NULL)
        return;
    pthread_mutex_lock(&pm->lock);
    out->pages = pm->pages.n;
    out->assets = pm->assets.n;
    out->templates = pm->ntemplates;
    out->edges = pm->nedges;
    out->pinned = pm->npinned;
    out->banned = pm->nbanned;
    out->pages_evicted = pm->pages_evicted;
    out->edges_evicted = pm->edges_evicted;
    out->visits_committed = atomic_load_explicit(&pm->visits_committed, memory_order_relaxed);
    out->nexts = pm->nnexts;
    out->next_pinned = pm->nnext_pinned;
    out->next_banned = pm->nnext_banned;
    out->targets = pm->targets.n;
    out->navigations_committed = pm->navigations_committed;
    pthread_mutex_unlock(&pm->lock);
}

uint64_t pagemap_visits_committed(pagemap_t *pm)
{
    return pm == NULL ? 0 : atomic_load_explicit(&pm->visits_committed, memory_order_relaxed);
}

/* ---- bulk copy --------------------------------------------------------- */

void pagemap_dump_dispose(pagemap_dump_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++) {
        pagemap_page_info_dispose(&d->pages[i].info);
        pagemap_edge_infos_free(d->pages[i].edges, d->pages[i].nedges);
        pagemap_next_infos_free(d->pages[i].next, d->pages[i].nnext);
    }
    free(d->pages);
    d->pages = NULL;
    d->n = 0;
}

int pagemap_dump(pagemap_t *pm, pagemap_dump_t *out)
{
    if (pm == NULL || out == NULL)
        return HERALD_EINVAL;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&pm->lock);
    int rc = 0;
    if (pm->pages.n > 0) {
        out->pages = calloc(pm->pages.n, sizeof(*out->pages));
        if (out->pages == NULL)
            rc = HERALD_ENOMEM;
    }
    for (const pm_page_t *p = pm->head; p && rc == 0; p = p->next) {
        pagemap_dump_page_t *dp = &out->pages[out->n];
        if ((rc = copy_page_info(p, &dp->info)) != 0)
            break;
        out->n++;
        rc = copy_edges(p, &dp->edges, &dp->nedges);
        if (rc == 0)
            rc = pm_next_copy(p, NULL, &dp->next, &dp->nnext);
    }
    pthread_mutex_unlock(&pm->lock);
    if (rc != 0)
        pagemap_dump_dispose(out);
    return rc;
}

static int restore_page(pagemap_t *pm, const pagemap_dump_page_t *dp)
{
    pm_page_t *old = pm_page_find(pm, dp->info.key);
    if (old != NULL)
        page_remove(pm, old);
    pm_page_t *p = pm_page_get(pm, dp->info.key, NULL);
    if (p == NULL)
        return HERALD_ENOMEM;
    const pagemap_page_info_t *i = &dp->info;
    if (!pm_set_str(&p->template_key, i->template_key))
        return HERALD_ENOMEM;
    pm_set_template(pm, p, i->is_template);
    p->visits = i->visits;
    p->visits_total = i->visits_total;
    p->last_visit = i->last_visit_ms;
    p->think = i->think_ms;
    p->html_size = i->html_size;
    p->status = i->status;
    p->bytes_pushed = i->bytes_pushed;
    p->hints_sent = i->hints_sent;
    p->followups_seen = i->followups_seen;
    p->set_cookie = i->set_cookie;
    p->cold_visits = i->cold_visits;
    p->fvisits = i->followup_visits;
    p->clean_total = i->clean_total;
    p->cold_total = i->cold_total;
    p->plans = i->plans;
    p->explored = i->explored;
    p->explore_cursor = i->explore_cursor;
    p->scan_validator = i->scan_validator;
    p->navs = i->navs;
    p->navs_total = i->navs_total;
    int rc = pm_next_restore(pm, p, dp->next, dp->nnext);
    if (rc != 0)
        return rc;
    for (size_t k = 0; k < dp->nedges; k++) {
        const pagemap_edge_info_t *ei = &dp->edges[k];
        if (ei->key == NULL || pm_edge_find(p, pm_asset_find(pm, ei->key)) != NULL)
            continue; /* a duplicate in the document: first wins */
        pm_asset_t *a = pm_asset_get(pm, ei->key, ei->url ? ei->url : ei->key);
        pm_edge_t *e = a ? pm_edge_add(pm, p, a, ei->state) : NULL;
        if (e == NULL) {
            pm_asset_drop_unused(pm, a);
            return HERALD_ENOMEM;
        }
        if ((ei->url && !pm_set_str(&a->url, ei->url)) ||
            !pm_set_str(&a->content_type, ei->content_type) || !pm_set_str(&a->etag, ei->etag) ||
            !pm_set_str(&a->last_modified, ei->last_modified) ||
            !pm_set_str(&a->location, ei->location))
            return HERALD_ENOMEM;
        a->status = ei->status;
        a->size = ei->size;
        a->policy = ei->policy & CACHEPOLICY_ALL;
        a->fresh_ms = ei->fresh_ms;
        a->unpushable = ei->unpushable;
        e->kind = (unsigned)ei->kind < PAGEMAP_KIND_COUNT_ ? ei->kind : PAGEMAP_KIND_OTHER;
        e->cors = ei->crossorigin;
        e->order = ei->order;
        e->sources = ei->sources;
        e->group = ei->group;
        e->blocking = ei->blocking;
        e->volatile_url = ei->volatile_url || e->volatile_url;
        e->strong = ei->strong;
        e->rejected = ei->rejected;
        e->superseded = ei->superseded;
        e->ch = ei->hits;
        e->cn = ei->visits;
        e->clean_hits = ei->clean_hits;
        e->clean_misses = ei->clean_misses;
        e->miss_streak = ei->miss_streak;
        e->absent_streak = ei->absent_streak;
        e->hit_visits = ei->hit_visits;
        e->first_seen = ei->first_seen_ms;
        e->last_seen = ei->last_seen_ms;
        e->promised = ei->promised;
        e->completed = ei->completed;
        e->cancelled = ei->cancelled;
        e->hinted = ei->hinted;
        if (ei->as) {
            strncpy(e->as, ei->as, PAGEMAP_AS_MAX);
            e->as[PAGEMAP_AS_MAX] = '\0';
        }
    }
    return 0;
}

int pagemap_restore(pagemap_t *pm, const pagemap_dump_t *d, pagemap_restore_mode_t mode)
{
    if (pm == NULL || d == NULL)
        return HERALD_EINVAL;
    pthread_mutex_lock(&pm->lock);
    if (mode == PAGEMAP_RESTORE_REPLACE)
        clear_all(pm);
    int rc = 0;
    /* The dump is most recent first: insert backwards to rebuild the LRU order. */
    for (size_t i = d->n; i-- > 0 && rc == 0;)
        if (d->pages[i].info.key != NULL)
            rc = restore_page(pm, &d->pages[i]);
    pthread_mutex_unlock(&pm->lock);
    return rc;
}
