/*
 * Speculation Rules for learned next pages (see speculation.h).
 *
 * Lifetimes
 *   speculation_t   one per worker (speculation_attach), registered as an
 *                   exchange observer; its prefetch tracker (learn/prefetch.h)
 *                   and expiry timer go with it (speculation_detach, after
 *                   the worker's loop closed the timer).
 *   spec_budget_t   per client address, in the worker's fixed table (a
 *                   client whose slot another takes starts afresh).
 * Rule sets are answered synchronously from on_request (the origin is never
 * asked): the response runs through every observer and the frontend like
 * any other.
 */
#include "speculate.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "herald/error.h"
#include "prefetch.h"
#include "speculation.h"
#include "template.h"
#include "url.h"
#include "query.h"
#include "alloc.h"
#include "learning.h"
#include "log.h"

/** How often pending prefetches past their lifetime are settled. */
#define SPEC_EXPIRE_MS 10000

typedef struct spec_budget {
    char addr[48];    /* the client's address; "" = free */
    double tokens;    /* prefetches the client may start now */
    uint64_t last_ms; /* loop time of the last refill */
} spec_budget_t;

struct speculation {
    exchange_ctx_t *x;
    pagemap_t *pm;
    size_t slot;
    prefetch_t *tracker;   /* NULL when pm is */
    prefetch_stats_t last; /* the tracker's counters already added to `stats` */
    uv_timer_t timer;
    spec_budget_t budgets[SPECULATION_CLIENTS]; /* by hash of the client address */
    /* Exchanges herald answers itself, on the next loop turn (answer_later). */
    uv_idle_t idle;
    struct local_answer *held;
    size_t nheld, capheld;
};

static struct {
    atomic_uint_fast64_t headers, origin_own, rule_sets, rule_urls, limited, sent, used, unused,
        unknown;
} stats;

void speculation_stats_get(speculation_stats_t *out)
{
    out->headers = atomic_load(&stats.headers);
    out->origin_own = atomic_load(&stats.origin_own);
    out->rule_sets = atomic_load(&stats.rule_sets);
    out->rule_urls = atomic_load(&stats.rule_urls);
    out->limited = atomic_load(&stats.limited);
    out->sent = atomic_load(&stats.sent);
    out->used = atomic_load(&stats.used);
    out->unused = atomic_load(&stats.unused);
    out->unknown = atomic_load(&stats.unknown);
}

static bool spec_on(const config_t *cfg)
{
    return strcmp(cfg->speculation, "off") != 0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void check(int rc)
{
    if (rc == HERALD_ENOMEM)
        alloc_fail(__FILE__, __LINE__, 0);
}

static const char *req_header(const exchange_t *ex, const char *name)
{
    const header_t *h = headers_find(&ex->req_headers, name);
    return h != NULL ? h->value : NULL;
}

static bool is_get_or_head(const exchange_t *ex)
{
    return strcmp(ex->method, "GET") == 0 || strcmp(ex->method, "HEAD") == 0;
}

bool speculation_own_request(const exchange_t *ex)
{
    const config_t *cfg = ex->ctx->cfg;
    if (!spec_on(cfg) || ex->path == NULL || !is_get_or_head(ex))
        return false;
    size_t n = strlen(cfg->speculation_path);
    return strncmp(ex->path, cfg->speculation_path, n) == 0 &&
           (ex->path[n] == '\0' || ex->path[n] == '?');
}

/* ---- the tracker's counters, made process-wide ---- */

static void sync_stats(speculation_t *S)
{
    prefetch_stats_t now;
    prefetch_stats(S->tracker, &now);
    atomic_fetch_add(&stats.sent, now.sent - S->last.sent);
    atomic_fetch_add(&stats.used, now.used - S->last.used);
    atomic_fetch_add(&stats.unused, now.unused - S->last.unused);
    atomic_fetch_add(&stats.unknown, now.unknown - S->last.unknown);
    S->last = now;
}

static void on_timer(uv_timer_t *t)
{
    speculation_t *S = t->data;
    prefetch_expire(S->tracker, uv_now(S->x->loop), wall_ms());
    sync_stats(S);
}

/* ---- URLs ---- */

/* The normalised absolute URL of ex's request, or NULL (malloc'd). */
static char *request_key(const exchange_t *ex)
{
    if (ex->authority == NULL || ex->authority[0] == '\0' || ex->path == NULL || ex->path[0] != '/')
        return NULL;
    size_t n = strlen(ex->scheme) + 3 + strlen(ex->authority) + strlen(ex->path) + 1;
    char *u = xmalloc(n);
    snprintf(u, n, "%s://%s%s", ex->scheme, ex->authority, ex->path);
    char *key = NULL;
    int rc = url_normalize(u, &key);
    check(rc);
    free(u);
    return rc == 0 ? key : NULL;
}

/* ex's Referer, normalised (malloc'd), NULL none or unusable. */
static char *referer_key(const exchange_t *ex)
{
    const char *ref = req_header(ex, "referer");
    char *key = NULL;
    if (ref == NULL)
        return NULL;
    int rc = url_normalize(ref, &key);
    check(rc);
    return rc == 0 ? key : NULL;
}

/* The path and query of an absolute URL (borrowed from it). */
static const char *path_of(const char *url)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return url;
    p += 3;
    p += strcspn(p, "/?#");
    return *p != '\0' ? p : "/";
}

/* The page named by query q's `page=` (malloc'd), NULL when absent or not a path. */
static char *page_param(const char *q)
{
    char *page = query_get(q, "page");
    if (page != NULL && page[0] != '/') {
        free(page);
        return NULL;
    }
    return page;
}

/* Percent-encode a path and query for the page= value (everything but unreserved and '/'). */
static size_t encode_page(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s != '\0' && *s != '#'; s++) {
        unsigned char c = (unsigned char)*s;
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
        if (o + 4 > cap)
            return 0;
        if (keep) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return o;
}

/* ---- selection ---- */

void speculation_spec_opts(const config_t *cfg, pagemap_spec_opts_t *o, const char **deny,
                           char **buf)
{
    pagemap_spec_opts_init(o);
    o->min_probability = cfg->speculation_min;
    o->max_urls = cfg->speculation_max;
    o->now_ms = wall_ms();
    *buf = xstrdup(cfg->speculation_deny);
    size_t n = 0;
    for (char *save = NULL, *p = strtok_r(*buf, ",", &save); p != NULL && n < SPECULATION_MAX_DENY;
         p = strtok_r(NULL, ",", &save)) {
        while (*p == ' ')
            p++;
        if (*p != '\0')
            deny[n++] = p;
    }
    o->deny = deny;
    o->ndeny = n;
    if (n == 0) {
        static const char *const none[] = {""}; /* empty patterns are ignored: deny nothing */
        o->deny = none;
        o->ndeny = 1;
    }
}

/* The rule-set selection for a page (page key, template key NULL none). */
static void select_next(const speculation_t *S, const config_t *cfg, const char *pk, const char *tk,
                        pagemap_spec_t *spec)
{
    memset(spec, 0, sizeof(*spec));
    if (S->pm == NULL || pk == NULL)
        return;
    pagemap_spec_opts_t o;
    const char *deny[SPECULATION_MAX_DENY];
    char *buf;
    speculation_spec_opts(cfg, &o, deny, &buf);
    int rc = pagemap_speculation(S->pm, pk, tk, NULL, &o, spec);
    free(buf);
    check(rc);
    if (rc != 0)
        memset(spec, 0, sizeof(*spec));
}

/* ---- herald's own answers ---- */

/* Herald's own answer to ex, waiting for the next loop turn (see answer_later). */
typedef struct local_answer {
    exchange_t *ex;
    int status;
    const char *ctype; /* static */
    char *body;        /* in ex->pool */
    size_t len;
} local_answer_t;

static void respond(exchange_t *ex, const local_answer_t *a)
{
    ex->status = a->status;
    ex->resp_headers.n = 0;
    headers_add_ref(&ex->resp_headers, &ex->pool, "content-type", 12, a->ctype, strlen(a->ctype));
    /* learned next pages change: a browser asks again on each page view */
    headers_add_ref(&ex->resp_headers, &ex->pool, "cache-control", 13, "no-store", 8);
    char *cl = mempool_alloc(&ex->pool, 24);
    int n = snprintf(cl, 24, "%zu", a->len);
    headers_add_ref(&ex->resp_headers, &ex->pool, "content-length", 14, cl, (size_t)n);
    ex->resp_content_length = (int64_t)a->len;
    ex->t_upstream_sent = ex->t_first_byte = uv_hrtime();
    exchange_response_head(ex, true);
    if (exchange_head_sent(ex) && strcmp(ex->method, "HEAD") != 0 && a->len > 0) {
        ex->resp_body_bytes = a->len;
        exchange_response_body(ex, (const uint8_t *)a->body, a->len);
    }
    ex->t_end = uv_hrtime();
    if (ex->state == EXCHANGE_HEAD_SENT)
        exchange_response_end(ex);
}

static void on_idle(uv_idle_t *h)
{
    speculation_t *S = h->data;
    local_answer_t *v = S->held;
    size_t n = S->nheld;
    S->held = NULL;
    S->nheld = S->capheld = 0;
    uv_idle_stop(&S->idle);
    for (size_t i = 0; i < n; i++) {
        if (v[i].ex->state == EXCHANGE_STARTED) /* not aborted meanwhile */
            respond(v[i].ex, &v[i]);
        exchange_upstream_done(v[i].ex);
    }
    free(v);
}

/*
 * Answer ex from herald (inside exchange_start()'s on_request): ex is held
 * as the origin side would hold it and answered on the next loop turn,
 * once the frontend has the whole request (an h1 connection then stays
 * open for the next one). `body` (len bytes) is copied into ex's pool.
 */
static void answer_later(speculation_t *S, exchange_t *ex, int status, const char *ctype,
                         const char *body, size_t len)
{
    ex->answered_here = true;
    ex->holders |= EXCHANGE_HOLD_ORIGIN;
    if (S->nheld == S->capheld) {
        S->capheld = S->capheld ? 2 * S->capheld : 8;
        S->held = xrealloc(S->held, S->capheld * sizeof(*S->held));
    }
    char *copy = mempool_alloc(&ex->pool, len + 1);
    memcpy(copy, body, len);
    copy[len] = '\0';
    S->held[S->nheld++] = (local_answer_t){ex, status, ctype, copy, len};
    uv_idle_start(&S->idle, on_idle);
}

/* Answer the rule set of the page named by ex's ?page=. */
static void answer_rules(speculation_t *S, exchange_t *ex)
{
    const config_t *cfg = ex->ctx->cfg;
    const char *q = strchr(ex->path, '?');
    char *page = page_param(q != NULL ? q + 1 : NULL);
    char *url = NULL, *key = NULL, *pk = NULL, *tk = NULL;
    if (page != NULL && ex->authority != NULL && ex->authority[0] != '\0') {
        size_t n = strlen(ex->scheme) + 3 + strlen(ex->authority) + strlen(page) + 1;
        url = xmalloc(n);
        snprintf(url, n, "%s://%s%s", ex->scheme, ex->authority, page);
        int rc = url_normalize(url, &key);
        if (rc == 0)
            rc = template_url_page_key(key, &pk);
        if (rc == 0)
            rc = template_key(pk, &tk);
        check(rc);
    }
    pagemap_spec_t spec;
    select_next(S, cfg, pk, tk != NULL && pk != NULL && strcmp(tk, pk) != 0 ? tk : NULL, &spec);
    /* same-origin paths: the browser resolves them against the rule set's URL */
    for (size_t i = 0; i < spec.n; i++) {
        char *p = xstrdup(path_of(spec.items[i].url));
        free(spec.items[i].url);
        spec.items[i].url = p;
    }
    char *json = NULL;
    size_t len = 0;
    speculation_action_t act =
        strcmp(cfg->speculation, "prerender") == 0 ? SPECULATION_PRERENDER : SPECULATION_PREFETCH;
    int rc = speculation_rules_json(&spec, act, &json, &len);
    check(rc);
    if (rc == 0) {
        atomic_fetch_add(&stats.rule_sets, 1);
        atomic_fetch_add(&stats.rule_urls, spec.n);
        answer_later(S, ex, 200, SPECULATION_MEDIA_TYPE, json, len);
    } else {
        answer_later(S, ex, 500, "text/plain", "", 0);
    }
    free(json);
    pagemap_spec_dispose(&spec);
    free(page);
    free(url);
    free(key);
    free(pk);
    free(tk);
}

/* ---- prefetch budget ---- */

/* Take one prefetch from the budget of ex's client; false when it is spent. */
static bool take_budget(speculation_t *S, exchange_t *ex)
{
    const config_t *cfg = ex->ctx->cfg;
    double cap = (double)(cfg->speculation_max > 0 ? cfg->speculation_max : 1) * SPECULATION_BURST;
    uint64_t now = uv_now(S->x->loop);
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = ex->client_addr; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    spec_budget_t *b = &S->budgets[h % SPECULATION_CLIENTS];
    if (strcmp(b->addr, ex->client_addr) != 0) {
        snprintf(b->addr, sizeof(b->addr), "%s", ex->client_addr);
        b->tokens = cap;
        b->last_ms = now;
    }
    b->tokens += (double)(now - b->last_ms) / SPECULATION_REFILL_MS;
    if (b->tokens > cap)
        b->tokens = cap;
    b->last_ms = now;
    if (b->tokens < 1)
        return false;
    b->tokens -= 1;
    return true;
}

/* A request of the client other than a prefetch: settle what it answers. */
static void note_request(speculation_t *S, exchange_t *ex)
{
    if (S->tracker == NULL || ex->client == NULL ||
        prefetch_pending(S->tracker, ex->client_addr) == 0)
        return;
    char *key = request_key(ex), *ref = referer_key(ex);
    if (key != NULL) {
        prefetch_request(S->tracker, ex->client_addr, key, ref, ex->role == EXCHANGE_ROLE_PAGE,
                         uv_now(S->x->loop), wall_ms());
        sync_stats(S);
    }
    free(key);
    free(ref);
}

static void on_request(void *data, exchange_t *ex)
{
    speculation_t *S = data;
    const config_t *cfg = ex->ctx->cfg;
    if (ex->role == EXCHANGE_ROLE_PUSHED || ex->role == EXCHANGE_ROLE_OWN)
        return;
    if (ex->role != EXCHANGE_ROLE_PREFETCH)
        note_request(S, ex);
    if (speculation_own_request(ex)) {
        answer_rules(S, ex);
        return;
    }
    if (ex->role == EXCHANGE_ROLE_PREFETCH && spec_on(cfg) && !take_budget(S, ex)) {
        atomic_fetch_add(&stats.limited, 1);
        LOG_DEBUG("prefetch of %s refused: the client's prefetch budget is spent", ex->path);
        answer_later(S, ex, 503, "text/plain", "", 0);
    }
}

static bool is_html(const exchange_t *ex)
{
    const header_t *ct = headers_find(&ex->resp_headers, "content-type");
    return ct != NULL && ct->value_len >= 9 && strncasecmp(ct->value, "text/html", 9) == 0;
}

/* Add the Speculation-Rules header to a page's HTML response when it has next pages. */
static void add_header(speculation_t *S, exchange_t *ex)
{
    const config_t *cfg = ex->ctx->cfg;
    if (headers_find(&ex->resp_headers, "speculation-rules") != NULL) {
        atomic_fetch_add(&stats.origin_own, 1); /* the origin's own rules: left alone */
        return;
    }
    if (req_header(ex, "authorization") != NULL || strcmp(ex->method, "GET") != 0 ||
        pagemap_inline_rules(S->pm, learning_page_key(ex)))
        return; /* the page's own inline rules (as last scanned) are left alone too */
    pagemap_spec_t spec;
    select_next(S, cfg, learning_page_key(ex), learning_template_key(ex), &spec);
    size_t n = spec.n;
    pagemap_spec_dispose(&spec);
    if (n == 0)
        return; /* nothing to prefetch: spare the browser a request */
    char enc[3 * SPECULATION_MAX_URL + 4];
    if (encode_page(ex->path, enc, sizeof(enc)) == 0)
        return;
    size_t cap = strlen(cfg->speculation_path) + strlen(enc) + 16;
    char *v = mempool_alloc(&ex->pool, cap);
    int len = snprintf(v, cap, "\"%s?page=%s\"", cfg->speculation_path, enc);
    headers_add_ref(&ex->resp_headers, &ex->pool, "speculation-rules", 17, v, (size_t)len);
    atomic_fetch_add(&stats.headers, 1);
}

static void on_response_head(void *data, exchange_t *ex, bool final)
{
    speculation_t *S = data;
    if (!final || !spec_on(ex->ctx->cfg) || ex->status != 200 || !is_html(ex) ||
        (ex->role != EXCHANGE_ROLE_PAGE && ex->role != EXCHANGE_ROLE_PREFETCH))
        return;
    add_header(S, ex);
}

static void on_response_end(void *data, exchange_t *ex, bool ok)
{
    speculation_t *S = data;
    if (!ok || ex->role != EXCHANGE_ROLE_PREFETCH || S->tracker == NULL || ex->status < 200 ||
        ex->status > 299 || learning_page_url(ex) == NULL)
        return;
    char *ref = referer_key(ex);
    check(prefetch_sent(S->tracker, ex->client_addr, learning_page_url(ex), ref, uv_now(S->x->loop),
                        wall_ms()));
    free(ref);
    sync_stats(S);
}

static const exchange_observer_t speculation_observer = {
    .name = "speculation",
    .on_request = on_request,
    .on_response_head = on_response_head,
    .on_response_end = on_response_end,
};

speculation_t *speculation_attach(exchange_ctx_t *x, pagemap_t *pm)
{
    speculation_t *S = xcalloc(1, sizeof(*S));
    S->x = x;
    S->pm = pm;
    if (pm != NULL)
        check(prefetch_create(pm, &S->tracker));
    S->slot = exchange_ctx_observe(x, &speculation_observer, S);
    uv_timer_init(x->loop, &S->timer);
    S->timer.data = S;
    if (S->tracker != NULL)
        uv_timer_start(&S->timer, on_timer, SPEC_EXPIRE_MS, SPEC_EXPIRE_MS);
    uv_unref((uv_handle_t *)&S->timer);
    uv_idle_init(x->loop, &S->idle);
    S->idle.data = S;
    return S;
}

void speculation_detach(speculation_t *S)
{
    if (S == NULL)
        return;
    prefetch_destroy(S->tracker);
    free(S->held); /* empty: the loop ran until the idle handle had nothing left */
    free(S);
}
