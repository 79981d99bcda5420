/*
 * Learning glue (see learning.h): classify requests, keep per-connection
 * visits, tee page and CSS bodies into discovery on the thread pool,
 * attribute follow-ups, record asset metadata and commit each visit once.
 *
 * Lifetimes
 *   learning_conn_t   refcounted: the connection holds one reference until
 *                     learning_conn_release(), each exchange's learning state
 *                     one. Freed in its timer's close callback.
 *   visit_t           refcounted: one "open" reference dropped when the
 *                     visit is committed or discarded, one per exchange
 *                     attributed to it (page, follow-ups, pushes) and one per
 *                     discovery work item in flight. A visit outlives its
 *                     connection when discovery is still running: it then
 *                     commits from the work's after_cb.
 *   learning_ex       owned by the exchange (ex->learn), freed in
 *                     learning_on_free().
 */
#include "proxy/learning.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <uv.h>

#include "learn/template.h"
#include "parser/decode.h"
#include "parser/error.h"
#include "parser/html.h"
#include "parser/link.h"
#include "parser/url.h"
#include "proxy/alloc.h"
#include "proxy/log.h"
#include "proxy/worker.h"

/** Once a page has this many visits, HTML discovery runs on 1 visit in LEARNING_SAMPLE. */
#define LEARNING_STABLE_VISITS 8
#define LEARNING_SAMPLE 8
/** CSS up to this size is scanned on the loop, larger on the thread pool. */
#define LEARNING_CSS_INLINE (64u * 1024u)
/** Decoded CSS bytes kept for scanning (more is ignored). */
#define LEARNING_CSS_CAP (512u * 1024u)
/** Decoded bytes a page's decoder may produce (the scanner keeps its own cap). */
#define LEARNING_DECODE_CAP (4u * 1024u * 1024u)
/** URLs remembered per connection (requested, pushed); the oldest are forgotten. */
#define LEARNING_CONN_URLS 512
/** Page visits with an open learn window per connection, at most. */
#define LEARNING_CONN_VISITS 8

/** Items one visit collects at most (pagemap counts PAGEMAP_MAX_VISIT_ITEMS). */
#define LEARNING_VISIT_ITEMS PAGEMAP_MAX_VISIT_ITEMS
/** Stylesheets herald fetches itself per visit at most (see visit_chase). */
#define LEARNING_MAX_CHASES 8
/** Document-order bases: HTML first, then CSS-found, then follow-ups. */
#define ORDER_LINK 2000u
#define ORDER_CSS 4000u
#define ORDER_FOLLOWUP 8000u

/* ---- small string sets (FIFO ring of malloc'd keys) ---- */

typedef struct strring {
    char *v[LEARNING_CONN_URLS];
    size_t n, head; /* head: next slot to overwrite once full */
} strring_t;

/* Times stored in the map (first/last seen, last visit) outlive the process
 * in the state file: wall-clock milliseconds, not the loop's monotonic clock. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool strring_has(const strring_t *r, const char *s)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i], s) == 0)
            return true;
    return false;
}

static void strring_add(strring_t *r, const char *s)
{
    if (strring_has(r, s))
        return;
    if (r->n < LEARNING_CONN_URLS) {
        r->v[r->n++] = xstrdup(s);
        return;
    }
    free(r->v[r->head]);
    r->v[r->head] = xstrdup(s);
    r->head = (r->head + 1) % LEARNING_CONN_URLS;
}

static void strring_dispose(strring_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i]);
    r->n = 0;
}

/* ---- visits ---- */

/** One asset seen during a visit, with the facts of its response when it passed through. */
typedef struct item {
    char *url, *key;
    pagemap_kind_t kind;
    const char *as; /* static */
    pagemap_cors_t cors;
    unsigned order, sources;
    bool blocking, skipped, push_completed, push_cancelled;
    bool followup_pending; /* requested as a follow-up, response not yet served */
    bool chased;           /* herald fetched it itself (visit_chase) */
    bool has_meta;
    pagemap_asset_meta_t meta; /* strings malloc'd, owned by the item */
} item_t;

typedef struct visit visit_t;

struct learning_conn {
    worker_t *w;
    pagemap_t *pm;
    uint64_t window_ms;
    uv_timer_t timer; /* fires at the earliest window end of an open visit */
    int refs;
    bool released;   /* the connection is gone */
    visit_t *visits; /* open visits, most recent first */
    strring_t requested, pushed;
};

/** The states of a visit; visit_set_state() checks the transitions. */
typedef enum visit_state {
    VISIT_OPEN,      /* within the window: follow-ups are attributed to it */
    VISIT_EXPIRED,   /* window over (or connection gone): waiting for page/discovery */
    VISIT_COMMITTED, /* committed (or discarded); late notes are ignored */
} visit_state_t;

struct visit {
    int refs;
    visit_state_t state;
    learning_conn_t *lc; /* NULL once detached (connection gone) */
    pagemap_t *pm;
    visit_t *next; /* in lc->visits */
    char *page_key, *template_key, *page_url, *authority;
    uint64_t t_ms; /* uv_now at the page request */
    double think_ms;
    uint64_t html_size;
    int status;
    bool is_html;   /* final response 2xx text/html (or other status: recorded, teaches nothing) */
    bool page_done; /* the page's response ended, failed, or the exchange is gone */
    bool failed;    /* the page's response failed: nothing is committed */
    bool authorized, html_scanned, css_scanned, had_followups;
    bool sampled;    /* discovery runs on this visit (sampling): stylesheets may be chased */
    unsigned chases; /* stylesheets herald fetched for this visit */
    bool chasing;    /* committed; fetching imported stylesheets (visit_settle) */
    size_t n_done;   /* items[0, n_done) are committed */
    worker_t *w;
    char client_addr[48];
    int pending_work;
    unsigned next_order;
    item_t *items;
    size_t n, cap;
};

static void visit_set_state(visit_t *v, visit_state_t to)
{
    /* OPEN -> EXPIRED -> COMMITTED, or OPEN -> COMMITTED (discarded early) */
    if (!(to > v->state))
        abort();
    v->state = to;
}

static void item_dispose(item_t *it)
{
    free(it->url);
    free(it->key);
    free((char *)it->meta.content_type);
    free((char *)it->meta.etag);
    free((char *)it->meta.last_modified);
    free((char *)it->meta.location);
}

static void visit_unref(visit_t *v)
{
    if (--v->refs > 0)
        return;
    for (size_t i = 0; i < v->n; i++)
        item_dispose(&v->items[i]);
    free(v->items);
    free(v->page_key);
    free(v->template_key);
    free(v->page_url);
    free(v->authority);
    free(v);
}

static item_t *visit_find(visit_t *v, const char *key)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->items[i].key, key) == 0)
            return &v->items[i];
    return NULL;
}

/*
 * The item for key, created if new (NULL when the visit is full or
 * committed). A found item keeps its kind unless `kind_known` and it had
 * none better; sources are or-ed by the caller.
 */
static item_t *visit_item(visit_t *v, const char *url, const char *key, pagemap_kind_t kind,
                          unsigned order)
{
    if (v->state == VISIT_COMMITTED && !v->chasing)
        return NULL;
    item_t *it = visit_find(v, key);
    if (it != NULL) {
        if (order < it->order)
            it->order = order;
        return it;
    }
    if (v->n == LEARNING_VISIT_ITEMS)
        return NULL;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->items = xrealloc(v->items, v->cap * sizeof(*v->items));
    }
    it = &v->items[v->n++];
    memset(it, 0, sizeof(*it));
    it->url = xstrdup(url);
    it->key = xstrdup(key);
    it->kind = kind;
    it->as = kind == PAGEMAP_KIND_PRECONNECT ? NULL : asset_kind_as((asset_kind_t)kind);
    it->cors = kind == PAGEMAP_KIND_FONT ? PAGEMAP_CORS_ANONYMOUS : PAGEMAP_CORS_NONE;
    it->order = order;
    it->blocking = kind == PAGEMAP_KIND_STYLE;
    return it;
}

static void lc_unref(learning_conn_t *lc);
static void lc_arm(learning_conn_t *lc);

/* Commit items [v->n_done, v->n): the visit itself, or (supplement) what
 * stylesheets herald fetched after it taught. */
static void visit_commit(visit_t *v, bool supplement)
{
    if (v->failed || !v->is_html) {
        LOG_DEBUG("learning: %s not committed (%s)", v->page_key,
                  v->failed ? "response failed" : "not an HTML page");
        return;
    }
    size_t from = v->n_done;
    v->n_done = v->n;
    if (supplement && from == v->n)
        return;
    pagemap_item_t *pi = xcalloc(v->n ? v->n : 1, sizeof(*pi));
    size_t n = 0;
    for (size_t i = from; i < v->n; i++) {
        const item_t *it = &v->items[i];
        unsigned src = it->sources;
        if (it->followup_pending)
            src &= ~(unsigned)PAGEMAP_SRC_FOLLOWUP; /* requested, never served */
        if (src == 0 && !it->skipped)
            continue;
        pi[n++] = (pagemap_item_t){.url = it->url,
                                   .key = it->key,
                                   .kind = it->kind,
                                   .as = it->as,
                                   .crossorigin = it->cors,
                                   .order = it->order,
                                   .sources = src,
                                   .blocking = it->blocking,
                                   /* the client fetched it after all: a hit */
                                   .skipped = it->skipped && !(src & PAGEMAP_SRC_FOLLOWUP),
                                   .push_cancelled = it->push_cancelled,
                                   .push_completed = it->push_completed};
    }
    pagemap_visit_t pv = {.page_key = v->page_key,
                          .template_key = supplement ? NULL : v->template_key,
                          .now_ms = wall_ms(),
                          .think_ms = supplement ? -1 : v->think_ms,
                          .html_size = supplement ? 0 : v->html_size,
                          .supplement = supplement,
                          .status = v->status,
                          .html_scanned = v->html_scanned,
                          .css_scanned = v->css_scanned,
                          .had_followups = v->had_followups,
                          .authorized = v->authorized,
                          .items = pi,
                          .nitems = n};
    int rc = pagemap_commit_visit(v->pm, &pv);
    free(pi);
    if (rc != 0) {
        LOG_WARN("learning: commit of %s failed: %s", v->page_key, herald_strerror(rc));
        return;
    }
    /* Metadata of responses seen before their edge existed (first visit). */
    for (size_t i = from; i < v->n; i++)
        if (v->items[i].has_meta)
            pagemap_observe_asset(v->pm, v->items[i].key, &v->items[i].meta);
    LOG_DEBUG("learning: committed %s%s: %zu items, status %d, scanned %d, followups %d",
              v->page_key, supplement ? " (supplement)" : "", n, v->status, v->html_scanned,
              v->had_followups);
}

/* Unlink v from its connection's list (keeps the open reference). */
static void visit_detach(visit_t *v)
{
    learning_conn_t *lc = v->lc;
    if (lc == NULL)
        return;
    for (visit_t **pp = &lc->visits; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == v) {
            *pp = v->next;
            break;
        }
    }
    v->next = NULL;
    v->lc = NULL;
}

static bool visit_chase(visit_t *v);

/*
 * After the commit: fetch the stylesheets the visit's CSS imported that did
 * not pass through (visit_chase) and commit what they teach as a
 * supplement, until nothing new is found; then drop the open reference.
 * The visit's own commit never waits for these fetches, so the next visit
 * of the page is planned as soon as the client is done.
 */
static void visit_settle(visit_t *v)
{
    if (v->state != VISIT_COMMITTED || !v->chasing || v->pending_work > 0)
        return;
    visit_commit(v, true);
    if (visit_chase(v))
        return; /* called again when those fetches are done */
    v->chasing = false;
    visit_unref(v); /* the open reference */
}

/* Commit v when its window is over, its page finished and no discovery runs. */
static void visit_try_commit(visit_t *v)
{
    if (v->state == VISIT_COMMITTED) {
        visit_settle(v);
        return;
    }
    if (v->state != VISIT_EXPIRED || !v->page_done || v->pending_work > 0)
        return;
    visit_set_state(v, VISIT_COMMITTED);
    visit_detach(v);
    visit_commit(v, false);
    v->chasing = true;
    visit_settle(v);
}

static void visit_expire(visit_t *v)
{
    if (v->state == VISIT_OPEN)
        visit_set_state(v, VISIT_EXPIRED);
    visit_try_commit(v);
}

/* ---- per-connection state ---- */

static void on_timer_closed(uv_handle_t *h)
{
    learning_conn_t *lc = h->data;
    strring_dispose(&lc->requested);
    strring_dispose(&lc->pushed);
    free(lc);
}

static void lc_unref(learning_conn_t *lc)
{
    if (--lc->refs > 0)
        return;
    /* The worker's final walk may have closed the timer already (shutdown):
     * then the memory is left to the exiting process rather than freed early. */
    if (!uv_is_closing((uv_handle_t *)&lc->timer))
        uv_close((uv_handle_t *)&lc->timer, on_timer_closed);
}

static void on_window_timer(uv_timer_t *t)
{
    learning_conn_t *lc = t->data;
    uint64_t now = uv_now(t->loop);
    visit_t *v = lc->visits;
    while (v != NULL) {
        visit_t *next = v->next; /* visit_expire may unlink v */
        if (v->state == VISIT_OPEN && now >= v->t_ms + lc->window_ms)
            visit_expire(v);
        v = next;
    }
    lc_arm(lc);
}

static void lc_arm(learning_conn_t *lc)
{
    uint64_t now = uv_now(&lc->w->loop), due = UINT64_MAX;
    for (visit_t *v = lc->visits; v != NULL; v = v->next)
        if (v->state == VISIT_OPEN && v->t_ms + lc->window_ms < due)
            due = v->t_ms + lc->window_ms;
    if (due == UINT64_MAX || lc->released) {
        uv_timer_stop(&lc->timer);
        return;
    }
    uv_timer_start(&lc->timer, on_window_timer, due > now ? due - now : 0, 0);
}

learning_conn_t *learning_conn_create(worker_t *w)
{
    if (w->learn == NULL)
        return NULL;
    learning_conn_t *lc = xcalloc(1, sizeof(*lc));
    lc->w = w;
    lc->pm = w->learn;
    lc->window_ms = (uint64_t)(w->cfg->learn_window * 1000.0);
    lc->refs = 1;
    uv_timer_init(&w->loop, &lc->timer);
    lc->timer.data = lc;
    return lc;
}

void learning_conn_release(learning_conn_t *lc)
{
    if (lc == NULL || lc->released)
        return;
    lc->released = true;
    uv_timer_stop(&lc->timer);
    /* Every open visit ends now: detach it (it may still wait for discovery). */
    while (lc->visits != NULL) {
        visit_t *v = lc->visits;
        visit_detach(v);
        visit_expire(v);
    }
    lc_unref(lc);
}

bool learning_conn_requested(const learning_conn_t *lc, const char *url_key)
{
    return lc != NULL && url_key != NULL && strring_has(&lc->requested, url_key);
}

bool learning_conn_pushed(const learning_conn_t *lc, const char *url_key)
{
    return lc != NULL && url_key != NULL && strring_has(&lc->pushed, url_key);
}

/* ---- per-exchange state ---- */

typedef struct learning_ex {
    learning_conn_t *lc; /* ref'd, or NULL */
    visit_t *visit;      /* ref'd: the page's own visit, or the one ex is attributed to */
    bool is_page;
    bool followup; /* attributed non-page request */
    bool pushed;
    bool teach; /* GET/HEAD without Authorization: its response may teach */
    bool is_get;
    char *url; /* absolute URL as requested (malloc'd) */
    char *key; /* normalised (malloc'd) */
    pagemap_kind_t kind_hint;
    bool kind_from_dest;
    /* body tee */
    decode_t *dec;
    html_scanner_t *scanner; /* page: HTML discovery until queued */
    char *css;               /* attributed text/css: decoded body */
    size_t css_len, css_cap;
    bool css_on;
    bool css_overflow;
    bool chase; /* herald's own fetch of a stylesheet for the visit */
} learning_ex_t;

/* In the exchange's pool: it lives exactly as long (learning_on_free). */
static learning_ex_t *lex_get(exchange_t *ex)
{
    if (ex->learn == NULL) {
        ex->learn = mempool_alloc(&ex->pool, sizeof(learning_ex_t));
        memset(ex->learn, 0, sizeof(learning_ex_t));
    }
    return ex->learn;
}

static const char *req_header(const exchange_t *ex, const char *name)
{
    const header_t *h = headers_find(&ex->req_headers, name);
    return h != NULL ? h->value : NULL;
}

static const char *resp_header(const exchange_t *ex, const char *name)
{
    const header_t *h = headers_find(&ex->resp_headers, name);
    return h != NULL ? h->value : NULL;
}

/* Case-insensitive: does the comma/semicolon-separated value contain token t? */
static bool has_word(const char *v, const char *t)
{
    if (v == NULL)
        return false;
    size_t n = strlen(t);
    for (const char *p = v; *p; p++)
        if (strncasecmp(p, t, n) == 0)
            return true;
    return false;
}

learning_class_t learning_classify(const char *method, const char *sec_fetch_dest,
                                   const char *sec_fetch_mode, const char *accept)
{
    if (method == NULL || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0))
        return LEARNING_CLASS_OTHER;
    if (sec_fetch_dest != NULL || sec_fetch_mode != NULL) {
        if ((sec_fetch_dest != NULL && strcasecmp(sec_fetch_dest, "document") == 0) ||
            (sec_fetch_mode != NULL && strcasecmp(sec_fetch_mode, "navigate") == 0))
            return LEARNING_CLASS_PAGE;
        return LEARNING_CLASS_SUBRESOURCE;
    }
    if (has_word(accept, "text/html"))
        return LEARNING_CLASS_PAGE;
    if (accept == NULL || accept[strspn(accept, " \t")] == '\0' ||
        strcmp(accept + strspn(accept, " \t"), "*/*") == 0)
        return LEARNING_CLASS_MAYBE_PAGE;
    return LEARNING_CLASS_SUBRESOURCE;
}

static bool ends_with(const char *path, size_t len, const char *ext)
{
    size_t n = strlen(ext);
    return len >= n && strncasecmp(path + len - n, ext, n) == 0;
}

pagemap_kind_t learning_kind_guess(const char *dest, const char *ct, const char *url)
{
    if (dest != NULL) {
        if (strcasecmp(dest, "style") == 0)
            return PAGEMAP_KIND_STYLE;
        if (strcasecmp(dest, "script") == 0)
            return PAGEMAP_KIND_SCRIPT;
        if (strcasecmp(dest, "font") == 0)
            return PAGEMAP_KIND_FONT;
        if (strcasecmp(dest, "image") == 0)
            return PAGEMAP_KIND_IMAGE;
        if (strcasecmp(dest, "manifest") == 0)
            return PAGEMAP_KIND_MANIFEST;
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
    if (url != NULL) {
        size_t len = strcspn(url, "?#");
        if (ends_with(url, len, ".css"))
            return PAGEMAP_KIND_STYLE;
        if (ends_with(url, len, ".js") || ends_with(url, len, ".mjs"))
            return PAGEMAP_KIND_SCRIPT;
        if (ends_with(url, len, ".woff2") || ends_with(url, len, ".woff") ||
            ends_with(url, len, ".ttf") || ends_with(url, len, ".otf"))
            return PAGEMAP_KIND_FONT;
        static const char *const img[] = {".png", ".jpg",  ".jpeg", ".gif",
                                          ".svg", ".webp", ".avif", ".ico"};
        for (size_t i = 0; i < sizeof(img) / sizeof(img[0]); i++)
            if (ends_with(url, len, img[i]))
                return PAGEMAP_KIND_IMAGE;
    }
    return PAGEMAP_KIND_OTHER;
}

/* The request's absolute URL "scheme://authority/path" (malloc'd) or NULL. */
static char *request_url(const exchange_t *ex)
{
    if (ex->authority == NULL || ex->authority[0] == '\0' || ex->path == NULL || ex->path[0] != '/')
        return NULL;
    size_t sl = strlen(ex->scheme), al = strlen(ex->authority), pl = strlen(ex->path);
    char *u = xmalloc(sl + 3 + al + pl + 1);
    memcpy(u, ex->scheme, sl);
    memcpy(u + sl, "://", 3);
    memcpy(u + sl + 3, ex->authority, al);
    memcpy(u + sl + 3 + al, ex->path, pl + 1);
    return u;
}

/* Normalise u; NULL when it does not parse (xmalloc rule: ENOMEM aborts). */
static char *normalize(const char *u)
{
    char *out = NULL;
    int rc = url_normalize(u, &out);
    if (rc == HERALD_ENOMEM)
        alloc_fail(__FILE__, __LINE__, 0);
    return rc == 0 ? out : NULL;
}

/* lx->key for lx->url: the URL itself when it is a key already (most
 * requests), which saves a copy on every request; see lex_free_urls. */
static void lex_set_urls(learning_ex_t *lx, char *url)
{
    lx->url = url;
    lx->key = url == NULL ? NULL : url_is_key(url) ? url : normalize(url);
}

static void lex_free_urls(learning_ex_t *lx)
{
    if (lx->key != lx->url)
        free(lx->key);
    free(lx->url);
    lx->key = lx->url = NULL;
}

/* Split a normalised absolute URL into its authority and path+query (both malloc'd). */
static bool split_url(const char *norm, char **authority, char **pathquery)
{
    const char *p = strstr(norm, "://");
    if (p == NULL)
        return false;
    p += 3;
    size_t alen = strcspn(p, "/?#");
    if (alen == 0)
        return false;
    *authority = xstrndup(p, alen);
    const char *rest = p + alen;
    size_t rlen = strcspn(rest, "#");
    if (rlen == 0) {
        *pathquery = xstrdup("/");
    } else if (rest[0] == '?') {
        *pathquery = xmalloc(rlen + 2);
        (*pathquery)[0] = '/';
        memcpy(*pathquery + 1, rest, rlen);
        (*pathquery)[rlen + 1] = '\0';
    } else {
        *pathquery = xstrndup(rest, rlen);
    }
    return true;
}

/* Open a visit for page request ex on lc (returns it ref'd for ex, or NULL). */
static visit_t *visit_open(learning_conn_t *lc, exchange_t *ex, learning_ex_t *lx)
{
    char *authority = NULL, *pq = NULL, *pk = NULL, *tk = NULL;
    if (!split_url(lx->key, &authority, &pq))
        return NULL;
    int rc = template_page_key(authority, pq, &pk);
    free(pq);
    if (rc == 0 && (rc = template_key(pk, &tk)) == 0 && strcmp(tk, pk) == 0) {
        free(tk);
        tk = NULL;
    }
    if (rc != 0) {
        free(authority);
        free(pk);
        if (rc == HERALD_ENOMEM)
            alloc_fail(__FILE__, __LINE__, 0);
        return NULL;
    }
    visit_t *v = xcalloc(1, sizeof(*v));
    v->refs = 2; /* open + the page exchange */
    v->state = VISIT_OPEN;
    v->lc = lc;
    v->pm = lc->pm;
    v->page_key = pk;
    v->template_key = tk;
    v->page_url = xstrdup(lx->key);
    v->authority = authority;
    v->t_ms = uv_now(&lc->w->loop);
    v->think_ms = -1;
    v->authorized = req_header(ex, "authorization") != NULL;
    v->w = lc->w;
    memcpy(v->client_addr, ex->client_addr, sizeof(v->client_addr));
    v->next = lc->visits;
    lc->visits = v;
    /* A client loading page after page on one connection (a crawler, a
     * load tool) must not grow the list every attribution walks: past
     * LEARNING_CONN_VISITS open visits the oldest ones close their window
     * early (a browser's follow-ups come for the newest page anyway). */
    size_t open = 0;
    for (visit_t *o = lc->visits, *next; o != NULL; o = next) {
        next = o->next; /* visit_expire may unlink o */
        if (o->state == VISIT_OPEN && ++open > LEARNING_CONN_VISITS)
            visit_expire(o);
    }
    lc_arm(lc);
    return v;
}

/* The open visit a non-page request of lc belongs to, or NULL (see learning.h). */
static visit_t *attribute(learning_conn_t *lc, const char *referer, uint64_t now)
{
    visit_t *newest = NULL;
    for (visit_t *v = lc->visits; v != NULL; v = v->next) {
        if (v->state != VISIT_OPEN || now > v->t_ms + lc->window_ms)
            continue;
        if (v->status != 0 && !v->is_html)
            continue; /* answered, and not a page after all (an image asked for with * / *) */
        if (referer == NULL)
            return v; /* most recent first */
        if (strcmp(v->page_url, referer) == 0)
            return v;
        const item_t *it = visit_find(v, referer);
        if (it != NULL && (it->sources & (PAGEMAP_SRC_FOLLOWUP | PAGEMAP_SRC_PUSH)))
            newest = newest ? newest : v;
    }
    return newest;
}

void learning_on_request(exchange_t *ex)
{
    learning_conn_t *lc = ex->lconn;
    if (lc == NULL || lc->released)
        return;
    learning_ex_t *lx = lex_get(ex);
    if (lx->lc == NULL) {
        lx->lc = lc;
        lc->refs++;
    }
    if (ex->role == EXCHANGE_ROLE_PUSHED)
        return; /* learning_link_pushed() did the rest (or nothing links it) */
    learning_class_t cls =
        learning_classify(ex->method, req_header(ex, "sec-fetch-dest"),
                          req_header(ex, "sec-fetch-mode"), req_header(ex, "accept"));
    if (cls == LEARNING_CLASS_OTHER || ex->req_upgrade_websocket)
        return;
    lex_set_urls(lx, request_url(ex));
    if (lx->key == NULL)
        return;
    lx->is_get = strcmp(ex->method, "GET") == 0;
    lx->teach = req_header(ex, "authorization") == NULL;
    strring_add(&lc->requested, lx->key);
    const char *ref = req_header(ex, "referer");
    uint64_t now = uv_now(&lc->w->loop);
    if (cls == LEARNING_CLASS_MAYBE_PAGE)
        cls = ref == NULL && attribute(lc, NULL, now) == NULL ? LEARNING_CLASS_PAGE
                                                              : LEARNING_CLASS_SUBRESOURCE;
    if (cls == LEARNING_CLASS_PAGE) {
        lx->visit = visit_open(lc, ex, lx);
        if (lx->visit != NULL) {
            lx->is_page = true;
            ex->role = EXCHANGE_ROLE_PAGE;
        }
        return;
    }
    if (!lx->teach)
        return; /* requests carrying Authorization teach nothing */
    const char *dest = req_header(ex, "sec-fetch-dest");
    lx->kind_hint = learning_kind_guess(dest, NULL, lx->key);
    lx->kind_from_dest = dest != NULL && strcasecmp(dest, "empty") != 0;
    char *refkey = ref != NULL ? normalize(ref) : NULL;
    if (ref != NULL && refkey == NULL)
        return; /* an unusable Referer attributes nothing */
    visit_t *v = attribute(lc, refkey, now);
    free(refkey);
    if (v == NULL || strcmp(v->page_url, lx->key) == 0)
        return;
    item_t *it = visit_item(v, lx->url, lx->key, lx->kind_hint, ORDER_FOLLOWUP + v->next_order++);
    if (it == NULL)
        return;
    if (!(it->sources & PAGEMAP_SRC_FOLLOWUP))
        it->followup_pending = true;
    it->sources |= PAGEMAP_SRC_FOLLOWUP;
    lx->visit = v;
    v->refs++;
    lx->followup = true;
    ex->role = EXCHANGE_ROLE_ASSET;
}

/* ---- discovery on the thread pool ---- */

typedef struct work {
    uv_work_t req;
    visit_t *v;
    html_scanner_t *scanner; /* HTML work, or NULL */
    char *css;               /* CSS work: body and its URL */
    size_t css_len;
    char *css_url;
    asset_list_t out;
    int rc;
} work_t;

static void work_run(uv_work_t *req)
{
    /* Off the loop: touches only the work's own scanner/buffer and list. */
    work_t *w = container_of(req, work_t, req);
    if (w->scanner != NULL)
        w->rc = html_scanner_finish(w->scanner, &w->out);
    else
        w->rc = html_add_css(w->css, w->css_len, w->css_url, &w->out);
}

static void add_assets(visit_t *v, const asset_list_t *l, unsigned src, unsigned order_base)
{
    for (size_t i = 0; i < l->n; i++) {
        const asset_t *a = &l->v[i];
        if (!a->pick)
            continue; /* a srcset candidate a DPR-1 browser does not fetch */
        char *key = a->kind == ASSET_PRECONNECT ? xstrdup(a->url) : normalize(a->url);
        if (key == NULL)
            continue;
        item_t *it = visit_item(v, a->url, key, (pagemap_kind_t)a->kind, order_base + a->order);
        free(key);
        if (it == NULL)
            continue;
        if (!(it->sources & (PAGEMAP_SRC_HTML | PAGEMAP_SRC_CSS | PAGEMAP_SRC_LINK))) {
            /* discovery knows the kind and fetch mode better than a follow-up guess */
            it->kind = (pagemap_kind_t)a->kind;
            it->as = a->as;
            it->cors = (pagemap_cors_t)a->crossorigin;
        }
        it->sources |= src;
        it->blocking |= a->blocking;
    }
}

static void work_done(uv_work_t *req, int status)
{
    work_t *w = container_of(req, work_t, req);
    visit_t *v = w->v;
    if (status == 0 && w->rc == 0) {
        if (w->scanner != NULL) {
            add_assets(v, &w->out, PAGEMAP_SRC_HTML, 0);
            v->html_scanned = true;
        } else {
            add_assets(v, &w->out, PAGEMAP_SRC_CSS, ORDER_CSS);
            v->css_scanned = true;
        }
    }
    asset_list_dispose(&w->out);
    html_scanner_destroy(w->scanner);
    free(w->css);
    free(w->css_url);
    free(w);
    v->pending_work--;
    visit_try_commit(v);
    visit_unref(v);
}

static void queue_work(exchange_t *ex, visit_t *v, work_t *w)
{
    w->v = v;
    v->refs++;
    v->pending_work++;
    int rc = uv_queue_work(&ex->worker->loop, &w->req, work_run, work_done);
    if (rc != 0) {
        /* the callbacks never run */
        w->rc = rc;
        work_done(&w->req, rc);
    }
}

static void queue_html(exchange_t *ex, learning_ex_t *lx)
{
    work_t *w = xcalloc(1, sizeof(*w));
    w->scanner = lx->scanner;
    lx->scanner = NULL;
    queue_work(ex, lx->visit, w);
}

static void queue_css(exchange_t *ex, learning_ex_t *lx)
{
    work_t *w = xcalloc(1, sizeof(*w));
    w->css = lx->css; /* hand-over: the work owns the body now */
    w->css_len = lx->css_len;
    w->css_url = xstrdup(lx->url);
    lx->css = NULL;
    lx->css_on = false;
    queue_work(ex, lx->visit, w);
}

/* ---- responses ---- */

/* The charset parameter of a Content-Type (in ex->pool) or NULL. */
static const char *ct_charset(exchange_t *ex, const char *ct)
{
    const char *p = ct ? strcasestr(ct, "charset=") : NULL;
    if (p == NULL)
        return NULL;
    p += 8;
    if (*p == '"')
        p++;
    size_t n = strcspn(p, "\"; \t");
    return n ? mempool_strndup(&ex->pool, p, n) : NULL;
}

/* Origin Link: rel=preload (and preconnect) headers of a page's 103 or final response. */
static void learn_links(exchange_t *ex, visit_t *v)
{
    for (size_t i = 0; i < ex->resp_headers.n; i++) {
        const header_t *h = &ex->resp_headers.v[i];
        if (!headers_name_eq(h->name, h->name_len, "link"))
            continue;
        link_list_t ll = {0};
        if (link_parse(h->value, h->value_len, v->page_url, &ll, NULL) != 0)
            continue;
        for (size_t k = 0; k < ll.n; k++) {
            const link_t *l = &ll.v[k];
            asset_t a = {0};
            if (l->rel & (LINK_REL_PRECONNECT | LINK_REL_DNS_PREFETCH)) {
                char *origin = NULL;
                if (url_origin(l->url, &origin) != 0)
                    continue;
                item_t *it = visit_item(v, origin, origin, PAGEMAP_KIND_PRECONNECT, ORDER_LINK + k);
                free(origin);
                if (it != NULL)
                    it->sources |= PAGEMAP_SRC_LINK;
                continue;
            }
            if (!(l->rel & (LINK_REL_PRELOAD | LINK_REL_MODULEPRELOAD | LINK_REL_STYLESHEET)))
                continue;
            if (l->nopush)
                continue; /* the origin said not to push it: never plan it */
            char *key = normalize(l->url);
            if (key == NULL)
                continue;
            pagemap_kind_t kind;
            if (l->rel & LINK_REL_MODULEPRELOAD)
                kind = PAGEMAP_KIND_MODULE;
            else if (l->rel & LINK_REL_STYLESHEET)
                kind = PAGEMAP_KIND_STYLE;
            else
                kind = learning_kind_guess(l->as, NULL, l->url);
            (void)a;
            item_t *it = visit_item(v, l->url, key, kind, ORDER_LINK + k);
            free(key);
            if (it == NULL)
                continue;
            if (!(it->sources & (PAGEMAP_SRC_HTML | PAGEMAP_SRC_CSS | PAGEMAP_SRC_LINK))) {
                it->kind = kind;
                if (l->crossorigin != ASSET_CORS_NONE)
                    it->cors = (pagemap_cors_t)l->crossorigin;
            }
            it->sources |= PAGEMAP_SRC_LINK;
        }
        link_list_dispose(&ll);
    }
}

static bool is_html(const char *ct)
{
    return ct != NULL && strncasecmp(ct, "text/html", 9) == 0;
}

/* Whether this page visit runs HTML discovery (sampling once the map is stable). */
static bool should_scan(visit_t *v)
{
    pagemap_page_info_t info;
    if (pagemap_page_get(v->pm, v->page_key, &info, NULL, NULL) != 0)
        return true; /* never seen (or no memory): scan */
    uint64_t n = info.visits_total;
    pagemap_page_info_dispose(&info);
    return n < LEARNING_STABLE_VISITS || n % LEARNING_SAMPLE == 0;
}

static void start_decoder(exchange_t *ex, learning_ex_t *lx, size_t cap)
{
    const char *ce = resp_header(ex, "content-encoding");
    if (ce == NULL || strcasecmp(ce, "identity") == 0)
        return;
    if (decode_create(ce, cap, &lx->dec) != 0)
        lx->dec = NULL;
}

void learning_on_response_head(exchange_t *ex, bool final)
{
    learning_ex_t *lx = ex->learn;
    if (lx == NULL || lx->visit == NULL)
        return;
    visit_t *v = lx->visit;
    if (lx->is_page) {
        if (!final) {
            if (ex->status == 103)
                learn_links(ex, v);
            return;
        }
        v->status = ex->status;
        if (ex->t_first_byte > ex->t_upstream_sent && ex->t_upstream_sent != 0)
            v->think_ms = (double)(ex->t_first_byte - ex->t_upstream_sent) / 1e6;
        const char *ct = resp_header(ex, "content-type");
        v->is_html = is_html(ct);
        if (!v->is_html) {
            /* Not a page after all (an image or API answer to a request
             * with no Accept): it will teach nothing, so its window closes
             * now and the visit leaves the connection's list when the
             * response ends, instead of lingering for the learn window and
             * lengthening every attribution scan. */
            if (v->state == VISIT_OPEN)
                visit_set_state(v, VISIT_EXPIRED);
            return;
        }
        if (ex->status < 200 || ex->status > 299)
            return;
        learn_links(ex, v);
        if (ex->status != 200 || !lx->is_get || v->authorized || !should_scan(v))
            return;
        v->sampled = true;
        lx->scanner = html_scanner_create(v->page_url, ct_charset(ex, ct), 0);
        if (lx->scanner != NULL)
            start_decoder(ex, lx, LEARNING_DECODE_CAP);
        return;
    }
    /* an attributed asset (follow-up or push): scan a stylesheet for the page */
    if (!final || ex->status != 200 || !lx->is_get)
        return;
    const char *ct = resp_header(ex, "content-type");
    if (ct == NULL || strncasecmp(ct, "text/css", 8) != 0)
        return;
    lx->css_on = true;
    start_decoder(ex, lx, LEARNING_CSS_CAP);
}

/* Feed body bytes through the optional decoder into sink; false on a decode error. */
static bool tee_body(learning_ex_t *lx, const uint8_t *data, size_t len,
                     void (*sink)(learning_ex_t *lx, const char *p, size_t n))
{
    if (lx->dec == NULL) {
        sink(lx, (const char *)data, len);
        return true;
    }
    if (decode_feed(lx->dec, data, len) != 0)
        return false;
    size_t n;
    const char *p = decode_data(lx->dec, &n);
    sink(lx, p, n);
    decode_consume(lx->dec, n);
    return true;
}

static void sink_html(learning_ex_t *lx, const char *p, size_t n)
{
    if (html_scanner_feed(lx->scanner, p, n) != 0)
        alloc_fail(__FILE__, __LINE__, n);
}

static void sink_css(learning_ex_t *lx, const char *p, size_t n)
{
    if (lx->css_len + n > LEARNING_CSS_CAP) {
        lx->css_overflow = true;
        n = LEARNING_CSS_CAP - lx->css_len;
    }
    lx->css = alloc_grow(lx->css, &lx->css_cap, lx->css_len + n + 1, 16384);
    memcpy(lx->css + lx->css_len, p, n);
    lx->css_len += n;
    lx->css[lx->css_len] = '\0';
}

void learning_on_response_body(exchange_t *ex, const uint8_t *data, size_t len)
{
    learning_ex_t *lx = ex->learn;
    if (lx == NULL)
        return;
    /* data is valid only during this call: the scanner and css buffer copy */
    if (lx->scanner != NULL) {
        if (!tee_body(lx, data, len, sink_html)) {
            /* undecodable: scan what was decoded so far */
            queue_html(ex, lx);
            return;
        }
        if (html_scanner_full(lx->scanner))
            queue_html(ex, lx);
    } else if (lx->css_on && !lx->css_overflow) {
        if (!tee_body(lx, data, len, sink_css))
            lx->css_overflow = true; /* a partial sheet is still scanned at the end */
    }
}

/* The response facts of a served asset. The header strings are borrowed
 * from ex (meta_own copies them when an item keeps m); only the location
 * is malloc'd. */
static void build_meta(exchange_t *ex, learning_ex_t *lx, pagemap_asset_meta_t *m)
{
    memset(m, 0, sizeof(*m));
    m->status = ex->status;
    m->size = ex->resp_body_bytes;
    m->content_type = resp_header(ex, "content-type");
    m->etag = resp_header(ex, "etag");
    m->last_modified = resp_header(ex, "last-modified");
    const char *loc = resp_header(ex, "location");
    if (loc != NULL && ex->status >= 300 && ex->status <= 399) {
        char *abs = NULL;
        if (url_resolve(lx->url, loc, strlen(loc), &abs) == 0) {
            m->location = normalize(abs);
            free(abs);
        }
    }
    m->cacheable = pagemap_cacheable(resp_header(ex, "cache-control"), resp_header(ex, "vary"),
                                     headers_find(&ex->resp_headers, "set-cookie") != NULL);
    m->pushed = lx->pushed;
}

/* Make m's borrowed header strings its own (meta_dispose frees them). */
static void meta_own(pagemap_asset_meta_t *m)
{
    m->content_type = m->content_type ? xstrdup(m->content_type) : NULL;
    m->etag = m->etag ? xstrdup(m->etag) : NULL;
    m->last_modified = m->last_modified ? xstrdup(m->last_modified) : NULL;
}

static void meta_dispose(pagemap_asset_meta_t *m)
{
    free((char *)m->content_type);
    free((char *)m->etag);
    free((char *)m->last_modified);
    free((char *)m->location);
}

void learning_on_response_end(exchange_t *ex, bool ok)
{
    learning_ex_t *lx = ex->learn;
    if (lx == NULL)
        return;
    visit_t *v = lx->visit;
    if (lx->is_page) {
        if (!ok) {
            v->failed = true;
            html_scanner_destroy(lx->scanner);
            lx->scanner = NULL;
        } else {
            v->html_size = ex->resp_body_bytes;
            /* decoded bytes were handed over as they came: nothing is left in lx->dec */
            if (lx->scanner != NULL)
                queue_html(ex, lx);
        }
        v->page_done = true;
        visit_try_commit(v);
        return;
    }
    if (!ok || lx->key == NULL || !lx->teach)
        return; /* only what the origin really served teaches */
    /* HEAD and 304 carry no body: they would overwrite the asset's size and type */
    if (lx->is_get && ex->status >= 200 && ex->status != 304) {
        pagemap_asset_meta_t m;
        build_meta(ex, lx, &m);
        pagemap_observe_asset(lx->lc ? lx->lc->pm : ex->worker->learn, lx->key, &m);
        item_t *it = v != NULL ? visit_find(v, lx->key) : NULL;
        if (it != NULL && v->state != VISIT_COMMITTED) {
            if (it->has_meta)
                meta_dispose(&it->meta);
            meta_own(&m);
            it->meta = m; /* hand-over: the item owns the strings now */
            it->has_meta = true;
            if (!lx->kind_from_dest &&
                (it->sources & ~(unsigned)(PAGEMAP_SRC_FOLLOWUP | PAGEMAP_SRC_PUSH)) == 0) {
                it->kind = learning_kind_guess(NULL, m.content_type, lx->key);
                it->as = asset_kind_as((asset_kind_t)it->kind);
                it->cors = it->kind == PAGEMAP_KIND_FONT ? PAGEMAP_CORS_ANONYMOUS : it->cors;
                it->blocking = it->kind == PAGEMAP_KIND_STYLE;
            }
        } else {
            free((char *)m.location); /* the rest is borrowed */
        }
    }
    if (v == NULL || (v->state == VISIT_COMMITTED && !(lx->chase && v->chasing)))
        return;
    item_t *it = visit_find(v, lx->key);
    if (lx->followup && it != NULL) {
        it->followup_pending = false;
        v->had_followups = true;
    }
    if (lx->css_on && lx->css_len > 0) {
        if (lx->css_len > LEARNING_CSS_INLINE) {
            queue_css(ex, lx);
        } else {
            /* Small sheets are scanned right here (a tokenizer pass over at
             * most 64 KiB): their evidence is in the visit before the client
             * can close the connection, so the commit never waits on them. */
            asset_list_t out = {0};
            if (html_add_css(lx->css, lx->css_len, lx->url, &out) == 0) {
                add_assets(v, &out, PAGEMAP_SRC_CSS, ORDER_CSS);
                v->css_scanned = true;
            }
            asset_list_dispose(&out);
            lx->css_on = false;
        }
    }
}

void learning_on_free(exchange_t *ex)
{
    learning_ex_t *lx = ex->learn;
    if (lx == NULL)
        return;
    ex->learn = NULL;
    decode_destroy(lx->dec);
    html_scanner_destroy(lx->scanner);
    free(lx->css);
    if (lx->visit != NULL) {
        visit_t *v = lx->visit;
        if (lx->is_page && !v->page_done) {
            v->failed = true; /* the client left before the page was served */
            v->page_done = true;
            visit_try_commit(v);
        }
        if (lx->chase) {
            v->pending_work--; /* its CSS scan, if any, was queued before */
            visit_try_commit(v);
        }
        visit_unref(v);
    }
    lex_free_urls(lx);
    if (lx->lc != NULL)
        lc_unref(lx->lc);
}

/* ---- stylesheets the client never fetched ----
 *
 * A client that reads HTML only (nghttp -a, a crawler with a CSS-less
 * renderer) fetches the page's stylesheets but not what they @import, so
 * the fonts and images of an imported sheet would never be learned. When a
 * sampled visit ends, herald fetches each same-origin stylesheet that CSS of
 * this visit @imports and that did not pass through (at most
 * LEARNING_MAX_CHASES per visit, imports of imports included), through the
 * pool, and scans it as the visit's CSS evidence. Browsers fetch their
 * imports within the window, so they cost the origin nothing extra. */

static void chase_head(exchange_t *ex, bool final)
{
    (void)ex, (void) final;
}
static size_t chase_body(exchange_t *ex, const uint8_t *data, size_t len)
{
    (void)ex, (void)data, (void)len;
    return 0; /* nothing is held: learning_on_response_body already copied what it scans */
}
/* upstream has detached before these run: frontend_done then lets upstream_done free ex */
static void chase_end(exchange_t *ex)
{
    exchange_frontend_done(ex);
}
static void chase_error(exchange_t *ex, int status)
{
    (void)status;
    exchange_frontend_done(ex);
}
static void chase_consumed(exchange_t *ex, size_t n)
{
    (void)ex, (void)n;
}
static void chase_tunnel(exchange_t *ex)
{
    (void)ex;
}

static const exchange_frontend_ops_t chase_fops = {
    .response_head = chase_head,
    .response_body = chase_body,
    .response_end = chase_end,
    .response_error = chase_error,
    .request_consumed = chase_consumed,
    .tunnel_open = chase_tunnel,
};

static void chase_one(visit_t *v, item_t *it)
{
    char *authority = NULL, *pq = NULL;
    if (!split_url(it->key, &authority, &pq))
        return;
    exchange_t *ex = exchange_create(v->w, &chase_fops, NULL);
    ex->proto = EXCHANGE_HTTP11;
    ex->method = "GET";
    ex->scheme = strncmp(it->key, "https:", 6) == 0 ? "https" : "http";
    ex->authority = mempool_strndup(&ex->pool, authority, strlen(authority));
    ex->path = mempool_strndup(&ex->pool, pq, strlen(pq));
    free(authority);
    free(pq);
    static const char accept[] = "text/css,*/*;q=0.1";
    headers_add_ref(&ex->req_headers, &ex->pool, "accept", 6, accept, sizeof(accept) - 1);
    memcpy(ex->client_addr, v->client_addr, sizeof(ex->client_addr));
    ex->client_tls = strcmp(ex->scheme, "https") == 0;
    learning_ex_t *lx = lex_get(ex);
    lx->chase = true;
    lx->teach = true;
    lx->is_get = true;
    lx->url = xstrdup(it->url);
    lx->key = xstrdup(it->key);
    lx->visit = v;
    v->refs++;
    v->pending_work++; /* until learning_on_free of the fetch */
    it->chased = true;
    v->chases++;
    exchange_start(ex);
    exchange_request_end(ex);
}

/* Start fetching the stylesheets this visit's CSS imports; true if any started. */
static bool visit_chase(visit_t *v)
{
    if (!v->sampled || v->failed || !v->is_html || v->w == NULL || v->w->state != WORKER_RUNNING)
        return false;
    /* A fetch may fail synchronously and reach learning_on_free inside
     * chase_one: the extra reference and pending work keep v uncommitted
     * and alive until the loop is over. */
    v->refs++;
    v->pending_work++;
    for (size_t i = 0; i < v->n && v->chases < LEARNING_MAX_CHASES; i++) {
        item_t *it = &v->items[i];
        if (it->kind != PAGEMAP_KIND_STYLE || !(it->sources & PAGEMAP_SRC_CSS) || it->chased ||
            (it->sources & (PAGEMAP_SRC_FOLLOWUP | PAGEMAP_SRC_PUSH)))
            continue;
        char *origin = NULL;
        bool same = url_origin(it->key, &origin) == 0 && url_same_origin(origin, v->page_url);
        free(origin);
        if (!same)
            continue;
        chase_one(v, it); /* may append to v->items: `it` is not used after */
    }
    v->pending_work--;
    bool waiting = v->pending_work > 0;
    visit_unref(v); /* the open reference is still held */
    return waiting;
}

/* ---- queries for DELIVERY ---- */

static const visit_t *page_visit(const exchange_t *ex)
{
    const learning_ex_t *lx = ex->learn;
    return lx != NULL && lx->is_page ? lx->visit : NULL;
}

bool learning_is_page(const exchange_t *ex)
{
    return page_visit(ex) != NULL;
}

const char *learning_page_key(const exchange_t *ex)
{
    const visit_t *v = page_visit(ex);
    return v ? v->page_key : NULL;
}

const char *learning_template_key(const exchange_t *ex)
{
    const visit_t *v = page_visit(ex);
    return v ? v->template_key : NULL;
}

const char *learning_page_url(const exchange_t *ex)
{
    const visit_t *v = page_visit(ex);
    return v ? v->page_url : NULL;
}

pagemap_t *learning_store(const exchange_t *ex)
{
    return ex->worker != NULL ? ex->worker->learn : NULL;
}

double learning_min_confidence(const exchange_t *ex)
{
    return ex->worker != NULL && ex->worker->cfg != NULL ? ex->worker->cfg->min_confidence
                                                         : PAGEMAP_DEFAULT_MIN_CONFIDENCE;
}

int learning_plan(const exchange_t *ex, pagemap_plan_t *out)
{
    memset(out, 0, sizeof(*out));
    const visit_t *v = page_visit(ex);
    if (v == NULL)
        return 0;
    return pagemap_plan(v->pm, v->page_key, v->template_key, v->authority, wall_ms(),
                        learning_min_confidence(ex), out);
}

/* The visit of ex (a page, or a pushed/attributed exchange). */
static visit_t *visit_of(exchange_t *ex)
{
    learning_ex_t *lx = ex->learn;
    return lx != NULL ? lx->visit : NULL;
}

void learning_link_pushed(exchange_t *page, exchange_t *pushed)
{
    pushed->role = EXCHANGE_ROLE_PUSHED;
    pushed->lconn = page->lconn;
    learning_ex_t *lx = lex_get(pushed);
    lx->pushed = true;
    lx->teach = true;
    lx->is_get = true;
    lex_set_urls(lx, request_url(pushed));
    if (page->lconn != NULL && lx->lc == NULL && !page->lconn->released) {
        lx->lc = page->lconn;
        lx->lc->refs++;
    }
    visit_t *v = page_visit(page) ? (visit_t *)page_visit(page) : NULL;
    if (v == NULL || lx->key == NULL)
        return;
    item_t *it = visit_item(v, lx->url, lx->key, learning_kind_guess(NULL, NULL, lx->key),
                            ORDER_FOLLOWUP + v->next_order++);
    if (it == NULL)
        return;
    it->sources |= PAGEMAP_SRC_PUSH;
    lx->visit = v;
    v->refs++;
}

void learning_note_delivery(exchange_t *ex, const char *url_key, pagemap_delivery_t event,
                            uint64_t bytes)
{
    visit_t *v = visit_of(ex);
    if (v == NULL || url_key == NULL)
        return;
    pagemap_note_delivery(v->pm, v->page_key, url_key, event, bytes);
    if (event == PAGEMAP_DELIVERY_HINTED || v->state == VISIT_COMMITTED)
        return;
    item_t *it = visit_find(v, url_key);
    if (event == PAGEMAP_DELIVERY_PROMISED) {
        if (v->lc != NULL)
            strring_add(&v->lc->pushed, url_key);
        if (it == NULL)
            it = visit_item(v, url_key, url_key, learning_kind_guess(NULL, NULL, url_key),
                            ORDER_FOLLOWUP + v->next_order++);
        if (it != NULL)
            it->sources |= PAGEMAP_SRC_PUSH;
    } else if (it != NULL && event == PAGEMAP_DELIVERY_COMPLETED) {
        it->push_completed = true;
        /* a pushed stream the client kept is a subresource it used: the visit
         * could have shown follow-up edges (absent ones count as misses) */
        v->had_followups = true;
    } else if (it != NULL && event == PAGEMAP_DELIVERY_CANCELLED) {
        it->push_cancelled = true;
    }
}

void learning_note_skipped(exchange_t *ex, const char *url_key)
{
    visit_t *v = visit_of(ex);
    if (v == NULL || url_key == NULL || v->state == VISIT_COMMITTED)
        return;
    item_t *it = visit_find(v, url_key);
    if (it == NULL)
        it = visit_item(v, url_key, url_key, learning_kind_guess(NULL, NULL, url_key),
                        ORDER_FOLLOWUP + v->next_order++);
    if (it != NULL && it->sources == 0)
        it->skipped = true;
}
