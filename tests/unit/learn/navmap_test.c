/*
 * Next pages of the learned map (learn/pagemap_next.c, pagemap_speculate.c),
 * the navigations that teach them through sessions and visits, their safety
 * facts, the rule-set selection and its JSON (learn/speculation.c), prefetch
 * use accounting (learn/prefetch.c) and the snapshot of it all. Expected
 * numbers are worked out by hand from the documented rules (decay 0.9).
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagemap.h"
#include "prefetch.h"
#include "session.h"
#include "snapshot.h"
#include "speculation.h"
#include "template.h"
#include "visit.h"
#include "herald/error.h"
#include "testutil.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-6)

/* ---- helpers ------------------------------------------------------------ */

typedef struct navspec {
    const char *from;  /* source page key, NULL none */
    const char *tfrom; /* its template key, NULL none */
    const char *url;   /* the page navigated to */
    const char *client;
    int status;
    bool html, set_cookie, authorized;
    bool pair_only; /* a second next page of one session: A's navs do not move */
} navspec_t;

/* One session's navigation, counting fully (first from A, first A -> B). */
static int nav(pagemap_t *pm, const navspec_t *s)
{
    char *key = NULL;
    CHECK_INTEQ(template_url_page_key(s->url, &key), 0);
    pagemap_nav_t n = {.page_key = key,
                       .url = s->url,
                       .from_page_key = s->from,
                       .from_template_key = s->tfrom,
                       .client = s->client ? s->client : "10.0.0.1",
                       .now_ms = 1000,
                       .status = s->status ? s->status : 200,
                       .html = s->status ? s->html : true,
                       .set_cookie = s->set_cookie,
                       .authorized = s->authorized,
                       .count_from = !s->pair_only,
                       .count_pair = true,
                       .count_template_from = !s->pair_only,
                       .count_template_pair = true};
    int rc = pagemap_commit_navigation(pm, &n);
    free(key);
    return rc;
}

static void go(pagemap_t *pm, const char *from, const char *url, const char *client)
{
    navspec_t s = {.from = from, .url = url, .client = client};
    CHECK_INTEQ(nav(pm, &s), 0);
}

/* The next page `key` of entry `page` (copied out), or found = false. */
static pagemap_next_info_t next_of(pagemap_t *pm, const char *page, const char *key, bool *found)
{
    pagemap_next_info_t *v = NULL, out;
    size_t n = 0;
    memset(&out, 0, sizeof(out));
    *found = false;
    if (pagemap_next_get(pm, page, NULL, &v, &n) != 0)
        return out;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].key, key) == 0) {
            out = v[i];
            out.key = out.url = NULL; /* not owned */
            *found = true;
        }
    }
    pagemap_next_infos_free(v, n);
    return out;
}

static pagemap_page_info_t page_of(pagemap_t *pm, const char *key)
{
    pagemap_page_info_t info;
    memset(&info, 0, sizeof(info));
    if (pagemap_page_get(pm, key, &info, NULL, NULL) == 0)
        pagemap_page_info_dispose(&info);
    return info;
}

static bool spec_has(const pagemap_spec_t *s, const char *url)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->items[i].url, url) == 0)
            return true;
    return false;
}

static pagemap_t *new_map(void)
{
    pagemap_t *pm = NULL;
    CHECK_INTEQ(pagemap_create(NULL, &pm), 0);
    return pm;
}

/* ---- probabilities, decay, one session's weight ------------------------- */

static void test_probabilities(void)
{
    pagemap_t *pm = new_map();
    go(pm, "e.com/a", "https://e.com/b", "c1");
    go(pm, "e.com/a", "https://e.com/b", "c2");
    go(pm, "e.com/a", "https://e.com/c", "c3");
    go(pm, "e.com/a", "https://e.com/b", "c4");
    /* navs: 1, 1.9, 2.71, 3.439; b: 1, 1.9, 1.71, 2.539; c: 1 then 0.9 */
    pagemap_page_info_t a = page_of(pm, "e.com/a");
    CHECK(NEAR(a.navs, 3.439));
    CHECK_INTEQ(a.navs_total, 4);
    CHECK_INTEQ(a.nnext, 2);
    bool f;
    pagemap_next_info_t b = next_of(pm, "e.com/a", "e.com/b", &f);
    CHECK(f);
    CHECK(NEAR(b.count, 2.539));
    CHECK(NEAR(b.probability, 2.539 / 3.439));
    CHECK_INTEQ(b.navs, 3);
    pagemap_next_info_t c = next_of(pm, "e.com/a", "e.com/c", &f);
    CHECK(f && NEAR(c.count, 0.9) && NEAR(c.probability, 0.9 / 3.439));
    CHECK_INTEQ(c.navs, 1);
    /* the pair alone (a second next page of one session): no decay, no navs */
    pagemap_nav_t n = {.page_key = "e.com/c",
                       .url = "https://e.com/c",
                       .from_page_key = "e.com/a",
                       .status = 200,
                       .html = true,
                       .count_pair = true};
    CHECK_INTEQ(pagemap_commit_navigation(pm, &n), 0);
    a = page_of(pm, "e.com/a");
    CHECK(NEAR(a.navs, 3.439));
    c = next_of(pm, "e.com/a", "e.com/c", &f);
    CHECK(NEAR(c.count, 1.9));
    /* a count never exceeds the navs away */
    for (int i = 0; i < 30; i++)
        CHECK_INTEQ(pagemap_commit_navigation(pm, &n), 0);
    a = page_of(pm, "e.com/a");
    c = next_of(pm, "e.com/a", "e.com/c", &f);
    CHECK(c.count <= a.navs + 1e-9 && c.probability <= 1.0);
    /* not counted: a reload or self, a non-2xx, non-HTML, authorized, other site, the rule set */
    navspec_t bad[] = {
        {.from = "e.com/b", .url = "https://e.com/b"},
        {.from = "e.com/b", .url = "https://e.com/x", .status = 404, .html = true},
        {.from = "e.com/b", .url = "https://e.com/x", .status = 200, .html = false},
        {.from = "e.com/b", .url = "https://e.com/x", .status = 301, .html = true},
        {.from = "e.com/b", .url = "https://e.com/x", .authorized = true},
        {.from = "other.com/b", .url = "https://e.com/x"},
        {.from = "e.com/b", .url = "https://e.com" SPECULATION_RULES_PATH "?page=x"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_INTEQ(nav(pm, &bad[i]), 0);
    {
        pagemap_page_info_t info;
        CHECK_INTEQ(pagemap_page_get(pm, "e.com/b", &info, NULL, NULL), HERALD_ENOTFOUND);
        CHECK_INTEQ(pagemap_page_get(pm, "other.com/b", &info, NULL, NULL), HERALD_ENOTFOUND);
    }
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.nexts, 2);
    CHECK_INTEQ(st.targets, 2);
    CHECK_INTEQ(st.navigations_committed, 35);
    pagemap_destroy(pm);
}

/* ---- through sessions and visits ---------------------------------------- */

static visit_t *open_nav(session_t *s, const char *url, const char *referer, uint64_t t,
                         bool reload, bool prefetch)
{
    char *key = NULL, *tk = NULL;
    CHECK_INTEQ(template_url_page_key(url, &key), 0);
    CHECK_INTEQ(template_key(key, &tk), 0);
    visit_page_t pg = {.url = url,
                       .page_key = key,
                       .template_key = tk,
                       .authority = "e.com",
                       .t_ms = t,
                       .multiplexed = true,
                       .client = "10.1.1.1",
                       .referer = referer,
                       .reload = reload,
                       .prefetch = prefetch};
    visit_t *v = NULL;
    CHECK_INTEQ(session_open(s, &pg, &v), 0);
    free(key);
    free(tk);
    return v;
}

/* Serve the visit's page as 200 HTML (or status/html as given). */
static void serve(visit_t *v, int status, bool html)
{
    visit_page_head(v, status, html, 5, false);
    visit_page_end(v, true, 100);
}

/* Hand over and commit every visit of the session done by `now`. */
static void settle(session_t *s, pagemap_t *pm, uint64_t now)
{
    visit_t *out[SESSION_MAX_OPEN + SESSION_MAX_DORMANT];
    size_t n;
    while ((n = session_expire(s, now, out, SESSION_MAX_OPEN)) > 0) {
        for (size_t i = 0; i < n; i++) {
            if (visit_ready(out[i])) {
                visit_set_state(out[i], VISIT_COMMITTED);
                CHECK_INTEQ(visit_commit(out[i], pm, 1000, false), 0);
            }
            visit_unref(out[i]);
        }
        if (n < SESSION_MAX_OPEN)
            break;
    }
}

static void test_session_navigations(void)
{
    pagemap_t *pm = new_map();
    session_t *s = NULL;
    CHECK_INTEQ(session_create(5000, &s), 0);
    visit_t *a = open_nav(s, "https://e.com/a", NULL, 0, false, false);
    serve(a, 200, true);
    CHECK(visit_from_page_key(a) == NULL);
    visit_t *b = open_nav(s, "https://e.com/b", "https://e.com/a", 100, false, false);
    CHECK_STREQ(visit_from_page_key(b), "e.com/a");
    CHECK(visit_from_template_key(b) == NULL);
    serve(b, 200, true);
    /* back to a and to b again, then to c: a moves once, (a, b) once, (a, c) once */
    visit_t *a2 = open_nav(s, "https://e.com/a", "https://e.com/b", 200, false, false);
    serve(a2, 200, true);
    visit_t *b2 = open_nav(s, "https://e.com/b", "https://e.com/a", 300, false, false);
    serve(b2, 200, true);
    visit_t *c = open_nav(s, "https://e.com/c", "https://e.com/a", 400, false, false);
    serve(c, 200, true);
    /* not transitions: a reload, the page itself, another origin, a bad Referer */
    visit_t *r = open_nav(s, "https://e.com/d", "https://e.com/a", 500, true, false);
    serve(r, 200, true);
    CHECK(visit_from_page_key(r) == NULL);
    visit_t *self = open_nav(s, "https://e.com/a", "https://e.com/a", 600, false, false);
    serve(self, 200, true);
    CHECK(visit_from_page_key(self) == NULL);
    visit_t *x = open_nav(s, "https://e.com/e", "https://other.com/a", 700, false, false);
    serve(x, 200, true);
    CHECK(visit_from_page_key(x) == NULL);
    visit_t *y = open_nav(s, "https://e.com/e", "http://e.com/a", 700, false, false);
    serve(y, 200, true);
    CHECK(visit_from_page_key(y) == NULL); /* another scheme: another origin */
    visit_t *z = open_nav(s, "https://e.com/f", "not a url", 700, false, false);
    serve(z, 200, true);
    CHECK(visit_from_page_key(z) == NULL);
    /* a template source: /item/1 -> /about teaches e.com/item/ * as well */
    visit_t *i1 = open_nav(s, "https://e.com/about", "https://e.com/item/123", 800, false, false);
    CHECK_STREQ(visit_from_page_key(i1), "e.com/item/123");
    CHECK_STREQ(visit_from_template_key(i1), "e.com/item/*");
    serve(i1, 200, true);
    visit_t *all[] = {a, b, a2, b2, c, r, self, x, y, z, i1};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        visit_unref(all[i]);
    settle(s, pm, UINT64_MAX);
    pagemap_page_info_t ai = page_of(pm, "e.com/a");
    CHECK_INTEQ(ai.navs_total, 1);
    CHECK(NEAR(ai.navs, 1.0));
    bool f;
    pagemap_next_info_t nb = next_of(pm, "e.com/a", "e.com/b", &f);
    CHECK(f && nb.navs == 1 && NEAR(nb.count, 1.0));
    pagemap_next_info_t nc = next_of(pm, "e.com/a", "e.com/c", &f);
    CHECK(f && nc.navs == 1 && NEAR(nc.probability, 1.0));
    next_of(pm, "e.com/a", "e.com/d", &f);
    CHECK(!f);
    next_of(pm, "e.com/a", "e.com/a", &f);
    CHECK(!f);
    /* b -> a counted once as well */
    pagemap_next_info_t ba = next_of(pm, "e.com/b", "e.com/a", &f);
    CHECK(f && ba.navs == 1);
    pagemap_next_info_t tpl = next_of(pm, "e.com/item/*", "e.com/about", &f);
    CHECK(f && tpl.navs == 1);
    next_of(pm, "e.com/item/123", "e.com/about", &f);
    CHECK(f);
    session_destroy(s);

    /* a second connection teaches again: one more session's weight */
    CHECK_INTEQ(session_create(5000, &s), 0);
    visit_t *b3 = open_nav(s, "https://e.com/b", "https://e.com/a", 0, false, false);
    serve(b3, 200, true);
    /* a non-HTML or failing page teaches no transition */
    visit_t *d = open_nav(s, "https://e.com/g.pdf", "https://e.com/a", 10, false, false);
    serve(d, 200, false);
    visit_t *e = open_nav(s, "https://e.com/h", "https://e.com/a", 20, false, false);
    visit_page_head(e, 200, true, 5, false);
    visit_page_end(e, false, 0); /* the client left */
    visit_unref(b3);
    visit_unref(d);
    visit_unref(e);
    settle(s, pm, UINT64_MAX);
    ai = page_of(pm, "e.com/a");
    CHECK_INTEQ(ai.navs_total, 2);
    nb = next_of(pm, "e.com/a", "e.com/b", &f);
    CHECK(f && nb.navs == 2 && NEAR(nb.count, 1.9) && NEAR(ai.navs, 1.9));
    next_of(pm, "e.com/a", "e.com/g.pdf", &f);
    CHECK(!f);
    next_of(pm, "e.com/a", "e.com/h", &f);
    CHECK(!f);
    session_destroy(s);
    pagemap_destroy(pm);
}

static void test_reload_and_purpose(void)
{
    CHECK(session_is_reload("max-age=0", NULL));
    CHECK(session_is_reload("no-cache", NULL));
    CHECK(session_is_reload(NULL, "no-cache"));
    CHECK(session_is_reload("private, max-age=0", NULL));
    CHECK(session_is_reload("MAX-AGE=00", NULL));
    CHECK(!session_is_reload("max-age=60", NULL));
    CHECK(!session_is_reload("max-age=0123", NULL));
    CHECK(!session_is_reload(NULL, NULL));
    CHECK(!session_is_reload("no-store", "x"));
    CHECK_INTEQ(session_classify_purpose(SESSION_PAGE, "prefetch"), SESSION_PREFETCH);
    CHECK_INTEQ(session_classify_purpose(SESSION_PAGE, "prefetch;prerender"), SESSION_PREFETCH);
    CHECK_INTEQ(session_classify_purpose(SESSION_MAYBE_PAGE, " Prefetch "), SESSION_PREFETCH);
    CHECK_INTEQ(session_classify_purpose(SESSION_PAGE, NULL), SESSION_PAGE);
    CHECK_INTEQ(session_classify_purpose(SESSION_PAGE, "prefetched"), SESSION_PAGE);
    CHECK_INTEQ(session_classify_purpose(SESSION_SUBRESOURCE, "prefetch"), SESSION_SUBRESOURCE);
    CHECK_INTEQ(session_classify_purpose(SESSION_OTHER, "prefetch"), SESSION_OTHER);
}

/* A prefetched page: dormant until its follow-ups, then a visit of it. */
static void test_session_prefetch(void)
{
    pagemap_t *pm = new_map();
    session_t *s = NULL;
    CHECK_INTEQ(session_create(5000, &s), 0);
    visit_t *a = open_nav(s, "https://e.com/a", NULL, 0, false, false);
    serve(a, 200, true);
    visit_t *p = open_nav(s, "https://e.com/b", "https://e.com/a", 100, false, true);
    CHECK(visit_dormant(p));
    serve(p, 200, true);
    visit_found_t css = {.url = "https://e.com/b.css",
                         .key = "https://e.com/b.css",
                         .kind = PAGEMAP_KIND_STYLE,
                         .strong = true};
    CHECK_INTEQ(visit_found(p, &css, PAGEMAP_SRC_HTML), 0);
    visit_scanned(p, PAGEMAP_SRC_HTML);
    /* not the most recent visit, and past a's window a bare request attributes nothing */
    CHECK(session_attribute(s, NULL, 200) == a);
    CHECK(session_attribute(s, NULL, 6000) == NULL);
    /* b's subresource with Referer b, a minute later: the visitor is on b */
    CHECK(session_attribute(s, "https://e.com/b", 60000) == p);
    CHECK(!visit_dormant(p));
    visit_fetch_t f = {.url = "https://e.com/b.css",
                       .key = "https://e.com/b.css",
                       .kind = PAGEMAP_KIND_STYLE,
                       .browser = true};
    CHECK_INTEQ(visit_fetch(p, &f), 0);
    pagemap_asset_meta_t m = {.status = 200, .content_type = "text/css"};
    CHECK_INTEQ(visit_fetch_served(p, "https://e.com/b.css", &m), 0);
    /* its window runs from the activation */
    settle(s, pm, 60000); /* a's window is over */
    CHECK_INTEQ(session_next_due(s), 65000);
    visit_unref(a);
    visit_unref(p);
    settle(s, pm, UINT64_MAX);
    pagemap_page_info_t bi = page_of(pm, "e.com/b");
    CHECK_INTEQ(bi.visits_total, 1);
    CHECK_INTEQ(bi.nedges, 1);
    bool found;
    pagemap_next_info_t ab = next_of(pm, "e.com/a", "e.com/b", &found);
    CHECK(found && ab.navs == 1 && ab.status == 200);
    session_destroy(s);

    /* unused: a navigation to the prefetched page itself; lapsed: nothing */
    CHECK_INTEQ(session_create(5000, &s), 0);
    visit_t *q = open_nav(s, "https://e.com/c", "https://e.com/a", 0, false, true);
    serve(q, 200, true);
    visit_t *l = open_nav(s, "https://e.com/d", "https://e.com/a", 0, false, true);
    visit_page_head(l, 200, true, 5, true); /* a prefetch answered with Set-Cookie */
    visit_page_end(l, true, 10);
    visit_t *c = open_nav(s, "https://e.com/c", "https://e.com/a", 1000, false, false);
    serve(c, 200, true);
    CHECK(session_attribute(s, "https://e.com/c", 1500) == c);
    /* the dormant d lapses after SESSION_PREFETCH_MS */
    CHECK(session_attribute(s, "https://e.com/d", SESSION_PREFETCH_MS) == NULL);
    visit_unref(q);
    visit_unref(l);
    visit_unref(c);
    settle(s, pm, SESSION_PREFETCH_MS);
    CHECK_INTEQ(session_visits(s), 0);
    pagemap_page_info_t ci = page_of(pm, "e.com/c");
    CHECK_INTEQ(ci.visits_total, 1); /* c's navigation, not its prefetch */
    pagemap_next_info_t ac = next_of(pm, "e.com/a", "e.com/c", &found);
    CHECK(found && ac.navs == 1);
    next_of(pm, "e.com/a", "e.com/d", &found);
    CHECK(!found); /* a lapsed prefetch is no transition */
    session_destroy(s);

    /* onward: a navigation from a prefetched page (all its subresources cached) */
    CHECK_INTEQ(session_create(5000, &s), 0);
    visit_t *e = open_nav(s, "https://e.com/e", "https://e.com/a", 0, false, true);
    serve(e, 200, true);
    visit_t *g = open_nav(s, "https://e.com/g", "https://e.com/e", 2000, false, false);
    CHECK(!visit_dormant(e));
    serve(g, 200, true);
    visit_unref(e);
    visit_unref(g);
    settle(s, pm, UINT64_MAX);
    pagemap_next_info_t ae = next_of(pm, "e.com/a", "e.com/e", &found);
    CHECK(found && ae.navs == 1);
    pagemap_next_info_t eg = next_of(pm, "e.com/e", "e.com/g", &found);
    CHECK(found && eg.navs == 1);
    session_destroy(s);

    /* a prefetch answered non-HTML is handed over at once, attributes nothing */
    CHECK_INTEQ(session_create(5000, &s), 0);
    visit_t *h = open_nav(s, "https://e.com/h", "https://e.com/a", 0, false, true);
    serve(h, 200, false);
    CHECK(session_attribute(s, "https://e.com/h", 10) == NULL);
    CHECK_INTEQ(session_next_due(s), 0);
    visit_unref(h);
    settle(s, pm, 10);
    CHECK_INTEQ(session_visits(s), 0);
    /* a page prefetched again: the new dormant visit replaces the old */
    visit_t *r1 = open_nav(s, "https://e.com/r", "https://e.com/a", 20, false, true);
    serve(r1, 200, true);
    visit_t *r2 = open_nav(s, "https://e.com/r", "https://e.com/a", 30, false, true);
    serve(r2, 200, true);
    CHECK_INTEQ(session_next_due(s), 0); /* r1, handed over */
    settle(s, pm, 40);
    CHECK_INTEQ(session_visits(s), 1);
    CHECK(session_attribute(s, "https://e.com/r", 50) == r2);
    visit_unref(r1);
    visit_unref(r2);
    settle(s, pm, UINT64_MAX);
    /* at most SESSION_MAX_DORMANT wait; the oldest is handed over */
    visit_t *many[SESSION_MAX_DORMANT + 2];
    char url[64];
    for (int i = 0; i < SESSION_MAX_DORMANT + 2; i++) {
        snprintf(url, sizeof(url), "https://e.com/p%d", i);
        many[i] = open_nav(s, url, "https://e.com/a", 100 + (uint64_t)i, false, true);
        serve(many[i], 200, true);
    }
    CHECK_INTEQ(session_next_due(s), 0);
    CHECK(session_attribute(s, "https://e.com/p0", 200) == NULL);
    CHECK(session_attribute(s, "https://e.com/p9", 200) == many[9]);
    for (int i = 0; i < SESSION_MAX_DORMANT + 2; i++)
        visit_unref(many[i]);
    settle(s, pm, UINT64_MAX);
    session_destroy(s);
    pagemap_destroy(pm);
}

/* ---- caps --------------------------------------------------------------- */

static void test_caps(void)
{
    pagemap_t *pm = new_map();
    char url[64];
    /* p0 twice, then 20 others once: 16 learned kept, p0 (most likely) among them */
    go(pm, "e.com/a", "https://e.com/p0", "c");
    go(pm, "e.com/a", "https://e.com/p0", "c");
    for (int i = 1; i <= 20; i++) {
        snprintf(url, sizeof(url), "https://e.com/p%d", i);
        go(pm, "e.com/a", url, "c");
    }
    CHECK_INTEQ(pagemap_next_set_state(pm, "e.com/a", "https://e.com/pin", PAGEMAP_EDGE_PINNED), 0);
    CHECK_INTEQ(pagemap_next_set_state(pm, "e.com/a", "https://e.com/ban", PAGEMAP_EDGE_BANNED), 0);
    pagemap_page_info_t a = page_of(pm, "e.com/a");
    CHECK_INTEQ(a.nnext, PAGEMAP_MAX_NEXT + 2);
    bool f;
    next_of(pm, "e.com/a", "e.com/p0", &f);
    CHECK(f);
    next_of(pm, "e.com/a", "e.com/p20", &f);
    CHECK(f); /* the newest of the least likely */
    next_of(pm, "e.com/a", "e.com/p1", &f);
    CHECK(!f); /* the oldest of the least likely went first */
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.nexts, PAGEMAP_MAX_NEXT + 2);
    CHECK(st.next_pinned == 1 && st.next_banned == 1);
    CHECK_INTEQ(st.targets, PAGEMAP_MAX_NEXT + 2);
    /* forgetting the page keeps pins and bans (with no count), drops the rest */
    CHECK_INTEQ(pagemap_forget_page(pm, "e.com/a"), 0);
    a = page_of(pm, "e.com/a");
    CHECK_INTEQ(a.nnext, 2);
    CHECK_INTEQ(a.navs_total, 0);
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.targets, 2);
    CHECK_INTEQ(pagemap_forget_next(pm, "e.com/a", "https://e.com/pin"), 0);
    CHECK_INTEQ(pagemap_forget_next(pm, "e.com/a", "https://e.com/pin"), HERALD_ENOTFOUND);
    CHECK_INTEQ(pagemap_next_set_state(pm, "e.com/a", "https://e.com/ban", PAGEMAP_EDGE_LEARNED),
                0);
    CHECK_INTEQ(pagemap_forget_page(pm, "e.com/a"), 0);
    {
        pagemap_page_info_t info;
        CHECK_INTEQ(pagemap_page_get(pm, "e.com/a", &info, NULL, NULL), HERALD_ENOTFOUND);
    }
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.nexts, 0);
    CHECK_INTEQ(st.targets, 0);
    /* the page cap evicts entries that hold only next pages, shared facts go with the last */
    pagemap_config_t cfg;
    pagemap_config_init(&cfg);
    cfg.max_pages = 3;
    pagemap_t *small = NULL;
    CHECK_INTEQ(pagemap_create(&cfg, &small), 0);
    for (int i = 0; i < 10; i++) {
        snprintf(url, sizeof(url), "e.com/s%d", i);
        go(small, url, "https://e.com/t", "c");
    }
    pagemap_stats(small, &st);
    CHECK(st.pages <= 3);
    CHECK_INTEQ(st.nexts, st.pages);
    CHECK_INTEQ(st.targets, 1);
    pagemap_destroy(small);
    pagemap_destroy(pm);
}

/* ---- safety ------------------------------------------------------------- */

static pagemap_next_verdict_t verdict_of(pagemap_t *pm, const char *page, const char *key)
{
    bool f;
    pagemap_next_info_t x = next_of(pm, page, key, &f);
    CHECK(f);
    return f ? x.verdict : PAGEMAP_NEXT_VERDICT_COUNT_;
}

static void test_safety(void)
{
    pagemap_t *pm = new_map();
    /* page sN links to urls[N] only: each likely from its own page */
    const char *urls[] = {"https://e.com/ok",  "https://e.com/sc",   "https://e.com/rd",
                          "https://e.com/pdf", "https://e.com/auth", "https://e.com/gone"};
    const char *src[] = {"e.com/s0", "e.com/s1", "e.com/s2", "e.com/s3", "e.com/s4", "e.com/s5"};
    const char *key[] = {"e.com/ok",  "e.com/sc",   "e.com/rd",
                         "e.com/pdf", "e.com/auth", "e.com/gone"};
    for (size_t i = 0; i < 6; i++)
        for (int k = 0; k < 3; k++)
            go(pm, src[i], urls[i], "c");
    for (size_t i = 0; i < 6; i++)
        CHECK_INTEQ(verdict_of(pm, src[i], key[i]), PAGEMAP_NEXT_LIKELY);
    /* later navigations of them, from anywhere, report their facts */
    navspec_t facts[] = {
        {.url = "https://e.com/sc", .status = 200, .html = true, .set_cookie = true},
        {.url = "https://e.com/rd", .status = 302, .html = true},
        {.url = "https://e.com/pdf", .status = 200, .html = false},
        {.url = "https://e.com/auth", .authorized = true},
        {.url = "https://e.com/gone", .status = 404, .html = true},
        {.url = "https://e.com/ok", .status = 304, .html = false}, /* says nothing */
    };
    for (size_t i = 0; i < sizeof(facts) / sizeof(facts[0]); i++)
        CHECK_INTEQ(nav(pm, &facts[i]), 0);
    CHECK_INTEQ(verdict_of(pm, src[0], key[0]), PAGEMAP_NEXT_LIKELY);
    for (size_t i = 1; i < 6; i++)
        CHECK_INTEQ(verdict_of(pm, src[i], key[i]), PAGEMAP_NEXT_UNSAFE);
    bool f;
    pagemap_next_info_t x = next_of(pm, src[1], key[1], &f);
    CHECK_INTEQ(x.unsafe, PAGEMAP_UNSAFE_SET_COOKIE);
    CHECK_INTEQ(x.clean_run, 0);
    x = next_of(pm, src[2], key[2], &f);
    CHECK_INTEQ(x.unsafe, PAGEMAP_UNSAFE_REDIRECT);
    CHECK_INTEQ(x.status, 302);
    x = next_of(pm, src[3], key[3], &f);
    CHECK_INTEQ(x.unsafe, PAGEMAP_UNSAFE_NOT_HTML);
    x = next_of(pm, src[4], key[4], &f);
    CHECK_INTEQ(x.unsafe, PAGEMAP_UNSAFE_AUTHORIZATION);
    x = next_of(pm, src[5], key[5], &f);
    CHECK(x.unsafe == 0 && x.status == 404);
    x = next_of(pm, src[0], key[0], &f);
    CHECK(x.unsafe == 0 && x.status == 200);
    pagemap_spec_t spec;
    for (size_t i = 0; i < 6; i++) {
        CHECK_INTEQ(pagemap_speculation(pm, src[i], NULL, NULL, NULL, &spec), 0);
        CHECK_INTEQ(spec.n, i == 0 ? 1 : 0);
        CHECK(i > 0 || spec_has(&spec, urls[0]));
        pagemap_spec_dispose(&spec);
    }
    /* the gone page answers again: safe at once (a status is not sticky) */
    navspec_t back = {.url = "https://e.com/gone"};
    CHECK_INTEQ(nav(pm, &back), 0);
    CHECK_INTEQ(verdict_of(pm, src[5], key[5]), PAGEMAP_NEXT_LIKELY);
    /* an unsafe fact stays for PAGEMAP_NEXT_CLEAN_NAVS clean navigations in a row */
    navspec_t clean = {.url = "https://e.com/sc"};
    for (int i = 0; i < PAGEMAP_NEXT_CLEAN_NAVS - 1; i++)
        CHECK_INTEQ(nav(pm, &clean), 0);
    CHECK_INTEQ(verdict_of(pm, src[1], key[1]), PAGEMAP_NEXT_UNSAFE);
    CHECK_INTEQ(nav(pm, &facts[0]), 0); /* one more Set-Cookie: the run starts again */
    for (int i = 0; i < PAGEMAP_NEXT_CLEAN_NAVS - 1; i++)
        CHECK_INTEQ(nav(pm, &clean), 0);
    CHECK_INTEQ(verdict_of(pm, src[1], key[1]), PAGEMAP_NEXT_UNSAFE);
    CHECK_INTEQ(nav(pm, &clean), 0);
    CHECK_INTEQ(verdict_of(pm, src[1], key[1]), PAGEMAP_NEXT_LIKELY);
    /* the facts are shared: another page naming rd sees it unsafe at once */
    go(pm, "e.com/z", "https://e.com/rd", "c");
    go(pm, "e.com/z", "https://e.com/rd", "d");
    CHECK_INTEQ(verdict_of(pm, "e.com/z", "e.com/rd"), PAGEMAP_NEXT_UNSAFE);
    pagemap_destroy(pm);
}

/* A query or id private to one client never reaches another client's rule set. */
static void test_private_urls(void)
{
    pagemap_t *pm = new_map();
    /* a CSRF-style token: every client its own value, many clients */
    char url[80], client[16];
    for (int i = 0; i < 10; i++) {
        snprintf(url, sizeof(url), "https://e.com/go?token=%08x", 0x1234567u * (unsigned)(i + 1));
        snprintf(client, sizeof(client), "10.0.0.%d", i);
        /* each client twice over two sessions */
        go(pm, "e.com/a", url, client);
        go(pm, "e.com/a", url, client);
    }
    pagemap_next_info_t *v = NULL;
    size_t n = 0;
    CHECK_INTEQ(pagemap_next_get(pm, "e.com/a", NULL, &v, &n), 0);
    CHECK_INTEQ(n, 10);
    for (size_t i = 0; i < n; i++) {
        CHECK_INTEQ(v[i].verdict, PAGEMAP_NEXT_PRIVATE);
        CHECK_INTEQ(v[i].nclients, 1);
        CHECK(v[i].private_url);
    }
    pagemap_next_infos_free(v, n);
    /* a shared id (a popular item) from two clients is fine; a path token needs two as well */
    go(pm, "e.com/l", "https://e.com/item?id=7", "10.0.0.1");
    go(pm, "e.com/l", "https://e.com/item?id=7", "10.0.0.1");
    go(pm, "e.com/l", "https://e.com/confirm/8f3a9b2c1d", "10.0.0.1");
    go(pm, "e.com/l", "https://e.com/confirm/8f3a9b2c1d", "10.0.0.1");
    go(pm, "e.com/l", "https://e.com/plain", "10.0.0.1");
    go(pm, "e.com/l", "https://e.com/plain", "10.0.0.1");
    CHECK_INTEQ(verdict_of(pm, "e.com/l", "e.com/item?id=7"), PAGEMAP_NEXT_PRIVATE);
    CHECK_INTEQ(verdict_of(pm, "e.com/l", "e.com/confirm/8f3a9b2c1d"), PAGEMAP_NEXT_PRIVATE);
    CHECK_INTEQ(verdict_of(pm, "e.com/l", "e.com/plain"), PAGEMAP_NEXT_LIKELY);
    go(pm, "e.com/l", "https://e.com/item?id=7", "10.0.0.2");
    CHECK_INTEQ(verdict_of(pm, "e.com/l", "e.com/item?id=7"), PAGEMAP_NEXT_LIKELY);
    /* an empty client does not count as a distinct one */
    go(pm, "e.com/l", "https://e.com/confirm/8f3a9b2c1d", "");
    CHECK_INTEQ(verdict_of(pm, "e.com/l", "e.com/confirm/8f3a9b2c1d"), PAGEMAP_NEXT_PRIVATE);
    pagemap_destroy(pm);
}

static void test_deny(void)
{
    const char *denied[] = {
        "https://e.com/logout",
        "https://e.com/user/LogOut.php",
        "https://e.com/account/sign-out",
        "https://e.com/post/12/delete",
        "https://e.com/delete_item.php?id=3",
        "https://e.com/x?a=1&do=remove",
        "https://e.com/wp-login.php?action=logout",
        "https://e.com/index.php?ACTION=view",
        "https://e.com/shop/add-to-cart.php?p=1",
        "https://e.com/index.php?page=cart",
        "https://e.com/checkout",
        "https://e.com/wp-admin/",
        "https://e.com/news/unsubscribe?u=1",
        "https://e.com/l%6Fgout", /* percent-encoded */
        "https://e.com/x?d%6F=1", /* an encoded key */
        "https://e.com/a?x=log%2Dout",
        "https://e.com/%00", /* an encoded NUL: cannot be read, denied */
        "/logout",           /* a path alone */
    };
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        if (!speculation_denied(denied[i], NULL, 0))
            fprintf(stderr, "not denied: %s\n", denied[i]);
        CHECK(speculation_denied(denied[i], NULL, 0));
    }
    const char *allowed[] = {
        "https://e.com/",
        "https://e.com/about",
        "https://e.com/item?id=12&sort=asc",
        "https://e.com/docs/action-movies", /* a word, not a key */
        "https://e.com/x?redo=1",           /* not the key do */
        "https://logout.e.com/about",       /* the authority is not looked at */
        "https://e.com/about#logout",       /* nor the fragment */
    };
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        if (speculation_denied(allowed[i], NULL, 0))
            fprintf(stderr, "denied: %s\n", allowed[i]);
        CHECK(!speculation_denied(allowed[i], NULL, 0));
    }
    CHECK(speculation_denied(NULL, NULL, 0));
    const char *mine[] = {"", "private", "sid="};
    CHECK(speculation_denied("https://e.com/Private/x", mine, 3));
    CHECK(speculation_denied("https://e.com/x?SID=1", mine, 3));
    CHECK(!speculation_denied("https://e.com/logout", mine, 3)); /* not the defaults */
    CHECK(!speculation_denied("https://e.com/x?sid", mine, 2));
    size_t nd = 0;
    const char *const *d = speculation_default_deny(&nd);
    CHECK(nd >= 15 && d != NULL);
    /* longer than SPECULATION_MAX_URL: denied */
    char *longurl = malloc(SPECULATION_MAX_URL + 32);
    strcpy(longurl, "https://e.com/");
    memset(longurl + 14, 'a', SPECULATION_MAX_URL + 10);
    longurl[14 + SPECULATION_MAX_URL + 10] = '\0';
    CHECK(speculation_denied(longurl, NULL, 0));
    longurl[14 + SPECULATION_MAX_URL - 2] = '\0';
    CHECK(!speculation_denied(longurl, NULL, 0));
    free(longurl);
    CHECK(speculation_is_rules_url("https://e.com/.well-known/herald/speculation.json?page=x"));
    CHECK(speculation_is_rules_url("e.com/.well-known/herald/speculation.json"));
    CHECK(speculation_is_rules_url("/.well-known/herald/speculation.json"));
    CHECK(!speculation_is_rules_url("https://e.com/.well-known/herald/speculation.jsonx"));
    CHECK(!speculation_is_rules_url("https://e.com/"));
    /* in the map: a denied next page is never proposed, even pinned */
    pagemap_t *pm = new_map();
    go(pm, "e.com/a", "https://e.com/logout", "c1");
    go(pm, "e.com/a", "https://e.com/logout", "c2");
    CHECK_INTEQ(pagemap_next_set_state(pm, "e.com/a", "https://e.com/cart", PAGEMAP_EDGE_PINNED),
                0);
    go(pm, "e.com/q", "https://e.com/cart", "c1");
    CHECK_INTEQ(verdict_of(pm, "e.com/a", "e.com/logout"), PAGEMAP_NEXT_DENIED);
    CHECK_INTEQ(verdict_of(pm, "e.com/a", "e.com/cart"), PAGEMAP_NEXT_DENIED);
    pagemap_spec_t spec;
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/a", NULL, NULL, NULL, &spec), 0);
    CHECK_INTEQ(spec.n, 0);
    pagemap_spec_dispose(&spec);
    /* with the operator's own list only */
    pagemap_spec_opts_t o;
    pagemap_spec_opts_init(&o);
    const char *none[] = {"nothing-matches-this"};
    o.deny = none;
    o.ndeny = 1;
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/a", NULL, NULL, &o, &spec), 0);
    CHECK_INTEQ(spec.n, 2);
    pagemap_spec_dispose(&spec);
    pagemap_destroy(pm);
}

/* ---- pins, bans, selection, eagerness, template fallback ----------------- */

static void test_selection(void)
{
    pagemap_t *pm = new_map();
    /*
     * 11 sessions away from a: b in the first 10, c too in sessions 4..9, d
     * in the last only. P(b) = (0.9 + ... + 0.9^10) / 6.862 = 0.854,
     * P(c) = (0.9 + ... + 0.9^6) / 6.862 = 0.615, P(d) = 1 / 6.862.
     */
    for (int i = 0; i < 10; i++) {
        char client[16];
        snprintf(client, sizeof(client), "10.0.0.%d", i);
        navspec_t s = {.from = "e.com/a", .url = "https://e.com/b", .client = client};
        CHECK_INTEQ(nav(pm, &s), 0);
        navspec_t t = {
            .from = "e.com/a", .url = "https://e.com/c", .client = client, .pair_only = true};
        if (i >= 4)
            CHECK_INTEQ(nav(pm, &t), 0);
    }
    go(pm, "e.com/a", "https://e.com/d", "x"); /* one session only */
    {
        bool f;
        pagemap_next_info_t x = next_of(pm, "e.com/a", "e.com/b", &f);
        CHECK(NEAR(x.probability, 5.861894 / 6.861894));
        x = next_of(pm, "e.com/a", "e.com/c", &f);
        CHECK(NEAR(x.probability, 4.217031 / 6.861894));
        x = next_of(pm, "e.com/a", "e.com/d", &f);
        CHECK(NEAR(x.probability, 1 / 6.861894));
    }
    pagemap_spec_t spec;
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/a", "e.com/*", NULL, NULL, &spec), 0);
    CHECK_INTEQ(spec.source, PAGEMAP_PLAN_PAGE);
    CHECK_INTEQ(spec.n, 2);
    if (spec.n == 2) {
        /* b is the most likely: with P >= 0.5 immediate; c moderate; d needs 2 sessions */
        CHECK_STREQ(spec.items[0].url, "https://e.com/b");
        CHECK_STREQ(spec.items[0].key, "e.com/b");
        CHECK(spec.items[0].probability > spec.items[1].probability);
        CHECK_STREQ(spec.items[1].url, "https://e.com/c");
        CHECK_INTEQ(spec.items[1].eagerness, PAGEMAP_EAGER_MODERATE);
    }
    bool f;
    pagemap_next_info_t b = next_of(pm, "e.com/a", "e.com/b", &f);
    CHECK_INTEQ(spec.items[0].eagerness, b.probability >= PAGEMAP_SPEC_IMMEDIATE
                                             ? PAGEMAP_EAGER_IMMEDIATE
                                             : PAGEMAP_EAGER_MODERATE);
    CHECK_INTEQ(verdict_of(pm, "e.com/a", "e.com/d"), PAGEMAP_NEXT_TWO_NAVS);
    pagemap_spec_dispose(&spec);
    /* the JSON rule set */
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/a", NULL, NULL, NULL, &spec), 0);
    char *json = NULL;
    size_t len = 0;
    CHECK_INTEQ(speculation_rules_json(&spec, SPECULATION_PREFETCH, &json, &len), 0);
    json_error_t err;
    json_t *root = json_loads(json, 0, &err);
    CHECK(root != NULL && strlen(json) == len);
    json_t *rules = json_object_get(root, "prefetch");
    CHECK(json_is_array(rules) && json_array_size(rules) == 2);
    json_t *r0 = json_array_get(rules, 0), *r1 = json_array_get(rules, 1);
    CHECK_STREQ(json_string_value(json_object_get(r0, "source")), "list");
    CHECK_STREQ(json_string_value(json_object_get(r0, "eagerness")), "immediate");
    CHECK_STREQ(json_string_value(json_array_get(json_object_get(r0, "urls"), 0)),
                "https://e.com/b");
    CHECK_INTEQ(json_array_size(json_object_get(r0, "urls")), 1);
    CHECK_STREQ(json_string_value(json_object_get(r1, "eagerness")), "moderate");
    CHECK_STREQ(json_string_value(json_array_get(json_object_get(r1, "urls"), 0)),
                "https://e.com/c");
    CHECK_INTEQ(json_object_size(root), 1);
    json_decref(root);
    free(json);
    CHECK_INTEQ(speculation_rules_json(&spec, SPECULATION_PRERENDER, &json, NULL), 0);
    root = json_loads(json, 0, &err);
    CHECK(json_is_array(json_object_get(root, "prerender")) &&
          json_object_get(root, "prefetch") == NULL);
    json_decref(root);
    free(json);
    pagemap_spec_dispose(&spec);
    pagemap_spec_t empty = {0};
    CHECK_INTEQ(speculation_rules_json(&empty, SPECULATION_PREFETCH, &json, NULL), 0);
    CHECK_STREQ(json, "{\"prefetch\":[]}");
    free(json);
    /* options: a higher minimum, a smaller max, no immediate */
    pagemap_spec_opts_t o;
    pagemap_spec_opts_init(&o);
    CHECK(NEAR(o.min_probability, 0.3) && o.max_urls == 5 && NEAR(o.immediate, 0.5));
    o.min_probability = 0.7;
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/a", NULL, NULL, &o, &spec), 0);
    CHECK_INTEQ(spec.n, 1);
    pagemap_spec_dispose(&spec);
    pagemap_spec_opts_init(&o);
    o.max_urls = 1;
    o.immediate = 1.01;
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/a", NULL, NULL, &o, &spec), 0);
    CHECK(spec.n == 1 && spec.items[0].eagerness == PAGEMAP_EAGER_MODERATE);
    pagemap_spec_dispose(&spec);
    /* pins: first, moderate, even without navigations, once a navigation of it was seen */
    CHECK_INTEQ(pagemap_next_set_state(pm, "e.com/a", "https://e.com/p", PAGEMAP_EDGE_PINNED), 0);
    CHECK_INTEQ(verdict_of(pm, "e.com/a", "e.com/p"), PAGEMAP_NEXT_UNSAFE); /* never seen */
    navspec_t seen = {.url = "https://e.com/p"};
    CHECK_INTEQ(nav(pm, &seen), 0);
    CHECK_INTEQ(verdict_of(pm, "e.com/a", "e.com/p"), PAGEMAP_NEXT_PINNED);
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/a", NULL, NULL, NULL, &spec), 0);
    CHECK(spec.n == 3 && spec.items[0].pinned && strcmp(spec.items[0].url, "https://e.com/p") == 0);
    CHECK(spec.n == 3 && spec.items[0].eagerness == PAGEMAP_EAGER_MODERATE);
    CHECK(spec.n == 3 && spec.items[1].eagerness == PAGEMAP_EAGER_IMMEDIATE);
    pagemap_spec_dispose(&spec);
    /* a ban: never proposed, counts nothing */
    CHECK_INTEQ(pagemap_next_set_state(pm, "e.com/a", "https://e.com/b", PAGEMAP_EDGE_BANNED), 0);
    b = next_of(pm, "e.com/a", "e.com/b", &f);
    uint64_t navs = b.navs;
    go(pm, "e.com/a", "https://e.com/b", "y");
    b = next_of(pm, "e.com/a", "e.com/b", &f);
    CHECK_INTEQ(b.navs, navs);
    CHECK_INTEQ(b.verdict, PAGEMAP_NEXT_BANNED);
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/a", NULL, NULL, NULL, &spec), 0);
    CHECK(!spec_has(&spec, "https://e.com/b"));
    pagemap_spec_dispose(&spec);
    CHECK_INTEQ(pagemap_next_set_state(pm, "e.com/a", "https://e.com/b", PAGEMAP_EDGE_LEARNED), 0);
    CHECK_INTEQ(verdict_of(pm, "e.com/a", "e.com/b"), PAGEMAP_NEXT_LIKELY);
    CHECK_INTEQ(pagemap_next_set_state(pm, "e.com/a", "https://e.com/none", PAGEMAP_EDGE_LEARNED),
                HERALD_ENOTFOUND);
    CHECK_INTEQ(pagemap_next_set_state(pm, "e.com/a", "/relative", PAGEMAP_EDGE_PINNED),
                HERALD_EINVAL);
    /* the template: a page never seen gets its siblings' next pages; never itself */
    go(pm, "e.com/item/1", "https://e.com/about", "c1");
    go(pm, "e.com/item/2", "https://e.com/about", "c2");
    pagemap_nav_t sib = {.page_key = "e.com/item/3",
                         .url = "https://e.com/item/3",
                         .from_page_key = "e.com/item/1",
                         .from_template_key = "e.com/item/*",
                         .client = "c3",
                         .status = 200,
                         .html = true,
                         .count_from = true,
                         .count_pair = true,
                         .count_template_from = true,
                         .count_template_pair = true};
    const char *sibc[] = {"c3", "c4", "c3"}; /* an id in the URL: two clients */
    for (int i = 0; i < 3; i++) {
        sib.client = sibc[i];
        CHECK_INTEQ(pagemap_commit_navigation(pm, &sib), 0);
    }
    /* the template entry was fed only by the last navigations (go() passes no template) */
    navspec_t t1 = {.from = "e.com/item/1",
                    .tfrom = "e.com/item/*",
                    .url = "https://e.com/about",
                    .client = "c1"};
    navspec_t t2 = t1;
    t2.from = "e.com/item/2";
    t2.client = "c2";
    CHECK_INTEQ(nav(pm, &t1), 0);
    CHECK_INTEQ(nav(pm, &t2), 0);
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/item/9", "e.com/item/*", "e.com", NULL, &spec), 0);
    CHECK_INTEQ(spec.source, PAGEMAP_PLAN_TEMPLATE);
    CHECK(spec_has(&spec, "https://e.com/about") && spec_has(&spec, "https://e.com/item/3"));
    pagemap_spec_dispose(&spec);
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/item/3", "e.com/item/*", "e.com", NULL, &spec), 0);
    CHECK(spec_has(&spec, "https://e.com/about") && !spec_has(&spec, "https://e.com/item/3"));
    pagemap_spec_dispose(&spec);
    /* another authority than the page's: never */
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/a", NULL, "www.e.com", NULL, &spec), 0);
    CHECK_INTEQ(spec.n, 0);
    pagemap_spec_dispose(&spec);
    /* unknown page, no template: nothing */
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/nope", NULL, NULL, NULL, &spec), 0);
    CHECK(spec.n == 0 && spec.source == PAGEMAP_PLAN_NONE);
    CHECK_INTEQ(pagemap_speculation(NULL, "e.com/a", NULL, NULL, NULL, &spec), HERALD_EINVAL);
    pagemap_destroy(pm);
}

/* ---- prefetch use accounting -------------------------------------------- */

static void check_sum(const prefetch_t *t)
{
    prefetch_stats_t st;
    prefetch_stats(t, &st);
    CHECK_INTEQ(st.sent, st.used + st.unused + st.unknown + st.pending);
}

static void test_prefetch_use(void)
{
    pagemap_t *pm = new_map();
    for (int i = 0; i < 4; i++) {
        char c[8];
        snprintf(c, sizeof(c), "c%d", i);
        go(pm, "e.com/a", "https://e.com/b", c);
        go(pm, "e.com/a", "https://e.com/c", c);
    }
    prefetch_t *t = NULL;
    CHECK_INTEQ(prefetch_create(pm, &t), 0);
    const int64_t W = 1700000000000;
    /* used: b's subresource with Referer b */
    CHECK_INTEQ(prefetch_sent(t, "1.1.1.1", "https://e.com/b", "https://e.com/a", 0, W), 0);
    CHECK_INTEQ(prefetch_pending(t, "1.1.1.1"), 1);
    CHECK_INTEQ(prefetch_next_due(t), PREFETCH_LIFETIME_MS);
    prefetch_request(t, "2.2.2.2", "https://e.com/x.css", "https://e.com/b", false, 10, W);
    CHECK_INTEQ(prefetch_pending(t, "1.1.1.1"), 1); /* another client says nothing */
    prefetch_request(t, "1.1.1.1", "https://e.com/b.css", "https://e.com/b", false, 10, W);
    CHECK_INTEQ(prefetch_pending(t, "1.1.1.1"), 0);
    /* used: a navigation onward from c */
    CHECK_INTEQ(prefetch_sent(t, "1.1.1.1", "https://e.com/c", "https://e.com/a", 20, W), 0);
    prefetch_request(t, "1.1.1.1", "https://e.com/d", "https://e.com/c", true, 30, W);
    /* unused: a navigation to b comes first (even with its own follow-ups after) */
    CHECK_INTEQ(prefetch_sent(t, "1.1.1.1", "https://e.com/b", "https://e.com/a", 40, W), 0);
    prefetch_request(t, "1.1.1.1", "https://e.com/b", "https://e.com/a", true, 50, W);
    prefetch_request(t, "1.1.1.1", "https://e.com/b.css", "https://e.com/b", false, 60, W);
    /* unknown: nothing within the lifetime */
    CHECK_INTEQ(prefetch_sent(t, "1.1.1.1", "https://e.com/c", "https://e.com/a", 100, W), 0);
    prefetch_expire(t, 100 + PREFETCH_LIFETIME_MS - 1, W);
    CHECK_INTEQ(prefetch_pending(t, "1.1.1.1"), 1);
    prefetch_expire(t, 100 + PREFETCH_LIFETIME_MS, W);
    CHECK_INTEQ(prefetch_pending(t, "1.1.1.1"), 0);
    CHECK_INTEQ(prefetch_next_due(t), UINT64_MAX);
    /* a late request names it no more: still unknown, not used */
    prefetch_request(t, "1.1.1.1", "https://e.com/c.css", "https://e.com/c", false,
                     200 + PREFETCH_LIFETIME_MS, W);
    prefetch_stats_t st;
    prefetch_stats(t, &st);
    CHECK_INTEQ(st.sent, 4);
    CHECK_INTEQ(st.used, 2);
    CHECK_INTEQ(st.unused, 1);
    CHECK_INTEQ(st.unknown, 1);
    CHECK_INTEQ(st.clients, 0);
    check_sum(t);
    bool f;
    pagemap_next_info_t b = next_of(pm, "e.com/a", "e.com/b", &f);
    CHECK(b.sent == 2 && b.used == 1 && b.unused == 1 && b.unknown == 0);
    CHECK(NEAR(b.use_hits, 0.9) && NEAR(b.use_known, 1.9) && b.use_n == 2);
    CHECK_INTEQ(b.last_outcome_ms, W);
    pagemap_next_info_t c = next_of(pm, "e.com/a", "e.com/c", &f);
    CHECK(c.sent == 2 && c.used == 1 && c.unused == 0 && c.unknown == 1);
    /* rule lost: mostly unused over >= 4 known outcomes; unknowns do not count */
    for (int i = 0; i < 10; i++) {
        CHECK_INTEQ(prefetch_sent(t, "1.1.1.1", "https://e.com/c", "https://e.com/a", 1000, W), 0);
        prefetch_expire(t, 1000 + PREFETCH_LIFETIME_MS, W);
    }
    CHECK_INTEQ(verdict_of(pm, "e.com/a", "e.com/c"), PAGEMAP_NEXT_LIKELY);
    for (int i = 0; i < 3; i++) {
        CHECK_INTEQ(prefetch_sent(t, "1.1.1.1", "https://e.com/c", "https://e.com/a", 2000, W), 0);
        prefetch_request(t, "1.1.1.1", "https://e.com/c", NULL, true, 2001, W);
    }
    pagemap_spec_opts_t o;
    pagemap_spec_opts_init(&o);
    o.now_ms = W + 1;
    pagemap_next_info_t *v = NULL;
    size_t n = 0;
    /* 4 known: used once then 3 unused: 0.729 / 3.439 = 0.21 < 0.3 */
    CHECK_INTEQ(pagemap_next_get(pm, "e.com/a", &o, &v, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].key, "e.com/c") == 0)
            CHECK_INTEQ(v[i].verdict, PAGEMAP_NEXT_UNUSED);
    pagemap_next_infos_free(v, n);
    pagemap_spec_t spec;
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/a", NULL, NULL, &o, &spec), 0);
    CHECK(!spec_has(&spec, "https://e.com/c") && spec_has(&spec, "https://e.com/b"));
    pagemap_spec_dispose(&spec);
    /* a day after its last known outcome it is tried again, with a fresh record */
    o.now_ms = W + PAGEMAP_SPEC_RETRY_MS;
    CHECK_INTEQ(pagemap_speculation(pm, "e.com/a", NULL, NULL, &o, &spec), 0);
    CHECK(spec_has(&spec, "https://e.com/c"));
    pagemap_spec_dispose(&spec);
    const int64_t W2 = W + PAGEMAP_SPEC_RETRY_MS;
    CHECK_INTEQ(prefetch_sent(t, "1.1.1.1", "https://e.com/c", "https://e.com/a", 3000, W2), 0);
    prefetch_request(t, "1.1.1.1", "https://e.com/c.js", "https://e.com/c", false, 3001, W2);
    c = next_of(pm, "e.com/a", "e.com/c", &f);
    CHECK(c.use_n == 1 && NEAR(c.use_hits, 1.0) && NEAR(c.use_known, 1.0));
    check_sum(t);
    /* caps: per client, the oldest is given up (unknown); a repeat replaces */
    char url[64];
    for (int i = 0; i < PREFETCH_PER_CLIENT + 3; i++) {
        snprintf(url, sizeof(url), "https://e.com/p%d", i);
        CHECK_INTEQ(prefetch_sent(t, "3.3.3.3", url, "https://e.com/a", 4000 + (uint64_t)i, W), 0);
    }
    CHECK_INTEQ(prefetch_pending(t, "3.3.3.3"), PREFETCH_PER_CLIENT);
    CHECK_INTEQ(prefetch_sent(t, "3.3.3.3", "https://e.com/p5", "https://e.com/a", 5000, W), 0);
    CHECK_INTEQ(prefetch_pending(t, "3.3.3.3"), PREFETCH_PER_CLIENT);
    check_sum(t);
    for (int i = 0; i < PREFETCH_MAX_CLIENTS + 5; i++) {
        char cl[32];
        snprintf(cl, sizeof(cl), "client-%d", i);
        CHECK_INTEQ(prefetch_sent(t, cl, "https://e.com/b", NULL, 6000 + (uint64_t)i, W), 0);
    }
    prefetch_stats(t, &st);
    CHECK_INTEQ(st.clients, PREFETCH_MAX_CLIENTS);
    CHECK_INTEQ(prefetch_pending(t, "3.3.3.3"), 0); /* the least recently active went */
    CHECK_INTEQ(prefetch_pending(t, "client-0"), 0);
    CHECK_INTEQ(prefetch_pending(t, "client-6"), 1);
    check_sum(t);
    /* bad input */
    CHECK_INTEQ(prefetch_sent(t, "", "https://e.com/b", NULL, 0, W), HERALD_EINVAL);
    CHECK_INTEQ(prefetch_sent(t, "x", "/relative", NULL, 0, W), HERALD_EINVAL);
    CHECK_INTEQ(pagemap_note_prefetch(pm, "e.com/a", NULL, "e.com/none", PAGEMAP_PREFETCH_SENT, W),
                HERALD_ENOTFOUND);
    prefetch_destroy(t);
    pagemap_destroy(pm);
}

/* ---- snapshot ----------------------------------------------------------- */

static void test_snapshot(void)
{
    pagemap_t *pm = new_map();
    go(pm, "e.com/a", "https://e.com/b", "c1");
    go(pm, "e.com/a", "https://e.com/b", "c2");
    go(pm, "e.com/a", "https://e.com/c?x=1", "c1");
    navspec_t sc = {.url = "https://e.com/c?x=1", .set_cookie = true, .status = 200, .html = true};
    CHECK_INTEQ(nav(pm, &sc), 0);
    CHECK_INTEQ(pagemap_next_set_state(pm, "e.com/a", "https://e.com/pin", PAGEMAP_EDGE_PINNED), 0);
    CHECK_INTEQ(pagemap_note_prefetch(pm, "e.com/a", NULL, "e.com/b", PAGEMAP_PREFETCH_SENT, 5), 0);
    CHECK_INTEQ(pagemap_note_prefetch(pm, "e.com/a", NULL, "e.com/b", PAGEMAP_PREFETCH_USED, 7), 0);
    char *json = NULL;
    CHECK_INTEQ(snapshot_export(pm, &json, NULL), 0);
    pagemap_t *copy = new_map();
    char reason[200];
    CHECK_INTEQ(snapshot_import(copy, json, strlen(json), SNAPSHOT_REPLACE, reason, sizeof(reason)),
                0);
    char *again = NULL;
    CHECK_INTEQ(snapshot_export(copy, &again, NULL), 0);
    CHECK_STREQ(json, again);
    free(again);
    bool f;
    pagemap_next_info_t b = next_of(copy, "e.com/a", "e.com/b", &f);
    CHECK(f && b.navs == 2 && b.sent == 1 && b.used == 1 && b.nclients == 2 && b.status == 200);
    CHECK_INTEQ(b.last_outcome_ms, 7);
    pagemap_next_info_t c = next_of(copy, "e.com/a", "e.com/c?x=1", &f);
    CHECK(f && c.unsafe == PAGEMAP_UNSAFE_SET_COOKIE && c.private_url && c.nclients == 1);
    pagemap_next_info_t p = next_of(copy, "e.com/a", "e.com/pin", &f);
    CHECK(f && p.state == PAGEMAP_EDGE_PINNED);
    pagemap_page_info_t a = page_of(copy, "e.com/a");
    CHECK(NEAR(a.navs, 2.71) && a.navs_total == 3);
    /* the page object of the admin carries them too */
    char *page = NULL;
    CHECK_INTEQ(snapshot_export_page(copy, "e.com/a", &page, NULL), 0);
    json_error_t err;
    json_t *po = json_loads(page, 0, &err);
    json_t *next = json_object_get(po, "next");
    CHECK(json_is_array(next) && json_array_size(next) == 3);
    json_t *first = json_array_get(next, 0), *xc = NULL;
    CHECK_STREQ(json_string_value(json_object_get(first, "key")), "e.com/b"); /* most likely */
    CHECK(json_is_real(json_object_get(first, "probability")));
    for (size_t i = 0; i < json_array_size(next); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(next, i), "key")),
                    "e.com/c?x=1"))
            xc = json_array_get(next, i);
    CHECK_STREQ(json_string_value(json_object_get(xc, "verdict")), "unsafe");
    CHECK_STREQ(json_string_value(json_array_get(json_object_get(xc, "unsafe"), 0)), "set-cookie");
    json_decref(po);
    free(page);
    CHECK_INTEQ(snapshot_export_list(copy, 0, 10, NULL, &page, NULL), 0);
    po = json_loads(page, 0, &err);
    json_t *l0 = json_array_get(json_object_get(po, "pages"), 0);
    CHECK(json_object_get(l0, "next") == NULL);
    CHECK_INTEQ(json_integer_value(json_object_get(l0, "next_count")), 3);
    json_decref(po);
    free(page);
    /* a version 2 document from before next pages, and a version 1 one */
    const char *v2 =
        "{\"version\":2,\"pages\":[{\"key\":\"e.com/old\",\"visits\":1.0,"
        "\"visits_total\":1,\"status\":200,\"edges\":[{\"key\":\"https://e.com/a.css\","
        "\"url\":\"https://e.com/a.css\",\"kind\":\"style\",\"strong\":true}]}]}";
    CHECK_INTEQ(snapshot_import(copy, v2, strlen(v2), SNAPSHOT_REPLACE, reason, sizeof(reason)), 0);
    pagemap_page_info_t old = page_of(copy, "e.com/old");
    CHECK(old.nedges == 1 && old.nnext == 0 && old.navs_total == 0);
    const char *v1 = "{\"version\":1,\"pages\":[{\"key\":\"e.com/v1\",\"edges\":[{\"key\":"
                     "\"https://e.com/a.css\",\"sources\":[\"html\"],\"cacheable\":true}]}]}";
    CHECK_INTEQ(snapshot_import(copy, v1, strlen(v1), SNAPSHOT_REPLACE, reason, sizeof(reason)), 0);
    old = page_of(copy, "e.com/v1");
    CHECK(old.nedges == 1 && old.nnext == 0);
    /* malformed next pages are refused, the map untouched */
    const char *bad[] = {
        "{\"version\":2,\"pages\":[{\"key\":\"k\",\"next\":{}}]}",
        "{\"version\":2,\"pages\":[{\"key\":\"k\",\"next\":[{\"key\":\"e.com/b\"}]}]}",
        "{\"version\":2,\"pages\":[{\"key\":\"k\",\"next\":[{\"key\":\"e.com/b\",\"url\":\"/"
        "b\"}]}]}",
        "{\"version\":2,\"pages\":[{\"key\":\"k\",\"navs\":1,\"next\":[{\"key\":\"e.com/b\","
        "\"url\":\"https://e.com/b\",\"count\":2}]}]}",
        "{\"version\":2,\"pages\":[{\"key\":\"k\",\"next\":[{\"key\":\"e.com/b\","
        "\"url\":\"https://e.com/b\",\"unsafe\":[\"nope\"]}]}]}",
        "{\"version\":2,\"pages\":[{\"key\":\"k\",\"next\":[{\"key\":\"e.com/b\","
        "\"url\":\"https://e.com/b\",\"use_hits\":2,\"use_known\":1}]}]}",
        "{\"version\":2,\"pages\":[{\"key\":\"k\",\"next\":[{\"key\":\"e.com/b\","
        "\"url\":\"https://e.com/b\",\"clients\":[1,2,3]}]}]}",
        "{\"version\":2,\"pages\":[{\"key\":\"k\",\"next\":[{\"key\":\"e.com/b\","
        "\"url\":\"https://e.com/b\",\"state\":\"odd\"}]}]}",
        "{\"version\":2,\"pages\":[{\"key\":\"k\",\"navs\":-1}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc =
            snapshot_import(copy, bad[i], strlen(bad[i]), SNAPSHOT_REPLACE, reason, sizeof(reason));
        if (rc != HERALD_EPARSE)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK_INTEQ(rc, HERALD_EPARSE);
    }
    old = page_of(copy, "e.com/v1");
    CHECK_INTEQ(old.nedges, 1);
    /* merging keeps the shared facts consistent (refcounts) */
    CHECK_INTEQ(snapshot_import(copy, json, strlen(json), SNAPSHOT_MERGE, reason, sizeof(reason)),
                0);
    CHECK_INTEQ(snapshot_import(copy, json, strlen(json), SNAPSHOT_MERGE, reason, sizeof(reason)),
                0);
    pagemap_stats_t st;
    pagemap_stats(copy, &st);
    CHECK_INTEQ(st.nexts, 3);
    CHECK_INTEQ(st.targets, 3);
    free(json);
    pagemap_destroy(copy);
    pagemap_destroy(pm);
}

/* ---- inline speculation rules ------------------------------------------- */

static void test_inline_rules(void)
{
    pagemap_t *pm = new_map();
    pagemap_set_inline_rules(pm, "e.com/a", true); /* not in the map: ignored */
    CHECK(!pagemap_inline_rules(pm, "e.com/a"));
    go(pm, "e.com/a", "https://e.com/b", "c1"); /* creates A's entry */
    CHECK(!pagemap_inline_rules(pm, "e.com/a"));
    pagemap_set_inline_rules(pm, "e.com/a", true);
    CHECK(pagemap_inline_rules(pm, "e.com/a"));
    CHECK(!pagemap_inline_rules(pm, "e.com/b"));
    pagemap_set_inline_rules(pm, "e.com/a", false); /* the last scan decides */
    CHECK(!pagemap_inline_rules(pm, "e.com/a"));
    pagemap_set_inline_rules(NULL, "e.com/a", true);
    CHECK(!pagemap_inline_rules(NULL, "e.com/a"));
    CHECK(!pagemap_inline_rules(pm, NULL));
    pagemap_destroy(pm);
}

int main(void)
{
    test_probabilities();
    test_session_navigations();
    test_reload_and_purpose();
    test_session_prefetch();
    test_caps();
    test_safety();
    test_private_urls();
    test_deny();
    test_selection();
    test_prefetch_use();
    test_snapshot();
    test_inline_rules();
    return TESTUTIL_SUMMARY();
}
