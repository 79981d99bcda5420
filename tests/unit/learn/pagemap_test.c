/* learn/pagemap: learning rules, caps, eviction, plans, admin operations, threads. */
#include "learn/pagemap.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "parser/error.h"
#include "tests/unit/testutil.h"

#define PAGE "e.com/p"
#define MIN PAGEMAP_DEFAULT_MIN_CONFIDENCE

static pagemap_item_t item(const char *url, pagemap_kind_t kind, unsigned sources, unsigned order)
{
    return (pagemap_item_t){
        .url = url, .key = url, .kind = kind, .sources = sources, .order = order};
}

static pagemap_visit_t visit(const char *page, int64_t now, const pagemap_item_t *items, size_t n,
                             bool scanned, bool followups)
{
    return (pagemap_visit_t){.page_key = page,
                             .now_ms = now,
                             .think_ms = -1,
                             .status = 200,
                             .html_scanned = scanned,
                             .had_followups = followups,
                             .items = items,
                             .nitems = n};
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

/* Confidence of one edge, -1 when absent. */
static double conf_of(pagemap_t *pm, const char *page, const char *key)
{
    pagemap_page_info_t info;
    pagemap_edge_info_t *e = NULL;
    size_t n = 0;
    double c = -1;
    if (pagemap_page_get(pm, page, &info, &e, &n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].key, key) == 0)
            c = e[i].confidence;
    pagemap_edge_infos_free(e, n);
    pagemap_page_info_dispose(&info);
    return c;
}

static bool plan_has(const pagemap_plan_t *p, const char *url)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->items[i].url, url) == 0)
            return true;
    return false;
}

static size_t plan_count(pagemap_t *pm, const char *page, const char *tmpl)
{
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, page, tmpl, "e.com", 0, MIN, &p), 0);
    size_t n = p.n;
    pagemap_plan_dispose(&p);
    return n;
}

static void test_first_visit_then_plan(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, MIN, &p), 0);
    CHECK_INTEQ(p.source, PAGEMAP_PLAN_NONE);
    CHECK_INTEQ(p.n, 0);
    pagemap_plan_dispose(&p);

    pagemap_item_t it[] = {item("https://e.com/a.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 0),
                           item("https://e.com/f.woff2", PAGEMAP_KIND_FONT, PAGEMAP_SRC_CSS, 5)};
    pagemap_visit_t v = visit(PAGE, 1000, it, 2, true, false);
    v.think_ms = 100;
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK(fabs(conf_of(pm, PAGE, "https://e.com/a.css") - 1.0) < 1e-9);
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, MIN, &p), 0);
    CHECK_INTEQ(p.source, PAGEMAP_PLAN_PAGE);
    CHECK_INTEQ(p.n, 2);
    CHECK(fabs(p.think_ms - 100) < 1e-9);
    CHECK_INTEQ(p.visits_total, 1);
    pagemap_plan_dispose(&p);

    /* Authorization teaches nothing; non-2xx teaches nothing. */
    v.page_key = "e.com/auth";
    v.authorized = true;
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK_INTEQ(conf_of(pm, "e.com/auth", "https://e.com/a.css"), -1);
    v.authorized = false;
    v.status = 404;
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK_INTEQ(conf_of(pm, "e.com/auth", "https://e.com/a.css"), -1);
    pagemap_destroy(pm);
}

static void test_decay_and_misses(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t a = item("https://e.com/a.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 0);
    pagemap_item_t b = item("https://e.com/b.png", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_HTML, 1);
    pagemap_item_t both[] = {a, b};
    pagemap_visit_t v = visit(PAGE, 1, both, 2, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    /* b absent on a scanned visit: miss. hits = 0.9, visits = 1.9 */
    v = visit(PAGE, 2, &a, 1, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK(fabs(conf_of(pm, PAGE, "https://e.com/b.png") - 0.9 / 1.9) < 1e-9);
    CHECK(fabs(conf_of(pm, PAGE, "https://e.com/a.css") - 1.0) < 1e-9);
    /* Not scanned: no miss, ratio kept under decay. */
    v = visit(PAGE, 3, NULL, 0, false, true);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK(fabs(conf_of(pm, PAGE, "https://e.com/b.png") - 0.9 / 1.9) < 1e-9);
    /* Another scanned miss: hits 0.9*0.9, visits 1.9*0.9+1 (the
     * uncounted visit 3 did not decay the edge). */
    v = visit(PAGE, 4, &a, 1, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    double h = 0.9 * 0.9, vv = 1.9 * 0.9 + 1;
    CHECK(fabs(conf_of(pm, PAGE, "https://e.com/b.png") - h / vv) < 1e-9);
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, MIN, &p), 0);
    CHECK(plan_has(&p, "https://e.com/a.css"));
    CHECK(!plan_has(&p, "https://e.com/b.png"));
    pagemap_plan_dispose(&p);
    /* Seen again: hit; confidence rises. */
    double before = conf_of(pm, PAGE, "https://e.com/b.png");
    v = visit(PAGE, 5, both, 2, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK(conf_of(pm, PAGE, "https://e.com/b.png") > before);
    pagemap_destroy(pm);
}

static void test_followups_and_curl(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t js = item("https://e.com/lazy.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_FOLLOWUP, 9);
    pagemap_visit_t v = visit(PAGE, 1, &js, 1, true, true);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    /* 20 curl-like visits: scanned HTML, no follow-ups → no dilution. */
    for (int i = 0; i < 20; i++) {
        v = visit(PAGE, 2 + i, NULL, 0, true, false);
        CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    }
    CHECK(fabs(conf_of(pm, PAGE, "https://e.com/lazy.js") - 1.0) < 1e-9);
    /* A browser visit that fetched other things but not lazy.js: miss. */
    pagemap_item_t other = item("https://e.com/x.png", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_FOLLOWUP, 1);
    v = visit(PAGE, 30, &other, 1, false, true);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    /* one miss after the curl visits weighs as one miss after one visit */
    CHECK(fabs(conf_of(pm, PAGE, "https://e.com/lazy.js") - 0.9 / 1.9) < 1e-9);
    pagemap_destroy(pm);
}

/* A follow-up-only URL new on a page with a follow-up history starts as
 * missed on those visits: one visit cannot plan it (forged Referer). */
static void test_late_followup(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t a = item("https://e.com/a.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_FOLLOWUP, 0);
    pagemap_visit_t v;
    for (int i = 0; i < 5; i++) {
        v = visit(PAGE, 1 + i, &a, 1, true, true);
        CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    }
    pagemap_item_t junk[] = {
        a, item("https://e.com/junk.txt", PAGEMAP_KIND_OTHER, PAGEMAP_SRC_FOLLOWUP, 1)};
    v = visit(PAGE, 10, junk, 2, true, true);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK(conf_of(pm, PAGE, "https://e.com/junk.txt") < MIN);
    CHECK(conf_of(pm, PAGE, "https://e.com/a.css") > 0.99);
    /* the same URL found by discovery is a first-class hit */
    pagemap_item_t html = item("https://e.com/new.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, 2);
    v = visit(PAGE, 11, &html, 1, true, true);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK(conf_of(pm, PAGE, "https://e.com/new.js") > 0.99);
    pagemap_destroy(pm);
}

/* Supplement: late CSS evidence of a committed visit adds edges, turns that
 * visit's miss into a hit and moves no page counter. */
static void test_supplement(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t a = item("https://e.com/a.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 0);
    pagemap_item_t f = item("https://e.com/f.woff2", PAGEMAP_KIND_FONT, PAGEMAP_SRC_CSS, 1);
    pagemap_visit_t v = visit(PAGE, 1, &a, 1, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    v = visit(PAGE, 1, &f, 1, true, false);
    v.supplement = true;
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK(conf_of(pm, PAGE, "https://e.com/f.woff2") > 0.99);
    pagemap_page_info_t info;
    CHECK_INTEQ(pagemap_page_get(pm, PAGE, &info, NULL, NULL), 0);
    CHECK_INTEQ(info.visits_total, 1);
    pagemap_page_info_dispose(&info);
    /* a page-only visit (no stylesheet scanned) says nothing about CSS edges */
    v = visit(PAGE, 2, &a, 1, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK(conf_of(pm, PAGE, "https://e.com/f.woff2") > 0.99);
    /* visit 3 scanned CSS and misses the font in its own commit; the
     * supplement (a stylesheet fetched later) restores it */
    v = visit(PAGE, 3, &a, 1, true, false);
    v.css_scanned = true;
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK(conf_of(pm, PAGE, "https://e.com/f.woff2") < 0.99);
    v = visit(PAGE, 3, &f, 1, true, false);
    v.css_scanned = true;
    v.supplement = true;
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK(conf_of(pm, PAGE, "https://e.com/f.woff2") > 0.99);
    CHECK(conf_of(pm, PAGE, "https://e.com/a.css") > 0.99);
    pagemap_destroy(pm);
}

static void test_skipped_and_push(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t a = item("https://e.com/a.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 0);
    pagemap_item_t b = item("https://e.com/b.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, 1);
    pagemap_item_t ab[] = {a, b};
    pagemap_visit_t v = visit(PAGE, 1, ab, 2, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    v = visit(PAGE, 2, &a, 1, true, false); /* b miss: 0.9/1.9 */
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    double c = conf_of(pm, PAGE, "https://e.com/b.js");
    /* skipped: neither hit nor miss */
    pagemap_item_t bs = b;
    bs.skipped = true;
    bs.sources = PAGEMAP_SRC_PUSH;
    for (int i = 0; i < 5; i++) {
        v = visit(PAGE, 3 + i, &bs, 1, false, true);
        CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    }
    CHECK(fabs(conf_of(pm, PAGE, "https://e.com/b.js") - c) < 1e-9);
    /* pushed and not cancelled: hit */
    pagemap_item_t bp = b;
    bp.sources = PAGEMAP_SRC_PUSH;
    bp.push_completed = true;
    v = visit(PAGE, 10, &bp, 1, false, true);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    double c2 = conf_of(pm, PAGE, "https://e.com/b.js");
    CHECK(c2 > c);
    /* pushed and cancelled: miss */
    bp.push_completed = false;
    bp.push_cancelled = true;
    v = visit(PAGE, 11, &bp, 1, false, true);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK(conf_of(pm, PAGE, "https://e.com/b.js") < c2);
    /* counters move through note_delivery only */
    CHECK_INTEQ(pagemap_note_delivery(pm, PAGE, "https://e.com/b.js", PAGEMAP_DELIVERY_PROMISED, 0),
                0);
    CHECK_INTEQ(
        pagemap_note_delivery(pm, PAGE, "https://e.com/b.js", PAGEMAP_DELIVERY_COMPLETED, 500), 0);
    CHECK_INTEQ(
        pagemap_note_delivery(pm, PAGE, "https://e.com/b.js", PAGEMAP_DELIVERY_CANCELLED, 0), 0);
    CHECK_INTEQ(pagemap_note_delivery(pm, PAGE, "https://e.com/a.css", PAGEMAP_DELIVERY_HINTED, 0),
                0);
    CHECK_INTEQ(pagemap_note_delivery(pm, PAGE, "https://e.com/zz", PAGEMAP_DELIVERY_HINTED, 0),
                HERALD_ENOTFOUND);
    pagemap_page_info_t info;
    pagemap_edge_info_t *e;
    size_t n;
    CHECK_INTEQ(pagemap_page_get(pm, PAGE, &info, &e, &n), 0);
    CHECK_INTEQ(info.bytes_pushed, 500);
    CHECK_INTEQ(info.hints_sent, 1);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].key, "https://e.com/b.js") == 0) {
            CHECK_INTEQ(e[i].promised, 1);
            CHECK_INTEQ(e[i].completed, 1);
            CHECK_INTEQ(e[i].cancelled, 1);
        }
    }
    pagemap_edge_infos_free(e, n);
    pagemap_page_info_dispose(&info);
    pagemap_destroy(pm);
}

static void test_poisoning(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t a = item("https://e.com/a.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 0);
    pagemap_visit_t v = visit(PAGE, 1, &a, 1, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    v = visit(PAGE, 2, &a, 1, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    /* 1,000 forged follow-ups of one URL in one visit weigh as one hit. */
    pagemap_item_t *many = calloc(1000, sizeof(*many));
    for (int i = 0; i < 1000; i++)
        many[i] = item("https://e.com/evil.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_FOLLOWUP, 1);
    many[0] = a;
    v = visit(PAGE, 3, many, 1000, true, true);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    pagemap_page_info_t info;
    pagemap_edge_info_t *e;
    size_t n;
    CHECK_INTEQ(pagemap_page_get(pm, PAGE, &info, &e, &n), 0);
    CHECK_INTEQ(n, 2);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].key, "https://e.com/evil.js") == 0) {
            CHECK(fabs(e[i].hits - 1.0) < 1e-9);
            CHECK_INTEQ(e[i].hit_visits, 1);
        }
    }
    CHECK(fabs(info.visits - (1 + 0.9 + 0.81)) < 1e-9);
    pagemap_edge_infos_free(e, n);
    pagemap_page_info_dispose(&info);
    /* The next normal visit (no follow-up of evil.js) dilutes it. */
    v = visit(PAGE, 4, &a, 1, true, true);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK(conf_of(pm, PAGE, "https://e.com/evil.js") < MIN);
    free(many);
    pagemap_destroy(pm);
}

static void test_volatile_never_planned(void)
{
    pagemap_t *pm = new_map(0, 4);
    char urls[30][64];
    pagemap_item_t a = item("https://e.com/a.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 0);
    for (int i = 0; i < 30; i++) {
        snprintf(urls[i], sizeof(urls[i]), "https://e.com/t.js?ts=%lld", 1700000000000LL + i);
        pagemap_item_t it[2] = {a, item(urls[i], PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, 1)};
        pagemap_visit_t v = visit(PAGE, 10 + i, it, 2, true, false);
        CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
        pagemap_plan_t p;
        CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, MIN, &p), 0);
        CHECK_INTEQ(p.n, 1);
        CHECK(plan_has(&p, "https://e.com/a.css"));
        pagemap_plan_dispose(&p);
    }
    /* The cap (4) evicted old timestamps, never the stable CSS. */
    pagemap_page_info_t info;
    CHECK_INTEQ(pagemap_page_get(pm, PAGE, &info, NULL, NULL), 0);
    CHECK(info.nedges <= 4);
    pagemap_page_info_dispose(&info);
    CHECK(conf_of(pm, PAGE, "https://e.com/a.css") > 0.99);
    CHECK_INTEQ(conf_of(pm, PAGE, urls[0]), -1);
    /* A volatile-looking but stable URL (content hash) is planned from its 2nd visit. */
    pagemap_item_t h = item("https://e.com/app.js?v=0123456789abcdef0123", PAGEMAP_KIND_SCRIPT,
                            PAGEMAP_SRC_HTML, 2);
    pagemap_visit_t v = visit("e.com/q", 1, &h, 1, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK_INTEQ(plan_count(pm, "e.com/q", NULL), 0);
    v.now_ms = 2;
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK_INTEQ(plan_count(pm, "e.com/q", NULL), 1);
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    CHECK(st.edges_evicted >= 26);
    pagemap_destroy(pm);
}

static void test_lru_eviction(void)
{
    pagemap_t *pm = new_map(3, 0);
    pagemap_item_t a = item("https://e.com/shared.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 0);
    const char *pages[] = {"e.com/1", "e.com/2", "e.com/3", "e.com/4"};
    for (int i = 0; i < 3; i++) {
        pagemap_visit_t v = visit(pages[i], i, &a, 1, true, false);
        CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    }
    /* Touch page 1 by planning: page 2 is now the least recently used. */
    CHECK_INTEQ(plan_count(pm, pages[0], NULL), 1);
    pagemap_visit_t v = visit(pages[3], 9, &a, 1, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
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
    /* Assets go with their last edge. */
    for (int i = 0; i < 4; i++)
        pagemap_forget_page(pm, pages[i]);
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.pages, 0);
    CHECK_INTEQ(st.assets, 0);
    pagemap_destroy(pm);
}

static void test_template(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t a = item("https://e.com/item.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 0);
    pagemap_item_t it1[] = {
        a, item("https://e.com/img/1.jpg", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_HTML, 1)};
    pagemap_item_t it2[] = {
        a, item("https://e.com/img/2.jpg", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_HTML, 1)};
    pagemap_visit_t v = visit("e.com/item/1", 1, it1, 2, true, false);
    v.template_key = "e.com/item/*";
    v.think_ms = 50;
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    pagemap_plan_t p;
    /* one sibling is not enough for a template plan */
    CHECK_INTEQ(pagemap_plan(pm, "e.com/item/3", "e.com/item/*", "e.com", 0, MIN, &p), 0);
    CHECK_INTEQ(p.source, PAGEMAP_PLAN_NONE);
    pagemap_plan_dispose(&p);
    v = visit("e.com/item/2", 2, it2, 2, true, false);
    v.template_key = "e.com/item/*";
    v.think_ms = 50;
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK_INTEQ(pagemap_plan(pm, "e.com/item/3", "e.com/item/*", "e.com", 0, MIN, &p), 0);
    CHECK_INTEQ(p.source, PAGEMAP_PLAN_TEMPLATE);
    CHECK_INTEQ(p.n, 1); /* the shared CSS, not a sibling's image */
    if (p.n == 1)
        CHECK_STREQ(p.items[0].url, "https://e.com/item.css");
    CHECK(fabs(p.think_ms - 50) < 1e-9);
    pagemap_plan_dispose(&p);
    CHECK_INTEQ(pagemap_plan(pm, "e.com/item/1", "e.com/item/*", "e.com", 0, MIN, &p), 0);
    CHECK_INTEQ(p.source, PAGEMAP_PLAN_PAGE);
    pagemap_plan_dispose(&p);
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.templates, 1);
    CHECK_INTEQ(st.pages, 3);
    /* template_key equal to page key: one entry only */
    v = visit("e.com/about", 1, &a, 1, true, false);
    v.template_key = "e.com/about";
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.pages, 4);
    pagemap_destroy(pm);
}

static void observe(pagemap_t *pm, const char *key, int status, const char *location,
                    bool cacheable, bool pushed)
{
    pagemap_asset_meta_t m = {.status = status,
                              .size = 100,
                              .content_type = "text/plain",
                              .etag = "\"e1\"",
                              .location = location,
                              .cacheable = cacheable,
                              .pushed = pushed};
    CHECK_INTEQ(pagemap_observe_asset(pm, key, &m), 0);
}

static void test_plan_order_and_filters(void)
{
    pagemap_t *pm = new_map(0, 0);
    pagemap_item_t it[] = {
        item("https://e.com/img.png", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_HTML, 0),
        item("https://e.com/mod.js", PAGEMAP_KIND_MODULE, PAGEMAP_SRC_HTML, 1),
        item("https://e.com/font.woff2", PAGEMAP_KIND_FONT, PAGEMAP_SRC_CSS, 9),
        item("https://e.com/defer.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, 2),
        item("https://e.com/block.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, 3),
        item("https://e.com/b.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 5),
        item("https://e.com/a.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 4),
        item("https://e.com/man.json", PAGEMAP_KIND_MANIFEST, PAGEMAP_SRC_HTML, 6),
        item("https://cdn.x.com/lib.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, 7),
        item("https://fonts.y.com", PAGEMAP_KIND_PRECONNECT, PAGEMAP_SRC_HTML, 8),
        item("https://e.com/private.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, 10),
        item("https://e.com/gone.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, 11),
        item("https://e.com/old.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 12),
        item("https://e.com/pushfail.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, 13),
    };
    it[4].blocking = true;
    it[1].as = "script";
    it[2].crossorigin = PAGEMAP_CORS_ANONYMOUS;
    pagemap_visit_t v = visit(PAGE, 1, it, sizeof(it) / sizeof(it[0]), true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    observe(pm, "https://e.com/private.js", 200, NULL, false, false);
    observe(pm, "https://e.com/gone.js", 404, NULL, true, false);
    observe(pm, "https://e.com/pushfail.js", 200, NULL, false, true);
    /* redirect old.css -> new.css: new.css known (another page links it) */
    pagemap_item_t nc = item("https://e.com/new.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 0);
    v = visit("e.com/other", 1, &nc, 1, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    observe(pm, "https://e.com/old.css", 301, "https://e.com/new.css", true, false);
    observe(pm, "https://e.com/new.css", 200, NULL, true, false);
    CHECK_INTEQ(pagemap_observe_asset(pm, "https://e.com/unknown", &(pagemap_asset_meta_t){0}),
                HERALD_ENOTFOUND);

    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, MIN, &p), 0);
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
    /* authority NULL: taken from the page key ("e.com") */
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, NULL, 0, MIN, &p), 0);
    CHECK_INTEQ(p.n, 10);
    CHECK_INTEQ(p.npreconnect, 2);
    pagemap_plan_dispose(&p);
    /* A redirect whose target is unknown is not planned. */
    observe(pm, "https://e.com/old.css", 302, "https://e.com/nowhere.css", true, false);
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, MIN, &p), 0);
    CHECK(!plan_has(&p, "https://e.com/old.css"));
    CHECK(!plan_has(&p, "https://e.com/new.css"));
    pagemap_plan_dispose(&p);
    /* unpushable cleared by a normal cacheable 200 */
    observe(pm, "https://e.com/pushfail.js", 200, NULL, true, false);
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, MIN, &p), 0);
    CHECK(plan_has(&p, "https://e.com/pushfail.js"));
    pagemap_plan_dispose(&p);
    pagemap_destroy(pm);
}

static void test_cacheable(void)
{
    CHECK(pagemap_cacheable(NULL, NULL, false));
    CHECK(pagemap_cacheable("public, max-age=3600", "Accept-Encoding", false));
    CHECK(!pagemap_cacheable("max-age=0, no-store", NULL, false));
    CHECK(!pagemap_cacheable("Private", NULL, false));
    CHECK(!pagemap_cacheable("no-cache", NULL, false));
    CHECK(pagemap_cacheable("max-age=60, foo=\"no-store, x\"", NULL, false));
    CHECK(!pagemap_cacheable(NULL, "accept-encoding, Cookie", false));
    CHECK(!pagemap_cacheable(NULL, "*", false));
    CHECK(!pagemap_cacheable(NULL, NULL, true));
}

static void test_pins_and_bans(void)
{
    pagemap_t *pm = new_map(0, 2);
    pagemap_item_t it[] = {item("https://e.com/a.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 0),
                           item("https://e.com/ad.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, 1)};
    pagemap_visit_t v = visit(PAGE, 1, it, 2, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK_INTEQ(pagemap_edge_set_state(pm, PAGE, "https://e.com/ad.js", PAGEMAP_EDGE_BANNED), 0);
    CHECK_INTEQ(pagemap_edge_set_state(pm, PAGE, "https://e.com/hero.jpg", PAGEMAP_EDGE_PINNED), 0);
    CHECK_INTEQ(pagemap_edge_set_state(pm, PAGE, "https://e.com/none", PAGEMAP_EDGE_LEARNED),
                HERALD_ENOTFOUND);
    /* relearning: ad.js seen again stays banned */
    for (int i = 0; i < 5; i++) {
        v = visit(PAGE, 2 + i, it, 2, true, false);
        CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    }
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, MIN, &p), 0);
    CHECK(!plan_has(&p, "https://e.com/ad.js"));
    CHECK(plan_has(&p, "https://e.com/hero.jpg"));
    CHECK(plan_has(&p, "https://e.com/a.css"));
    for (size_t i = 0; i < p.n; i++)
        if (strcmp(p.items[i].url, "https://e.com/hero.jpg") == 0) {
            CHECK(p.items[i].pinned);
            CHECK_INTEQ(p.items[i].kind, PAGEMAP_KIND_IMAGE);
        }
    pagemap_plan_dispose(&p);
    /* a min confidence above 1 still plans the pin */
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, 2.0, &p), 0);
    CHECK_INTEQ(p.n, 1);
    pagemap_plan_dispose(&p);
    /* forgetting the page keeps the pin and the ban */
    CHECK_INTEQ(pagemap_forget_page(pm, PAGE), 0);
    pagemap_page_info_t info;
    pagemap_edge_info_t *e;
    size_t n;
    CHECK_INTEQ(pagemap_page_get(pm, PAGE, &info, &e, &n), 0);
    CHECK_INTEQ(n, 2);
    CHECK_INTEQ(info.visits_total, 0);
    pagemap_edge_infos_free(e, n);
    pagemap_page_info_dispose(&info);
    v = visit(PAGE, 20, it, 2, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, MIN, &p), 0);
    CHECK(!plan_has(&p, "https://e.com/ad.js"));
    pagemap_plan_dispose(&p);
    /* forget the ban: relearned as an ordinary edge */
    CHECK_INTEQ(pagemap_forget_edge(pm, PAGE, "https://e.com/ad.js"), 0);
    CHECK_INTEQ(pagemap_forget_edge(pm, PAGE, "https://e.com/ad.js"), HERALD_ENOTFOUND);
    v = visit(PAGE, 21, it, 2, true, false);
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    CHECK_INTEQ(pagemap_plan(pm, PAGE, NULL, "e.com", 0, MIN, &p), 0);
    CHECK(plan_has(&p, "https://e.com/ad.js"));
    pagemap_plan_dispose(&p);
    /* unpin */
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
    pagemap_item_t a = item("https://e.com/a.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 0);
    char key[32];
    for (int i = 0; i < 25; i++) {
        snprintf(key, sizeof(key), "e.com/page%02d", i);
        pagemap_visit_t v = visit(key, i, &a, 1, true, false);
        CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
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
    for (int i = 0; i < 3000; i++) {
        snprintf(page, sizeof(page), "e.com/p%d", i % 50);
        snprintf(url, sizeof(url), "https://e.com/a%d.css", (i + id) % 80);
        pagemap_item_t it[2] = {
            item(url, PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, 0),
            item("https://e.com/s.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, 1)};
        pagemap_visit_t v = visit(page, i, it, 2, true, i % 2);
        v.template_key = "e.com/p*";
        if (pagemap_commit_visit(shared, &v) != 0)
            return (void *)1;
        pagemap_plan_t p;
        if (pagemap_plan(shared, page, "e.com/p*", "e.com", i, MIN, &p) != 0)
            return (void *)1;
        for (size_t k = 0; k < p.n; k++)
            if (p.items[k].url[0] != 'h')
                return (void *)1;
        pagemap_plan_dispose(&p);
        pagemap_observe_asset(shared, url,
                              &(pagemap_asset_meta_t){.status = 200, .cacheable = true});
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
    CHECK_INTEQ(pagemap_plan(pm, NULL, NULL, NULL, 0, MIN, &p), HERALD_EINVAL);
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
    test_first_visit_then_plan();
    test_decay_and_misses();
    test_followups_and_curl();
    test_late_followup();
    test_supplement();
    test_skipped_and_push();
    test_poisoning();
    test_volatile_never_planned();
    test_lru_eviction();
    test_template();
    test_plan_order_and_filters();
    test_cacheable();
    test_pins_and_bans();
    test_list();
    test_threads();
    test_bad_args();
    return TESTUTIL_SUMMARY();
}
