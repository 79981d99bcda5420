/*
 * proxy/deliver/learning.c: the adapter's visit life cycle on a real loop without
 * sockets (classification and attribution rules are unit-tested in
 * tests/unit/learn/session_test.c): a page visit, follow-ups
 * attributed by Referer (CSS -> font chain) and by the window, a forged
 * Referer ignored, HTML discovery on the thread pool, commit once at
 * connection release.
 */
#include "learning.h"

#include <string.h>
#include <uv.h>

#include "pagemap.h"
#include "config.h"
#include "testutil.h"

/* ---- visits on a loop ---- */

static uv_loop_t loop;
static exchange_ctx_t x; /* learning is its only observer, its hooks driven by hand */
static config_t cfg;

#define HOOK(h, ...) x.observers[0]->h(x.observer_data[0], __VA_ARGS__)

static exchange_client_t *client_open(void)
{
    return exchange_client_open(&x, EXCHANGE_HTTP11, -1, false, "192.0.2.1", 4321);
}

static exchange_t *req(exchange_client_t *lc, const char *path, const char *accept,
                       const char *referer)
{
    exchange_t *ex = exchange_create(&x, lc, NULL, NULL);
    ex->method = "GET";
    ex->scheme = "http";
    ex->authority = "e.test";
    ex->path = path;
    if (accept != NULL)
        headers_add(&ex->req_headers, &ex->pool, "accept", 6, accept, strlen(accept));
    if (referer != NULL)
        headers_add(&ex->req_headers, &ex->pool, "referer", 7, referer, strlen(referer));
    HOOK(on_request, ex);
    return ex;
}

static void respond(exchange_t *ex, int status, const char *ct, const char *body)
{
    ex->status = status;
    if (ct != NULL)
        headers_add(&ex->resp_headers, &ex->pool, "content-type", 12, ct, strlen(ct));
    HOOK(on_response_head, ex, true);
    if (body != NULL) {
        size_t n;
        ex->resp_body_bytes = strlen(body);
        HOOK(on_response_body, ex, (const uint8_t *)body, strlen(body), &n);
    }
    HOOK(on_response_end, ex, true);
}

/* The client is done with ex, never started at an origin: it is freed
 * (learning's on_free first). */
static void drop(exchange_t *ex)
{
    exchange_frontend_done(ex);
}

static bool edge(pagemap_t *pm, const char *page, const char *asset, unsigned *sources)
{
    pagemap_page_info_t info;
    pagemap_edge_info_t *e = NULL;
    size_t n = 0;
    if (pagemap_page_get(pm, page, &info, &e, &n) != 0)
        return false;
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].key, asset) == 0) {
            found = true;
            if (sources)
                *sources = e[i].sources;
        }
    }
    pagemap_edge_infos_free(e, n);
    pagemap_page_info_dispose(&info);
    return found;
}

static void test_visit(void)
{
    pagemap_t *pm = NULL;
    CHECK(pagemap_create(NULL, &pm) == 0);
    CHECK(uv_loop_init(&loop) == 0);
    cfg.learn_window = 5;
    cfg.min_confidence = 0.5;
    exchange_ctx_init(&x, &loop, &cfg, 0);
    learning_t *L = learning_attach(&x, pm, NULL);
    CHECK(x.nobservers == 1);

    exchange_client_t *lc = client_open();
    CHECK(lc->state[0] != NULL);
    exchange_t *page = req(lc, "/p?x=1", "text/html", NULL);
    CHECK(learning_is_page(page));
    CHECK_STREQ(learning_page_key(page), "e.test/p?x=1");
    CHECK_STREQ(learning_page_url(page), "http://e.test/p?x=1");
    respond(page, 200, "text/html; charset=utf-8",
            "<html><head><link rel=stylesheet href=/s.css></head>"
            "<body><img src=/i.png></body></html>");
    /* discovery runs on the thread pool */
    uv_run(&loop, UV_RUN_NOWAIT);

    exchange_t *css = req(lc, "/s.css", "text/css", "http://e.test/p?x=1");
    CHECK(!learning_is_page(css));
    CHECK(learning_client_requested(css, "http://e.test/s.css"));
    respond(css, 200, "text/css", "@font-face{src:url(/f.woff2)} .a{background:url(/bg.png)}");
    /* a font named by the followed-up CSS, Referer = the CSS */
    exchange_t *font = req(lc, "/f.woff2", NULL, "http://e.test/s.css");
    respond(font, 200, "font/woff2", "xx");
    /* no Referer: the most recent page in the window */
    exchange_t *js = req(lc, "/late.js", NULL, NULL);
    respond(js, 200, "application/javascript", "1");
    /* a Referer naming a page never visited on this connection: ignored */
    exchange_t *forged = req(lc, "/junk.txt", NULL, "http://e.test/other");
    respond(forged, 200, "text/plain", "j");
    drop(page);
    drop(css);
    drop(font);
    drop(js);
    drop(forged);
    /* let the CSS work finish, then the connection closes: the visit commits */
    while (uv_run(&loop, UV_RUN_NOWAIT) != 0)
        uv_sleep(1);
    exchange_client_close(lc);
    uv_run(&loop, UV_RUN_DEFAULT);

    unsigned src = 0;
    CHECK(edge(pm, "e.test/p?x=1", "http://e.test/s.css", &src));
    CHECK(src & PAGEMAP_SRC_HTML);
    CHECK(src & PAGEMAP_SRC_FOLLOWUP);
    CHECK(edge(pm, "e.test/p?x=1", "http://e.test/i.png", NULL));
    CHECK(edge(pm, "e.test/p?x=1", "http://e.test/f.woff2", &src));
    CHECK(src & PAGEMAP_SRC_CSS);
    CHECK(edge(pm, "e.test/p?x=1", "http://e.test/bg.png", &src));
    CHECK(src == PAGEMAP_SRC_CSS); /* found in CSS, never fetched */
    CHECK(edge(pm, "e.test/p?x=1", "http://e.test/late.js", &src));
    CHECK(src == PAGEMAP_SRC_FOLLOWUP);
    CHECK(!edge(pm, "e.test/p?x=1", "http://e.test/junk.txt", NULL));

    /* the next visit is planned */
    lc = client_open();
    page = req(lc, "/p?x=1", "text/html", NULL);
    pagemap_plan_t plan;
    CHECK(learning_plan(page, &plan) == 0);
    CHECK(plan.source == PAGEMAP_PLAN_PAGE);
    CHECK(plan.n >= 4);
    if (plan.n > 0)
        CHECK_STREQ(plan.items[0].key, "http://e.test/s.css");
    pagemap_plan_dispose(&plan);
    /* the client leaves before the page is served: nothing is committed */
    drop(page);
    exchange_client_close(lc);
    uv_run(&loop, UV_RUN_DEFAULT);
    pagemap_page_info_t info;
    CHECK(pagemap_page_get(pm, "e.test/p?x=1", &info, NULL, NULL) == 0);
    CHECK(info.visits_total == 1);
    pagemap_page_info_dispose(&info);

    /* curl-like: Accept * / * without Referer is a page only if no visit is
     * open, and a non-HTML answer closes that door again */
    lc = client_open();
    exchange_t *img = req(lc, "/a.png", "*/*", NULL);
    CHECK(learning_is_page(img));
    respond(img, 200, "image/png", "png");
    exchange_t *p2 = req(lc, "/q", "*/*", NULL);
    CHECK(learning_is_page(p2));
    respond(p2, 200, "text/html", "<p>");
    exchange_t *sub = req(lc, "/b.png", "*/*", NULL);
    CHECK(!learning_is_page(sub));
    respond(sub, 200, "image/png", "png");
    drop(img);
    drop(p2);
    drop(sub);
    exchange_client_close(lc);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(edge(pm, "e.test/q", "http://e.test/b.png", NULL));
    CHECK(pagemap_page_get(pm, "e.test/a.png", &info, NULL, NULL) != 0);

    CHECK(uv_loop_close(&loop) == 0);
    learning_detach(L);
    pagemap_destroy(pm);
}

int main(void)
{
    test_visit();
    return TESTUTIL_SUMMARY();
}
