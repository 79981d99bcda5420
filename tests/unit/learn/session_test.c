/*
 * learn/session and learn/visit: classification, attribution by Referer and
 * window, the open-visit cap, one visit's weight per connection, visit
 * states and holds, what a visit commits (end to end into a pagemap), and
 * which imported stylesheets herald fetches itself.
 */
#include "session.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "visit.h"
#include "herald/error.h"
#include "testutil.h"

static void test_classify(void)
{
    CHECK_INTEQ(session_classify("GET", "document", "navigate", NULL), SESSION_PAGE);
    CHECK_INTEQ(session_classify("GET", NULL, "navigate", NULL), SESSION_PAGE);
    CHECK_INTEQ(session_classify("HEAD", "document", NULL, NULL), SESSION_PAGE);
    CHECK_INTEQ(session_classify("GET", NULL, NULL, "text/html,application/xhtml+xml"),
                SESSION_PAGE);
    /* Sec-Fetch headers win over Accept */
    CHECK_INTEQ(session_classify("GET", "image", "no-cors", "text/html"), SESSION_SUBRESOURCE);
    CHECK_INTEQ(session_classify("GET", NULL, NULL, "*/*"), SESSION_MAYBE_PAGE);
    CHECK_INTEQ(session_classify("GET", NULL, NULL, NULL), SESSION_MAYBE_PAGE);
    CHECK_INTEQ(session_classify("GET", NULL, NULL, "image/avif,*/*"), SESSION_SUBRESOURCE);
    CHECK_INTEQ(session_classify("POST", "document", "navigate", "text/html"), SESSION_OTHER);
    CHECK_INTEQ(session_classify(NULL, NULL, NULL, NULL), SESSION_OTHER);
}

static visit_t *open_page(session_t *s, const char *url, const char *key, uint64_t t)
{
    visit_page_t pg = {
        .url = url, .page_key = key, .authority = "e.com", .t_ms = t, .multiplexed = true};
    visit_t *v = NULL;
    CHECK_INTEQ(session_open(s, &pg, &v), 0);
    return v;
}

static void fetch(visit_t *v, const char *url, pagemap_kind_t kind)
{
    visit_fetch_t f = {.url = url, .key = url, .kind = kind, .browser = true};
    CHECK_INTEQ(visit_fetch(v, &f), 0);
    pagemap_asset_meta_t m = {.status = 200, .size = 5};
    CHECK_INTEQ(visit_fetch_served(v, url, &m), 0);
}

static void found(visit_t *v, const char *url, pagemap_kind_t kind, unsigned src, bool strong)
{
    visit_found_t f = {.url = url, .key = url, .kind = kind, .strong = strong};
    CHECK_INTEQ(visit_found(v, &f, src), 0);
}

static void test_attribution(void)
{
    session_t *s = NULL;
    CHECK_INTEQ(session_create(5000, &s), 0);
    /* no visit open: a bare request is a page, with a Referer it is not */
    CHECK_INTEQ(session_resolve(s, SESSION_MAYBE_PAGE, false, 0), SESSION_PAGE);
    CHECK_INTEQ(session_resolve(s, SESSION_MAYBE_PAGE, true, 0), SESSION_SUBRESOURCE);
    visit_t *a = open_page(s, "https://e.com/a", "e.com/a", 100);
    CHECK_INTEQ(session_resolve(s, SESSION_MAYBE_PAGE, false, 200), SESSION_SUBRESOURCE);
    visit_t *b = open_page(s, "https://e.com/b", "e.com/b", 200);
    /* by Referer: the page's URL; none: the most recent */
    CHECK(session_attribute(s, "https://e.com/a", 300) == a);
    CHECK(session_attribute(s, NULL, 300) == b);
    CHECK(session_attribute(s, "https://e.com/never", 300) == NULL);
    /* a stylesheet of a, fetched: its fonts belong to a */
    fetch(a, "https://e.com/s.css", PAGEMAP_KIND_STYLE);
    CHECK(session_attribute(s, "https://e.com/s.css", 300) == a);
    /* something a only discovered (never fetched) attributes nothing */
    found(a, "https://e.com/only-found.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, true);
    CHECK(session_attribute(s, "https://e.com/only-found.css", 300) == NULL);
    /* the window: after 5 s, a is over */
    CHECK_INTEQ(session_next_due(s), 5100);
    CHECK(session_attribute(s, "https://e.com/a", 5100) == NULL);
    visit_t *out[SESSION_MAX_OPEN];
    CHECK_INTEQ(session_expire(s, 5100, out, SESSION_MAX_OPEN), 1);
    CHECK(out[0] == a);
    CHECK_INTEQ(visit_state(a), VISIT_EXPIRED);
    visit_unref(out[0]);
    CHECK_INTEQ(session_visits(s), 1);
    /* a non-HTML answer leaves at once */
    visit_page_head(b, 200, false, -1, false);
    CHECK_INTEQ(session_next_due(s), 0);
    CHECK(session_attribute(s, NULL, 300) == NULL);
    visit_page_end(b, true, 0);
    CHECK(!visit_ready(b)); /* only a visit the session handed over commits */
    CHECK_INTEQ(session_expire(s, 300, out, SESSION_MAX_OPEN), 1);
    CHECK_INTEQ(visit_state(b), VISIT_EXPIRED);
    CHECK(visit_ready(b));
    visit_unref(out[0]);
    CHECK_INTEQ(session_next_due(s), UINT64_MAX);
    visit_unref(a);
    visit_unref(b);
    /* the rings */
    CHECK_INTEQ(session_note_requested(s, "https://e.com/x"), 0);
    CHECK(session_requested(s, "https://e.com/x"));
    CHECK(!session_pushed(s, "https://e.com/x"));
    for (int i = 0; i < SESSION_URLS + 10; i++) {
        char u[40];
        snprintf(u, sizeof(u), "https://e.com/%d", i);
        CHECK_INTEQ(session_note_pushed(s, u), 0);
    }
    CHECK(!session_pushed(s, "https://e.com/0")); /* the oldest is forgotten */
    CHECK(session_pushed(s, "https://e.com/520"));
    session_destroy(s);
}

static void test_open_cap_and_weight(void)
{
    session_t *s = NULL;
    CHECK_INTEQ(session_create(5000, &s), 0);
    visit_t *v[SESSION_MAX_OPEN + 3];
    char url[40], key[40];
    for (int i = 0; i < SESSION_MAX_OPEN + 3; i++) {
        snprintf(url, sizeof(url), "https://e.com/%d", i);
        snprintf(key, sizeof(key), "e.com/%d", i);
        v[i] = open_page(s, url, key, (uint64_t)i);
    }
    /* the three oldest are due at once */
    visit_t *out[SESSION_MAX_OPEN + 3];
    CHECK_INTEQ(session_next_due(s), 0);
    CHECK_INTEQ(session_expire(s, 20, out, SESSION_MAX_OPEN + 3), 3);
    for (int i = 0; i < 3; i++) {
        CHECK(out[i] == v[i]);
        visit_unref(out[i]);
    }
    /* the same page again on this connection: attributed, does not count */
    visit_t *again = open_page(s, "https://e.com/5", "e.com/5", 30);
    visit_page_head(again, 200, true, 1, false);
    found(again, "https://e.com/s.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, true);
    visit_page_end(again, true, 10);
    pagemap_t *pm = NULL;
    CHECK_INTEQ(pagemap_create(NULL, &pm), 0);
    CHECK_INTEQ(session_expire(s, UINT64_MAX, out, SESSION_MAX_OPEN + 3), SESSION_MAX_OPEN + 1);
    for (int i = 0; i < SESSION_MAX_OPEN + 1; i++) {
        if (out[i] == again) {
            CHECK(visit_ready(again));
            CHECK_INTEQ(visit_commit(again, pm, 1, false), 0);
        }
        visit_unref(out[i]);
    }
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.visits_committed, 0);
    for (int i = 0; i < SESSION_MAX_OPEN + 3; i++)
        visit_unref(v[i]);
    visit_unref(again);
    pagemap_destroy(pm);
    session_destroy(s);
}

/* A visit end to end: events in, one commit into a real map. */
static void test_visit_commit(void)
{
    pagemap_t *pm = NULL;
    CHECK_INTEQ(pagemap_create(NULL, &pm), 0);
    session_t *s = NULL;
    CHECK_INTEQ(session_create(5000, &s), 0);
    visit_t *v = open_page(s, "https://e.com/p", "e.com/p", 1);
    CHECK(!visit_ready(v));
    visit_page_head(v, 200, true, 40, false);
    visit_hold(v); /* discovery in flight */
    found(v, "https://e.com/s.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, true);
    found(v, "https://e.com/hero.png", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_HTML, true);
    found(v, "https://e.com/imp.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_CSS, true);
    found(v, "https://e.com/bg.png", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_CSS, false);
    found(v, "https://e.com/icon.png", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_CSS, false);
    visit_scanned(v, PAGEMAP_SRC_HTML);
    visit_scanned(v, PAGEMAP_SRC_CSS);
    fetch(v, "https://e.com/s.css", PAGEMAP_KIND_STYLE);
    fetch(v, "https://e.com/hero.png", PAGEMAP_KIND_IMAGE);
    fetch(v, "https://e.com/imp.css", PAGEMAP_KIND_STYLE);
    fetch(v, "https://e.com/bg.png", PAGEMAP_KIND_IMAGE);
    /* requested, never served: does not count as fetched */
    visit_fetch_t late = {.url = "https://e.com/late.js",
                          .key = "https://e.com/late.js",
                          .kind = PAGEMAP_KIND_SCRIPT,
                          .browser = true};
    CHECK_INTEQ(visit_fetch(v, &late), 0);
    visit_page_end(v, true, 1000);
    visit_t *out[1];
    CHECK_INTEQ(session_expire(s, 6000, out, 1), 1);
    CHECK(!visit_ready(v)); /* the hold */
    visit_release(v);
    CHECK(visit_ready(v));
    visit_set_state(v, VISIT_COMMITTED);
    CHECK_INTEQ(visit_commit(v, pm, 1000, false), 0);
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, "e.com/p", NULL, "e.com", 0, NULL, &p), 0);
    CHECK_INTEQ(p.n, 4); /* s.css, imp.css, hero.png, bg.png: not the icon, not late.js */
    CHECK(fabs(p.think_ms - 40) < 1e-9);
    pagemap_plan_dispose(&p);
    pagemap_edge_info_t *e = NULL;
    pagemap_page_info_t info;
    size_t n = 0;
    CHECK_INTEQ(pagemap_page_get(pm, "e.com/p", &info, &e, &n), 0);
    CHECK_INTEQ(n, 5);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].key, "https://e.com/icon.png") == 0) {
            CHECK_INTEQ(e[i].clean_misses, 1); /* a cold visit did not fetch it */
            CHECK_INTEQ(e[i].verdict, PAGEMAP_VERDICT_UNCERTAIN);
        }
        if (strcmp(e[i].key, "https://e.com/bg.png") == 0)
            CHECK_INTEQ(e[i].size, 5); /* its response's metadata came along */
    }
    CHECK_INTEQ(info.cold_total, 1);
    pagemap_edge_infos_free(e, n);
    pagemap_page_info_dispose(&info);
    /* events after the commit are ignored (no supplement is running) */
    found(v, "https://e.com/after.png", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_HTML, true);
    CHECK(!visit_has(v, "https://e.com/after.png", PAGEMAP_SRC_HTML));
    visit_unref(out[0]);
    visit_unref(v);
    session_destroy(s);
    pagemap_destroy(pm);
}

/* What herald fetches itself after the commit: same-origin @imports nobody fetched. */
static void test_chase(void)
{
    session_t *s = NULL;
    CHECK_INTEQ(session_create(5000, &s), 0);
    visit_t *v = open_page(s, "https://e.com/p", "e.com/p", 1);
    visit_page_head(v, 200, true, 1, false);
    const char *url, *key;
    CHECK(!visit_next_chase(v, &url, &key)); /* not sampled */
    visit_set_sampled(v);
    found(v, "https://e.com/s.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, true);
    found(v, "https://e.com/imp.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_CSS, true);
    found(v, "https://cdn.x.com/far.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_CSS, true);
    found(v, "https://e.com/got.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_CSS, true);
    fetch(v, "https://e.com/got.css", PAGEMAP_KIND_STYLE);
    visit_page_end(v, true, 10);
    CHECK(visit_next_chase(v, &url, &key));
    CHECK_STREQ(key, "https://e.com/imp.css");
    CHECK(!visit_next_chase(v, &url, &key)); /* each once; not other origins or fetched ones */
    /* after the commit, while chasing, the chased sheet's discovery lands */
    visit_t *out[1];
    CHECK_INTEQ(session_expire(s, UINT64_MAX, out, 1), 1);
    visit_set_state(v, VISIT_COMMITTED);
    visit_set_chasing(v, true);
    found(v, "https://e.com/f.woff2", PAGEMAP_KIND_FONT, PAGEMAP_SRC_CSS, false);
    CHECK(visit_has(v, "https://e.com/f.woff2", PAGEMAP_SRC_CSS));
    visit_set_chasing(v, false);
    visit_unref(out[0]);
    visit_unref(v);
    session_destroy(s);
}

static void test_bad_args(void)
{
    visit_t *v = NULL;
    visit_page_t pg = {.url = "https://e.com/", .page_key = NULL, .authority = "e.com"};
    CHECK_INTEQ(visit_create(&pg, &v), HERALD_EINVAL);
    CHECK_INTEQ(session_create(1, NULL), HERALD_EINVAL);
    visit_unref(NULL);
    session_destroy(NULL);
}

int main(void)
{
    test_classify();
    test_attribution();
    test_open_cap_and_weight();
    test_visit_commit();
    test_chase();
    test_bad_args();
    return TESTUTIL_SUMMARY();
}
