/*
 * Out-of-memory paths of learn/: linked with -Wl,--wrap=malloc,realloc,calloc
 * (and jansson pointed at the same failing allocator) so the k-th allocation
 * fails, for every k until the operation succeeds. Each failing run must
 * return HERALD_ENOMEM, leave the map consistent (every asset entry
 * referenced by an edge) and leak nothing (ASan's leak check at exit).
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "netmem.h"
#include "pagemap.h"
#include "session.h"
#include "snapshot.h"
#include "visit.h"
#include "template.h"
#include "fleetbase.h"
#include "fleetfold.h"
#include "fleetsteer.h"
#include "prefetch.h"
#include "speculation.h"
#include "herald/error.h"
#include "nomem.h"
#include "testutil.h"

/* jansson allocates through json_set_alloc_funcs: the same failing allocator. */
static void *json_malloc(size_t n)
{
    return nomem_should_fail() ? NULL : __real_malloc(n);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* With injection off: every asset entry is referenced by some edge. */
static void check_consistent(pagemap_t *pm)
{
    long saved = nomem_countdown;
    nomem_countdown = -1;
    pagemap_dump_t d;
    CHECK_INTEQ(pagemap_dump(pm, &d), 0);
    size_t n = 0, nn = 0;
    for (size_t i = 0; i < d.n; i++) {
        n += d.pages[i].nedges;
        nn += d.pages[i].nnext;
    }
    char **keys = malloc((n ? n : 1) * sizeof(*keys));
    size_t k = 0;
    for (size_t i = 0; i < d.n; i++)
        for (size_t j = 0; j < d.pages[i].nedges; j++)
            keys[k++] = d.pages[i].edges[j].key;
    qsort(keys, n, sizeof(*keys), cmp_str);
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || strcmp(keys[i], keys[i - 1]) != 0;
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.assets, distinct);
    CHECK_INTEQ(st.edges, n);
    free(keys);
    /* every shared next page is named by some entry */
    keys = malloc((nn ? nn : 1) * sizeof(*keys));
    k = 0;
    for (size_t i = 0; i < d.n; i++)
        for (size_t j = 0; j < d.pages[i].nnext; j++)
            keys[k++] = d.pages[i].next[j].key;
    qsort(keys, nn, sizeof(*keys), cmp_str);
    distinct = 0;
    for (size_t i = 0; i < nn; i++)
        distinct += i == 0 || strcmp(keys[i], keys[i - 1]) != 0;
    CHECK_INTEQ(st.targets, distinct);
    CHECK_INTEQ(st.nexts, nn);
    free(keys);
    pagemap_dump_dispose(&d);
    nomem_countdown = saved;
}

#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((rc = (call)) != 0)                                                                    \
            goto out;                                                                              \
    } while (0)

static int op_pagemap(void)
{
    pagemap_config_t cfg;
    pagemap_config_init(&cfg);
    cfg.max_pages = 3;
    cfg.max_assets_per_page = 3;
    pagemap_t *pm = NULL;
    int rc = pagemap_create(&cfg, &pm);
    if (rc != 0)
        return rc;
    pagemap_item_t it[] = {{.url = "https://e.com/a.css",
                            .kind = PAGEMAP_KIND_STYLE,
                            .as = "style",
                            .sources = PAGEMAP_SRC_HTML},
                           {.url = "https://e.com/b.js?v=1",
                            .kind = PAGEMAP_KIND_SCRIPT,
                            .sources = PAGEMAP_SRC_HTML,
                            .strong = true},
                           {.url = "https://e.com/b.js?v=1",
                            .kind = PAGEMAP_KIND_SCRIPT,
                            .sources = PAGEMAP_SRC_FOLLOWUP},
                           {.url = "https://e.com/c.png",
                            .kind = PAGEMAP_KIND_IMAGE,
                            .sources = PAGEMAP_SRC_CSS,
                            .group = 3},
                           {.url = "https://e.com/d.png",
                            .kind = PAGEMAP_KIND_IMAGE,
                            .sources = PAGEMAP_SRC_HTML | PAGEMAP_SRC_FOLLOWUP,
                            .group = 3},
                           {.url = "https://cdn.e.com/x.js",
                            .kind = PAGEMAP_KIND_SCRIPT,
                            .sources = PAGEMAP_SRC_HTML}};
    const char *pages[] = {"e.com/1", "e.com/2", "e.com/3", "e.com/1", "e.com/1"};
    pagemap_plan_t plan = {0};
    pagemap_dump_t d = {0};
    pagemap_page_info_t *list = NULL, info = {0};
    pagemap_edge_info_t *edges = NULL;
    size_t n = 0, ne = 0;
    for (int i = 0; i < 5; i++) {
        if (i == 4) /* the page names a new version of b.js */
            it[1].url = it[2].url = "https://e.com/b.js?v=2";
        pagemap_visit_t v = {.page_key = pages[i],
                             .template_key = "e.com/*",
                             .now_ms = i,
                             .think_ms = 10,
                             .status = 200,
                             .html_scanned = true,
                             .browser = true,
                             .multiplexed = true,
                             .css_scanned = true,
                             .items = it + (i % 2),
                             .nitems = 5};
        rc = pagemap_commit_visit(pm, &v);
        check_consistent(pm);
        if (rc != 0)
            goto out;
    }
    pagemap_asset_meta_t m = {.status = 301,
                              .location = "https://e.com/a.css",
                              .etag = "\"1\"",
                              .content_type = "text/css",
                              .last_modified = "x",
                              .policy = CACHEPOLICY_SET_COOKIE};
    TRY(pagemap_observe_asset(pm, "https://e.com/b.js?v=2", &m));
    pagemap_plan_opts_t o = {0.5, 1.0};
    TRY(pagemap_plan(pm, "e.com/1", "e.com/*", "e.com", 0, &o, &plan));
    /* the caps may have evicted the edge: ENOTFOUND is fine here */
    rc = pagemap_note_delivery(pm, "e.com/1", "https://e.com/b.js?v=2", PAGEMAP_DELIVERY_HINTED, 0);
    if (rc != 0 && rc != HERALD_ENOTFOUND)
        goto out;
    TRY(pagemap_edge_set_state(pm, "e.com/9", "https://e.com/pin.css", PAGEMAP_EDGE_PINNED));
    check_consistent(pm);
    TRY(pagemap_list(pm, 0, 10, "e.com", &list, &n, NULL));
    TRY(pagemap_page_get(pm, "e.com/1", &info, &edges, &ne));
    TRY(pagemap_dump(pm, &d));
    rc = pagemap_restore(pm, &d, PAGEMAP_RESTORE_REPLACE);
    check_consistent(pm);
out:
    pagemap_plan_dispose(&plan);
    pagemap_dump_dispose(&d);
    pagemap_page_infos_free(list, n);
    pagemap_page_info_dispose(&info);
    pagemap_edge_infos_free(edges, ne);
    pagemap_destroy(pm);
    return rc;
}

/* A connection's session and visits: attribution, evidence, commit. */
static int op_session(void)
{
    pagemap_t *pm = NULL;
    session_t *s = NULL;
    visit_t *v = NULL, *done[SESSION_MAX_OPEN];
    int rc;
    TRY(pagemap_create(NULL, &pm));
    TRY(session_create(5000, &s));
    visit_page_t pg = {.url = "https://e.com/p",
                       .page_key = "e.com/p",
                       .template_key = "e.com/*",
                       .authority = "e.com",
                       .t_ms = 1,
                       .multiplexed = true,
                       .client = "127.0.0.1"};
    TRY(session_open(s, &pg, &v));
    TRY(session_note_requested(s, "https://e.com/p"));
    visit_page_head(v, 200, true, 10, false);
    visit_found_t f = {.url = "https://e.com/a.css",
                       .key = "https://e.com/a.css",
                       .kind = PAGEMAP_KIND_STYLE,
                       .strong = true};
    TRY(visit_found(v, &f, PAGEMAP_SRC_HTML));
    visit_scanned(v, PAGEMAP_SRC_HTML);
    visit_fetch_t fe = {.url = "https://e.com/a.css",
                        .key = "https://e.com/a.css",
                        .kind = PAGEMAP_KIND_STYLE,
                        .browser = true};
    if (session_attribute(s, "https://e.com/p", 2) != v) {
        rc = HERALD_EINTERNAL;
        goto out;
    }
    TRY(visit_fetch(v, &fe));
    pagemap_asset_meta_t m = {
        .status = 200, .size = 10, .content_type = "text/css", .etag = "\"e\""};
    TRY(visit_fetch_served(v, "https://e.com/a.css", &m));
    TRY(visit_delivered(v, "https://e.com/b.js", "https://e.com/b.js", VISIT_HINTED));
    TRY(session_note_pushed(s, "https://e.com/b.js"));
    visit_page_end(v, true, 100);
    size_t n = session_expire(s, UINT64_MAX, done, SESSION_MAX_OPEN);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && visit_ready(done[i])) {
            visit_set_state(done[i], VISIT_COMMITTED);
            rc = visit_commit(done[i], pm, 5, false);
        }
        visit_unref(done[i]);
    }
    check_consistent(pm);
out:
    visit_unref(v);
    session_destroy(s);
    pagemap_destroy(pm);
    return rc;
}

/* Commit every visit the session hands over by `now`. */
static int settle_all(session_t *s, pagemap_t *pm, uint64_t now)
{
    visit_t *done[SESSION_MAX_OPEN];
    int rc = 0;
    size_t n;
    while ((n = session_expire(s, now, done, SESSION_MAX_OPEN)) > 0) {
        for (size_t i = 0; i < n; i++) {
            if (rc == 0 && visit_ready(done[i])) {
                visit_set_state(done[i], VISIT_COMMITTED);
                rc = visit_commit(done[i], pm, 5, false);
            }
            visit_unref(done[i]);
        }
        if (n < SESSION_MAX_OPEN)
            break;
    }
    return rc;
}

static int open_page(session_t *s, const char *url, const char *key, const char *tk,
                     const char *referer, bool prefetch, uint64_t t, visit_t **v)
{
    visit_page_t pg = {.url = url,
                       .page_key = key,
                       .template_key = tk,
                       .authority = "e.com",
                       .t_ms = t,
                       .multiplexed = true,
                       .client = "127.0.0.1",
                       .referer = referer,
                       .prefetch = prefetch};
    int rc = session_open(s, &pg, v);
    if (rc == 0) {
        visit_page_head(*v, 200, true, 10, false);
        visit_page_end(*v, true, 100);
    }
    return rc;
}

/* Navigations through sessions, next pages, prefetch outcomes, rule sets. */
static int op_nav(void)
{
    pagemap_config_t cfg;
    pagemap_config_init(&cfg);
    cfg.max_pages = 4;
    pagemap_t *pm = NULL;
    session_t *s = NULL;
    prefetch_t *t = NULL;
    visit_t *a = NULL, *b = NULL, *p = NULL, *c = NULL;
    pagemap_spec_t spec = {0};
    pagemap_next_info_t *nx = NULL;
    pagemap_dump_t d = {0};
    size_t nn = 0;
    char *json = NULL;
    int rc;
    TRY(pagemap_create(&cfg, &pm));
    TRY(prefetch_create(pm, &t));
    for (int round = 0; round < 2; round++) {
        char client[16];
        snprintf(client, sizeof(client), "10.0.0.%d", round);
        TRY(session_create(5000, &s));
        TRY(open_page(s, "https://e.com/item/1", "e.com/item/1", "e.com/item/*", NULL, false, 0,
                      &a));
        TRY(open_page(s, "https://e.com/b", "e.com/b", NULL, "https://e.com/item/1", false, 10,
                      &b));
        TRY(open_page(s, "https://e.com/p?x=1", "e.com/p?x=1", NULL, "https://e.com/b", true, 20,
                      &p));
        if (session_attribute(s, "https://e.com/p?x=1", 30) != p) {
            rc = HERALD_EINTERNAL;
            goto out;
        }
        TRY(open_page(s, "https://e.com/c", "e.com/c", NULL, "https://e.com/p?x=1", false, 40, &c));
        TRY(prefetch_sent(t, client, "https://e.com/b", "https://e.com/item/1", 50, 5));
        prefetch_request(t, client, "https://e.com/b.css", "https://e.com/b", false, 60, 5);
        TRY(prefetch_sent(t, client, "https://e.com/c", "https://e.com/b", 70, 5));
        TRY(settle_all(s, pm, UINT64_MAX));
        check_consistent(pm);
        visit_unref(a);
        visit_unref(b);
        visit_unref(p);
        visit_unref(c);
        a = b = p = c = NULL;
        session_destroy(s);
        s = NULL;
    }
    prefetch_expire(t, UINT64_MAX - PREFETCH_LIFETIME_MS, 6);
    TRY(pagemap_next_set_state(pm, "e.com/b", "https://e.com/pin", PAGEMAP_EDGE_PINNED));
    TRY(pagemap_next_set_state(pm, "e.com/new", "https://e.com/ban", PAGEMAP_EDGE_BANNED));
    check_consistent(pm);
    TRY(pagemap_speculation(pm, "e.com/item/2", "e.com/item/*", "e.com", NULL, &spec));
    TRY(speculation_rules_json(&spec, SPECULATION_PREFETCH, &json, NULL));
    TRY(pagemap_next_get(pm, "e.com/b", NULL, &nx, &nn));
    rc = pagemap_forget_next(pm, "e.com/b", "https://e.com/pin");
    if (rc != 0 && rc != HERALD_ENOTFOUND)
        goto out;
    TRY(pagemap_dump(pm, &d));
    rc = pagemap_restore(pm, &d, PAGEMAP_RESTORE_REPLACE);
    check_consistent(pm);
out:
    visit_unref(a);
    visit_unref(b);
    visit_unref(p);
    visit_unref(c);
    session_destroy(s);
    prefetch_destroy(t);
    pagemap_spec_dispose(&spec);
    pagemap_next_infos_free(nx, nn);
    pagemap_dump_dispose(&d);
    free(json);
    pagemap_destroy(pm);
    return rc;
}

static pagemap_t *seeded; /* built once, with injection off */

static int op_snapshot(void)
{
    char *json = NULL, *page = NULL, reason[128];
    pagemap_t *pm = NULL;
    int rc;
    TRY(snapshot_export(seeded, &json, NULL));
    TRY(snapshot_export_page(seeded, "e.com/1", &page, NULL));
    free(page);
    page = NULL;
    TRY(snapshot_export_list(seeded, 0, 10, NULL, &page, NULL));
    TRY(pagemap_create(NULL, &pm));
    rc = snapshot_import(pm, json, strlen(json), SNAPSHOT_REPLACE, reason, sizeof(reason));
    /* jansson 2.14 reports its own allocation failures as syntax errors */
    if (rc == HERALD_EPARSE && nomem_injected)
        rc = HERALD_ENOMEM;
    check_consistent(pm);
out:
    free(json);
    free(page);
    pagemap_destroy(pm);
    return rc;
}

static int op_digest(void)
{
    digest_builder_t b;
    digest_builder_init(&b, 7);
    char *value = NULL, url[40];
    digest_t d = {0};
    int rc = 0;
    for (int i = 0; i < 40 && rc == 0; i++) {
        snprintf(url, sizeof(url), "https://e.com/%d", i);
        rc = digest_builder_add(&b, url, i % 2 ? "\"e\"" : NULL);
    }
    if (rc == 0)
        rc = digest_builder_finish(&b, &value, NULL);
    if (rc == 0)
        rc = digest_parse(value, strlen(value), &d, NULL);
    if (rc == 0) { /* merge the parsed cookie into a new one */
        digest_builder_dispose(&b);
        free(value);
        value = NULL;
        rc = digest_builder_add_digest(&b, &d);
        if (rc == 0)
            rc = digest_builder_add(&b, "https://e.com/new", NULL);
        if (rc == 0)
            rc = digest_builder_finish(&b, &value, NULL);
    }
    digest_dispose(&d);
    free(value);
    digest_builder_dispose(&b);
    return rc;
}

static int op_template(void)
{
    char *k = NULL, *t = NULL;
    int rc = template_page_key("e.com", "/item/123/x/a1b2c3d4?id=1234567&q=a", &k);
    if (rc == 0)
        rc = template_key(k, &t);
    free(k);
    free(t);
    return rc;
}

/* ---- the fleet's evidence -------------------------------------------------- */

static const pagemap_item_t fleet_items[] = {
    {.url = "https://e.com/a.css",
     .kind = PAGEMAP_KIND_STYLE,
     .as = "style",
     .sources = PAGEMAP_SRC_HTML | PAGEMAP_SRC_FOLLOWUP,
     .strong = true},
    {.url = "https://e.com/f.woff2?v=1",
     .key = "https://e.com/f.woff2",
     .kind = PAGEMAP_KIND_FONT,
     .sources = PAGEMAP_SRC_CSS},
};
static char *fleet_batch; /* a batch from instance "B", made with injection off */
static size_t fleet_batch_len;

/* jansson 2.14 reports its own allocation failures as syntax errors */
static int parse_rc(int rc)
{
    return rc == HERALD_EPARSE && nomem_injected ? HERALD_ENOMEM : rc;
}

static int op_fleetlog(void)
{
    fleetlog_builder_t *b = NULL;
    char *out = NULL;
    fleetlog_batch_t batch = {0};
    digest_builder_t db;
    digest_t d = {0};
    char *cookie = NULL;
    int rc;
    digest_builder_init(&db, 7);
    TRY(digest_builder_add(&db, "https://e.com/a.css", NULL));
    TRY(digest_builder_finish(&db, &cookie, NULL));
    TRY(digest_parse(cookie, strlen(cookie), &d, NULL));
    TRY(fleetlog_builder_create("A", 1, &b));
    pagemap_visit_t v = {.page_key = "e.com/1",
                         .template_key = "e.com/*",
                         .now_ms = 5,
                         .think_ms = 3,
                         .status = 200,
                         .browser = true,
                         .digest = &d,
                         .items = fleet_items,
                         .nitems = 2};
    pagemap_asset_meta_t m = {.status = 200, .etag = "\"x\"", .fresh_ms = 10};
    for (int i = 0; i < 3; i++) {
        size_t before = fleetlog_builder_records(b);
        rc = i == 1 ? fleetlog_builder_add_asset(b, "https://e.com/a.css", &m)
                    : fleetlog_builder_add_visit(b, &v, 42);
        if (rc != 0) {
            /* the builder is unchanged: what it holds still encodes and decodes */
            long saved = nomem_countdown;
            nomem_countdown = -1;
            CHECK_INTEQ(fleetlog_builder_records(b), before);
            size_t len = 0;
            CHECK_INTEQ(fleetlog_builder_finish(b, 9, &out, &len, NULL), 0);
            CHECK_INTEQ(fleetlog_decode(out, len, &batch, NULL, 0), 0);
            CHECK_INTEQ(batch.n, before);
            nomem_countdown = saved;
            goto out;
        }
    }
    size_t len = 0;
    TRY(fleetlog_builder_finish(b, 9, &out, &len, NULL));
    rc = parse_rc(fleetlog_decode(out, len, &batch, NULL, 0));
out:
    fleetlog_batch_dispose(&batch);
    free(out);
    fleetlog_builder_destroy(b);
    free(cookie);
    digest_dispose(&d);
    digest_builder_dispose(&db);
    return rc;
}

static int op_fleetfold(void)
{
    fleetlog_batch_t batch = {0};
    fleetfold_t *f = NULL;
    fleetmark_t *marks = NULL;
    pagemap_t *pm = NULL;
    int rc;
    TRY(parse_rc(fleetlog_decode(fleet_batch, fleet_batch_len, &batch, NULL, 0)));
    TRY(fleetfold_create("A", 4, 1000, &f));
    TRY(fleetmark_create(16, 1000, &marks));
    TRY(pagemap_create(NULL, &pm));
    rc = fleetfold_apply(f, pm, marks, &batch, 7, NULL);
    check_consistent(pm);
    if (rc == 0) /* applied once, whatever failed before */
        CHECK_INTEQ(fleetfold_seq(f, "B"), batch.seq);
out:
    fleetlog_batch_dispose(&batch);
    fleetfold_destroy(f);
    fleetmark_destroy(marks);
    pagemap_destroy(pm);
    return rc;
}

static int op_fleetsteer(void)
{
    fleetsteer_msg_t m = {.op = FLEETSTEER_PIN, .seq = 3, .t_ms = 4};
    fleetsteer_msg_t d = {0}, *all = NULL;
    size_t n = 0;
    char *s = NULL, *field = NULL;
    pagemap_t *pm = NULL;
    int rc;
    memcpy(m.instance, "A", 2);
    m.page_key = "e.com/1";
    m.asset_key = "https://e.com/p.css";
    TRY(fleetsteer_encode(&m, &s, NULL));
    TRY(parse_rc(fleetsteer_decode(s, strlen(s), &d, NULL, 0)));
    TRY(fleetsteer_field(&d, &field, NULL));
    TRY(pagemap_create(NULL, &pm));
    TRY(fleetsteer_apply(pm, &d));
    TRY(fleetsteer_sync(pm, &m, 1, NULL));
    TRY(fleetsteer_collect(seeded, "A", 1, 2, &all, &n));
    TRY(fleetsteer_sync(pm, all, n, NULL));
    check_consistent(pm);
out:
    fleetsteer_msgs_free(all, n);
    fleetsteer_msg_dispose(&d);
    free(s);
    free(field);
    pagemap_destroy(pm);
    return rc;
}

static int op_fleetbase(void)
{
    pagemap_dump_t d = {0};
    fleetbase_chunks_t c = {0};
    fleetbase_header_t h = {0};
    fleetfold_t *f = NULL;
    pagemap_t *pm = NULL;
    char *hdr = NULL, reason[128];
    size_t len = 0;
    int rc;
    TRY(pagemap_dump(seeded, &d));
    TRY(fleetbase_encode(&d, 0, &c));
    TRY(fleetfold_create("W", 4, 1000, &f));
    TRY(fleetfold_note(f, "B", 5, 1));
    TRY(fleetbase_header_encode(f, "W", 2, "W-1", 3, c.n, "1-0", &hdr, &len));
    TRY(parse_rc(fleetbase_header_decode(hdr, len, &h, NULL, 0)));
    TRY(pagemap_create(NULL, &pm));
    for (size_t i = 0; i < c.n && rc == 0; i++) {
        rc = parse_rc(fleetbase_load_chunk(pm, c.v[i], c.len[i], reason, sizeof(reason)));
        check_consistent(pm);
    }
    if (rc == 0)
        rc = fleetbase_header_seed(&h, f, 4);
out:
    pagemap_dump_dispose(&d);
    fleetbase_chunks_dispose(&c);
    fleetbase_header_dispose(&h);
    fleetfold_destroy(f);
    free(hdr);
    pagemap_destroy(pm);
    return rc;
}

static int op_netmem(void)
{
    netmem_opts_t o = {.max_networks = 64};
    netmem_t *m = netmem_create(&o);
    if (m == NULL)
        return HERALD_ENOMEM;
    netmem_key_t k;
    int rc = netmem_key_parse("192.0.2.1", 9, &k);
    if (rc == 0)
        rc = netmem_note(m, &k, 1, 1000, 10, 0);
    netmem_destroy(m);
    return rc;
}

int main(void)
{
    json_set_alloc_funcs(json_malloc, free);
    CHECK_INTEQ(pagemap_create(NULL, &seeded), 0);
    pagemap_item_t it = {.url = "https://e.com/a.css",
                         .kind = PAGEMAP_KIND_STYLE,
                         .sources = PAGEMAP_SRC_HTML,
                         .strong = true};
    pagemap_visit_t v = {.page_key = "e.com/1",
                         .now_ms = 1,
                         .think_ms = -1,
                         .status = 200,
                         .html_scanned = true,
                         .items = &it,
                         .nitems = 1};
    CHECK_INTEQ(pagemap_commit_visit(seeded, &v), 0);
    CHECK_INTEQ(
        pagemap_edge_set_state(seeded, "e.com/1", "https://e.com/b.js", PAGEMAP_EDGE_BANNED), 0);
    pagemap_nav_t nv = {.page_key = "e.com/2",
                        .url = "https://e.com/2",
                        .from_page_key = "e.com/1",
                        .from_template_key = "e.com/*",
                        .client = "c",
                        .status = 200,
                        .html = true,
                        .set_cookie = true,
                        .count_from = true,
                        .count_pair = true,
                        .count_template_from = true,
                        .count_template_pair = true};
    CHECK_INTEQ(pagemap_commit_navigation(seeded, &nv), 0);
    CHECK_INTEQ(pagemap_note_prefetch(seeded, "e.com/1", NULL, "e.com/2", PAGEMAP_PREFETCH_USED, 1),
                0);
    nomem_exhaust("pagemap", op_pagemap, 100000);
    nomem_exhaust("session", op_session, 100000);
    nomem_exhaust("nav", op_nav, 100000);
    nomem_exhaust("snapshot", op_snapshot, 100000);
    nomem_exhaust("digest", op_digest, 100000);
    nomem_exhaust("template", op_template, 100000);

    fleetlog_builder_t *fb = NULL;
    CHECK_INTEQ(fleetlog_builder_create("B", 5, &fb), 0);
    pagemap_visit_t fv = {.page_key = "e.com/1",
                          .template_key = "e.com/*",
                          .now_ms = 5,
                          .think_ms = -1,
                          .status = 200,
                          .html_scanned = true,
                          .browser = true,
                          .multiplexed = true,
                          .items = fleet_items,
                          .nitems = 2};
    CHECK_INTEQ(fleetlog_builder_add_visit(fb, &fv, 77), 0);
    pagemap_asset_meta_t fm = {.status = 200, .size = 3, .fresh_ms = 1};
    CHECK_INTEQ(fleetlog_builder_add_asset(fb, "https://e.com/a.css", &fm), 0);
    fv.now_ms = 6;
    CHECK_INTEQ(fleetlog_builder_add_visit(fb, &fv, 77), 0); /* vetoed by the mark */
    fv.page_key = "e.com/2";
    CHECK_INTEQ(fleetlog_builder_add_visit(fb, &fv, 78), 0);
    CHECK_INTEQ(fleetlog_builder_finish(fb, 9, &fleet_batch, &fleet_batch_len, NULL), 0);
    fleetlog_builder_destroy(fb);
    nomem_exhaust("fleetlog", op_fleetlog, 100000);
    nomem_exhaust("fleetfold", op_fleetfold, 100000);
    nomem_exhaust("fleetsteer", op_fleetsteer, 100000);
    nomem_exhaust("fleetbase", op_fleetbase, 100000);
    free(fleet_batch);
    nomem_exhaust("netmem", op_netmem, 100);
    pagemap_destroy(seeded);
    return TESTUTIL_SUMMARY();
}
