/*
 * Which next pages a page's rule set proposes (pagemap.h,
 * pagemap_speculation): the verdict of each next page (safety first, then
 * the operator's pins, then evidence), and the selection: pins, then the
 * most likely, at most opts->max_urls, with their eagerness.
 */
#include "pagemap.h"
#include "pagemap_impl.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "speculation.h"
#include "herald/error.h"

static const char *const verdict_names[PAGEMAP_NEXT_VERDICT_COUNT_] = {
    "pinned", "likely", "unlikely", "two-navigations", "unused", "private",
    "unsafe", "denied", "self",     "other-origin",    "banned"};

const char *pagemap_next_verdict_name(pagemap_next_verdict_t v)
{
    return (unsigned)v < PAGEMAP_NEXT_VERDICT_COUNT_ ? verdict_names[v] : "unknown";
}

void pagemap_spec_opts_init(pagemap_spec_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->min_probability = PAGEMAP_SPEC_DEFAULT_MIN;
    o->immediate = PAGEMAP_SPEC_IMMEDIATE;
    o->max_urls = PAGEMAP_SPEC_DEFAULT_MAX;
}

static const char *unsafe_reason(const pm_target_t *t)
{
    if (t->status == 0)
        return "no navigation of it seen yet";
    if (t->unsafe & PAGEMAP_UNSAFE_AUTHORIZATION)
        return "a navigation of it carried Authorization";
    if (t->unsafe & PAGEMAP_UNSAFE_SET_COOKIE)
        return "a navigation of it was answered with Set-Cookie";
    if (t->unsafe & PAGEMAP_UNSAFE_REDIRECT)
        return "a navigation of it was redirected";
    if (t->unsafe & PAGEMAP_UNSAFE_NOT_HTML)
        return "a navigation of it was not answered with HTML";
    if (t->status != 200)
        return "its last navigation was not answered 200";
    return NULL;
}

/* Rule lost: most known prefetch outcomes of it were unused, lately. */
static bool lost_to_unused(const pm_next_t *x, int64_t now_ms)
{
    return x->use_n >= PAGEMAP_SPEC_MIN_KNOWN &&
           x->use_hits < PAGEMAP_SPEC_MIN_USE * x->use_known &&
           now_ms < x->last_outcome + PAGEMAP_SPEC_RETRY_MS;
}

pagemap_next_verdict_t pm_next_verdict(const pm_page_t *p, const pm_next_t *x, const char *self_key,
                                       const char *authority, const pagemap_spec_opts_t *o,
                                       const char **why)
{
    const pm_target_t *t = x->target;
    const char *r;
    pagemap_next_verdict_t v;
    const char *unsafe = unsafe_reason(t);
    size_t alen = strcspn(p->h.key, "/?#");
    bool same;
    if (authority != NULL) {
        same = pm_same_authority(t->url, authority);
    } else {
        size_t ul;
        const char *ua = strstr(t->url, "://");
        ul = ua ? strcspn(ua + 3, "/?#") : 0;
        same = ua != NULL && ul == alen && strncasecmp(ua + 3, p->h.key, alen) == 0;
    }
    if (x->state == PAGEMAP_EDGE_BANNED) {
        r = "banned by the operator";
        v = PAGEMAP_NEXT_BANNED;
    } else if (!same || pm_origin_len(t->url) == 0) {
        r = "another origin";
        v = PAGEMAP_NEXT_OTHER_ORIGIN;
    } else if (strcmp(t->h.key, self_key ? self_key : p->h.key) == 0) {
        r = "the page itself";
        v = PAGEMAP_NEXT_SELF;
    } else if (speculation_denied(t->url, o->deny, o->ndeny)) {
        r = "matches a deny pattern";
        v = PAGEMAP_NEXT_DENIED;
    } else if (unsafe != NULL) {
        r = unsafe;
        v = PAGEMAP_NEXT_UNSAFE;
    } else if (t->private_url && t->nclients < PAGEMAP_NEXT_MIN_CLIENTS) {
        r = "query or id in the URL: needs 2 distinct clients navigating to it";
        v = PAGEMAP_NEXT_PRIVATE;
    } else if (x->state == PAGEMAP_EDGE_PINNED) {
        r = "pinned by the operator";
        v = PAGEMAP_NEXT_PINNED;
    } else if (lost_to_unused(x, o->now_ms)) {
        r = "its prefetches are seldom used";
        v = PAGEMAP_NEXT_UNUSED;
    } else if (x->navs < PAGEMAP_NEXT_MIN_NAVS) {
        r = "needs 2 sessions navigating to it from here";
        v = PAGEMAP_NEXT_TWO_NAVS;
    } else if (pm_next_probability(p, x) < o->min_probability) {
        r = "less likely than the minimum";
        v = PAGEMAP_NEXT_UNLIKELY;
    } else {
        r = "likely next page";
        v = PAGEMAP_NEXT_LIKELY;
    }
    if (why != NULL)
        *why = r;
    return v;
}

/* ---- selection ---------------------------------------------------------- */

typedef struct cand {
    const pm_next_t *x;
    double p;
    bool pinned;
} cand_t;

static int cmp_cand(const void *a, const void *b)
{
    const cand_t *x = a, *y = b;
    if (x->pinned != y->pinned)
        return x->pinned ? -1 : 1;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    if (x->x->count != y->x->count)
        return x->x->count > y->x->count ? -1 : 1;
    return strcmp(x->x->target->h.key, y->x->target->h.key);
}

/* The proposed next pages of entry p, sorted; *nc 0 when none. */
static int candidates(const pm_page_t *p, const char *self_key, const char *authority,
                      const pagemap_spec_opts_t *o, cand_t **out, size_t *nc)
{
    *out = NULL;
    *nc = 0;
    if (p->nnext == 0)
        return 0;
    cand_t *c = malloc(p->nnext * sizeof(*c));
    if (c == NULL)
        return HERALD_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < p->nnext; i++) {
        const pm_next_t *x = &p->nexts[i];
        pagemap_next_verdict_t v = pm_next_verdict(p, x, self_key, authority, o, NULL);
        if (v == PAGEMAP_NEXT_PINNED || v == PAGEMAP_NEXT_LIKELY)
            c[n++] = (cand_t){x, pm_next_probability(p, x), v == PAGEMAP_NEXT_PINNED};
    }
    qsort(c, n, sizeof(*c), cmp_cand);
    *out = c;
    *nc = n;
    return 0;
}

void pagemap_spec_dispose(pagemap_spec_t *spec)
{
    if (spec == NULL)
        return;
    for (size_t i = 0; i < spec->n; i++) {
        free(spec->items[i].url);
        free(spec->items[i].key);
    }
    free(spec->items);
    memset(spec, 0, sizeof(*spec));
}

static int fill(const cand_t *c, size_t nc, const pagemap_spec_opts_t *o, pagemap_spec_t *out)
{
    size_t n = nc < o->max_urls ? nc : o->max_urls;
    if (n == 0)
        return 0;
    if ((out->items = calloc(n, sizeof(*out->items))) == NULL)
        return HERALD_ENOMEM;
    bool immediate_given = false;
    for (size_t i = 0; i < n; i++) {
        pagemap_spec_item_t *it = &out->items[i];
        out->n = i + 1; /* so dispose frees a half-filled item */
        it->url = pm_dup(c[i].x->target->url);
        it->key = pm_dup(c[i].x->target->h.key);
        if (it->url == NULL || it->key == NULL)
            return HERALD_ENOMEM;
        it->probability = c[i].p;
        it->pinned = c[i].pinned;
        it->eagerness = PAGEMAP_EAGER_MODERATE;
        /* the most likely learned one: candidates are sorted, pins first */
        if (!c[i].pinned && !immediate_given) {
            immediate_given = true;
            if (c[i].p >= o->immediate)
                it->eagerness = PAGEMAP_EAGER_IMMEDIATE;
        }
    }
    return 0;
}

int pagemap_speculation(pagemap_t *pm, const char *page_key, const char *template_key,
                        const char *authority, const pagemap_spec_opts_t *opts, pagemap_spec_t *out)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (pm == NULL || page_key == NULL || out == NULL)
        return HERALD_EINVAL;
    pagemap_spec_opts_t o;
    if (opts != NULL)
        o = *opts;
    else
        pagemap_spec_opts_init(&o);
    char *derived = NULL;
    if (authority == NULL) { /* a page key starts with its authority */
        if ((derived = pm_dupn(page_key, strcspn(page_key, "/?#"))) == NULL)
            return HERALD_ENOMEM;
        authority = derived;
    }
    pthread_mutex_lock(&pm->lock);
    const pm_page_t *p = pm_page_find(pm, page_key);
    const pm_page_t *t = template_key ? pm_page_find(pm, template_key) : NULL;
    cand_t *c = NULL;
    size_t nc = 0;
    int rc = 0;
    if (p != NULL && (rc = candidates(p, page_key, authority, &o, &c, &nc)) == 0 && nc > 0)
        out->source = PAGEMAP_PLAN_PAGE;
    if (rc == 0 && nc == 0 && t != NULL && t != p) {
        free(c);
        c = NULL;
        if ((rc = candidates(t, page_key, authority, &o, &c, &nc)) == 0 && nc > 0)
            out->source = PAGEMAP_PLAN_TEMPLATE;
    }
    if (rc == 0)
        rc = fill(c, nc, &o, out);
    pthread_mutex_unlock(&pm->lock);
    free(c);
    free(derived);
    if (rc != 0)
        pagemap_spec_dispose(out);
    return rc;
}
