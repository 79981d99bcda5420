/*
 * The adapter between exchanges and learn/ (see learning.h): requests become
 * session and visit events with normalised keys and clock values; page and
 * CSS bodies are teed into parser/ discovery (HTML on the thread pool, small
 * CSS on the loop) whose assets become visit items; each visit is committed
 * once its window is over, its page served and its discovery done.
 *
 * Lifetimes
 *   learning_t        one per worker (learning_attach), registered as an
 *                     exchange observer; freed after the worker's loop ends.
 *   learning_conn_t   refcounted: the connection holds one reference from
 *                     on_client_open until on_client_close, each exchange's
 *                     learning state one. Freed in its timer's close callback.
 *   visit_t           refcounted (learn/visit.h): the session's list holds
 *                     one until the visit is handed over (session_expire),
 *                     then the "open" reference held here until the visit is
 *                     committed and done chasing; one per exchange attributed
 *                     to it; one per discovery job in flight (with a hold,
 *                     which the commit waits for).
 *   learning_ex       in the exchange's pool (ex->learn), released in
 *                     on_free().
 */
#include "learning.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "cachepolicy.h"
#include "digest.h"
#include "session.h"
#include "template.h"
#include "visit.h"
#include "decode.h"
#include "herald/error.h"
#include "html.h"
#include "link.h"
#include "url.h"
#include "alloc.h"
#include "lazytimer.h"
#include "list.h"
#include "log.h"
#include "sharedmap.h"
#include "speculate.h"

/** CSS up to this size is scanned on the loop, larger on the thread pool. */
#define LEARNING_CSS_INLINE (64u * 1024u)
/** Decoded CSS bytes kept for scanning (more is ignored). */
#define LEARNING_CSS_CAP (512u * 1024u)
/** Decoded bytes a page's decoder may produce (the scanner keeps its own cap). */
#define LEARNING_DECODE_CAP (4u * 1024u * 1024u)
/** Slots of a worker's memory of URLs that are not pages (a power of two). */
#define LEARNING_NOT_PAGE_SLOTS 1024u

/* One per worker: what its connections and exchanges share. */
struct learning {
    exchange_ctx_t *x;   /* the worker's exchanges: loop, config, herald's own fetches */
    pagemap_t *pm;       /* the shared store; NULL = learning off */
    sharedmap_t *shared; /* the fleet's shared map (main.c owns it); NULL = none */
    size_t slot;         /* ours in exchange_client_t.state */
    /* URLs that answered a request of uncertain purpose (no fetch metadata,
     * Accept absent or any) with a 2xx that is not HTML: hashes of their
     * keys, direct-mapped. Such a request for one of them opens no visit. */
    uint64_t not_page[LEARNING_NOT_PAGE_SLOTS];
};

typedef struct learning_conn learning_conn_t;

struct learning_conn {
    learning_t *L;
    pagemap_t *pm;
    session_t *session;
    lazytimer_t timer; /* fires at session_next_due() (lazy: moved per request) */
    int refs;
    bool released; /* the connection is gone */
};

/* learning_visits_open(): opened minus finished, across workers. */
static _Atomic uint64_t visits_opened, visits_finished;
/* learning_not_pages() */
static _Atomic uint64_t not_pages;

/* Times stored in the map (first/last seen, last visit) outlive the process
 * in the state file: wall-clock milliseconds, not the loop's monotonic clock. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* learn/ returns HERALD_ENOMEM; in proxy/ that aborts (STYLE.md, rule 6). */
static void check(int rc)
{
    if (rc == HERALD_ENOMEM)
        alloc_fail(__FILE__, __LINE__, 0);
}

/* ---- committing ---- */

static bool visit_chase(visit_t *v, learning_t *L);

/*
 * After the commit: fetch the stylesheets the visit's CSS imported that did
 * not pass through (visit_next_chase) and commit what they name as a
 * supplement, until nothing new is found; then drop the open reference.
 * The visit's own commit never waits for these fetches.
 */
static void visit_settle(visit_t *v, learning_t *L)
{
    if (visit_state(v) != VISIT_COMMITTED || !visit_chasing(v) || !visit_page_done(v))
        return;
    check(sharedmap_commit(L->shared, v, L->pm, wall_ms(), true));
    if (visit_chase(v, L))
        return; /* called again when those fetches are done */
    visit_set_chasing(v, false);
    atomic_fetch_add_explicit(&visits_finished, 1, memory_order_relaxed);
    visit_unref(v); /* the open reference */
}

/*
 * Commit v when it is ready (expired, page served, no discovery running),
 * then settle it. Called after every event that may make it ready. The
 * caller holds its own reference.
 */
static void visit_try_commit(visit_t *v, learning_t *L)
{
    if (visit_state(v) == VISIT_COMMITTED) {
        if (visit_chasing(v) && visit_idle(v))
            visit_settle(v, L);
        return;
    }
    if (!visit_ready(v))
        return;
    visit_set_state(v, VISIT_COMMITTED);
    int rc = sharedmap_commit(L->shared, v, L->pm, wall_ms(), false);
    check(rc);
    if (rc != 0)
        LOG_WARN("learning: commit of %s failed: %s", visit_page_key(v), herald_strerror(rc));
    else
        LOG_DEBUG("learning: committed %s", visit_page_key(v));
    visit_set_chasing(v, true);
    visit_settle(v, L);
}

/* Take the visits whose window is over from lc's session and commit them. */
static void lc_expire(learning_conn_t *lc, uint64_t now)
{
    visit_t *done[SESSION_MAX_OPEN];
    size_t n;
    while ((n = session_expire(lc->session, now, done, SESSION_MAX_OPEN)) > 0) {
        for (size_t i = 0; i < n; i++) {
            /* the list's reference becomes the open one */
            visit_try_commit(done[i], lc->L);
        }
        if (n < SESSION_MAX_OPEN)
            break;
    }
}

/* ---- per-connection state ---- */

static void lc_arm(learning_conn_t *lc);

static void on_timer_closed(uv_handle_t *h)
{
    learning_conn_t *lc = h->data;
    session_destroy(lc->session);
    free(lc);
}

static void lc_unref(learning_conn_t *lc)
{
    if (--lc->refs > 0)
        return;
    /* The worker's final walk may have closed the timer already (shutdown):
     * then the memory is left to the exiting process rather than freed early. */
    if (!uv_is_closing((uv_handle_t *)&lc->timer.t))
        uv_close((uv_handle_t *)&lc->timer.t, on_timer_closed);
}

static void on_window_timer(uv_timer_t *t)
{
    learning_conn_t *lc = t->data;
    lc_expire(lc, uv_now(t->loop));
    lc_arm(lc);
}

static void lc_arm(learning_conn_t *lc)
{
    uint64_t now = uv_now(lc->L->x->loop), due = session_next_due(lc->session);
    if (due == UINT64_MAX || lc->released) {
        lazytimer_stop(&lc->timer);
        return;
    }
    lazytimer_start(&lc->timer, due > now ? due - now : 0);
}

static learning_conn_t *lc_create(learning_t *L)
{
    if (L->pm == NULL)
        return NULL;
    learning_conn_t *lc = xcalloc(1, sizeof(*lc));
    lc->L = L;
    lc->pm = L->pm;
    lc->refs = 1;
    check(session_create((uint64_t)(L->x->cfg->learn_window * 1000.0), &lc->session));
    lazytimer_init(L->x->loop, &lc->timer, on_window_timer);
    lc->timer.t.data = lc;
    return lc;
}

static void lc_release(learning_conn_t *lc)
{
    if (lc == NULL || lc->released)
        return;
    lc->released = true;
    lazytimer_stop(&lc->timer);
    /* Every open visit ends now (it may still wait for its discovery). */
    lc_expire(lc, UINT64_MAX);
    lc_unref(lc);
}

static void on_client_open(void *data, exchange_client_t *cl)
{
    learning_t *L = data;
    cl->state[L->slot] = lc_create(L);
}

static void on_client_close(void *data, exchange_client_t *cl)
{
    learning_t *L = data;
    lc_release(cl->state[L->slot]);
}

/* The connection state of ex's client, while the connection is open. */
static learning_conn_t *client_lc(const learning_t *L, const exchange_t *ex)
{
    return ex->client != NULL ? ex->client->state[L->slot] : NULL;
}

/* ---- per-exchange state ---- */

typedef struct learning_ex {
    learning_conn_t *lc; /* ref'd, or NULL */
    learning_t *L;
    visit_t *visit; /* ref'd: the page's own visit, or the one ex is attributed to */
    bool is_page;
    /* The request did not say it wants a page (SESSION_MAYBE_PAGE): its
     * URL's slot in L->not_page and what the slot holds for it, or NULL. */
    uint64_t *np_slot;
    uint64_t np_tag;
    bool not_page; /* ... and its URL was known not to be one: no visit */
    bool followup; /* attributed non-page request */
    bool pushed;
    bool teach; /* GET/HEAD without Authorization: its response may teach */
    bool is_get;
    char *url;     /* absolute URL as requested (malloc'd) */
    char *key;     /* normalised (malloc'd, or == url) */
    char *referer; /* page: its normalised Referer (malloc'd), NULL none */
    /* body tee */
    decode_t *dec;
    html_scanner_t *scanner; /* page: HTML discovery until queued */
    char *css;               /* attributed text/css: decoded body */
    size_t css_len, css_cap;
    bool css_on;
    bool css_overflow;
    bool chase; /* herald's own fetch of a stylesheet for the visit */
} learning_ex_t;

/* In the exchange's pool: it lives exactly as long (on_free). */
static learning_ex_t *lex_get(learning_t *L, exchange_t *ex)
{
    if (ex->learn == NULL) {
        ex->learn = mempool_alloc(&ex->pool, sizeof(learning_ex_t));
        memset(ex->learn, 0, sizeof(learning_ex_t));
        ex->learn->L = L;
    }
    return ex->learn;
}

static const learning_conn_t *ex_lc(const exchange_t *ex)
{
    const learning_ex_t *lx = ex->learn;
    return lx != NULL ? lx->lc : NULL;
}

bool learning_client_requested(const exchange_t *ex, const char *url_key)
{
    const learning_conn_t *lc = ex_lc(ex);
    return lc != NULL && !lc->released && session_requested(lc->session, url_key);
}

bool learning_client_pushed(const exchange_t *ex, const char *url_key)
{
    const learning_conn_t *lc = ex_lc(ex);
    return lc != NULL && !lc->released && session_pushed(lc->session, url_key);
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
    check(rc);
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

/* The value of cookie `name` in the request's Cookie headers, or NULL (*len set). */
static const char *cookie_value(const exchange_t *ex, const char *name, size_t *len)
{
    for (size_t i = 0; i < ex->req_headers.n; i++) {
        const header_t *h = &ex->req_headers.v[i];
        if (!headers_name_eq(h->name, h->name_len, "cookie"))
            continue;
        const char *v = headers_cookie_value(h->value, h->value_len, name, len);
        if (v != NULL)
            return v;
    }
    return NULL;
}

const char *learning_cookie_value(const exchange_t *ex, const char *name, size_t *len)
{
    return cookie_value(ex, name, len);
}

static bool digest_on(const config_t *cfg)
{
    return cfg->digest_cookie[0] != '\0' && strcmp(cfg->digest_cookie, "off") != 0;
}

/* Open a visit for page request ex (returned ref'd for ex, or NULL). */
static visit_t *open_visit(learning_conn_t *lc, exchange_t *ex, learning_ex_t *lx, bool prefetch)
{
    char *authority = NULL, *pq = NULL, *pk = NULL, *tk = NULL;
    char client[sizeof(ex->client_addr)];
    if (!split_url(lx->key, &authority, &pq))
        return NULL;
    int rc = template_page_key(authority, pq, &pk);
    free(pq);
    if (rc == 0)
        rc = template_key(pk, &tk);
    check(rc);
    visit_t *v = NULL;
    if (rc == 0) {
        visit_page_t pg = {
            .url = lx->key,
            .page_key = pk,
            .template_key = tk,
            .authority = authority,
            .t_ms = uv_now(lc->L->x->loop),
            .authorized = req_header(ex, "authorization") != NULL,
            .multiplexed = ex->proto == EXCHANGE_HTTP2,
            .cookie = headers_find(&ex->req_headers, "cookie") != NULL,
            .client = sharedmap_client(ex, client, sizeof(client)),
            .referer = lx->referer,
            .reload = session_is_reload(req_header(ex, "cache-control"), req_header(ex, "pragma")),
            .prefetch = prefetch};
        check(session_open(lc->session, &pg, &v));
    }
    free(authority);
    free(pk);
    free(tk);
    if (v == NULL)
        return NULL;
    atomic_fetch_add_explicit(&visits_opened, 1, memory_order_relaxed);
    const config_t *cfg = lc->L->x->cfg;
    size_t dl = 0;
    const char *dv = digest_on(cfg) ? cookie_value(ex, cfg->digest_cookie, &dl) : NULL;
    digest_t d;
    if (dv != NULL && digest_parse(dv, dl, &d, NULL) == 0)
        visit_set_digest(v, &d);
    lc_arm(lc);
    return v;
}

/* key's slot in L->not_page; *tag is what the slot holds when key is in it (never 0). */
static uint64_t *not_page_slot(learning_t *L, const char *key, uint64_t *tag)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    *tag = h | 1;
    return &L->not_page[(h ^ (h >> 31)) & (LEARNING_NOT_PAGE_SLOTS - 1)];
}

/* The final response of a request of uncertain purpose: remember whether its
 * URL is a page. A 2xx that is not HTML is not one; one that is HTML is. */
static void note_not_page(const learning_ex_t *lx, const exchange_t *ex, bool html)
{
    if (ex->status < 200 || ex->status > 299)
        return;
    if (!html)
        *lx->np_slot = lx->np_tag;
    else if (*lx->np_slot == lx->np_tag)
        *lx->np_slot = 0;
}

static void on_request(void *data, exchange_t *ex)
{
    learning_t *L = data;
    learning_conn_t *lc = client_lc(L, ex);
    if (lc == NULL || lc->released)
        return;
    learning_ex_t *lx = lex_get(L, ex);
    if (lx->lc == NULL) {
        lx->lc = lc;
        lc->refs++;
    }
    if (ex->role == EXCHANGE_ROLE_PUSHED)
        return; /* learning_link_pushed() did the rest (or nothing links it) */
    const char *dest = req_header(ex, "sec-fetch-dest"), *mode = req_header(ex, "sec-fetch-mode");
    session_class_t cls = session_classify(ex->method, dest, mode, req_header(ex, "accept"));
    if (cls == SESSION_OTHER || ex->req_upgrade_websocket || speculation_own_request(ex))
        return; /* herald's own rule set is no asset of the page that names it */
    cls = session_classify_purpose(cls, req_header(ex, "sec-purpose"));
    lex_set_urls(lx, request_url(ex));
    if (lx->key == NULL)
        return;
    lx->is_get = strcmp(ex->method, "GET") == 0;
    lx->teach = req_header(ex, "authorization") == NULL;
    check(session_note_requested(lc->session, lx->key));
    const char *ref = req_header(ex, "referer");
    uint64_t now = uv_now(lc->L->x->loop);
    session_class_t asked = cls;
    cls = session_resolve(lc->session, cls, ref != NULL, now);
    if (cls == SESSION_PAGE && asked == SESSION_MAYBE_PAGE) {
        /* a client that did not say what it wants (curl, an API client):
         * a URL that answered it with something other than HTML before
         * opens no visit, and costs no page bookkeeping */
        lx->np_slot = not_page_slot(L, lx->key, &lx->np_tag);
        if (*lx->np_slot == lx->np_tag) {
            lx->not_page = true;
            atomic_fetch_add_explicit(&not_pages, 1, memory_order_relaxed);
            return;
        }
    }
    if (cls == SESSION_PAGE || cls == SESSION_PREFETCH) {
        lx->referer = ref != NULL ? normalize(ref) : NULL;
        lx->visit = open_visit(lc, ex, lx, cls == SESSION_PREFETCH);
        if (lx->visit != NULL) {
            lx->is_page = true;
            ex->role = cls == SESSION_PREFETCH ? EXCHANGE_ROLE_PREFETCH : EXCHANGE_ROLE_PAGE;
            lc_expire(lc, now); /* visits that overflowed the open cap */
        }
        return;
    }
    if (!lx->teach)
        return; /* requests carrying Authorization teach nothing */
    char *refkey = ref != NULL ? normalize(ref) : NULL;
    if (ref != NULL && refkey == NULL)
        return; /* an unusable Referer attributes nothing */
    visit_t *v = session_attribute(lc->session, refkey, now);
    free(refkey);
    if (v == NULL || strcmp(visit_url(v), lx->key) == 0)
        return;
    bool sure = dest != NULL && strcasecmp(dest, "empty") != 0;
    visit_fetch_t f = {.url = lx->url,
                       .key = lx->key,
                       .kind = pagemap_kind_guess(dest, NULL, lx->key),
                       .kind_sure = sure,
                       .conditional = req_header(ex, "if-none-match") != NULL ||
                                      req_header(ex, "if-modified-since") != NULL,
                       .browser = dest != NULL || mode != NULL};
    check(visit_fetch(v, &f));
    lx->visit = v;
    visit_ref(v);
    lx->followup = true;
    ex->role = EXCHANGE_ROLE_ASSET;
}

/* ---- discovery on the thread pool ---- */

typedef struct work {
    uv_work_t req;
    learning_t *L;
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

/* A stable id of an alternates set: the hash of its first candidate's key. */
static uint32_t group_id(const asset_list_t *l, unsigned group, const char *fallback_key)
{
    const char *anchor = fallback_key;
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].group == group) {
            anchor = l->v[i].url;
            break;
        }
    }
    uint32_t h = 2166136261u;
    for (const char *p = anchor; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 16777619u;
    }
    return h ? h : 1;
}

/* Discovery's assets become the visit's items (parser types end here). */
static void add_assets(visit_t *v, const asset_list_t *l, unsigned source)
{
    for (size_t i = 0; i < l->n; i++) {
        const asset_t *a = &l->v[i];
        if (a->kind == ASSET_ICON && !a->pick)
            continue; /* touch icons: no desktop or Android browser fetches them */
        if (a->kind == ASSET_SCRIPT && a->nomodule)
            continue; /* never fetched by a browser that runs modules */
        char *key = a->kind == ASSET_PRECONNECT ? xstrdup(a->url) : normalize(a->url);
        if (key == NULL)
            continue;
        visit_found_t f = {.url = a->url,
                           .key = key,
                           .kind = (pagemap_kind_t)a->kind,
                           .as = a->as,
                           .crossorigin = (pagemap_cors_t)a->crossorigin,
                           .order = a->order,
                           .group = a->group ? group_id(l, a->group, key) : 0,
                           .blocking = a->blocking,
                           .strong = a->strong};
        check(visit_found(v, &f, source));
        free(key);
    }
}

static void work_done(uv_work_t *req, int status)
{
    work_t *w = container_of(req, work_t, req);
    visit_t *v = w->v;
    if (status == 0 && w->rc == 0) {
        unsigned src = w->scanner != NULL ? PAGEMAP_SRC_HTML : PAGEMAP_SRC_CSS;
        if (w->scanner != NULL)
            pagemap_set_inline_rules(w->L->pm, visit_page_key(v), w->out.speculation_rules);
        add_assets(v, &w->out, src);
        visit_scanned(v, src);
    }
    asset_list_dispose(&w->out);
    html_scanner_destroy(w->scanner);
    free(w->css);
    free(w->css_url);
    learning_t *L = w->L;
    free(w);
    visit_release(v);
    visit_try_commit(v, L);
    visit_unref(v);
}

static void queue_work(exchange_t *ex, visit_t *v, work_t *w)
{
    w->v = v;
    w->L = ex->learn->L;
    visit_ref(v);
    visit_hold(v);
    int rc = uv_queue_work(ex->ctx->loop, &w->req, work_run, work_done);
    if (rc != 0) {
        /* the callbacks never run */
        w->rc = rc;
        w->req.loop = ex->ctx->loop;
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
    const exchange_links_t *ls = exchange_resp_links(ex, visit_url(v));
    unsigned order = 0;
    for (size_t i = 0; i < ls->n; i++) {
        const exchange_link_line_t *line = &ls->lines[i];
        for (size_t k = 0; k < line->list.n; k++, order++) {
            const link_t *l = &line->list.v[k];
            visit_found_t f = {.order = order, .strong = true};
            char *origin = NULL;
            if (l->rel & (LINK_REL_PRECONNECT | LINK_REL_DNS_PREFETCH)) {
                if (url_origin(l->url, &origin) != 0)
                    continue;
                f.kind = PAGEMAP_KIND_PRECONNECT;
                f.url = f.key = origin;
            } else if ((l->rel &
                        (LINK_REL_PRELOAD | LINK_REL_MODULEPRELOAD | LINK_REL_STYLESHEET)) &&
                       !l->nopush && line->keys[k] != NULL) {
                /* (nopush: the origin said not to push it: never plan it) */
                f.kind = (l->rel & LINK_REL_MODULEPRELOAD) ? PAGEMAP_KIND_MODULE
                         : (l->rel & LINK_REL_STYLESHEET)  ? PAGEMAP_KIND_STYLE
                                                          : pagemap_kind_guess(l->as, NULL, l->url);
                f.url = l->url;
                f.key = line->keys[k];
                f.as = f.kind == PAGEMAP_KIND_MODULE ? "script" : NULL;
                f.crossorigin = (pagemap_cors_t)l->crossorigin;
                if (f.kind == PAGEMAP_KIND_FONT && f.crossorigin == PAGEMAP_CORS_NONE)
                    f.crossorigin = PAGEMAP_CORS_ANONYMOUS;
            } else {
                continue;
            }
            check(visit_found(v, &f, PAGEMAP_SRC_LINK));
            free(origin);
        }
    }
}

/* A page: HTML, or XHTML served as such (gitweb sends it to browsers that accept it). */
static bool is_html(const char *ct)
{
    return ct != NULL && (strncasecmp(ct, "text/html", 9) == 0 ||
                          strncasecmp(ct, "application/xhtml+xml", 21) == 0);
}

/* A hash of the response's ETag and Last-Modified (0: neither): a page
 * whose validators changed is scanned again (pagemap_should_scan). */
static uint64_t page_validator(const exchange_t *ex)
{
    const char *parts[2] = {resp_header(ex, "etag"), resp_header(ex, "last-modified")};
    uint64_t h = 1469598103934665603ull;
    bool any = false;
    for (int i = 0; i < 2; i++) {
        for (const char *p = parts[i]; p != NULL && *p; p++) {
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
            any = true;
        }
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return any ? (h ? h : 1) : 0;
}

static void start_decoder(exchange_t *ex, learning_ex_t *lx, size_t cap)
{
    const char *ce = resp_header(ex, "content-encoding");
    if (ce == NULL || strcasecmp(ce, "identity") == 0)
        return;
    if (decode_create(ce, cap, &lx->dec) != 0)
        lx->dec = NULL;
}

static void on_response_head(void *data, exchange_t *ex, bool final)
{
    learning_ex_t *lx = ex->learn;
    if (lx != NULL && lx->not_page && final)
        note_not_page(lx, ex, is_html(resp_header(ex, "content-type")));
    if (lx == NULL || lx->visit == NULL)
        return;
    visit_t *v = lx->visit;
    if (lx->is_page) {
        if (!final) {
            if (ex->status == 103)
                learn_links(ex, v);
            return;
        }
        double think = -1;
        if (ex->t_first_byte > ex->t_upstream_sent && ex->t_upstream_sent != 0)
            think = (double)(ex->t_first_byte - ex->t_upstream_sent) / 1e6;
        const char *ct = resp_header(ex, "content-type");
        if (lx->np_slot != NULL && ct != NULL)
            note_not_page(lx, ex, is_html(ct));
        visit_page_head(v, ex->status, is_html(ct), think,
                        headers_find(&ex->resp_headers, "set-cookie") != NULL);
        if (!is_html(ct) || ex->status < 200 || ex->status > 299)
            return;
        learn_links(ex, v);
        uint64_t validator = page_validator(ex);
        if (ex->status != 200 || !lx->is_get || visit_authorized(v) ||
            !pagemap_should_scan(lx->L->pm, visit_page_key(v), validator))
            return;
        visit_set_sampled(v);
        visit_set_validator(v, validator);
        lx->scanner = html_scanner_create(visit_url(v), ct_charset(ex, ct), 0);
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

static void observe_body(exchange_t *ex, const uint8_t *data, size_t len)
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

/* The CACHEPOLICY_* bits of a response (every Cache-Control and Vary line)
 * and its freshness lifetime. */
static unsigned response_policy(exchange_t *ex, int64_t *fresh_ms)
{
    unsigned bits = 0;
    const char *cc = NULL;
    for (size_t i = 0; i < ex->resp_headers.n; i++) {
        const header_t *h = &ex->resp_headers.v[i];
        if (headers_name_eq(h->name, h->name_len, "cache-control")) {
            bits |= cachepolicy_parse_cache_control(h->value);
            /* several lines are one list (RFC 9110 §5.3): joined in the pool */
            if (cc == NULL) {
                cc = h->value;
            } else {
                size_t a = strlen(cc), b = h->value_len;
                char *j = mempool_alloc(&ex->pool, a + 2 + b + 1);
                memcpy(j, cc, a);
                memcpy(j + a, ", ", 2);
                memcpy(j + a + 2, h->value, b);
                j[a + 2 + b] = '\0';
                cc = j;
            }
        } else if (headers_name_eq(h->name, h->name_len, "vary")) {
            bits |= cachepolicy_parse_vary(h->value);
        } else if (headers_name_eq(h->name, h->name_len, "set-cookie")) {
            bits |= CACHEPOLICY_SET_COOKIE;
        }
    }
    cachepolicy_fresh_t f = {.cache_control = cc,
                             .expires = resp_header(ex, "expires"),
                             .date = resp_header(ex, "date"),
                             .last_modified = resp_header(ex, "last-modified"),
                             .age = resp_header(ex, "age")};
    *fresh_ms = cachepolicy_freshness_ms(&f, (int64_t)time(NULL));
    return bits;
}

/* The response facts of a served asset. Header strings are borrowed from
 * ex; only the location is malloc'd (the caller frees it). */
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
    m->policy = response_policy(ex, &m->fresh_ms);
    m->pushed = lx->pushed;
}

static void on_response_end(void *data, exchange_t *ex, bool ok)
{
    learning_ex_t *lx = ex->learn;
    if (lx == NULL)
        return;
    visit_t *v = lx->visit;
    if (lx->is_page) {
        if (!ok) {
            html_scanner_destroy(lx->scanner);
            lx->scanner = NULL;
        } else if (lx->scanner != NULL) {
            /* decoded bytes were handed over as they came: nothing is left in lx->dec */
            queue_html(ex, lx);
        }
        visit_page_end(v, ok, ex->resp_body_bytes);
        if (lx->lc != NULL && !lx->lc->released)
            lc_expire(lx->lc, uv_now(ex->ctx->loop)); /* a non-HTML answer leaves now */
        visit_try_commit(v, lx->L);
        return;
    }
    if (!ok || lx->key == NULL || !lx->teach)
        return; /* only what the origin really served teaches */
    if (v == NULL && !pagemap_has_asset(lx->L->pm, lx->key))
        return; /* no page's asset, and no visit's: nothing to note */
    pagemap_asset_meta_t m;
    /* HEAD carries no body: it would overwrite the asset's size and type */
    bool meta = lx->is_get && ex->status >= 200;
    if (meta) {
        build_meta(ex, lx, &m);
        if (ex->status != 304)
            pagemap_observe_asset(lx->L->pm, lx->key, &m);
    }
    if (v != NULL && lx->followup)
        check(visit_fetch_served(v, lx->key, meta ? &m : NULL));
    if (meta)
        free((char *)m.location); /* the rest is borrowed */
    if (v == NULL || (visit_state(v) == VISIT_COMMITTED && !(lx->chase && visit_chasing(v))))
        return;
    if (lx->css_on && lx->css_len > 0) {
        if (lx->css_len > LEARNING_CSS_INLINE) {
            queue_css(ex, lx);
        } else {
            /* Small sheets are scanned right here (a tokenizer pass over at
             * most 64 KiB): their evidence is in the visit before the client
             * can close the connection, so the commit never waits on them. */
            asset_list_t out = {0};
            if (html_add_css(lx->css, lx->css_len, lx->url, &out) == 0) {
                add_assets(v, &out, PAGEMAP_SRC_CSS);
                visit_scanned(v, PAGEMAP_SRC_CSS);
            }
            asset_list_dispose(&out);
            lx->css_on = false;
        }
    }
}

static void on_free(void *data, exchange_t *ex)
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
        if (lx->is_page && !visit_page_done(v)) {
            visit_page_end(v, false, 0); /* the client left before the page was served */
            visit_try_commit(v, lx->L);
        }
        if (lx->chase) {
            visit_release(v); /* its CSS scan, if any, holds the visit itself */
            visit_try_commit(v, lx->L);
        }
        visit_unref(v);
    }
    lex_free_urls(lx);
    free(lx->referer);
    if (lx->lc != NULL)
        lc_unref(lx->lc);
}

/* ---- stylesheets the client never fetched ----
 *
 * A client that reads HTML only (nghttp -a, a crawler with a CSS-less
 * renderer) fetches the page's stylesheets but not what they @import, so
 * the fonts and images of an imported sheet would never be discovered.
 * When a sampled visit is committed, herald fetches each same-origin
 * stylesheet that CSS of this visit @imports and that did not pass through
 * (at most VISIT_MAX_CHASES per visit, imports of imports included),
 * through the pool, and scans it as the visit's CSS discovery. Browsers
 * fetch their imports within the window, so they cost the origin nothing
 * extra. */

static void chase_head(exchange_t *ex, bool final)
{
    (void)ex, (void) final;
}
static size_t chase_body(exchange_t *ex, const uint8_t *data, size_t len)
{
    (void)ex, (void)data, (void)len;
    return 0; /* nothing is held: observe_body already copied what it scans */
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

static void chase_one(visit_t *v, learning_t *L, const char *url, const char *key)
{
    char *authority = NULL, *pq = NULL;
    if (!split_url(key, &authority, &pq))
        return;
    exchange_t *ex = exchange_create(L->x, NULL, &chase_fops, NULL);
    ex->role = EXCHANGE_ROLE_OWN; /* queues with pushes, behind client requests */
    ex->proto = EXCHANGE_HTTP11;
    ex->method = "GET";
    ex->scheme = strncmp(key, "https:", 6) == 0 ? "https" : "http";
    ex->authority = mempool_strndup(&ex->pool, authority, strlen(authority));
    ex->path = mempool_strndup(&ex->pool, pq, strlen(pq));
    free(authority);
    free(pq);
    static const char accept[] = "text/css,*/*;q=0.1";
    headers_add_ref(&ex->req_headers, &ex->pool, "accept", 6, accept, sizeof(accept) - 1);
    snprintf(ex->client_addr, sizeof(ex->client_addr), "%s", visit_client(v));
    ex->client_tls = strcmp(ex->scheme, "https") == 0;
    learning_ex_t *lx = lex_get(L, ex);
    lx->chase = true;
    lx->teach = true;
    lx->is_get = true;
    lx->url = xstrdup(url);
    lx->key = xstrdup(key);
    lx->visit = v;
    visit_ref(v);
    visit_hold(v); /* until on_free of the fetch */
    exchange_start(ex);
    exchange_request_end(ex);
}

/* Start fetching the stylesheets this visit's CSS imports; true if any started. */
static bool visit_chase(visit_t *v, learning_t *L)
{
    if (L->x->stopping)
        return false;
    /* A fetch may fail synchronously and reach on_free inside
     * chase_one: the extra reference and hold keep v alive and unsettled
     * until the loop is over. */
    visit_ref(v);
    visit_hold(v);
    const char *url, *key;
    while (visit_next_chase(v, &url, &key))
        chase_one(v, L, url, key);
    visit_release(v);
    bool waiting = !visit_idle(v);
    visit_unref(v); /* the open reference is still held */
    return waiting;
}

/* ---- queries for DELIVERY ---- */

static visit_t *page_visit(const exchange_t *ex)
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
    return v ? visit_page_key(v) : NULL;
}

const char *learning_template_key(const exchange_t *ex)
{
    const visit_t *v = page_visit(ex);
    return v ? visit_template_key(v) : NULL;
}

const char *learning_page_url(const exchange_t *ex)
{
    const visit_t *v = page_visit(ex);
    return v ? visit_url(v) : NULL;
}

int learning_plan(const exchange_t *ex, pagemap_plan_t *out)
{
    memset(out, 0, sizeof(*out));
    const visit_t *v = page_visit(ex);
    if (v == NULL)
        return 0;
    const config_t *cfg = ex->ctx->cfg;
    pagemap_plan_opts_t o = {.min_confidence = cfg->min_confidence, .explore = cfg->explore};
    return pagemap_plan(ex->learn->L->pm, visit_page_key(v), visit_template_key(v),
                        visit_authority(v), wall_ms(), &o, out);
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
    learning_ex_t *plx = page->learn;
    if (plx == NULL)
        return; /* learning did not see the page (off, or not a page) */
    learning_ex_t *lx = lex_get(plx->L, pushed);
    lx->pushed = true;
    lx->teach = true;
    lx->is_get = true;
    lex_set_urls(lx, request_url(pushed));
    learning_conn_t *lc = client_lc(plx->L, pushed);
    if (lc != NULL && lx->lc == NULL && !lc->released) {
        lx->lc = lc;
        lc->refs++;
    }
    visit_t *v = page_visit(page);
    if (v == NULL || lx->key == NULL)
        return;
    check(visit_delivered(v, lx->url, lx->key, VISIT_PUSHED));
    lx->visit = v;
    visit_ref(v);
}

void learning_note_delivery(exchange_t *ex, const char *url_key, pagemap_delivery_t event,
                            uint64_t bytes)
{
    visit_t *v = visit_of(ex);
    if (v == NULL || url_key == NULL)
        return;
    pagemap_note_delivery(ex->learn->L->pm, visit_page_key(v), url_key, event, bytes);
    if (event == PAGEMAP_DELIVERY_PROMISED) {
        learning_ex_t *lx = ex->learn;
        if (lx->lc != NULL)
            check(session_note_pushed(lx->lc->session, url_key));
        check(visit_delivered(v, url_key, url_key, VISIT_PUSHED));
    } else if (event == PAGEMAP_DELIVERY_CANCELLED) {
        check(visit_delivered(v, url_key, url_key, VISIT_PUSH_CANCELLED));
    } else if (event == PAGEMAP_DELIVERY_COMPLETED) {
        check(visit_delivered(v, url_key, url_key, VISIT_PUSH_COMPLETED));
    } else if (event == PAGEMAP_DELIVERY_HINTED) {
        check(visit_delivered(v, url_key, url_key, VISIT_HINTED));
    }
}

void learning_note_skipped(exchange_t *ex, const char *url_key)
{
    visit_t *v = visit_of(ex);
    if (v != NULL && url_key != NULL)
        check(visit_delivered(v, url_key, url_key, VISIT_SKIPPED));
}

uint64_t learning_visits_opened(void)
{
    return atomic_load_explicit(&visits_opened, memory_order_relaxed);
}

uint64_t learning_not_pages(void)
{
    return atomic_load_explicit(&not_pages, memory_order_relaxed);
}

uint64_t learning_visits_open(void)
{
    /* finished first: a visit counted finished was counted opened before */
    uint64_t done = atomic_load_explicit(&visits_finished, memory_order_relaxed);
    return atomic_load_explicit(&visits_opened, memory_order_relaxed) - done;
}

/* learning observes; it never filters the body (delivery, after it, may) */
static const uint8_t *on_response_body(void *data, exchange_t *ex, const uint8_t *bytes, size_t len,
                                       size_t *out_len)
{
    observe_body(ex, bytes, len);
    *out_len = len;
    return bytes;
}

static const exchange_observer_t learning_observer = {
    .name = "learning",
    .on_client_open = on_client_open,
    .on_client_close = on_client_close,
    .on_request = on_request,
    .on_response_head = on_response_head,
    .on_response_body = on_response_body,
    .on_response_end = on_response_end,
    .on_free = on_free,
};

learning_t *learning_attach(exchange_ctx_t *x, pagemap_t *pm, sharedmap_t *shared)
{
    learning_t *L = xcalloc(1, sizeof(*L));
    L->x = x;
    L->pm = pm;
    L->shared = shared;
    L->slot = exchange_ctx_observe(x, &learning_observer, L);
    return L;
}

void learning_detach(learning_t *L)
{
    free(L);
}
