/*
 * Next pages of the learned map (pagemap.h, "next pages"): the shared next
 * page entries and their navigation facts, each entry's next-page edges,
 * the navigations and prefetch outcomes that move them, steering, copy-out
 * and restore. Verdicts and the rule-set selection are in
 * pagemap_speculate.c.
 */
#include "pagemap.h"
#include "pagemap_impl.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "speculation.h"
#include "template.h"
#include "herald/error.h"

static const char *const unsafe_names[PAGEMAP_UNSAFE_NBITS] = {"set-cookie", "redirect", "not-html",
                                                               "authorization"};

const char *pagemap_unsafe_name(unsigned bit)
{
    return bit < PAGEMAP_UNSAFE_NBITS ? unsafe_names[bit] : "unknown";
}

/* ---- shared next pages -------------------------------------------------- */

/* Does the URL carry something that may be private to one client: a query,
 * or a path segment that reads as an identifier (a token in the path)? */
static bool url_is_private(const char *url)
{
    size_t ol = pm_origin_len(url);
    const char *p = url + ol;
    size_t end = strcspn(p, "?#");
    if (p[end] == '?' && p[end + 1] != '\0' && p[end + 1] != '#')
        return true;
    for (size_t i = 0; i < end;) {
        while (i < end && p[i] == '/')
            i++;
        size_t j = i;
        while (j < end && p[j] != '/')
            j++;
        if (j > i && template_segment_is_id(p + i, j - i))
            return true;
        i = j;
    }
    return false;
}

static void target_free(pm_target_t *t)
{
    free(t->h.key);
    free(t->url);
    free(t);
}

static pm_target_t *target_find(pagemap_t *pm, const char *key)
{
    return (pm_target_t *)pm_table_find(&pm->targets, key, pm_hash(key));
}

/* The next page for key (created with refs 0 when missing), or NULL on ENOMEM. */
static pm_target_t *target_get(pagemap_t *pm, const char *key, const char *url)
{
    uint64_t h = pm_hash(key);
    pm_target_t *t = (pm_target_t *)pm_table_find(&pm->targets, key, h);
    if (t != NULL)
        return t;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return NULL;
    t->h.hash = h;
    t->h.key = pm_dup(key);
    t->url = pm_dup(url);
    if (t->h.key == NULL || t->url == NULL || pm_table_insert(&pm->targets, &t->h) != 0) {
        target_free(t);
        return NULL;
    }
    t->private_url = url_is_private(url);
    return t;
}

static void target_drop_unused(pagemap_t *pm, pm_target_t *t)
{
    if (t != NULL && t->refs == 0) {
        pm_table_remove(&pm->targets, &t->h);
        target_free(t);
    }
}

static void target_release(pagemap_t *pm, pm_target_t *t)
{
    if (--t->refs == 0)
        target_drop_unused(pm, t);
}

/* The facts of one navigation of t. */
static void target_observe(pm_target_t *t, const pagemap_nav_t *n)
{
    unsigned bad = 0;
    bool ok2xx = n->status >= 200 && n->status <= 299;
    if (n->authorized)
        bad |= PAGEMAP_UNSAFE_AUTHORIZATION;
    if (n->set_cookie)
        bad |= PAGEMAP_UNSAFE_SET_COOKIE;
    if (n->status >= 300 && n->status <= 399 && n->status != 304)
        bad |= PAGEMAP_UNSAFE_REDIRECT;
    if (ok2xx && !n->html)
        bad |= PAGEMAP_UNSAFE_NOT_HTML;
    if (n->status > 0 && n->status != 304)
        t->status = n->status; /* a revalidation says nothing of the page */
    if (bad != 0) {
        t->unsafe |= bad;
        t->clean_run = 0;
        return;
    }
    if (n->status != 200 || !n->html)
        return;
    if (t->clean_run < PAGEMAP_NEXT_CLEAN_NAVS)
        t->clean_run++;
    if (t->clean_run >= PAGEMAP_NEXT_CLEAN_NAVS)
        t->unsafe = 0;
    if (n->client == NULL || n->client[0] == '\0' || t->nclients >= PAGEMAP_NEXT_MIN_CLIENTS)
        return;
    uint64_t h = pm_hash(n->client);
    for (unsigned i = 0; i < t->nclients; i++)
        if (t->clients[i] == h)
            return;
    t->clients[t->nclients++] = h;
}

/* ---- an entry's next pages ---------------------------------------------- */

static pm_next_t *next_find(pm_page_t *p, const pm_target_t *t)
{
    for (size_t i = 0; t != NULL && i < p->nnext; i++)
        if (p->nexts[i].target == t)
            return &p->nexts[i];
    return NULL;
}

/* Count x (just added, or removed next) in pm's totals: dir +1 or -1. */
static void count_next(pagemap_t *pm, const pm_next_t *x, int dir)
{
    pm->nnexts += (size_t)dir;
    if (x->state == PAGEMAP_EDGE_PINNED)
        pm->nnext_pinned += (size_t)dir;
    else if (x->state == PAGEMAP_EDGE_BANNED)
        pm->nnext_banned += (size_t)dir;
}

static void next_remove_at(pagemap_t *pm, pm_page_t *p, size_t i)
{
    count_next(pm, &p->nexts[i], -1);
    if (p->nexts[i].state == PAGEMAP_EDGE_LEARNED)
        p->nnext_learned--;
    target_release(pm, p->nexts[i].target);
    p->nexts[i] = p->nexts[p->nnext - 1];
    p->nnext--;
}

/* Evict the least likely learned next page (then the least recently seen). */
static void next_evict_one(pagemap_t *pm, pm_page_t *p)
{
    size_t worst = p->nnext;
    for (size_t i = 0; i < p->nnext; i++) {
        const pm_next_t *x = &p->nexts[i];
        if (x->state != PAGEMAP_EDGE_LEARNED)
            continue;
        if (worst == p->nnext || x->count < p->nexts[worst].count ||
            (x->count == p->nexts[worst].count && x->last_seen < p->nexts[worst].last_seen))
            worst = i;
    }
    if (worst < p->nnext)
        next_remove_at(pm, p, worst);
}

/*
 * Append a zeroed next page for t (taking a reference); a learned one first
 * makes room under PAGEMAP_MAX_NEXT. NULL on ENOMEM (t untouched). Pointers
 * into p->nexts are invalid afterwards.
 */
static pm_next_t *next_add(pagemap_t *pm, pm_page_t *p, pm_target_t *t, pagemap_edge_state_t state)
{
    if (state == PAGEMAP_EDGE_LEARNED)
        while (p->nnext_learned >= PAGEMAP_MAX_NEXT && p->nnext_learned > 0)
            next_evict_one(pm, p);
    if (p->nnext == p->capnext) {
        size_t cap = p->capnext ? p->capnext * 2 : 4;
        pm_next_t *v = realloc(p->nexts, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        p->nexts = v;
        p->capnext = cap;
    }
    pm_next_t *x = &p->nexts[p->nnext++];
    memset(x, 0, sizeof(*x));
    x->target = t;
    x->state = state;
    t->refs++;
    if (state == PAGEMAP_EDGE_LEARNED)
        p->nnext_learned++;
    count_next(pm, x, 1);
    return x;
}

static void next_set_state(pagemap_t *pm, pm_page_t *p, pm_next_t *x, pagemap_edge_state_t state)
{
    count_next(pm, x, -1);
    if (x->state == PAGEMAP_EDGE_LEARNED && state != PAGEMAP_EDGE_LEARNED)
        p->nnext_learned--;
    else if (x->state != PAGEMAP_EDGE_LEARNED && state == PAGEMAP_EDGE_LEARNED)
        p->nnext_learned++;
    x->state = state;
    count_next(pm, x, 1);
}

void pm_next_clear(pagemap_t *pm, pm_page_t *p, bool learned_only)
{
    for (size_t i = p->nnext; i-- > 0;) {
        if (!learned_only || p->nexts[i].state == PAGEMAP_EDGE_LEARNED)
            next_remove_at(pm, p, i);
        else
            p->nexts[i].count = 0; /* the entry's navs start again from 0 */
    }
}

size_t pm_next_overrides(const pm_page_t *p)
{
    return p->nnext - p->nnext_learned;
}

double pm_next_probability(const pm_page_t *p, const pm_next_t *x)
{
    if (!(p->navs > 0))
        return 0.0;
    double pr = x->count / p->navs;
    return pr > 1.0 ? 1.0 : pr;
}

/* ---- navigations -------------------------------------------------------- */

/* Length of the authority at the start of a page key. */
static size_t key_authority_len(const char *key)
{
    return strcspn(key, "/?#");
}

static bool same_site_keys(const char *a, const char *b)
{
    size_t la = key_authority_len(a), lb = key_authority_len(b);
    return la > 0 && la == lb && strncasecmp(a, b, la) == 0;
}

/*
 * One transition from entry `key` (a template entry when is_template) to
 * n's page: with from, the entry's navigations away grow and its next pages
 * decay; with pair, n's page counts one more. *facts_done: n's facts were
 * recorded on its next page (a new one gets them here).
 */
static int entry_count(pagemap_t *pm, const char *key, bool is_template, const pagemap_nav_t *n,
                       bool from, bool pair, bool *facts_done)
{
    if (!from && !pair)
        return 0;
    pm_page_t *p = pm_page_get(pm, key, NULL);
    if (p == NULL)
        return HERALD_ENOMEM;
    pm_lru_touch(pm, p);
    if (is_template)
        pm_set_template(pm, p, true);
    else if (p->template_key == NULL && n->from_template_key != NULL &&
             strcmp(n->from_template_key, key) != 0 &&
             !pm_set_str(&p->template_key, n->from_template_key))
        return HERALD_ENOMEM;
    double d = pm->cfg.decay;
    if (from) {
        p->navs = p->navs * d + 1;
        p->navs_total++;
        for (size_t i = 0; i < p->nnext; i++)
            p->nexts[i].count *= d;
    }
    if (!pair)
        return 0;
    pm_target_t *t = target_get(pm, n->page_key, n->url);
    if (t == NULL)
        return HERALD_ENOMEM;
    pm_next_t *x = next_find(p, t);
    if (x == NULL) {
        if ((x = next_add(pm, p, t, PAGEMAP_EDGE_LEARNED)) == NULL) {
            target_drop_unused(pm, t);
            return HERALD_ENOMEM;
        }
        x->first_seen = n->now_ms;
    }
    if (!*facts_done) {
        target_observe(t, n);
        *facts_done = true;
    }
    if (x->state == PAGEMAP_EDGE_BANNED)
        return 0;
    x->count = x->count + 1 > p->navs ? p->navs : x->count + 1;
    x->navs++;
    x->last_seen = n->now_ms;
    return 0;
}

int pagemap_commit_navigation(pagemap_t *pm, const pagemap_nav_t *n)
{
    if (pm == NULL || n == NULL || n->page_key == NULL || n->url == NULL)
        return HERALD_EINVAL;
    const char *from = n->from_page_key, *tfrom = n->from_template_key;
    bool transition = from != NULL && n->status >= 200 && n->status <= 299 && n->html &&
                      !n->authorized && strcmp(from, n->page_key) != 0 &&
                      same_site_keys(from, n->page_key) && !speculation_is_rules_url(n->url);
    if (tfrom != NULL && (strcmp(tfrom, from ? from : "") == 0 || !transition))
        tfrom = NULL;
    pthread_mutex_lock(&pm->lock);
    int rc = 0;
    bool facts_done = false;
    pm_target_t *t = target_find(pm, n->page_key);
    if (t != NULL) {
        target_observe(t, n);
        facts_done = true;
    }
    if (transition) {
        rc = entry_count(pm, from, false, n, n->count_from, n->count_pair, &facts_done);
        if (tfrom != NULL) {
            int rc2 = entry_count(pm, tfrom, true, n, n->count_template_from,
                                  n->count_template_pair, &facts_done);
            rc = rc ? rc : rc2;
        }
        if (n->count_from || n->count_pair)
            pm->navigations_committed++;
    }
    pthread_mutex_unlock(&pm->lock);
    return rc;
}

/* ---- prefetch outcomes -------------------------------------------------- */

static void note_outcome(pm_next_t *x, pagemap_prefetch_event_t ev, double d, int64_t now)
{
    switch (ev) {
    case PAGEMAP_PREFETCH_SENT:
        x->sent++;
        return;
    case PAGEMAP_PREFETCH_UNKNOWN:
        x->unknown++;
        return;
    case PAGEMAP_PREFETCH_USED:
    case PAGEMAP_PREFETCH_UNUSED:
        break;
    }
    if (x->use_n > 0 && now >= x->last_outcome + PAGEMAP_SPEC_RETRY_MS) {
        /* a day without known outcomes: a rule lost to unused prefetches
         * was retried, judge it afresh */
        x->use_hits = x->use_known = 0;
        x->use_n = 0;
    }
    bool used = ev == PAGEMAP_PREFETCH_USED;
    x->use_hits = x->use_hits * d + (used ? 1 : 0);
    x->use_known = x->use_known * d + 1;
    x->use_n++;
    x->last_outcome = now;
    if (used)
        x->used++;
    else
        x->unused++;
}

int pagemap_note_prefetch(pagemap_t *pm, const char *from_page_key, const char *from_template_key,
                          const char *next_key, pagemap_prefetch_event_t event, int64_t now_ms)
{
    if (pm == NULL || from_page_key == NULL || next_key == NULL ||
        (unsigned)event > PAGEMAP_PREFETCH_UNKNOWN)
        return HERALD_EINVAL;
    pthread_mutex_lock(&pm->lock);
    int found = 0;
    const pm_target_t *t = target_find(pm, next_key);
    const char *keys[2] = {from_page_key, from_template_key};
    for (int k = 0; t != NULL && k < 2; k++) {
        if (keys[k] == NULL || (k == 1 && strcmp(keys[1], keys[0]) == 0))
            continue;
        pm_page_t *p = pm_page_find(pm, keys[k]);
        pm_next_t *x = p ? next_find(p, t) : NULL;
        if (x != NULL) {
            note_outcome(x, event, pm->cfg.decay, now_ms);
            found++;
        }
    }
    pthread_mutex_unlock(&pm->lock);
    return found ? 0 : HERALD_ENOTFOUND;
}

/* ---- steering ----------------------------------------------------------- */

int pagemap_next_set_state(pagemap_t *pm, const char *page_key, const char *next_url,
                           pagemap_edge_state_t state)
{
    if (pm == NULL || page_key == NULL || next_url == NULL ||
        (unsigned)state > PAGEMAP_EDGE_BANNED || pm_origin_len(next_url) == 0)
        return HERALD_EINVAL;
    char *key = NULL;
    int rc = template_url_page_key(next_url, &key);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&pm->lock);
    pm_page_t *p = pm_page_find(pm, page_key);
    pm_target_t *t = target_find(pm, key);
    pm_next_t *x = p && t ? next_find(p, t) : NULL;
    if (x != NULL) {
        if (x->state != PAGEMAP_EDGE_LEARNED && state == PAGEMAP_EDGE_LEARNED) {
            /* back under the cap of learned next pages: make room (never for itself) */
            while (p->nnext_learned >= PAGEMAP_MAX_NEXT && p->nnext_learned > 0)
                next_evict_one(pm, p);
            x = next_find(p, t); /* eviction moves next pages in the array */
        }
        next_set_state(pm, p, x, state);
    } else if (state == PAGEMAP_EDGE_LEARNED) {
        rc = HERALD_ENOTFOUND;
    } else {
        bool created = false;
        if (p == NULL && (p = pm_page_get(pm, page_key, &created)) == NULL) {
            rc = HERALD_ENOMEM;
        } else if ((t = target_get(pm, key, next_url)) == NULL ||
                   next_add(pm, p, t, state) == NULL) {
            target_drop_unused(pm, t);
            if (created)
                pm_page_remove(pm, p);
            rc = HERALD_ENOMEM;
        }
    }
    pthread_mutex_unlock(&pm->lock);
    free(key);
    return rc;
}

int pagemap_forget_next(pagemap_t *pm, const char *page_key, const char *next_url)
{
    if (pm == NULL || page_key == NULL || next_url == NULL)
        return HERALD_EINVAL;
    char *key = NULL;
    int rc = template_url_page_key(next_url, &key);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&pm->lock);
    pm_page_t *p = pm_page_find(pm, page_key);
    pm_next_t *x = p ? next_find(p, target_find(pm, key)) : NULL;
    rc = HERALD_ENOTFOUND;
    if (x != NULL) {
        next_remove_at(pm, p, (size_t)(x - p->nexts));
        rc = 0;
    }
    pthread_mutex_unlock(&pm->lock);
    free(key);
    return rc;
}

/* ---- copy-out and restore ----------------------------------------------- */

void pagemap_next_info_dispose(pagemap_next_info_t *x)
{
    if (x == NULL)
        return;
    free(x->key);
    free(x->url);
    x->key = x->url = NULL;
}

void pagemap_next_infos_free(pagemap_next_info_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        pagemap_next_info_dispose(&v[i]);
    free(v);
}

static int cmp_info(const void *a, const void *b)
{
    const pagemap_next_info_t *x = a, *y = b;
    if (x->probability != y->probability)
        return x->probability > y->probability ? -1 : 1;
    return strcmp(x->key, y->key);
}

int pm_next_copy(const pm_page_t *p, const pagemap_spec_opts_t *o, pagemap_next_info_t **out,
                 size_t *n)
{
    *out = NULL;
    *n = 0;
    if (p->nnext == 0)
        return 0;
    pagemap_spec_opts_t def;
    if (o == NULL) {
        pagemap_spec_opts_init(&def);
        o = &def;
    }
    pagemap_next_info_t *v = calloc(p->nnext, sizeof(*v));
    if (v == NULL)
        return HERALD_ENOMEM;
    for (size_t i = 0; i < p->nnext; i++) {
        const pm_next_t *x = &p->nexts[i];
        const pm_target_t *t = x->target;
        pagemap_next_info_t *e = &v[i];
        e->key = pm_dup(t->h.key);
        e->url = pm_dup(t->url);
        if (e->key == NULL || e->url == NULL) {
            pagemap_next_infos_free(v, i + 1);
            return HERALD_ENOMEM;
        }
        e->count = x->count;
        e->probability = pm_next_probability(p, x);
        e->navs = x->navs;
        e->first_seen_ms = x->first_seen;
        e->last_seen_ms = x->last_seen;
        e->state = x->state;
        e->sent = x->sent;
        e->used = x->used;
        e->unused = x->unused;
        e->unknown = x->unknown;
        e->use_hits = x->use_hits;
        e->use_known = x->use_known;
        e->use_n = x->use_n;
        e->last_outcome_ms = x->last_outcome;
        e->status = t->status;
        e->unsafe = t->unsafe;
        e->clean_run = t->clean_run;
        e->nclients = t->nclients;
        memcpy(e->clients, t->clients, sizeof(e->clients));
        e->private_url = t->private_url;
        e->verdict = pm_next_verdict(p, x, NULL, NULL, o, &e->reason);
    }
    qsort(v, p->nnext, sizeof(*v), cmp_info);
    *out = v;
    *n = p->nnext;
    return 0;
}

int pagemap_next_get(pagemap_t *pm, const char *page_key, const pagemap_spec_opts_t *opts,
                     pagemap_next_info_t **out, size_t *n)
{
    if (pm == NULL || page_key == NULL || out == NULL || n == NULL)
        return HERALD_EINVAL;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&pm->lock);
    const pm_page_t *p = pm_page_find(pm, page_key);
    int rc = p == NULL ? HERALD_ENOTFOUND : pm_next_copy(p, opts, out, n);
    pthread_mutex_unlock(&pm->lock);
    return rc;
}

int pm_next_restore(pagemap_t *pm, pm_page_t *p, const pagemap_next_info_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const pagemap_next_info_t *e = &v[i];
        if (e->key == NULL || e->url == NULL)
            continue;
        pm_target_t *t = target_find(pm, e->key);
        if (t != NULL && next_find(p, t) != NULL)
            continue; /* a duplicate in the document: first wins */
        if (e->state == PAGEMAP_EDGE_LEARNED && p->nnext_learned >= PAGEMAP_MAX_NEXT)
            continue; /* dumped most likely first: the least likely are dropped */
        if ((t = target_get(pm, e->key, e->url)) == NULL)
            return HERALD_ENOMEM;
        pm_next_t *x = next_add(pm, p, t, e->state);
        if (x == NULL) {
            target_drop_unused(pm, t);
            return HERALD_ENOMEM;
        }
        if (!pm_set_str(&t->url, e->url))
            return HERALD_ENOMEM;
        t->private_url = url_is_private(t->url);
        t->status = e->status;
        t->unsafe = e->unsafe & ((1u << PAGEMAP_UNSAFE_NBITS) - 1);
        t->clean_run = e->clean_run;
        t->nclients =
            e->nclients < PAGEMAP_NEXT_MIN_CLIENTS ? e->nclients : PAGEMAP_NEXT_MIN_CLIENTS;
        memcpy(t->clients, e->clients, sizeof(t->clients));
        x->count = e->count > p->navs ? p->navs : e->count;
        x->navs = e->navs;
        x->first_seen = e->first_seen_ms;
        x->last_seen = e->last_seen_ms;
        x->sent = e->sent;
        x->used = e->used;
        x->unused = e->unused;
        x->unknown = e->unknown;
        x->use_known = e->use_known;
        x->use_hits = e->use_hits > e->use_known ? e->use_known : e->use_hits;
        x->use_n = e->use_n;
        x->last_outcome = e->last_outcome_ms;
    }
    return 0;
}

void pagemap_set_inline_rules(pagemap_t *pm, const char *page_key, bool has)
{
    if (pm == NULL || page_key == NULL)
        return;
    pthread_mutex_lock(&pm->lock);
    pm_page_t *p = pm_page_find(pm, page_key);
    if (p != NULL)
        p->inline_rules = has;
    pthread_mutex_unlock(&pm->lock);
}

bool pagemap_inline_rules(pagemap_t *pm, const char *page_key)
{
    if (pm == NULL || page_key == NULL)
        return false;
    pthread_mutex_lock(&pm->lock);
    const pm_page_t *p = pm_page_find(pm, page_key);
    bool has = p != NULL && p->inline_rules;
    pthread_mutex_unlock(&pm->lock);
    return has;
}
