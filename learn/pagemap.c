/*
 * The learned page -> asset map. Two chained hash tables (pages, assets)
 * with power-of-two bucket counts, an intrusive LRU list of pages, and per
 * page a small array of edges (max_assets_per_page is small, so linear scans
 * by asset pointer are cheaper than another index).
 */
#include "learn/pagemap.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "learn/template.h"
#include "parser/error.h"

typedef struct hnode {
    struct hnode *next;
    uint64_t hash;
    char *key;
} hnode_t;

typedef struct table {
    hnode_t **b;
    size_t nb, n;
} table_t;

typedef struct asset {
    hnode_t h; /* first: the table links assets through it */
    char *url;
    size_t refs;
    int status;
    uint64_t size;
    char *content_type, *etag, *last_modified, *location;
    bool cacheable, unpushable;
} asset_t;

typedef struct edge {
    asset_t *asset;
    char as[PAGEMAP_AS_MAX + 1];
    pagemap_kind_t kind;
    pagemap_cors_t cors;
    unsigned order, sources;
    bool blocking, volatile_url;
    double hits, visits;
    uint64_t hit_visits;
    int64_t first_seen, last_seen;
    uint64_t promised, completed, cancelled, hinted;
    pagemap_edge_state_t state;
    bool seen; /* scratch during a commit */
} edge_t;

typedef struct page {
    hnode_t h;
    struct page *prev, *next; /* LRU: pm->head is the most recent */
    char *template_key;
    bool is_template;
    edge_t *edges;
    size_t n, cap, nlearned;
    double visits;
    uint64_t visits_total;
    int64_t last_visit;
    double think;
    uint64_t html_size;
    int status;
    uint64_t bytes_pushed, hints_sent;
    bool followups_seen;
    double fvisits; /* decayed count of visits with follow-ups (not persisted) */
} page_t;

struct pagemap {
    pthread_mutex_t lock;
    pagemap_config_t cfg;
    table_t pages, assets;
    page_t *head, *tail;
    uint64_t pages_evicted, edges_evicted, visits_committed;
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* strdup through malloc, so allocation-failure tests reach it (glibc's strdup is internal). */
static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    return c ? memcpy(c, s, n) : NULL;
}

static char *dupstrn(const char *s, size_t len)
{
    char *c = malloc(len + 1);
    if (c == NULL)
        return NULL;
    memcpy(c, s, len);
    c[len] = '\0';
    return c;
}

static char *dup_or_null(const char *s)
{
    return s ? dupstr(s) : NULL;
}

/* Replace *dst with a copy of src; false on ENOMEM (dst unchanged). */
static bool set_str(char **dst, const char *src)
{
    if (src == NULL) {
        free(*dst);
        *dst = NULL;
        return true;
    }
    if (*dst != NULL && strcmp(*dst, src) == 0)
        return true;
    char *c = dupstr(src);
    if (c == NULL)
        return false;
    free(*dst);
    *dst = c;
    return true;
}

static hnode_t *table_find(const table_t *t, const char *key, uint64_t h)
{
    if (t->nb == 0)
        return NULL;
    for (hnode_t *n = t->b[h & (t->nb - 1)]; n; n = n->next)
        if (n->hash == h && strcmp(n->key, key) == 0)
            return n;
    return NULL;
}

static int table_insert(table_t *t, hnode_t *node)
{
    if (t->n + 1 > t->nb) {
        size_t nb = t->nb ? t->nb * 2 : 64;
        hnode_t **b = calloc(nb, sizeof(*b));
        if (b == NULL)
            return HERALD_ENOMEM;
        for (size_t i = 0; i < t->nb; i++) {
            for (hnode_t *n = t->b[i], *next; n; n = next) {
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

static void table_remove(table_t *t, hnode_t *node)
{
    hnode_t **pp = &t->b[node->hash & (t->nb - 1)];
    while (*pp && *pp != node)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = node->next;
        t->n--;
    }
}

static double confidence(const edge_t *e)
{
    return e->visits > 0 ? e->hits / e->visits : 0.0;
}

/* Criticality: CSS, blocking scripts, fonts, module/deferred scripts, images, others. */
static int kind_rank(pagemap_kind_t kind, bool blocking)
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

static pagemap_kind_t guess_kind(const char *url)
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
static size_t url_origin_len(const char *url)
{
    size_t alen;
    const char *a = url_authority(url, &alen);
    return a ? (size_t)(a - url) + alen : 0;
}

static bool same_authority(const char *url, const char *authority)
{
    size_t alen;
    const char *a = url_authority(url, &alen);
    if (a == NULL || authority == NULL)
        return true; /* relative: the page's own */
    return strlen(authority) == alen && strncasecmp(a, authority, alen) == 0;
}

/* ---- assets ------------------------------------------------------------ */

static void asset_free(asset_t *a)
{
    free(a->h.key);
    free(a->url);
    free(a->content_type);
    free(a->etag);
    free(a->last_modified);
    free(a->location);
    free(a);
}

static asset_t *asset_find(pagemap_t *pm, const char *key)
{
    return (asset_t *)table_find(&pm->assets, key, hash_str(key));
}

/* The asset for key (created with refs 0 when missing), or NULL on ENOMEM. */
static asset_t *asset_get(pagemap_t *pm, const char *key, const char *url)
{
    uint64_t h = hash_str(key);
    asset_t *a = (asset_t *)table_find(&pm->assets, key, h);
    if (a != NULL)
        return a;
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->h.hash = h;
    a->h.key = dupstr(key);
    a->url = dupstr(url ? url : key);
    a->cacheable = true;
    if (a->h.key == NULL || a->url == NULL || table_insert(&pm->assets, &a->h) != 0) {
        asset_free(a);
        return NULL;
    }
    return a;
}

static void asset_release(pagemap_t *pm, asset_t *a)
{
    if (a != NULL && --a->refs == 0) {
        table_remove(&pm->assets, &a->h);
        asset_free(a);
    }
}

/* Drop an asset that got no edge after asset_get (refs still 0). */
static void asset_drop_unused(pagemap_t *pm, asset_t *a)
{
    if (a != NULL && a->refs == 0) {
        table_remove(&pm->assets, &a->h);
        asset_free(a);
    }
}

/* ---- pages and edges --------------------------------------------------- */

static void lru_unlink(pagemap_t *pm, page_t *p)
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

static void lru_push_front(pagemap_t *pm, page_t *p)
{
    p->prev = NULL;
    p->next = pm->head;
    if (pm->head)
        pm->head->prev = p;
    pm->head = p;
    if (pm->tail == NULL)
        pm->tail = p;
}

static void lru_touch(pagemap_t *pm, page_t *p)
{
    if (pm->head != p) {
        lru_unlink(pm, p);
        lru_push_front(pm, p);
    }
}

static void edge_remove_at(pagemap_t *pm, page_t *p, size_t i)
{
    edge_t *e = &p->edges[i];
    if (e->state == PAGEMAP_EDGE_LEARNED)
        p->nlearned--;
    asset_release(pm, e->asset);
    p->edges[i] = p->edges[p->n - 1];
    p->n--;
}

static size_t page_overrides(const page_t *p)
{
    return p->n - p->nlearned;
}

static void page_free(pagemap_t *pm, page_t *p)
{
    while (p->n > 0)
        edge_remove_at(pm, p, p->n - 1);
    free(p->edges);
    free(p->h.key);
    free(p->template_key);
    free(p);
}

static void page_remove(pagemap_t *pm, page_t *p)
{
    table_remove(&pm->pages, &p->h);
    lru_unlink(pm, p);
    page_free(pm, p);
}

static page_t *page_find(pagemap_t *pm, const char *key)
{
    return (page_t *)table_find(&pm->pages, key, hash_str(key));
}

/* Evict least recently used pages until one more fits; pages with pins or bans stay. */
static void pages_make_room(pagemap_t *pm)
{
    page_t *p = pm->tail;
    while (pm->pages.n >= pm->cfg.max_pages && p != NULL) {
        page_t *prev = p->prev;
        if (page_overrides(p) == 0) {
            page_remove(pm, p);
            pm->pages_evicted++;
        }
        p = prev;
    }
}

static page_t *page_get(pagemap_t *pm, const char *key, bool *created)
{
    uint64_t h = hash_str(key);
    page_t *p = (page_t *)table_find(&pm->pages, key, h);
    if (created)
        *created = false;
    if (p != NULL)
        return p;
    pages_make_room(pm);
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->h.hash = h;
    p->h.key = dupstr(key);
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

static edge_t *edge_find(page_t *p, const asset_t *a)
{
    for (size_t i = 0; a && i < p->n; i++)
        if (p->edges[i].asset == a)
            return &p->edges[i];
    return NULL;
}

/* Is a worse than b for keeping (evicted first)? */
static bool edge_worse(const edge_t *a, const edge_t *b)
{
    double ca = confidence(a), cb = confidence(b);
    if (ca != cb)
        return ca < cb;
    if (a->last_seen != b->last_seen)
        return a->last_seen < b->last_seen;
    int ra = kind_rank(a->kind, a->blocking), rb = kind_rank(b->kind, b->blocking);
    if (ra != rb)
        return ra > rb;
    return a->order > b->order;
}

static void evict_worst_learned(pagemap_t *pm, page_t *p)
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
static edge_t *edge_add(pagemap_t *pm, page_t *p, asset_t *a, pagemap_edge_state_t state)
{
    if (state == PAGEMAP_EDGE_LEARNED)
        while (p->nlearned >= pm->cfg.max_assets_per_page && p->nlearned > 0)
            evict_worst_learned(pm, p);
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        edge_t *v = realloc(p->edges, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        p->edges = v;
        p->cap = cap;
    }
    edge_t *e = &p->edges[p->n++];
    memset(e, 0, sizeof(*e));
    e->asset = a;
    e->state = state;
    e->volatile_url = template_is_volatile_url(a->url) || template_is_volatile_url(a->h.key);
    a->refs++;
    if (state == PAGEMAP_EDGE_LEARNED)
        p->nlearned++;
    return e;
}

static void edge_set_state(page_t *p, edge_t *e, pagemap_edge_state_t state)
{
    if (e->state == PAGEMAP_EDGE_LEARNED && state != PAGEMAP_EDGE_LEARNED)
        p->nlearned--;
    else if (e->state != PAGEMAP_EDGE_LEARNED && state == PAGEMAP_EDGE_LEARNED)
        p->nlearned++;
    e->state = state;
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
    free(pm->pages.b);
    free(pm->assets.b);
    pthread_mutex_destroy(&pm->lock);
    free(pm);
}

/* ---- evidence ---------------------------------------------------------- */

typedef struct vitem {
    const pagemap_item_t *it; /* first copy: url, kind, as, crossorigin */
    const char *key;
    unsigned sources, order;
    bool blocking, skipped, cancelled, completed;
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

/* Deduplicate a visit's items by key; *out is malloc'd (NULL when n == 0). */
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
            m->blocking |= it->blocking;
            m->skipped &= it->skipped;
            m->cancelled |= it->push_cancelled;
            m->completed |= it->push_completed;
            continue;
        }
        if (n == PAGEMAP_MAX_VISIT_ITEMS)
            continue;
        vi[n++] = (vitem_t){.it = it,
                            .key = key,
                            .sources = it->sources,
                            .order = it->order,
                            .blocking = it->blocking,
                            .skipped = it->skipped,
                            .cancelled = it->push_cancelled,
                            .completed = it->push_completed};
    }
    free(ptrs);
    *out = vi;
    *nout = n;
    return 0;
}

/* One counted observation: decay, then add. Uncounted visits leave the edge as it was. */
static void edge_count(edge_t *e, double decay, bool hit, int64_t now)
{
    e->hits = e->hits * decay + (hit ? 1 : 0);
    e->visits = e->visits * decay + 1;
    if (hit) {
        e->hit_visits++;
        e->last_seen = now;
    }
}

static void edge_describe(edge_t *e, const vitem_t *vi)
{
    const pagemap_item_t *it = vi->it;
    e->kind = (unsigned)it->kind < PAGEMAP_KIND_COUNT_ ? it->kind : PAGEMAP_KIND_OTHER;
    e->cors = it->crossorigin;
    e->order = vi->order;
    e->blocking = vi->blocking;
    e->sources |= vi->sources;
    e->as[0] = '\0';
    if (it->as != NULL) {
        strncpy(e->as, it->as, PAGEMAP_AS_MAX);
        e->as[PAGEMAP_AS_MAX] = '\0';
    }
}

#define DISCOVERY_SOURCES (PAGEMAP_SRC_HTML | PAGEMAP_SRC_CSS | PAGEMAP_SRC_LINK)

/*
 * Whether visit v could have shown edge e, so that its absence is a miss:
 * edges named by HTML or Link when the HTML was scanned; edges named only
 * in CSS when a stylesheet was scanned on the visit (a page-only client
 * such as curl fetches no CSS: it says nothing about them); the others
 * (follow-ups, pushes) when the client fetched subresources.
 */
static bool edge_could_show(const edge_t *e, const pagemap_visit_t *v)
{
    if (e->sources & (PAGEMAP_SRC_HTML | PAGEMAP_SRC_LINK))
        return v->html_scanned;
    if (e->sources & PAGEMAP_SRC_CSS)
        return v->css_scanned;
    return v->had_followups;
}

/* Late evidence of a visit committed before (see pagemap_visit_t.supplement). */
/* A new learned edge p -> it, counted as a hit on this visit; NULL on ENOMEM. */
static edge_t *edge_learn(pagemap_t *pm, page_t *p, const vitem_t *it, const pagemap_visit_t *v,
                          double d)
{
    asset_t *a = asset_get(pm, it->key, it->it->url);
    edge_t *e = a != NULL ? edge_add(pm, p, a, PAGEMAP_EDGE_LEARNED) : NULL;
    if (e == NULL) {
        asset_drop_unused(pm, a);
        return NULL;
    }
    edge_describe(e, it);
    e->first_seen = v->now_ms;
    edge_count(e, d, true, v->now_ms);
    return e;
}

static int commit_supplement(pagemap_t *pm, page_t *p, const pagemap_visit_t *v, const vitem_t *vi,
                             size_t nvi)
{
    double d = pm->cfg.decay;
    int rc = 0;
    for (size_t k = 0; k < nvi; k++) {
        const vitem_t *it = &vi[k];
        asset_t *a = asset_find(pm, it->key);
        edge_t *e = edge_find(p, a);
        if (e != NULL) {
            if (e->state == PAGEMAP_EDGE_BANNED)
                continue;
            /* did the visit's first commit count this edge as a miss? */
            bool missed = edge_could_show(e, v);
            if (!set_str(&a->url, it->it->url))
                rc = HERALD_ENOMEM;
            edge_describe(e, it);
            if (it->skipped)
                continue;
            if (missed) {
                e->hits = e->hits + 1 < e->visits ? e->hits + 1 : e->visits;
                e->hit_visits++;
                e->last_seen = v->now_ms;
            } else {
                edge_count(e, d, true, v->now_ms);
            }
            continue;
        }
        if (edge_learn(pm, p, it, v, d) == NULL)
            rc = HERALD_ENOMEM;
    }
    return rc;
}

static int commit_entry(pagemap_t *pm, page_t *p, const pagemap_visit_t *v, const vitem_t *vi,
                        size_t nvi)
{
    if (v->supplement)
        return commit_supplement(pm, p, v, vi, nvi);
    double d = pm->cfg.decay;
    /* What a follow-up-only edge born on this visit would have counted had it
     * existed since the first visit with follow-ups: a miss on each of them. */
    double fvisits_new = v->had_followups ? p->fvisits * d + 1 : 0;
    if (v->had_followups)
        p->fvisits = fvisits_new;
    p->visits = p->visits * d + 1;
    p->visits_total++;
    p->last_visit = v->now_ms;
    p->status = v->status;
    if (v->think_ms >= 0)
        p->think =
            p->think < 0 ? v->think_ms : p->think + PAGEMAP_THINK_ALPHA * (v->think_ms - p->think);
    if (v->html_size > 0)
        p->html_size = v->html_size;
    p->followups_seen |= v->had_followups;
    for (size_t i = 0; i < p->n; i++)
        p->edges[i].seen = false;
    int rc = 0;
    for (size_t k = 0; k < nvi; k++) {
        const vitem_t *it = &vi[k];
        bool push_only = (it->sources & ~(unsigned)PAGEMAP_SRC_PUSH) == 0;
        bool miss = push_only && it->cancelled && !it->completed;
        asset_t *a = asset_find(pm, it->key);
        edge_t *e = edge_find(p, a);
        if (e != NULL) {
            e->seen = true;
            if (e->state == PAGEMAP_EDGE_BANNED)
                continue;
            if (!set_str(&a->url, it->it->url))
                rc = HERALD_ENOMEM;
            edge_describe(e, it);
            if (it->skipped)
                continue;
            edge_count(e, d, !miss, v->now_ms);
            continue;
        }
        if (miss)
            continue; /* a cancelled push of an unknown edge teaches nothing */
        if ((e = edge_learn(pm, p, it, v, d)) == NULL) {
            rc = HERALD_ENOMEM;
            continue;
        }
        e->seen = true;
        /* A URL only ever seen as a follow-up, appearing on a page whose
         * earlier visits had follow-ups without it, starts as missed on
         * those visits: one visit (whatever a client requests on it) cannot
         * make it plannable, while the first visit of a page still can. */
        if ((it->sources & (DISCOVERY_SOURCES | PAGEMAP_SRC_PUSH)) == 0 && fvisits_new > 1)
            e->visits = fvisits_new;
    }
    for (size_t i = 0; i < p->n; i++) {
        edge_t *e = &p->edges[i];
        if (e->seen || e->state == PAGEMAP_EDGE_BANNED)
            continue;
        if (edge_could_show(e, v))
            edge_count(e, d, false, v->now_ms);
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
        page_t *p = page_find(pm, v->page_key);
        if (p != NULL)
            p->status = v->status;
        goto out;
    }
    page_t *p = page_get(pm, v->page_key, NULL);
    if (p == NULL) {
        rc = HERALD_ENOMEM;
        goto out;
    }
    lru_touch(pm, p);
    if (v->template_key != NULL && strcmp(v->template_key, v->page_key) != 0 &&
        !set_str(&p->template_key, v->template_key))
        rc = HERALD_ENOMEM;
    int rc2 = commit_entry(pm, p, v, vi, nvi);
    rc = rc ? rc : rc2;
    if (!v->supplement)
        pm->visits_committed++;
    if (v->template_key != NULL && strcmp(v->template_key, v->page_key) != 0) {
        page_t *t = page_get(pm, v->template_key, NULL);
        if (t == NULL) {
            rc = HERALD_ENOMEM;
            goto out;
        }
        t->is_template = true;
        lru_touch(pm, t);
        rc2 = commit_entry(pm, t, v, vi, nvi);
        rc = rc ? rc : rc2;
    }
out:
    pthread_mutex_unlock(&pm->lock);
    free(vi);
    return rc;
}

bool pagemap_cacheable(const char *cache_control, const char *vary, bool set_cookie)
{
    if (set_cookie)
        return false;
    if (cache_control != NULL) {
        const char *p = cache_control;
        while (*p) {
            p += strspn(p, " \t,");
            size_t len = strcspn(p, " \t,=");
            if ((len == 8 && strncasecmp(p, "no-store", 8) == 0) ||
                (len == 7 && strncasecmp(p, "private", 7) == 0) ||
                (len == 8 && strncasecmp(p, "no-cache", 8) == 0))
                return false;
            p += len;
            if (*p == '=') { /* skip a value, quoted or not */
                p++;
                if (*p == '"') {
                    p++;
                    while (*p && *p != '"')
                        p += (*p == '\\' && p[1]) ? 2 : 1;
                    if (*p)
                        p++;
                } else {
                    p += strcspn(p, ",");
                }
            }
            p += strcspn(p, ",");
        }
    }
    if (vary != NULL) {
        const char *p = vary;
        while (*p) {
            p += strspn(p, " \t,");
            size_t len = strcspn(p, " \t,");
            if (len > 0 && !(len == 15 && strncasecmp(p, "accept-encoding", 15) == 0))
                return false;
            p += len;
        }
    }
    return true;
}

int pagemap_observe_asset(pagemap_t *pm, const char *asset_key, const pagemap_asset_meta_t *m)
{
    if (pm == NULL || asset_key == NULL || m == NULL)
        return HERALD_EINVAL;
    pthread_mutex_lock(&pm->lock);
    int rc = 0;
    asset_t *a = asset_find(pm, asset_key);
    if (a == NULL) {
        rc = HERALD_ENOTFOUND;
        goto out;
    }
    a->status = m->status;
    a->size = m->size;
    a->cacheable = m->cacheable;
    bool redirect = m->status == 301 || m->status == 302 || m->status == 307 || m->status == 308;
    if (!set_str(&a->content_type, m->content_type) || !set_str(&a->etag, m->etag) ||
        !set_str(&a->last_modified, m->last_modified) ||
        !set_str(&a->location, redirect ? m->location : NULL))
        rc = HERALD_ENOMEM;
    if (m->pushed && (m->status != 200 || !m->cacheable))
        a->unpushable = true;
    else if (!m->pushed && m->status == 200 && m->cacheable)
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
    page_t *p = page_find(pm, page_key);
    edge_t *e = p ? edge_find(p, asset_find(pm, asset_key)) : NULL;
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

/* ---- planning ---------------------------------------------------------- */

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
    memset(plan, 0, sizeof(*plan));
}

static int cmp_edge_plan(const void *a, const void *b)
{
    const edge_t *x = *(const edge_t *const *)a, *y = *(const edge_t *const *)b;
    int rx = kind_rank(x->kind, x->blocking), ry = kind_rank(y->kind, y->blocking);
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

static bool asset_deliverable(const asset_t *a)
{
    return a->cacheable && !a->unpushable;
}

static bool plan_has(const pagemap_plan_t *out, const char *key)
{
    for (size_t i = 0; i < out->n; i++)
        if (strcmp(out->items[i].key, key) == 0)
            return true;
    return false;
}

static int plan_push_item(pagemap_plan_t *out, size_t *cap, const asset_t *a, const edge_t *e,
                          bool is_redirect)
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
    it->url = dupstr(a->url);
    it->key = dupstr(a->h.key);
    it->etag = dup_or_null(a->etag);
    it->as = (e->as[0] != '\0') ? dupstr(e->as) : NULL;
    out->n++; /* counted before checking so dispose frees partial strings */
    if (it->url == NULL || it->key == NULL || (a->etag && it->etag == NULL) ||
        (e->as[0] != '\0' && it->as == NULL))
        return HERALD_ENOMEM;
    /* A redirect target reached through e has no edge of its own: guess its kind. */
    it->kind = (a == e->asset) ? e->kind : guess_kind(a->h.key);
    if (a != e->asset && it->kind == PAGEMAP_KIND_OTHER)
        it->kind = e->kind;
    it->crossorigin = e->cors;
    it->size = a->size;
    it->confidence = e->state == PAGEMAP_EDGE_PINNED ? 1.0 : confidence(e);
    it->status = a->status;
    it->is_redirect = is_redirect;
    it->pinned = e->state == PAGEMAP_EDGE_PINNED;
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
    if ((v[out->npreconnect] = dupstrn(url, len)) == NULL)
        return HERALD_ENOMEM;
    out->npreconnect++;
    return 0;
}

static int build_plan(pagemap_t *pm, const page_t *p, const char *authority, double min,
                      pagemap_plan_t *out)
{
    if (p->n == 0)
        return 0;
    const edge_t **cand = malloc(p->n * sizeof(*cand));
    if (cand == NULL)
        return HERALD_ENOMEM;
    size_t nc = 0, cap = 0;
    int rc = 0;
    for (size_t i = 0; i < p->n && rc == 0; i++) {
        const edge_t *e = &p->edges[i];
        const asset_t *a = e->asset;
        if (e->state == PAGEMAP_EDGE_BANNED)
            continue;
        /* A template entry plans only what >= 2 sibling visits showed. */
        if (e->state != PAGEMAP_EDGE_PINNED &&
            (confidence(e) < min || ((e->volatile_url || p->is_template) && e->hit_visits < 2)))
            continue;
        if (e->kind == PAGEMAP_KIND_PRECONNECT || !same_authority(a->url, authority)) {
            rc = plan_add_origin(out, a->url, url_origin_len(a->url));
            continue;
        }
        if (asset_deliverable(a))
            cand[nc++] = e;
    }
    qsort(cand, nc, sizeof(*cand), cmp_edge_plan);
    for (size_t i = 0; i < nc && rc == 0; i++) {
        const edge_t *e = cand[i];
        const asset_t *a = e->asset;
        if (plan_has(out, a->h.key))
            continue;
        if (status_ok(a->status)) {
            rc = plan_push_item(out, &cap, a, e, false);
            continue;
        }
        if (!is_redirect_status(a->status) || a->location == NULL)
            continue;
        const asset_t *t = asset_find(pm, a->location);
        if (t == NULL || t == a || !status_ok(t->status) || !asset_deliverable(t) ||
            !same_authority(t->url, authority))
            continue;
        const edge_t *te = edge_find((page_t *)p, t);
        if (te != NULL && te->state == PAGEMAP_EDGE_BANNED)
            continue;
        rc = plan_push_item(out, &cap, a, e, true);
        if (rc == 0 && !plan_has(out, t->h.key))
            rc = plan_push_item(out, &cap, t, te ? te : e, false);
    }
    free(cand);
    return rc;
}

int pagemap_plan(pagemap_t *pm, const char *page_key, const char *template_key,
                 const char *authority, int64_t now_ms, double min_confidence, pagemap_plan_t *out)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (pm == NULL || page_key == NULL || out == NULL)
        return HERALD_EINVAL;
    out->think_ms = -1;
    char *derived = NULL;
    if (authority == NULL) { /* a page key starts with its authority */
        if ((derived = dupstrn(page_key, strcspn(page_key, "/?#"))) == NULL)
            return HERALD_ENOMEM;
        authority = derived;
    }
    pthread_mutex_lock(&pm->lock);
    int rc = 0;
    page_t *p = page_find(pm, page_key);
    page_t *t = template_key ? page_find(pm, template_key) : NULL;
    if (p != NULL) {
        lru_touch(pm, p);
        out->visits_total = p->visits_total;
        out->bytes_pushed = p->bytes_pushed;
        out->hints_sent = p->hints_sent;
        out->think_ms = p->think;
        if (p->status == 0 || (p->status >= 200 && p->status <= 299)) {
            rc = build_plan(pm, p, authority, min_confidence, out);
            if (rc == 0 && out->n > 0)
                out->source = PAGEMAP_PLAN_PAGE;
        }
    }
    if (rc == 0 && out->source == PAGEMAP_PLAN_NONE && t != NULL && t != p) {
        lru_touch(pm, t);
        pagemap_plan_t tmp = {0};
        rc = build_plan(pm, t, authority, min_confidence, &tmp);
        if (rc == 0 && tmp.n > 0) {
            for (size_t i = 0; i < out->npreconnect; i++)
                free(out->preconnect[i]);
            free(out->preconnect);
            out->items = tmp.items;
            out->n = tmp.n;
            out->preconnect = tmp.preconnect;
            out->npreconnect = tmp.npreconnect;
            out->source = PAGEMAP_PLAN_TEMPLATE;
            if (out->think_ms < 0)
                out->think_ms = t->think;
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

static int copy_page_info(const page_t *p, pagemap_page_info_t *o)
{
    memset(o, 0, sizeof(*o));
    o->key = dupstr(p->h.key);
    o->template_key = dup_or_null(p->template_key);
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
    o->nedges = p->n;
    return 0;
}

static int copy_edge_info(const edge_t *e, pagemap_edge_info_t *o)
{
    const asset_t *a = e->asset;
    memset(o, 0, sizeof(*o));
    o->key = dupstr(a->h.key);
    o->url = dupstr(a->url);
    o->as = e->as[0] ? dupstr(e->as) : NULL;
    o->content_type = dup_or_null(a->content_type);
    o->etag = dup_or_null(a->etag);
    o->last_modified = dup_or_null(a->last_modified);
    o->location = dup_or_null(a->location);
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
    o->blocking = e->blocking;
    o->volatile_url = e->volatile_url;
    o->hits = e->hits;
    o->visits = e->visits;
    o->confidence = confidence(e);
    o->hit_visits = e->hit_visits;
    o->first_seen_ms = e->first_seen;
    o->last_seen_ms = e->last_seen;
    o->promised = e->promised;
    o->completed = e->completed;
    o->cancelled = e->cancelled;
    o->hinted = e->hinted;
    o->state = e->state;
    o->size = a->size;
    o->status = a->status;
    o->cacheable = a->cacheable;
    o->unpushable = a->unpushable;
    return 0;
}

static int copy_edges(const page_t *p, pagemap_edge_info_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (p->n == 0)
        return 0;
    const edge_t **sorted = malloc(p->n * sizeof(*sorted));
    pagemap_edge_info_t *v = calloc(p->n, sizeof(*v));
    if (sorted == NULL || v == NULL) {
        free(sorted);
        free(v);
        return HERALD_ENOMEM;
    }
    for (size_t i = 0; i < p->n; i++)
        sorted[i] = &p->edges[i];
    qsort(sorted, p->n, sizeof(*sorted), cmp_edge_plan);
    for (size_t i = 0; i < p->n; i++) {
        if (copy_edge_info(sorted[i], &v[i]) != 0) {
            pagemap_edge_infos_free(v, i);
            free(sorted);
            return HERALD_ENOMEM;
        }
    }
    free(sorted);
    *out = v;
    *n = p->n;
    return 0;
}

static int cmp_page_key(const void *a, const void *b)
{
    return strcmp((*(const page_t *const *)a)->h.key, (*(const page_t *const *)b)->h.key);
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
    const page_t **m = malloc((pm->pages.n ? pm->pages.n : 1) * sizeof(*m));
    if (m == NULL) {
        rc = HERALD_ENOMEM;
        goto out;
    }
    for (const page_t *p = pm->head; p; p = p->next)
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
    const page_t *p = page_find(pm, page_key);
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
    page_t *p = page_find(pm, page_key);
    edge_t *e = p ? edge_find(p, asset_find(pm, asset_key)) : NULL;
    if (e != NULL) {
        edge_set_state(p, e, state);
    } else if (state == PAGEMAP_EDGE_LEARNED) {
        rc = HERALD_ENOTFOUND;
    } else {
        bool created = false;
        if (p == NULL && (p = page_get(pm, page_key, &created)) == NULL) {
            rc = HERALD_ENOMEM;
            goto out;
        }
        asset_t *a = asset_get(pm, asset_key, asset_key);
        if (a == NULL || (e = edge_add(pm, p, a, state)) == NULL) {
            asset_drop_unused(pm, a);
            if (created)
                page_remove(pm, p);
            rc = HERALD_ENOMEM;
            goto out;
        }
        e->kind = guess_kind(asset_key);
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
    page_t *p = page_find(pm, page_key);
    edge_t *e = p ? edge_find(p, asset_find(pm, asset_key)) : NULL;
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
    page_t *p = page_find(pm, page_key);
    if (p == NULL) {
        rc = HERALD_ENOTFOUND;
    } else if (page_overrides(p) == 0) {
        page_remove(pm, p);
    } else {
        for (size_t i = p->n; i-- > 0;)
            if (p->edges[i].state == PAGEMAP_EDGE_LEARNED)
                edge_remove_at(pm, p, i);
        p->visits = 0;
        p->fvisits = 0;
        p->visits_total = 0;
        p->think = -1;
        p->html_size = 0;
        p->status = 0;
        p->bytes_pushed = p->hints_sent = 0;
        p->followups_seen = false;
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
    for (const page_t *p = pm->head; p; p = p->next) {
        out->templates += p->is_template;
        out->edges += p->n;
        for (size_t i = 0; i < p->n; i++) {
            out->pinned += p->edges[i].state == PAGEMAP_EDGE_PINNED;
            out->banned += p->edges[i].state == PAGEMAP_EDGE_BANNED;
        }
    }
    out->pages_evicted = pm->pages_evicted;
    out->edges_evicted = pm->edges_evicted;
    out->visits_committed = pm->visits_committed;
    pthread_mutex_unlock(&pm->lock);
}

/* ---- bulk copy --------------------------------------------------------- */

void pagemap_dump_dispose(pagemap_dump_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++) {
        pagemap_page_info_dispose(&d->pages[i].info);
        pagemap_edge_infos_free(d->pages[i].edges, d->pages[i].nedges);
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
    for (const page_t *p = pm->head; p && rc == 0; p = p->next) {
        pagemap_dump_page_t *dp = &out->pages[out->n];
        if ((rc = copy_page_info(p, &dp->info)) != 0)
            break;
        out->n++;
        rc = copy_edges(p, &dp->edges, &dp->nedges);
    }
    pthread_mutex_unlock(&pm->lock);
    if (rc != 0)
        pagemap_dump_dispose(out);
    return rc;
}

static int restore_page(pagemap_t *pm, const pagemap_dump_page_t *dp)
{
    page_t *old = page_find(pm, dp->info.key);
    if (old != NULL)
        page_remove(pm, old);
    page_t *p = page_get(pm, dp->info.key, NULL);
    if (p == NULL)
        return HERALD_ENOMEM;
    const pagemap_page_info_t *i = &dp->info;
    if (!set_str(&p->template_key, i->template_key))
        return HERALD_ENOMEM;
    p->is_template = i->is_template;
    p->visits = i->visits;
    p->visits_total = i->visits_total;
    p->last_visit = i->last_visit_ms;
    p->think = i->think_ms;
    p->html_size = i->html_size;
    p->status = i->status;
    p->bytes_pushed = i->bytes_pushed;
    p->hints_sent = i->hints_sent;
    p->followups_seen = i->followups_seen;
    for (size_t k = 0; k < dp->nedges; k++) {
        const pagemap_edge_info_t *ei = &dp->edges[k];
        if (ei->key == NULL || edge_find(p, asset_find(pm, ei->key)) != NULL)
            continue; /* a duplicate in the document: first wins */
        asset_t *a = asset_get(pm, ei->key, ei->url ? ei->url : ei->key);
        edge_t *e = a ? edge_add(pm, p, a, ei->state) : NULL;
        if (e == NULL) {
            asset_drop_unused(pm, a);
            return HERALD_ENOMEM;
        }
        if ((ei->url && !set_str(&a->url, ei->url)) ||
            !set_str(&a->content_type, ei->content_type) || !set_str(&a->etag, ei->etag) ||
            !set_str(&a->last_modified, ei->last_modified) || !set_str(&a->location, ei->location))
            return HERALD_ENOMEM;
        a->status = ei->status;
        a->size = ei->size;
        a->cacheable = ei->cacheable;
        a->unpushable = ei->unpushable;
        e->kind = (unsigned)ei->kind < PAGEMAP_KIND_COUNT_ ? ei->kind : PAGEMAP_KIND_OTHER;
        e->cors = ei->crossorigin;
        e->order = ei->order;
        e->sources = ei->sources;
        e->blocking = ei->blocking;
        e->volatile_url = ei->volatile_url || e->volatile_url;
        e->hits = ei->hits;
        e->visits = ei->visits;
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
