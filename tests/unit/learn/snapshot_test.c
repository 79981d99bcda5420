/* learn/snapshot: export/import round trip, validation, files, corrupt files set aside. */
#include "snapshot.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "herald/error.h"
#include "testutil.h"

#define PAGE "e.com/p"

static pagemap_t *learned_map(void)
{
    pagemap_t *pm = NULL;
    CHECK_INTEQ(pagemap_create(NULL, &pm), 0);
    pagemap_item_t it[] = {{.url = "https://e.com/a.css",
                            .kind = PAGEMAP_KIND_STYLE,
                            .as = "style",
                            .sources = PAGEMAP_SRC_HTML | PAGEMAP_SRC_LINK,
                            .strong = true,
                            .blocking = true},
                           {.url = "https://e.com/f.woff2",
                            .kind = PAGEMAP_KIND_FONT,
                            .crossorigin = PAGEMAP_CORS_ANONYMOUS,
                            .sources = PAGEMAP_SRC_CSS | PAGEMAP_SRC_FOLLOWUP,
                            .group = 7,
                            .order = 3},
                           {.url = "https://e.com/ad.js",
                            .kind = PAGEMAP_KIND_SCRIPT,
                            .sources = PAGEMAP_SRC_HTML,
                            .strong = true}};
    pagemap_visit_t v = {.page_key = PAGE,
                         .template_key = "e.com/x",
                         .now_ms = 1000,
                         .think_ms = 80,
                         .html_size = 2048,
                         .status = 200,
                         .html_scanned = true,
                         .browser = true,
                         .multiplexed = true,
                         .items = it,
                         .nitems = 3};
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    pagemap_asset_meta_t m = {.status = 200,
                              .size = 777,
                              .content_type = "text/css",
                              .etag = "W/\"x\"",
                              .policy = CACHEPOLICY_VARY_ENCODING | CACHEPOLICY_SET_COOKIE,
                              .fresh_ms = 60000};
    CHECK_INTEQ(pagemap_observe_asset(pm, "https://e.com/a.css", &m), 0);
    CHECK_INTEQ(pagemap_edge_set_state(pm, PAGE, "https://e.com/ad.js", PAGEMAP_EDGE_BANNED), 0);
    CHECK_INTEQ(pagemap_edge_set_state(pm, PAGE, "https://e.com/pin.png", PAGEMAP_EDGE_PINNED), 0);
    return pm;
}

static void test_round_trip(void)
{
    pagemap_t *pm = learned_map();
    char *json = NULL;
    size_t len = 0;
    CHECK_INTEQ(snapshot_export(pm, &json, &len), 0);
    CHECK(json != NULL && strlen(json) == len);
    CHECK(strstr(json, "\"version\":2") != NULL);
    CHECK(strstr(json, "\"policy\":[\"set-cookie\",\"vary-accept-encoding\"]") != NULL);
    CHECK(strstr(json, "\"verdict\":\"confirmed\"") != NULL);

    pagemap_t *pm2 = NULL;
    CHECK_INTEQ(pagemap_create(NULL, &pm2), 0);
    char reason[256];
    CHECK_INTEQ(snapshot_import(pm2, json, len, SNAPSHOT_REPLACE, reason, sizeof(reason)), 0);
    char *json2 = NULL;
    CHECK_INTEQ(snapshot_export(pm2, &json2, NULL), 0);
    CHECK_STREQ(json, json2); /* lossless */

    /* pins and bans survive the round trip */
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm2, PAGE, NULL, "e.com", 0, NULL, &p), 0);
    CHECK_INTEQ(p.n, 3); /* a.css, f.woff2, pin.png; ad.js banned */
    if (p.n == 3) {
        CHECK_STREQ(p.items[0].url, "https://e.com/a.css");
        CHECK_STREQ(p.items[0].etag, "W/\"x\"");
        CHECK_INTEQ(p.items[0].size, 777);
        CHECK(!p.items[0].pushable); /* Set-Cookie survived the round trip */
        CHECK_STREQ(p.items[2].url, "https://e.com/pin.png");
        CHECK(p.items[2].pinned);
    }
    CHECK(fabs(p.think_ms - 80) < 1e-9);
    pagemap_plan_dispose(&p);

    /* one page as JSON */
    char *pj = NULL;
    CHECK_INTEQ(snapshot_export_page(pm2, PAGE, &pj, NULL), 0);
    CHECK(pj && strstr(pj, "\"state\":\"banned\"") != NULL);
    free(pj);
    CHECK_INTEQ(snapshot_export_page(pm2, "nope", &pj, NULL), HERALD_ENOTFOUND);

    /* the page list */
    char *lj = NULL;
    CHECK_INTEQ(snapshot_export_list(pm2, 0, 10, "e.com/p", &lj, NULL), 0);
    CHECK(lj && strstr(lj, "\"total\":1") && strstr(lj, "\"edge_count\":4") &&
          !strstr(lj, "\"edges\""));
    free(lj);

    /* merge keeps pages not in the document */
    /* (a version 1 document: its discovery-named edges count as strong, its
     * uncacheable ones are not delivered) */
    const char *extra = "{\"version\":1,\"pages\":[{\"key\":\"e.com/other\",\"edges\":"
                        "[{\"key\":\"https://e.com/o.css\",\"kind\":\"style\",\"hits\":1,"
                        "\"visits\":1,\"hit_visits\":1},"
                        "{\"key\":\"https://e.com/h.js\",\"kind\":\"script\",\"sources\":"
                        "[\"html\"],\"hit_visits\":1},"
                        "{\"key\":\"https://e.com/u.js\",\"kind\":\"script\",\"sources\":"
                        "[\"html\"],\"cacheable\":false,\"hit_visits\":1}]}]}";
    CHECK_INTEQ(snapshot_import(pm2, extra, strlen(extra), SNAPSHOT_MERGE, reason, sizeof(reason)),
                0);
    pagemap_stats_t st;
    pagemap_stats(pm2, &st);
    CHECK_INTEQ(st.pages, 3);
    CHECK_INTEQ(pagemap_plan(pm2, "e.com/other", NULL, "e.com", 0, NULL, &p), 0);
    CHECK_INTEQ(p.n, 2);
    if (p.n == 2) {
        CHECK_STREQ(p.items[0].url, "https://e.com/o.css");
        CHECK_STREQ(p.items[1].url, "https://e.com/h.js");
        CHECK_INTEQ(p.items[1].verdict, PAGEMAP_VERDICT_STRONG);
    }
    pagemap_plan_dispose(&p);
    CHECK_INTEQ(snapshot_import(pm2, extra, strlen(extra), SNAPSHOT_REPLACE, reason, 256), 0);
    pagemap_stats(pm2, &st);
    CHECK_INTEQ(st.pages, 1);

    free(json);
    free(json2);
    pagemap_destroy(pm);
    pagemap_destroy(pm2);
}

static void expect_bad(pagemap_t *pm, const char *doc, int want)
{
    char reason[200] = "unset";
    char *before = NULL, *after = NULL;
    CHECK_INTEQ(snapshot_export(pm, &before, NULL), 0);
    CHECK_INTEQ(snapshot_import(pm, doc, strlen(doc), SNAPSHOT_REPLACE, reason, sizeof(reason)),
                want);
    CHECK(reason[0] != '\0' && strcmp(reason, "unset") != 0);
    CHECK_INTEQ(snapshot_export(pm, &after, NULL), 0);
    CHECK_STREQ(before, after); /* untouched */
    free(before);
    free(after);
}

static void test_validation(void)
{
    pagemap_t *pm = learned_map();
    expect_bad(pm, "", HERALD_EPARSE);
    expect_bad(pm, "{\"version\":1,\"pages\":[", HERALD_EPARSE);
    expect_bad(pm, "[]", HERALD_EPARSE);
    expect_bad(pm, "{\"pages\":[]}", HERALD_EPARSE);
    expect_bad(pm, "{\"version\":\"1\",\"pages\":[]}", HERALD_EPARSE);
    expect_bad(pm, "{\"version\":3,\"pages\":[]}", HERALD_EUNSUPPORTED);
    expect_bad(pm,
               "{\"version\":2,\"pages\":[{\"key\":\"a\",\"edges\":[{\"key\":\"u\","
               "\"policy\":[\"no-such\"]}]}]}",
               HERALD_EPARSE);
    expect_bad(pm, "{\"version\":1}", HERALD_EPARSE);
    expect_bad(pm, "{\"version\":1,\"pages\":[{}]}", HERALD_EPARSE);
    expect_bad(pm, "{\"version\":1,\"pages\":[{\"key\":\"\"}]}", HERALD_EPARSE);
    expect_bad(pm, "{\"version\":1,\"pages\":[{\"key\":\"a\",\"visits\":-1}]}", HERALD_EPARSE);
    expect_bad(pm, "{\"version\":1,\"pages\":[{\"key\":\"a\",\"edges\":{}}]}", HERALD_EPARSE);
    expect_bad(pm,
               "{\"version\":1,\"pages\":[{\"key\":\"a\",\"edges\":[{\"key\":\"u\","
               "\"kind\":\"weird\"}]}]}",
               HERALD_EPARSE);
    expect_bad(pm,
               "{\"version\":1,\"pages\":[{\"key\":\"a\",\"edges\":[{\"key\":\"u\","
               "\"state\":\"evil\"}]}]}",
               HERALD_EPARSE);
    expect_bad(pm,
               "{\"version\":1,\"pages\":[{\"key\":\"a\",\"edges\":[{\"key\":\"u\","
               "\"hits\":5,\"visits\":1}]}]}",
               HERALD_EPARSE);
    expect_bad(pm,
               "{\"version\":1,\"pages\":[{\"key\":\"a\",\"edges\":[{\"key\":\"u\","
               "\"sources\":[\"smoke\"]}]}]}",
               HERALD_EPARSE);
    /* the page before a bad one must not be loaded either */
    expect_bad(pm, "{\"version\":1,\"pages\":[{\"key\":\"good\"},{\"key\":7}]}", HERALD_EPARSE);
    /* unknown members are ignored, minimal pages accepted */
    char reason[100];
    const char *ok = "{\"version\":1,\"future\":true,\"pages\":[{\"key\":\"k\",\"x\":[1]}]}";
    CHECK_INTEQ(snapshot_import(pm, ok, strlen(ok), SNAPSHOT_MERGE, reason, sizeof(reason)), 0);
    pagemap_destroy(pm);
}

static int count_corrupt(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += strstr(e->d_name, "state.json.corrupt-") != NULL;
    if (d)
        closedir(d);
    return n;
}

static void test_files(void)
{
    char dir[] = "/tmp/herald-snapXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], reason[512];
    snprintf(path, sizeof(path), "%s/state.json", dir);

    pagemap_t *empty = NULL;
    CHECK_INTEQ(pagemap_create(NULL, &empty), 0);
    CHECK_INTEQ(snapshot_load_file(empty, path, reason, sizeof(reason)), HERALD_ENOTFOUND);

    pagemap_t *pm = learned_map();
    CHECK_INTEQ(snapshot_save_file(pm, path), 0);
    CHECK_INTEQ(snapshot_load_file(empty, path, reason, sizeof(reason)), 0);
    pagemap_stats_t st;
    pagemap_stats(empty, &st);
    CHECK_INTEQ(st.pages, 2);
    CHECK_INTEQ(st.banned, 1);
    CHECK_INTEQ(count_corrupt(dir), 0);

    /* truncated file: set aside, error, map untouched */
    char *json;
    size_t len;
    CHECK_INTEQ(snapshot_export(pm, &json, &len), 0);
    CHECK_INTEQ(snapshot_write_file(path, json, len / 2), 0);
    CHECK_INTEQ(snapshot_load_file(empty, path, reason, sizeof(reason)), HERALD_EPARSE);
    CHECK(strstr(reason, "corrupt-") != NULL);
    struct stat sb;
    CHECK(stat(path, &sb) != 0); /* moved away */
    CHECK_INTEQ(count_corrupt(dir), 1);
    pagemap_stats(empty, &st);
    CHECK_INTEQ(st.pages, 2);

    /* future version: set aside too (same second: the rename replaces the aside file) */
    const char *future = "{\"version\":9,\"pages\":[]}";
    CHECK_INTEQ(snapshot_write_file(path, future, strlen(future)), 0);
    CHECK_INTEQ(snapshot_load_file(empty, path, reason, sizeof(reason)), HERALD_EUNSUPPORTED);
    CHECK(stat(path, &sb) != 0);
    CHECK(count_corrupt(dir) >= 1);

    /* no temp file left behind */
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        CHECK(strstr(e->d_name, ".tmp.") == NULL);
    if (d)
        closedir(d);
    CHECK(snapshot_write_file("/nonexistent-dir/x/state.json", "x", 1) < 0);

    free(json);
    pagemap_destroy(pm);
    pagemap_destroy(empty);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_INTEQ(system(cmd), 0);
}

int main(void)
{
    test_round_trip();
    test_validation();
    test_files();
    return TESTUTIL_SUMMARY();
}
