/*
 * learn/pagemap: the evidence model driven by visit sequences (clean hits
 * and misses, cold visits, rejection, staleness, versions, alternates,
 * exploration), what plans allow (push or hint), caps, eviction, admin
 * operations, threads.
 */
#include "pagemap.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "herald/error.h"
#include "testutil.h"

#define PAGE "e.com/p"
#define MIN PAGEMAP_DEFAULT_MIN_CONFIDENCE

static const pagemap_plan_opts_t OPTS = {MIN, 0};

/* A discovered item: strong (markup CSS/JS/image) or weak (CSS url(), srcset...). */
static pagemap_item_t found(const char *url, pagemap_kind_t kind, unsigned sources, bool strong,
                            unsigned order)
{
    return (pagemap_item_t){
        .url = url, .key = url, .kind = kind, .sources = sources, .strong = strong, .order = order};
}

static pagemap_item_t strong(const char *url, pagemap_kind_t kind, unsigned order)
{
    return found(url, kind, PAGEMAP_SRC_HTML, true, order);
}

static pagemap_item_t weak(const char *url, pagemap_kind_t kind, unsigned order)
{
    return found(url, kind, PAGEMAP_SRC_CSS, false, order);
}

static pagemap_item_t fetched(pagemap_item_t it)
{
    it.sources |= PAGEMAP_SRC_FOLLOWUP;
    return it;
}

static pagemap_item_t hinted(pagemap_item_t it)
{
    it.sources |= PAGEMAP_SRC_HINT;
    return it;
}

/* A curl-like visit: the page only. */
static pagemap_visit_t visit(const char *page, int64_t now, const pagemap_item_t *items, size_t n)
{
    return (pagemap_visit_t){.page_key = page,
                             .now_ms = now,
                             .think_ms = -1,
                             .status = 200,
                             .html_scanned = true,
                             .items = items,
                             .nitems = n};
}

/* A browser on HTTP/2: its misses count when the visit is cold. */
static pagemap_visit_t browser(const char *page, int64_t now, const pagemap_item_t *items, size_t n)
{
    pagemap_visit_t v = visit(page, now, items, n);
    v.browser = true;
    v.multiplexed = true;
    v.css_scanned = true;
    return v;
}

static pagemap_t *new_map(size_t max_pages, size_t max_assets)
{
    pagemap_config_t cfg;
    pagemap_config_init(&cfg);
    if (max_pages)
        cfg.max_pages = max_pages;
    if (max_assets)
        cfg.max_assets_per_page = max_assets;
    pagemap_t *pm = NULL;
    CHECK_INTEQ(pagemap_create(&cfg, &pm), 0);
    return pm;
}

/* One edge's info (caller disposes), false when absent. */
static bool edge_get(pagemap_t *pm, const char *page, const char *key, pagemap_edge_info_t *out)
{
    pagemap_page_info_t info;
    pagemap_edge_info_t *e = NULL;
    size_t n = 0;
    bool got = false;
    if (pagemap_page_get(pm, page, &info, &e, &n) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!got && strcmp(e[i].key, key) == 0) {
            *out = e[i];
            memset(&e[i], 0, sizeof(e[i]));
            got = true;
        }
    }
    pagemap_edge_infos_free(e, n);
    pagemap_page_info_dispose(&info);
    return got;
}

static pagemap_verdict_t verdict_of(pagemap_t *pm, const char *page, const char *key)
{
    pagemap_edge_info_t e;
    if (!edge_get(pm, page, key, &e))
        return PAGEMAP_VERDICT_COUNT_;
    pagemap_verdict_t v = e.verdict;
    pagemap_edge_info_dispose(&e);
    return v;
}

/* Clean confidence of one edge, -1 when absent. */
static double conf_of(pagemap_t *pm, const char *page, const char *key)
{
    pagemap_edge_info_t e;
    if (!edge_get(pm, page, key, &e))
        return -1;
    double c = e.confidence;
    pagemap_edge_info_dispose(&e);
    return c;
}

static bool plan_has(const pagemap_plan_t *p, const char *url)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->items[i].url, url) == 0)
            return true;
    return false;
}

static bool planned(pagemap_t *pm, const char *page, const char *url)
{
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, page, NULL, "e.com", 0, &OPTS, &p), 0);
    bool has = plan_has(&p, url);
    pagemap_plan_dispose(&p);
    return has;
}

static size_t plan_count(pagemap_t *pm, const char *page, const char *tmpl)
{
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, page, tmpl, "e.com", 0, &OPTS, &p), 0);
    size_t n = p.n;
    pagemap_plan_dispose(&p);
    return n;
}

static void commit(pagemap_t *pm, const pagemap_visit_t *v)
{
    CHECK_INTEQ(pagemap_commit_visit(pm, v), 0);
}

#define A_CSS "https://e.com/a.css"
#define BG "https://e.com/bg.png"
#define LOGO "https://e.com/logo.png"

/* Discovery proposes: strong from the second visit, weak waits. */
static void test_discovery_proposes(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &OPTS, &p), 0);
    CHECK_INTEQ(p.source, PAGEMAP_PLAN_NONE);
    pagemap_plan_dispose(&p);
    pagemap_item_t it[] = {strong(A_CSS, PAGEMAP_KIND_STYLE, 0), weak(BG, PAGEMAP_KIND_IMAGE, 1)};
    pagemap_visit_t v = visit(PAGE, 1000, it, 2);
    v.think_ms = 100;
    commit(pm, &v);
    CHECK_INTEQ(verdict_of(pm, PAGE, A_CSS), PAGEMAP_VERDICT_STRONG);
    CHECK_INTEQ(verdict_of(pm, PAGE, BG), PAGEMAP_VERDICT_WEAK);
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &OPTS, &p), 0);
    CHECK_INTEQ(p.source, PAGEMAP_PLAN_PAGE);
    CHECK_INTEQ(p.n, 1);
    CHECK(plan_has(&p, A_CSS));
    CHECK(fabs(p.think_ms - 100) < 1e-9);
    CHECK_INTEQ(p.visits_total, 1);
    if (p.n == 1) {
        CHECK_INTEQ(p.items[0].verdict, PAGEMAP_VERDICT_STRONG);
        CHECK(p.items[0].pushable);
        CHECK_INTEQ(p.items[0].hint, CACHEPOLICY_HINT_YES);
    }
    pagemap_plan_dispose(&p);
    /* many curl-like visits teach nothing about the weak one */
    for (int i = 0; i < 10; i++) {
        v = visit(PAGE, 2000 + i, it, 2);
        commit(pm, &v);
    }
    CHECK_INTEQ(verdict_of(pm, PAGE, BG), PAGEMAP_VERDICT_WEAK);
    /* Authorization teaches nothing; non-2xx teaches nothing. */
    v.page_key = "e.com/auth";
    v.authorized = true;
    commit(pm, &v);
    CHECK_INTEQ(conf_of(pm, "e.com/auth", A_CSS), -1);
    v.authorized = false;
    v.status = 404;
    commit(pm, &v);
    CHECK_INTEQ(conf_of(pm, "e.com/auth", A_CSS), -1);
    pagemap_destroy(pm);
}

/* Browsers confirm: a clean hit plans a weak edge; two cold clean misses
 * reject it, and rediscovery does not lift that; a clean hit does. */
static void test_confirm_and_reject(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t css = strong(A_CSS, PAGEMAP_KIND_STYLE, 0);
    pagemap_item_t icon = weak("https://e.com/icons/pdf.png", PAGEMAP_KIND_IMAGE, 1);
    pagemap_item_t bg = weak(BG, PAGEMAP_KIND_IMAGE, 2);
    /* visit 1: the browser fetches the CSS and bg, not the icon: cold */
    pagemap_item_t v1[] = {fetched(css), icon, fetched(bg)};
    pagemap_visit_t v = browser(PAGE, 1, v1, 3);
    commit(pm, &v);
    CHECK_INTEQ(verdict_of(pm, PAGE, BG), PAGEMAP_VERDICT_CONFIRMED);
    CHECK_INTEQ(verdict_of(pm, PAGE, A_CSS), PAGEMAP_VERDICT_CONFIRMED);
    CHECK_INTEQ(verdict_of(pm, PAGE, "https://e.com/icons/pdf.png"), PAGEMAP_VERDICT_UNCERTAIN);
    CHECK(!planned(pm, PAGE, "https://e.com/icons/pdf.png"));
    /* visit 2: herald hinted CSS and bg (no evidence of them); the icon,
     * held back, is still not fetched: the second miss rejects it */
    pagemap_item_t v2[] = {fetched(hinted(css)), icon, fetched(hinted(bg))};
    v = browser(PAGE, 2, v2, 3);
    commit(pm, &v);
    pagemap_edge_info_t e;
    CHECK(edge_get(pm, PAGE, "https://e.com/icons/pdf.png", &e));
    CHECK(e.rejected);
    CHECK_INTEQ(e.verdict, PAGEMAP_VERDICT_REJECTED);
    CHECK_INTEQ(e.clean_misses, 2);
    CHECK_INTEQ(e.clean_hits, 0);
    pagemap_edge_info_dispose(&e);
    /* hinted edges moved not at all: one clean hit each */
    CHECK(edge_get(pm, PAGE, BG, &e));
    CHECK_INTEQ(e.clean_hits, 1);
    CHECK(fabs(e.visits - 1.0) < 1e-9);
    pagemap_edge_info_dispose(&e);
    /* rediscovered on many curl visits: still rejected */
    for (int i = 0; i < 5; i++) {
        pagemap_item_t again[] = {css, icon, bg};
        v = visit(PAGE, 10 + i, again, 3);
        commit(pm, &v);
    }
    CHECK_INTEQ(verdict_of(pm, PAGE, "https://e.com/icons/pdf.png"), PAGEMAP_VERDICT_REJECTED);
    /* a clean visit fetches it (the page started using it): no longer
     * rejected, but its misses still weigh; a second fetch plans it */
    pagemap_item_t v3[] = {fetched(hinted(css)), fetched(icon), fetched(hinted(bg))};
    v = browser(PAGE, 20, v3, 3);
    commit(pm, &v);
    CHECK_INTEQ(verdict_of(pm, PAGE, "https://e.com/icons/pdf.png"), PAGEMAP_VERDICT_UNCERTAIN);
    v = browser(PAGE, 21, v3, 3);
    commit(pm, &v);
    CHECK_INTEQ(verdict_of(pm, PAGE, "https://e.com/icons/pdf.png"), PAGEMAP_VERDICT_CONFIRMED);
    CHECK(planned(pm, PAGE, "https://e.com/icons/pdf.png"));
    pagemap_destroy(pm);
}

/* Self-reinforcement: what herald hints or pushes is never evidence, so
 * five visits fetching a hinted asset leave it where it was. */
static void test_delivered_is_no_evidence(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t css = strong(A_CSS, PAGEMAP_KIND_STYLE, 0);
    pagemap_item_t img = strong(LOGO, PAGEMAP_KIND_IMAGE, 1);
    pagemap_item_t v1[] = {fetched(css), img}; /* the logo, a markup image, not fetched */
    pagemap_visit_t v = browser(PAGE, 1, v1, 2);
    commit(pm, &v);
    CHECK_INTEQ(verdict_of(pm, PAGE, LOGO), PAGEMAP_VERDICT_UNCERTAIN);
    for (int i = 0; i < 5; i++) {
        pagemap_item_t h[] = {fetched(hinted(css)), fetched(hinted(img))};
        v = browser(PAGE, 2 + i, h, 2);
        commit(pm, &v);
    }
    pagemap_edge_info_t e;
    CHECK(edge_get(pm, PAGE, LOGO, &e));
    CHECK_INTEQ(e.clean_hits, 0);
    CHECK_INTEQ(e.clean_misses, 1);
    CHECK_INTEQ(e.verdict, PAGEMAP_VERDICT_UNCERTAIN);
    pagemap_edge_info_dispose(&e);
    /* pushed and completed: no evidence either */
    pagemap_item_t pushed = img;
    pushed.sources |= PAGEMAP_SRC_PUSH;
    v = browser(PAGE, 10, &pushed, 1);
    v.pushes_used = true;
    commit(pm, &v);
    CHECK_INTEQ(conf_of(pm, PAGE, LOGO), 0);
    pagemap_destroy(pm);
}

/* Misses count only on cold visits. */
static void test_cold(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t css = strong(A_CSS, PAGEMAP_KIND_STYLE, 0);
    pagemap_item_t js = strong("https://e.com/a.js", PAGEMAP_KIND_SCRIPT, 1);
    pagemap_item_t bg = weak(BG, PAGEMAP_KIND_IMAGE, 2);
    pagemap_item_t first[] = {fetched(css), fetched(js), fetched(bg)};
    pagemap_visit_t v = browser(PAGE, 1, first, 3);
    commit(pm, &v);
    double c = conf_of(pm, PAGE, BG);
    CHECK(fabs(c - 1.0) < 1e-9);
    pagemap_item_t fc[] = {fetched(css), fetched(js), bg};
    /* a revalidation shows a warm cache: no miss */
    fc[0].conditional = true;
    v = browser(PAGE, 2, fc, 3);
    commit(pm, &v);
    fc[0].conditional = false;
    /* not a browser (no Sec-Fetch-*): no miss */
    v = browser(PAGE, 3, fc, 3);
    v.browser = false;
    commit(pm, &v);
    /* HTTP/1.1: the page's other connections carry the rest: no miss */
    v = browser(PAGE, 4, fc, 3);
    v.multiplexed = false;
    commit(pm, &v);
    /* the CSS not fetched (cached), only the JS: 1 of 2 expected, warm */
    pagemap_item_t half[] = {css, fetched(js), bg};
    v = browser(PAGE, 5, half, 3);
    commit(pm, &v);
    /* a cancelled push: the client had it, warm */
    pagemap_item_t cancel[] = {
        fetched(css), fetched(js), bg,
        found("https://e.com/x.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_PUSH, false, 3)};
    cancel[3].push_cancelled = true;
    v = browser(PAGE, 6, cancel, 4);
    commit(pm, &v);
    CHECK(fabs(conf_of(pm, PAGE, BG) - c) < 1e-9);
    /* the client's digest names it: no miss for it */
    digest_builder_t db;
    digest_builder_init(&db, DIGEST_DEFAULT_LOG2P);
    CHECK_INTEQ(digest_builder_add(&db, BG, NULL), 0);
    char *val = NULL;
    size_t vl = 0;
    CHECK_INTEQ(digest_builder_finish(&db, &val, &vl), 0);
    digest_t d;
    CHECK_INTEQ(digest_parse(val, vl, &d, NULL), 0);
    v = browser(PAGE, 7, fc, 3);
    v.digest = &d;
    commit(pm, &v);
    CHECK(fabs(conf_of(pm, PAGE, BG) - c) < 1e-9);
    digest_dispose(&d);
    free(val);
    digest_builder_dispose(&db);
    /* a cold visit: the miss counts */
    v = browser(PAGE, 8, fc, 3);
    commit(pm, &v);
    CHECK(fabs(conf_of(pm, PAGE, BG) - 0.9 / 1.9) < 1e-9);
    pagemap_page_info_t info;
    CHECK_INTEQ(pagemap_page_get(pm, PAGE, &info, NULL, NULL), 0);
    CHECK_INTEQ(info.cold_total, 3); /* visits 1, 7 and 8 */
    CHECK_INTEQ(info.clean_total, 8);
    pagemap_page_info_dispose(&info);
    pagemap_destroy(pm);
}

/* Follow-up-only URLs: curl visits do not dilute them; a cold browser
 * visit without one is a miss; a late one from a forged Referer starts
 * missed on the visits before it. */
static void test_followups(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t css = strong(A_CSS, PAGEMAP_KIND_STYLE, 0);
    pagemap_item_t lazy =
        found("https://e.com/lazy.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_FOLLOWUP, false, 9);
    pagemap_item_t it[] = {fetched(css), lazy};
    pagemap_visit_t v = browser(PAGE, 1, it, 2);
    commit(pm, &v);
    CHECK_INTEQ(verdict_of(pm, PAGE, "https://e.com/lazy.js"), PAGEMAP_VERDICT_CONFIRMED);
    for (int i = 0; i < 20; i++) {
        v = visit(PAGE, 2 + i, &css, 1);
        commit(pm, &v);
    }
    CHECK(fabs(conf_of(pm, PAGE, "https://e.com/lazy.js") - 1.0) < 1e-9);
    pagemap_item_t only_css = fetched(css);
    v = browser(PAGE, 30, &only_css, 1);
    commit(pm, &v);
    CHECK(fabs(conf_of(pm, PAGE, "https://e.com/lazy.js") - 0.9 / 1.9) < 1e-9);
    /* five more visits with follow-ups, then a junk URL: not plannable */
    for (int i = 0; i < 5; i++) {
        v = browser(PAGE, 40 + i, it, 2);
        commit(pm, &v);
    }
    pagemap_item_t junk[] = {fetched(css), found("https://e.com/junk.txt", PAGEMAP_KIND_OTHER,
                                                 PAGEMAP_SRC_FOLLOWUP, false, 1)};
    v = browser(PAGE, 50, junk, 2);
    commit(pm, &v);
    CHECK(conf_of(pm, PAGE, "https://e.com/junk.txt") < MIN);
    CHECK(!planned(pm, PAGE, "https://e.com/junk.txt"));
    pagemap_destroy(pm);
}

/* Supplement: late discovery of a committed visit adds edges, moves no counter. */
static void test_supplement(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t a = strong(A_CSS, PAGEMAP_KIND_STYLE, 0);
    pagemap_item_t f = weak("https://e.com/f.woff2", PAGEMAP_KIND_FONT, 1);
    pagemap_item_t imp =
        found("https://e.com/imp.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_CSS, true, 2);
    pagemap_visit_t v = visit(PAGE, 1, &a, 1);
    commit(pm, &v);
    pagemap_item_t late[] = {f, imp};
    v = visit(PAGE, 1, late, 2);
    v.supplement = true;
    commit(pm, &v);
    CHECK_INTEQ(verdict_of(pm, PAGE, "https://e.com/f.woff2"), PAGEMAP_VERDICT_WEAK);
    CHECK_INTEQ(verdict_of(pm, PAGE, "https://e.com/imp.css"), PAGEMAP_VERDICT_STRONG);
    pagemap_page_info_t info;
    CHECK_INTEQ(pagemap_page_get(pm, PAGE, &info, NULL, NULL), 0);
    CHECK_INTEQ(info.visits_total, 1);
    pagemap_page_info_dispose(&info);
    pagemap_destroy(pm);
}

/* One visit weighs one, however many copies of an item it carries. */
static void test_poisoning(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t a = strong(A_CSS, PAGEMAP_KIND_STYLE, 0);
    pagemap_item_t *many = calloc(1000, sizeof(*many));
    for (int i = 0; i < 1000; i++)
        many[i] =
            found("https://e.com/evil.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_FOLLOWUP, false, 1);
    many[0] = fetched(a);
    pagemap_visit_t v = browser(PAGE, 3, many, 1000);
    commit(pm, &v);
    pagemap_edge_info_t e;
    CHECK(edge_get(pm, PAGE, "https://e.com/evil.js", &e));
    CHECK(fabs(e.hits - 1.0) < 1e-9);
    CHECK_INTEQ(e.clean_hits, 1);
    CHECK_INTEQ(e.hit_visits, 1);
    pagemap_edge_info_dispose(&e);
    free(many);
    pagemap_destroy(pm);
}

static void test_volatile_never_planned(void)
{
    pagemap_t *pm = new_map(0, 4);
    char urls[30][64];
    pagemap_item_t a = strong(A_CSS, PAGEMAP_KIND_STYLE, 0);
    for (int i = 0; i < 30; i++) {
        snprintf(urls[i], sizeof(urls[i]), "https://e.com/t.js?ts=%lld", 1700000000000LL + i);
        pagemap_item_t it[2] = {a, strong(urls[i], PAGEMAP_KIND_SCRIPT, 1)};
        pagemap_visit_t v = visit(PAGE, 10 + i, it, 2);
        commit(pm, &v);
        pagemap_plan_t p;
        CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &OPTS, &p), 0);
        CHECK_INTEQ(p.n, 1);
        CHECK(plan_has(&p, A_CSS));
        pagemap_plan_dispose(&p);
    }
    pagemap_page_info_t info;
    CHECK_INTEQ(pagemap_page_get(pm, PAGE, &info, NULL, NULL), 0);
    CHECK(info.nedges <= 4);
    pagemap_page_info_dispose(&info);
    CHECK_INTEQ(verdict_of(pm, PAGE, A_CSS), PAGEMAP_VERDICT_STRONG);
    /* the first timestamp is gone or a superseded tombstone */
    pagemap_verdict_t first = verdict_of(pm, PAGE, urls[0]);
    CHECK(first == PAGEMAP_VERDICT_COUNT_ || first == PAGEMAP_VERDICT_SUPERSEDED);
    /* A volatile-looking but stable URL (content hash) is planned from its 2nd visit. */
    pagemap_item_t h =
        strong("https://e.com/app.js?v=0123456789abcdef0123", PAGEMAP_KIND_SCRIPT, 2);
    pagemap_visit_t v = visit("e.com/q", 1, &h, 1);
    commit(pm, &v);
    CHECK_INTEQ(plan_count(pm, "e.com/q", NULL), 0);
    v.now_ms = 2;
    commit(pm, &v);
    CHECK_INTEQ(plan_count(pm, "e.com/q", NULL), 1);
    pagemap_destroy(pm);
}

/* Versions: a new URL that the page names instead of a planned one
 * replaces it at once, evidence and all. */
static void test_versions(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t css = strong(A_CSS, PAGEMAP_KIND_STYLE, 0);
    pagemap_item_t js1 = weak("https://e.com/app.js?ver=6.1", PAGEMAP_KIND_SCRIPT, 1);
    js1.sources = PAGEMAP_SRC_HTML;
    pagemap_item_t v1[] = {fetched(css), fetched(js1)};
    pagemap_visit_t v = browser(PAGE, 1, v1, 2);
    commit(pm, &v);
    CHECK(planned(pm, PAGE, "https://e.com/app.js?ver=6.1"));
    /* the page now names ver=6.2 (a curl visit: discovery only) */
    pagemap_item_t js2 = js1;
    js2.url = js2.key = "https://e.com/app.js?ver=6.2";
    pagemap_item_t v2[] = {css, js2};
    v = visit(PAGE, 2, v2, 2);
    commit(pm, &v);
    CHECK(planned(pm, PAGE, "https://e.com/app.js?ver=6.2"));
    CHECK(!planned(pm, PAGE, "https://e.com/app.js?ver=6.1"));
    CHECK_INTEQ(verdict_of(pm, PAGE, "https://e.com/app.js?ver=6.1"), PAGEMAP_VERDICT_SUPERSEDED);
    CHECK_INTEQ(verdict_of(pm, PAGE, "https://e.com/app.js?ver=6.2"), PAGEMAP_VERDICT_CONFIRMED);
    /* a script-loaded chunk with a hashed name: a cold clean visit fetching
     * the new and not the old replaces it */
    pagemap_item_t c1 = found("https://e.com/js/chunk.3f2a9c1b.js", PAGEMAP_KIND_SCRIPT,
                              PAGEMAP_SRC_FOLLOWUP, false, 9);
    pagemap_item_t v3[] = {fetched(css), fetched(js2), c1};
    v = browser(PAGE, 3, v3, 3);
    commit(pm, &v);
    CHECK(planned(pm, PAGE, "https://e.com/js/chunk.3f2a9c1b.js"));
    pagemap_item_t c2 = c1;
    c2.url = c2.key = "https://e.com/js/chunk.77e01d5a.js";
    pagemap_item_t v4[] = {fetched(css), fetched(js2), c2};
    v = browser(PAGE, 4, v4, 3);
    commit(pm, &v);
    CHECK(planned(pm, PAGE, "https://e.com/js/chunk.77e01d5a.js"));
    CHECK(!planned(pm, PAGE, "https://e.com/js/chunk.3f2a9c1b.js"));
    /* not a version: another parameter name */
    pagemap_item_t other = js2;
    other.url = other.key = "https://e.com/app.js?lang=fr";
    pagemap_item_t v5[] = {css, js2, other};
    v = visit(PAGE, 5, v5, 3);
    commit(pm, &v);
    CHECK(planned(pm, PAGE, "https://e.com/app.js?ver=6.2"));
    pagemap_destroy(pm);
}

/* Alternates: one candidate of a srcset is planned, the one browsers fetched most. */
static void test_alternates(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t css = strong(A_CSS, PAGEMAP_KIND_STYLE, 0);
    pagemap_item_t s320 =
        found("https://e.com/hero-320.png", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_HTML, false, 1);
    pagemap_item_t s640 = s320;
    s640.url = s640.key = "https://e.com/hero-640.png";
    s320.group = s640.group = 77;
    pagemap_item_t v1[] = {fetched(css), s320, fetched(s640)};
    pagemap_visit_t v = browser(PAGE, 1, v1, 3);
    commit(pm, &v);
    CHECK(planned(pm, PAGE, "https://e.com/hero-640.png"));
    CHECK(!planned(pm, PAGE, "https://e.com/hero-320.png"));
    /* a narrow browser fetched 320 once (not cold for 640: no miss counted) */
    pagemap_item_t v2[] = {fetched(hinted(css)), fetched(s320), hinted(s640)};
    v = browser(PAGE, 2, v2, 3);
    commit(pm, &v);
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &OPTS, &p), 0);
    size_t imgs = 0;
    for (size_t i = 0; i < p.n; i++)
        imgs += strstr(p.items[i].url, "hero-") != NULL;
    CHECK_INTEQ(imgs, 1); /* never both */
    pagemap_plan_dispose(&p);
    /* both fetched once; 640 was never missed: it stays the one planned */
    CHECK(planned(pm, PAGE, "https://e.com/hero-640.png"));
    CHECK_INTEQ(verdict_of(pm, PAGE, "https://e.com/hero-320.png"), PAGEMAP_VERDICT_ALTERNATE);
    /* two more visits fetch 320 (narrow browsers): it takes over */
    for (int i = 0; i < 2; i++) {
        pagemap_item_t v3[] = {fetched(hinted(css)), fetched(s320), hinted(s640)};
        v = browser(PAGE, 3 + i, v3, 3);
        commit(pm, &v);
    }
    CHECK(planned(pm, PAGE, "https://e.com/hero-320.png"));
    CHECK(!planned(pm, PAGE, "https://e.com/hero-640.png"));
    pagemap_destroy(pm);
}

/* Staleness: a markup edge the HTML stopped naming is held back. */
static void test_stale(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t css = strong(A_CSS, PAGEMAP_KIND_STYLE, 0);
    pagemap_item_t old = strong("https://e.com/old-banner.png", PAGEMAP_KIND_IMAGE, 1);
    pagemap_item_t v1[] = {css, old};
    pagemap_visit_t v = visit(PAGE, 1, v1, 2);
    commit(pm, &v);
    CHECK(planned(pm, PAGE, "https://e.com/old-banner.png"));
    for (int i = 0; i < PAGEMAP_STALE_SCANS; i++) {
        v = visit(PAGE, 2 + i, &css, 1);
        commit(pm, &v);
    }
    CHECK_INTEQ(verdict_of(pm, PAGE, "https://e.com/old-banner.png"), PAGEMAP_VERDICT_STALE);
    CHECK(!planned(pm, PAGE, "https://e.com/old-banner.png"));
    /* a page visit that did not scan says nothing */
    v = visit(PAGE, 9, &css, 1);
    v.html_scanned = false;
    commit(pm, &v);
    CHECK_INTEQ(verdict_of(pm, PAGE, "https://e.com/old-banner.png"), PAGEMAP_VERDICT_STALE);
    pagemap_destroy(pm);
}

static void observe(pagemap_t *pm, const char *key, int status, const char *location,
                    unsigned policy, bool pushed)
{
    pagemap_asset_meta_t m = {.status = status,
                              .size = 100,
                              .content_type = "text/plain",
                              .etag = "\"e1\"",
                              .location = location,
                              .policy = policy,
                              .fresh_ms = policy & CACHEPOLICY_NO_CACHE ? 0 : 60000,
                              .pushed = pushed};
    CHECK_INTEQ(pagemap_observe_asset(pm, key, &m), 0);
}

static const pagemap_plan_item_t *plan_item(const pagemap_plan_t *p, const char *url)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->items[i].url, url) == 0)
            return &p->items[i];
    return NULL;
}

/* Hints are not pushes: what each response allows. */
static void test_push_and_hint_rules(void)
{
    pagemap_t *pm = new_map(0, 0);
    const char *u[] = {"https://e.com/cookie.png", "https://e.com/vary-cookie.css",
                       "https://e.com/nostore.js", "https://e.com/private.js",
                       "https://e.com/vary-ua.js", "https://e.com/vary-accept.js",
                       "https://e.com/plain.css",  "https://e.com/nocache.js"};
    pagemap_item_t it[8];
    for (int i = 0; i < 8; i++)
        it[i] = strong(u[i], PAGEMAP_KIND_SCRIPT, (unsigned)i);
    CHECK(!pagemap_has_asset(pm, u[0]));
    pagemap_visit_t v = visit(PAGE, 1, it, 8);
    commit(pm, &v);
    for (int i = 0; i < 8; i++)
        CHECK(pagemap_has_asset(pm, u[i]));
    CHECK(!pagemap_has_asset(pm, "https://e.com/other.js"));
    CHECK(!pagemap_has_asset(pm, PAGE)); /* a page is no asset */
    CHECK(!pagemap_has_asset(pm, NULL) && !pagemap_has_asset(NULL, u[0]));
    observe(pm, u[0], 200, NULL, CACHEPOLICY_SET_COOKIE, false);
    observe(pm, u[1], 200, NULL, CACHEPOLICY_VARY_COOKIE | CACHEPOLICY_VARY_ENCODING, false);
    observe(pm, u[2], 200, NULL, CACHEPOLICY_NO_STORE, false);
    observe(pm, u[3], 200, NULL, CACHEPOLICY_PRIVATE, false);
    observe(pm, u[4], 200, NULL, CACHEPOLICY_VARY_UA, false);
    observe(pm, u[5], 200, NULL, CACHEPOLICY_VARY_OTHER, false);
    observe(pm, u[6], 200, NULL, 0, false);
    observe(pm, u[7], 200, NULL, CACHEPOLICY_NO_CACHE, false);
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &OPTS, &p), 0);
    const pagemap_plan_item_t *x;
    CHECK((x = plan_item(&p, u[0])) && !x->pushable && x->hint == CACHEPOLICY_HINT_YES);
    CHECK((x = plan_item(&p, u[1])) && x->pushable && x->hint == CACHEPOLICY_HINT_IF_COOKIE_STABLE);
    CHECK(plan_item(&p, u[2]) == NULL); /* neither */
    CHECK((x = plan_item(&p, u[3])) && !x->pushable && x->hint == CACHEPOLICY_HINT_YES);
    CHECK((x = plan_item(&p, u[4])) && x->pushable);
    CHECK((x = plan_item(&p, u[5])) && !x->pushable && x->hint == CACHEPOLICY_HINT_YES);
    CHECK((x = plan_item(&p, u[6])) && x->pushable && x->hint == CACHEPOLICY_HINT_YES);
    CHECK(plan_item(&p, u[7]) == NULL); /* no-cache: neither (a hint would be revalidated) */
    pagemap_plan_dispose(&p);
    /* Set-Cookie stays once seen (a session starts on first contact only) */
    observe(pm, u[0], 200, NULL, 0, false);
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &OPTS, &p), 0);
    CHECK((x = plan_item(&p, u[0])) && !x->pushable);
    pagemap_plan_dispose(&p);
    /* a push that came back 404: no more pushes, hints go on; a 200 clears it */
    observe(pm, u[6], 404, NULL, 0, true);
    observe(pm, u[6], 200, NULL, 0, true);
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &OPTS, &p), 0);
    CHECK((x = plan_item(&p, u[6])) && x->pushable);
    pagemap_plan_dispose(&p);
    /* the page's cookie behaviour travels with the plan */
    v = visit(PAGE, 2, it, 8);
    v.page_set_cookie = true;
    commit(pm, &v);
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &OPTS, &p), 0);
    CHECK(p.page_set_cookie);
    pagemap_plan_dispose(&p);
    pagemap_edge_info_t e;
    CHECK(edge_get(pm, PAGE, u[2], &e));
    CHECK(!e.pushable && e.hint == CACHEPOLICY_HINT_NO && e.unpushable_why && e.hint_why);
    pagemap_edge_info_dispose(&e);
    /* Vary: Origin: a font (CORS) neither, an image (no-cors) hinted; a
     * response that is not fresh long enough is not hinted */
    pagemap_item_t more[] = {strong("https://e.com/f.woff2", PAGEMAP_KIND_FONT, 20),
                             strong("https://e.com/o.png", PAGEMAP_KIND_IMAGE, 21),
                             strong("https://e.com/short.png", PAGEMAP_KIND_IMAGE, 22)};
    v = visit(PAGE, 3, more, 3);
    v.think_ms = 500;
    commit(pm, &v);
    observe(pm, "https://e.com/f.woff2", 200, NULL, CACHEPOLICY_VARY_ORIGIN, false);
    observe(pm, "https://e.com/o.png", 200, NULL, CACHEPOLICY_VARY_ORIGIN, false);
    pagemap_asset_meta_t shortm = {.status = 200, .fresh_ms = 1000};
    CHECK_INTEQ(pagemap_observe_asset(pm, "https://e.com/short.png", &shortm), 0);
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &OPTS, &p), 0);
    CHECK(plan_item(&p, "https://e.com/f.woff2") == NULL);
    CHECK((x = plan_item(&p, "https://e.com/o.png")) && !x->pushable &&
          x->hint == CACHEPOLICY_HINT_YES);
    CHECK((x = plan_item(&p, "https://e.com/short.png")) && x->pushable &&
          x->hint == CACHEPOLICY_HINT_NO);
    pagemap_plan_dispose(&p);
    pagemap_destroy(pm);
}

/* Exploration: a share of plans hold back confirmed edges in rotation. */
static void test_exploration(void)
{
    pagemap_t *pm = new_map(0, 0);
    const char *u[] = {"https://e.com/1.css", "https://e.com/2.js", "https://e.com/3.png"};
    pagemap_item_t it[3];
    for (int i = 0; i < 3; i++)
        it[i] = fetched(strong(u[i], PAGEMAP_KIND_STYLE, (unsigned)i));
    pagemap_visit_t v = browser(PAGE, 1, it, 3);
    commit(pm, &v);
    pagemap_plan_opts_t o = {MIN, 0.5};
    int held[3] = {0, 0, 0};
    size_t explored = 0;
    for (int k = 0; k < 12; k++) {
        pagemap_plan_t p;
        CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &o, &p), 0);
        CHECK_INTEQ(p.n + p.nheld, 3);
        CHECK(p.nheld <= 1);
        explored += p.nheld > 0;
        for (size_t h = 0; h < p.nheld; h++)
            for (int i = 0; i < 3; i++)
                held[i] += strcmp(p.held[h], u[i]) == 0;
        pagemap_plan_dispose(&p);
    }
    CHECK_INTEQ(explored, 6);
    for (int i = 0; i < 3; i++)
        CHECK_INTEQ(held[i], 2); /* rotation: each in turn */
    pagemap_page_info_t info;
    CHECK_INTEQ(pagemap_page_get(pm, PAGE, &info, NULL, NULL), 0);
    CHECK_INTEQ(info.plans, 12);
    CHECK_INTEQ(info.explored, 6);
    pagemap_page_info_dispose(&info);
    /* 0: never; pins are never held back */
    CHECK_INTEQ(pagemap_edge_set_state(pm, PAGE, u[0], PAGEMAP_EDGE_PINNED), 0);
    o.explore = 1.0;
    for (int k = 0; k < 4; k++) {
        pagemap_plan_t p;
        CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &o, &p), 0);
        for (size_t h = 0; h < p.nheld; h++)
            CHECK(strcmp(p.held[h], u[0]) != 0);
        CHECK(plan_has(&p, u[0]));
        pagemap_plan_dispose(&p);
    }
    pagemap_destroy(pm);
}

static void test_lru_eviction(void)
{
    pagemap_t *pm = new_map(3, 0);
    pagemap_item_t a = strong("https://e.com/shared.css", PAGEMAP_KIND_STYLE, 0);
    const char *pages[] = {"e.com/1", "e.com/2", "e.com/3", "e.com/4"};
    for (int i = 0; i < 3; i++) {
        pagemap_visit_t v = visit(pages[i], i, &a, 1);
        commit(pm, &v);
    }
    /* Touch page 1 by planning: page 2 is now the least recently used. */
    CHECK_INTEQ(plan_count(pm, pages[0], NULL), 1);
    pagemap_visit_t v = visit(pages[3], 9, &a, 1);
    commit(pm, &v);
    pagemap_page_info_t info;
    CHECK_INTEQ(pagemap_page_get(pm, pages[1], &info, NULL, NULL), HERALD_ENOTFOUND);
    CHECK_INTEQ(pagemap_page_get(pm, pages[0], &info, NULL, NULL), 0);
    pagemap_page_info_dispose(&info);
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.pages, 3);
    CHECK_INTEQ(st.pages_evicted, 1);
    CHECK_INTEQ(st.assets, 1); /* shared, refcounted */
    CHECK_INTEQ(st.edges, 3);
    for (int i = 0; i < 4; i++)
        pagemap_forget_page(pm, pages[i]);
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.pages, 0);
    CHECK_INTEQ(st.assets, 0);
    pagemap_destroy(pm);
}

/* pagemap_stats keeps its totals as the map changes (no walk): after every
 * kind of change they must equal a count over a full copy of the map. */
static void check_stats_by_walk(pagemap_t *pm, int step)
{
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    pagemap_dump_t d;
    CHECK_INTEQ(pagemap_dump(pm, &d), 0);
    size_t templates = 0, edges = 0, pinned = 0, banned = 0;
    for (size_t i = 0; i < d.n; i++) {
        templates += d.pages[i].info.is_template;
        edges += d.pages[i].nedges;
        for (size_t k = 0; k < d.pages[i].nedges; k++) {
            pinned += d.pages[i].edges[k].state == PAGEMAP_EDGE_PINNED;
            banned += d.pages[i].edges[k].state == PAGEMAP_EDGE_BANNED;
        }
    }
    if (st.pages != d.n || st.templates != templates || st.edges != edges || st.pinned != pinned ||
        st.banned != banned)
        fprintf(stderr, "step %d: stats %zu/%zu/%zu/%zu/%zu, walk %zu/%zu/%zu/%zu/%zu\n", step,
                st.pages, st.templates, st.edges, st.pinned, st.banned, d.n, templates, edges,
                pinned, banned);
    CHECK_INTEQ(st.pages, d.n);
    CHECK_INTEQ(st.templates, templates);
    CHECK_INTEQ(st.edges, edges);
    CHECK_INTEQ(st.pinned, pinned);
    CHECK_INTEQ(st.banned, banned);
    pagemap_dump_dispose(&d);
}

static void test_stats_kept_incrementally(void)
{
    /* small caps, so that pages and edges get evicted too */
    pagemap_t *pm = new_map(12, 5);
    static const char *const pages[] = {
        "e.com/p/1", "e.com/p/2", "e.com/p/3", "e.com/p/4", "e.com/p/5", "e.com/p/6", "e.com/p/7",
        "e.com/p/8", "e.com/p/9", "e.com/q/1", "e.com/q/2", "e.com/q/3", "e.com/r",   "e.com/s"};
    static const char *const tmpl[] = {"e.com/p/*", "e.com/q/*"};
    char urls[12][40];
    for (int i = 0; i < 12; i++)
        snprintf(urls[i], sizeof(urls[i]), "https://e.com/a%d.css", i);
    uint32_t rng = 12345;
#define RAND(n) ((rng = rng * 1103515245u + 12345u) >> 16) % (n)
    for (int step = 0; step < 2000; step++) {
        const char *page = pages[RAND(14)];
        const char *url = urls[RAND(12)];
        switch (RAND(7)) {
        case 0:
        case 1:
        case 2: { /* a visit, sometimes with a template */
            pagemap_item_t it[6];
            size_t n = 1 + RAND(6);
            for (size_t k = 0; k < n; k++)
                it[k] = RAND(2) ? strong(urls[RAND(12)], PAGEMAP_KIND_STYLE, (unsigned)k)
                                : fetched(weak(urls[RAND(12)], PAGEMAP_KIND_IMAGE, (unsigned)k));
            pagemap_visit_t v = browser(page, step, it, n);
            /* "e.com/p/N" and "e.com/q/N" share a template each */
            v.template_key = page[7] != '/' ? NULL : tmpl[page[6] == 'q'];
            commit(pm, &v);
            break;
        }
        case 3: /* pin, ban or unpin (creates page and edge when missing) */
            pagemap_edge_set_state(pm, page, url,
                                   (pagemap_edge_state_t)RAND(PAGEMAP_EDGE_BANNED + 1));
            break;
        case 4:
            pagemap_forget_edge(pm, page, url);
            break;
        case 5:
            pagemap_forget_page(pm, RAND(4) ? page : tmpl[RAND(2)]);
            break;
        case 6: { /* a copy of the map back in, merged or replacing */
            pagemap_dump_t d;
            CHECK_INTEQ(pagemap_dump(pm, &d), 0);
            CHECK_INTEQ(
                pagemap_restore(pm, &d, RAND(2) ? PAGEMAP_RESTORE_MERGE : PAGEMAP_RESTORE_REPLACE),
                0);
            pagemap_dump_dispose(&d);
            break;
        }
        }
        check_stats_by_walk(pm, step);
    }
#undef RAND
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    /* the sequence went through every kind of change */
    CHECK(st.pinned > 0);
    CHECK(st.banned > 0);
    CHECK(st.templates > 0);
    CHECK(st.pages_evicted > 0);
    CHECK(st.edges_evicted > 0);
    pagemap_destroy(pm);
}

static void test_template(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t a = strong("https://e.com/item.css", PAGEMAP_KIND_STYLE, 0);
    pagemap_item_t it1[] = {a, strong("https://e.com/img/1.jpg", PAGEMAP_KIND_IMAGE, 1)};
    pagemap_item_t it2[] = {a, strong("https://e.com/img/2.jpg", PAGEMAP_KIND_IMAGE, 1)};
    pagemap_visit_t v = visit("e.com/item/1", 1, it1, 2);
    v.template_key = "e.com/item/*";
    v.think_ms = 50;
    commit(pm, &v);
    pagemap_plan_t p;
    /* one sibling is not enough for a template plan */
    CHECK_INTEQ(pagemap_plan(pm, "e.com/item/3", "e.com/item/*", "e.com", 0, &OPTS, &p), 0);
    CHECK_INTEQ(p.source, PAGEMAP_PLAN_NONE);
    pagemap_plan_dispose(&p);
    v = visit("e.com/item/2", 2, it2, 2);
    v.template_key = "e.com/item/*";
    v.think_ms = 50;
    commit(pm, &v);
    CHECK_INTEQ(pagemap_plan(pm, "e.com/item/3", "e.com/item/*", "e.com", 0, &OPTS, &p), 0);
    CHECK_INTEQ(p.source, PAGEMAP_PLAN_TEMPLATE);
    CHECK_INTEQ(p.n, 1); /* the shared CSS, not a sibling's image */
    if (p.n == 1)
        CHECK_STREQ(p.items[0].url, "https://e.com/item.css");
    CHECK(fabs(p.think_ms - 50) < 1e-9);
    pagemap_plan_dispose(&p);
    CHECK_INTEQ(pagemap_plan(pm, "e.com/item/1", "e.com/item/*", "e.com", 0, &OPTS, &p), 0);
    CHECK_INTEQ(p.source, PAGEMAP_PLAN_PAGE);
    pagemap_plan_dispose(&p);
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.templates, 1);
    CHECK_INTEQ(st.pages, 3);
    v = visit("e.com/about", 1, &a, 1);
    v.template_key = "e.com/about";
    commit(pm, &v);
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.pages, 4);
    pagemap_destroy(pm);
}

static void test_plan_order_and_filters(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t it[] = {
        strong("https://e.com/img.png", PAGEMAP_KIND_IMAGE, 0),
        strong("https://e.com/mod.js", PAGEMAP_KIND_MODULE, 1),
        found("https://e.com/font.woff2", PAGEMAP_KIND_FONT, PAGEMAP_SRC_CSS, true, 9),
        strong("https://e.com/defer.js", PAGEMAP_KIND_SCRIPT, 2),
        strong("https://e.com/block.js", PAGEMAP_KIND_SCRIPT, 3),
        strong("https://e.com/b.css", PAGEMAP_KIND_STYLE, 5),
        strong("https://e.com/a.css", PAGEMAP_KIND_STYLE, 4),
        strong("https://e.com/man.json", PAGEMAP_KIND_MANIFEST, 6),
        strong("https://cdn.x.com/lib.js", PAGEMAP_KIND_SCRIPT, 7),
        strong("https://fonts.y.com", PAGEMAP_KIND_PRECONNECT, 8),
        strong("https://e.com/nostore.js", PAGEMAP_KIND_SCRIPT, 10),
        strong("https://e.com/gone.js", PAGEMAP_KIND_SCRIPT, 11),
        strong("https://e.com/old.css", PAGEMAP_KIND_STYLE, 12),
    };
    it[4].blocking = true;
    it[1].as = "script";
    it[2].crossorigin = PAGEMAP_CORS_ANONYMOUS;
    pagemap_visit_t v = visit(PAGE, 1, it, sizeof(it) / sizeof(it[0]));
    commit(pm, &v);
    observe(pm, "https://e.com/nostore.js", 200, NULL, CACHEPOLICY_NO_STORE, false);
    observe(pm, "https://e.com/gone.js", 404, NULL, 0, false);
    /* redirect old.css -> new.css: new.css known (another page links it) */
    pagemap_item_t nc = strong("https://e.com/new.css", PAGEMAP_KIND_STYLE, 0);
    v = visit("e.com/other", 1, &nc, 1);
    commit(pm, &v);
    observe(pm, "https://e.com/old.css", 301, "https://e.com/new.css", 0, false);
    observe(pm, "https://e.com/new.css", 200, NULL, 0, false);
    CHECK_INTEQ(pagemap_observe_asset(pm, "https://e.com/unknown", &(pagemap_asset_meta_t){0}),
                HERALD_ENOTFOUND);

    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &OPTS, &p), 0);
    const char *want[] = {"https://e.com/a.css",    "https://e.com/b.css",
                          "https://e.com/old.css",  "https://e.com/new.css",
                          "https://e.com/block.js", "https://e.com/font.woff2",
                          "https://e.com/mod.js",   "https://e.com/defer.js",
                          "https://e.com/img.png",  "https://e.com/man.json"};
    CHECK_INTEQ(p.n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < p.n && i < sizeof(want) / sizeof(want[0]); i++)
        CHECK_STREQ(p.items[i].url, want[i]);
    if (p.n == 10) {
        CHECK(p.items[2].is_redirect);
        CHECK_INTEQ(p.items[2].status, 301);
        CHECK(!p.items[3].is_redirect);
        CHECK_STREQ(p.items[3].etag, "\"e1\"");
        CHECK_INTEQ(p.items[3].size, 100);
        CHECK_INTEQ(p.items[5].crossorigin, PAGEMAP_CORS_ANONYMOUS);
        CHECK_STREQ(p.items[6].as, "script");
    }
    CHECK_INTEQ(p.npreconnect, 2);
    if (p.npreconnect == 2) {
        CHECK_STREQ(p.preconnect[0], "https://cdn.x.com");
        CHECK_STREQ(p.preconnect[1], "https://fonts.y.com");
    }
    pagemap_plan_dispose(&p);
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, NULL, 0, &OPTS, &p), 0);
    CHECK_INTEQ(p.n, 10);
    pagemap_plan_dispose(&p);
    /* A redirect whose target is unknown is not planned. */
    observe(pm, "https://e.com/old.css", 302, "https://e.com/nowhere.css", 0, false);
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &OPTS, &p), 0);
    CHECK(!plan_has(&p, "https://e.com/old.css"));
    CHECK(!plan_has(&p, "https://e.com/new.css"));
    pagemap_plan_dispose(&p);
    pagemap_destroy(pm);
}

static void test_pins_and_bans(void)
{
    pagemap_t *pm = new_map(0, 2);
    pagemap_item_t it[] = {strong(A_CSS, PAGEMAP_KIND_STYLE, 0),
                           strong("https://e.com/ad.js", PAGEMAP_KIND_SCRIPT, 1)};
    pagemap_visit_t v = visit(PAGE, 1, it, 2);
    commit(pm, &v);
    CHECK_INTEQ(pagemap_edge_set_state(pm, PAGE, "https://e.com/ad.js", PAGEMAP_EDGE_BANNED), 0);
    CHECK_INTEQ(pagemap_edge_set_state(pm, PAGE, "https://e.com/hero.jpg", PAGEMAP_EDGE_PINNED), 0);
    CHECK_INTEQ(pagemap_edge_set_state(pm, PAGE, "https://e.com/none", PAGEMAP_EDGE_LEARNED),
                HERALD_ENOTFOUND);
    for (int i = 0; i < 5; i++) {
        v = visit(PAGE, 2 + i, it, 2);
        commit(pm, &v);
    }
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &OPTS, &p), 0);
    CHECK(!plan_has(&p, "https://e.com/ad.js"));
    CHECK(plan_has(&p, "https://e.com/hero.jpg"));
    CHECK(plan_has(&p, A_CSS));
    for (size_t i = 0; i < p.n; i++)
        if (strcmp(p.items[i].url, "https://e.com/hero.jpg") == 0) {
            CHECK(p.items[i].pinned);
            CHECK_INTEQ(p.items[i].kind, PAGEMAP_KIND_IMAGE);
        }
    pagemap_plan_dispose(&p);
    /* a minimum above 1 still plans the pin (and the never-fetched strong CSS) */
    pagemap_plan_opts_t high = {2.0, 0};
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, &high, &p), 0);
    CHECK(plan_has(&p, "https://e.com/hero.jpg"));
    pagemap_plan_dispose(&p);
    CHECK_INTEQ(pagemap_forget_page(pm, PAGE), 0);
    pagemap_page_info_t info;
    pagemap_edge_info_t *e;
    size_t n;
    CHECK_INTEQ(pagemap_page_get(pm, PAGE, &info, &e, &n), 0);
    CHECK_INTEQ(n, 2);
    CHECK_INTEQ(info.visits_total, 0);
    pagemap_edge_infos_free(e, n);
    pagemap_page_info_dispose(&info);
    v = visit(PAGE, 20, it, 2);
    commit(pm, &v);
    CHECK(!planned(pm, PAGE, "https://e.com/ad.js"));
    CHECK_INTEQ(pagemap_forget_edge(pm, PAGE, "https://e.com/ad.js"), 0);
    CHECK_INTEQ(pagemap_forget_edge(pm, PAGE, "https://e.com/ad.js"), HERALD_ENOTFOUND);
    v = visit(PAGE, 21, it, 2);
    commit(pm, &v);
    CHECK(planned(pm, PAGE, "https://e.com/ad.js"));
    CHECK_INTEQ(pagemap_edge_set_state(pm, PAGE, "https://e.com/hero.jpg", PAGEMAP_EDGE_LEARNED),
                0);
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.pinned, 0);
    pagemap_destroy(pm);
}

static void test_list(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t a = strong(A_CSS, PAGEMAP_KIND_STYLE, 0);
    char key[32];
    for (int i = 0; i < 25; i++) {
        snprintf(key, sizeof(key), "e.com/page%02d", i);
        pagemap_visit_t v = visit(key, i, &a, 1);
        commit(pm, &v);
    }
    pagemap_page_info_t *v;
    size_t n, total;
    CHECK_INTEQ(pagemap_list(pm, 10, 5, NULL, &v, &n, &total), 0);
    CHECK_INTEQ(n, 5);
    CHECK_INTEQ(total, 25);
    if (n == 5) {
        CHECK_STREQ(v[0].key, "e.com/page10");
        CHECK_STREQ(v[4].key, "e.com/page14");
        CHECK_INTEQ(v[0].nedges, 1);
    }
    pagemap_page_infos_free(v, n);
    CHECK_INTEQ(pagemap_list(pm, 0, 100, "page2", &v, &n, &total), 0);
    CHECK_INTEQ(n, 5);
    pagemap_page_infos_free(v, n);
    CHECK_INTEQ(pagemap_list(pm, 30, 10, NULL, &v, &n, &total), 0);
    CHECK_INTEQ(n, 0);
    CHECK(v == NULL);
    pagemap_destroy(pm);
}

/* Two threads commit and plan concurrently (run under ASan/UBSan and TSan). */
static pagemap_t *shared;

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    char page[32], url[64];
    pagemap_plan_opts_t o = {MIN, 0.2};
    for (int i = 0; i < 3000; i++) {
        snprintf(page, sizeof(page), "e.com/p%d", i % 50);
        snprintf(url, sizeof(url), "https://e.com/a%d.css?v=%d", (i + id) % 80, i % 3);
        pagemap_item_t it[2] = {strong(url, PAGEMAP_KIND_STYLE, 0),
                                weak("https://e.com/s.png", PAGEMAP_KIND_IMAGE, 1)};
        if (i % 2)
            it[1] = fetched(it[1]);
        pagemap_visit_t v = i % 3 ? browser(page, i, it, 2) : visit(page, i, it, 2);
        v.template_key = "e.com/p*";
        if (pagemap_commit_visit(shared, &v) != 0)
            return (void *)1;
        pagemap_plan_t p;
        if (pagemap_plan(shared, page, "e.com/p*", "e.com", i, &o, &p) != 0)
            return (void *)1;
        for (size_t k = 0; k < p.n; k++)
            if (p.items[k].url[0] != 'h')
                return (void *)1;
        pagemap_plan_dispose(&p);
        pagemap_observe_asset(shared, url, &(pagemap_asset_meta_t){.status = 200});
        if (i % 500 == 0) {
            pagemap_dump_t d;
            if (pagemap_dump(shared, &d) != 0)
                return (void *)1;
            pagemap_dump_dispose(&d);
            pagemap_forget_page(shared, page);
        }
    }
    return NULL;
}

static void test_threads(void)
{
    shared = new_map(20, 8);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
    }
    pagemap_stats_t st;
    pagemap_stats(shared, &st);
    CHECK(st.pages <= 20);
    CHECK_INTEQ(st.visits_committed, 6000);
    pagemap_destroy(shared);
}

/* Discovery runs while a page is new, when its validators change, else 1 ask in 8. */
static void test_should_scan(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t css = strong(A_CSS, PAGEMAP_KIND_STYLE, 0);
    CHECK(pagemap_should_scan(pm, PAGE, 7));
    for (int i = 0; i < PAGEMAP_SCAN_STABLE_VISITS + 1; i++) {
        /* the last one is the first ask once stable (ask 1): no sample */
        CHECK(pagemap_should_scan(pm, PAGE, 7) == (i < PAGEMAP_SCAN_STABLE_VISITS));
        pagemap_visit_t v = visit(PAGE, i, &css, 1);
        v.validator = 7;
        commit(pm, &v);
    }
    /* 9 visits: stable, same validator, not a sample visit */
    CHECK(!pagemap_should_scan(pm, PAGE, 7)); /* ask 2 */
    CHECK(pagemap_should_scan(pm, PAGE, 8));  /* the page changed: not a sampling ask */
    CHECK(!pagemap_should_scan(pm, PAGE, 0)); /* no validators: sampled (ask 3) */
    /* The sample is one ask in 8, however the visits move: seven visits
     * folded at once (a fleet's batch) change nothing. */
    for (int i = 0; i < 7; i++) {
        pagemap_visit_t v = visit(PAGE, 100 + i, &css, 1);
        v.html_scanned = false;
        commit(pm, &v);
    }
    for (int ask = 4; ask < 8; ask++)
        CHECK(!pagemap_should_scan(pm, PAGE, 0));
    CHECK(pagemap_should_scan(pm, PAGE, 0)); /* ask 8: the sample */
    int scans = 0;
    for (int ask = 0; ask < 8 * 5; ask++)
        scans += pagemap_should_scan(pm, PAGE, 7);
    CHECK_INTEQ(scans, 5);
    CHECK(pagemap_should_scan(NULL, PAGE, 0));
    pagemap_destroy(pm);
}

static void test_kinds(void)
{
    CHECK_INTEQ(pagemap_kind_guess("font", "text/plain", "/a.css"), PAGEMAP_KIND_FONT);
    CHECK_INTEQ(pagemap_kind_guess(NULL, "text/css; charset=utf-8", "/x"), PAGEMAP_KIND_STYLE);
    CHECK_INTEQ(pagemap_kind_guess("empty", "application/javascript", NULL), PAGEMAP_KIND_SCRIPT);
    CHECK_INTEQ(pagemap_kind_guess(NULL, "image/png", NULL), PAGEMAP_KIND_IMAGE);
    CHECK_INTEQ(pagemap_kind_guess(NULL, NULL, "http://e/f.woff2?v=1"), PAGEMAP_KIND_FONT);
    CHECK_INTEQ(pagemap_kind_guess(NULL, NULL, "http://e/app.js"), PAGEMAP_KIND_SCRIPT);
    CHECK_INTEQ(pagemap_kind_guess(NULL, NULL, "http://e/m.mjs"), PAGEMAP_KIND_MODULE);
    CHECK_INTEQ(pagemap_kind_guess(NULL, NULL, "http://e/favicon.ico"), PAGEMAP_KIND_ICON);
    CHECK_INTEQ(pagemap_kind_guess(NULL, "application/json", "http://e/d.json"),
                PAGEMAP_KIND_OTHER);
    CHECK_STREQ(pagemap_kind_as(PAGEMAP_KIND_MODULE), "script");
    CHECK_STREQ(pagemap_kind_as(PAGEMAP_KIND_ICON), "image");
    CHECK(pagemap_kind_as(PAGEMAP_KIND_PRECONNECT) == NULL);
    CHECK_STREQ(pagemap_verdict_name(PAGEMAP_VERDICT_REJECTED), "rejected");
}

static void test_bad_args(void)
{
    pagemap_t *pm = NULL;
    pagemap_config_t cfg;
    pagemap_config_init(&cfg);
    cfg.decay = 0;
    CHECK_INTEQ(pagemap_create(&cfg, &pm), HERALD_EINVAL);
    CHECK_INTEQ(pagemap_create(NULL, &pm), 0);
    CHECK_INTEQ(pagemap_commit_visit(pm, NULL), HERALD_EINVAL);
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, NULL, NULL, NULL, 0, NULL, &p), HERALD_EINVAL);
    CHECK_STREQ(pagemap_kind_name(PAGEMAP_KIND_FONT), "font");
    pagemap_kind_t k;
    CHECK_INTEQ(pagemap_kind_parse("preconnect", &k), 0);
    CHECK_INTEQ(k, PAGEMAP_KIND_PRECONNECT);
    CHECK_INTEQ(pagemap_kind_parse("nope", &k), HERALD_EINVAL);
    pagemap_destroy(pm);
    pagemap_destroy(NULL);
    pagemap_plan_dispose(NULL);
}

int main(void)
{
    test_discovery_proposes();
    test_confirm_and_reject();
    test_delivered_is_no_evidence();
    test_cold();
    test_followups();
    test_supplement();
    test_poisoning();
    test_volatile_never_planned();
    test_versions();
    test_alternates();
    test_stale();
    test_push_and_hint_rules();
    test_exploration();
    test_lru_eviction();
    test_stats_kept_incrementally();
    test_template();
    test_plan_order_and_filters();
    test_pins_and_bans();
    test_list();
    test_threads();
    test_should_scan();
    test_kinds();
    test_bad_args();
    return TESTUTIL_SUMMARY();
}
