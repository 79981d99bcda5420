/* learn/fleetbase: a map cut into chunks loads back to the same map; the header round trip. */
#include "fleetbase.h"

#include <stdio.h>
#include <stdlib.h>

#include "snapshot.h"
#include "herald/error.h"
#include "testutil.h"

static pagemap_t *big_map(int pages)
{
    pagemap_t *pm = NULL;
    CHECK_INTEQ(pagemap_create(NULL, &pm), 0);
    char page[64], url[8][80];
    pagemap_item_t it[8];
    for (int p = 0; p < pages; p++) {
        snprintf(page, sizeof(page), "e.com/article/%d", p);
        for (int i = 0; i < 8; i++) {
            snprintf(url[i], sizeof(url[i]), "https://e.com/static/%d/asset-%d.js", p % 5, i);
            it[i] = (pagemap_item_t){.url = url[i],
                                     .kind = PAGEMAP_KIND_SCRIPT,
                                     .order = (unsigned)i,
                                     .sources = PAGEMAP_SRC_HTML | PAGEMAP_SRC_FOLLOWUP,
                                     .strong = true};
        }
        pagemap_visit_t v = {.page_key = page,
                             .template_key = "e.com/article/*",
                             .now_ms = 1000 + p,
                             .think_ms = 30,
                             .status = 200,
                             .html_scanned = true,
                             .browser = true,
                             .multiplexed = true,
                             .items = it,
                             .nitems = 8};
        CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);
    }
    CHECK_INTEQ(
        pagemap_edge_set_state(pm, "e.com/article/0", "https://e.com/pin.css", PAGEMAP_EDGE_PINNED),
        0);
    return pm;
}

static void test_chunks(void)
{
    pagemap_t *pm = big_map(300);
    pagemap_dump_t d;
    CHECK_INTEQ(pagemap_dump(pm, &d), 0);
    fleetbase_chunks_t c;
    CHECK_INTEQ(fleetbase_encode(&d, 16 * 1024, &c), 0);
    CHECK(c.n > 10 && c.skipped == 0);
    /* every chunk is under the target (or holds one page), and together they hold every
     * page once; loaded in order, they give the map back, least recently used first */
    size_t pages = 0;
    char reason[160];
    pagemap_t *back = NULL;
    CHECK_INTEQ(pagemap_create(NULL, &back), 0);
    for (size_t i = 0; i < c.n; i++) {
        CHECK(strlen(c.v[i]) == c.len[i]);
        pagemap_t *one = NULL;
        CHECK_INTEQ(pagemap_create(NULL, &one), 0);
        CHECK_INTEQ(fleetbase_load_chunk(one, c.v[i], c.len[i], reason, sizeof(reason)), 0);
        pagemap_stats_t st;
        pagemap_stats(one, &st);
        pages += st.pages;
        CHECK(c.len[i] <= 16 * 1024 || st.pages == 1);
        pagemap_destroy(one);
        CHECK_INTEQ(fleetbase_load_chunk(back, c.v[i], c.len[i], reason, sizeof(reason)), 0);
    }
    CHECK_INTEQ(pages, d.n);
    char *a = NULL, *b = NULL;
    CHECK_INTEQ(snapshot_export(pm, &a, NULL), 0);
    CHECK_INTEQ(snapshot_export(back, &b, NULL), 0);
    CHECK(a && b && strcmp(a, b) == 0); /* (not CHECK_STREQ: megabytes) */
    free(a);
    free(b);
    fleetbase_chunks_dispose(&c);
    CHECK(c.v == NULL && c.n == 0);

    /* the default target */
    CHECK_INTEQ(fleetbase_encode(&d, 0, &c), 0);
    CHECK(c.n >= 2);
    for (size_t i = 0; i < c.n; i++)
        CHECK(c.len[i] <= FLEETBASE_CHUNK_BYTES);
    fleetbase_chunks_dispose(&c);
    /* an empty map: no chunk */
    pagemap_dump_t empty = {0};
    CHECK_INTEQ(fleetbase_encode(&empty, 0, &c), 0);
    CHECK_INTEQ(c.n, 0);
    pagemap_dump_dispose(&d);

    /* a chunk that is not a snapshot, or too large, changes nothing */
    CHECK_INTEQ(
        fleetbase_load_chunk(back, "{\"version\":2,\"pages\":[{}]}", 26, reason, sizeof(reason)),
        HERALD_EPARSE);
    CHECK(reason[0] != '\0');
    CHECK_INTEQ(
        fleetbase_load_chunk(back, "x", FLEETBASE_MAX_CHUNK_BYTES + 1, reason, sizeof(reason)),
        HERALD_ETOOBIG);
    pagemap_stats_t st;
    pagemap_stats(back, &st);
    CHECK_INTEQ(st.pages, 301);
    pagemap_destroy(back);
    pagemap_destroy(pm);
}

static void test_header(void)
{
    fleetfold_t *f = NULL;
    CHECK_INTEQ(fleetfold_create("w", 16, 1000000, &f), 0);
    CHECK_INTEQ(fleetfold_note(f, "b", 40, 1), 0);
    CHECK_INTEQ(fleetfold_note(f, "a", 7, 1), 0);
    char *s = NULL;
    size_t len = 0;
    CHECK_INTEQ(
        fleetbase_header_encode(f, "w", 12, "w-3", 1700000000000, 5, "1700000000000-1", &s, &len),
        0);
    CHECK(s != NULL && strlen(s) == len);
    fleetbase_header_t h;
    char reason[160];
    CHECK_INTEQ(fleetbase_header_decode(s, len, &h, reason, sizeof(reason)), 0);
    free(s);
    CHECK_STREQ(h.instance, "w");
    CHECK_STREQ(h.gen, "w-3");
    CHECK_INTEQ(h.t_ms, 1700000000000);
    CHECK_INTEQ(h.chunks, 5);
    CHECK_STREQ(h.log_id, "1700000000000-1");
    CHECK_INTEQ(h.nseqs, 3);
    if (h.nseqs == 3) {
        CHECK_STREQ(h.seqs[0].instance, "a");
        CHECK_INTEQ(h.seqs[0].seq, 7);
        CHECK_STREQ(h.seqs[1].instance, "b");
        CHECK_INTEQ(h.seqs[2].seq, 12); /* the writer's own last batch */
    }
    /* a loader seeded from it skips what the base holds */
    fleetfold_t *l = NULL;
    CHECK_INTEQ(fleetfold_create("loader", 16, 1000000, &l), 0);
    CHECK_INTEQ(fleetbase_header_seed(&h, l, 5), 0);
    CHECK_INTEQ(fleetfold_check(l, "w", 12), FLEETFOLD_DUPLICATE);
    CHECK_INTEQ(fleetfold_check(l, "w", 13), FLEETFOLD_NEW);
    CHECK_INTEQ(fleetfold_check(l, "b", 40), FLEETFOLD_DUPLICATE);
    fleetbase_header_dispose(&h);
    fleetfold_destroy(l);

    /* own_seq 0 (nothing sent yet) and no log position */
    CHECK_INTEQ(fleetbase_header_encode(f, "w", 0, "g", 1, 0, NULL, &s, &len), 0);
    CHECK_INTEQ(fleetbase_header_decode(s, len, &h, reason, sizeof(reason)), 0);
    CHECK_INTEQ(h.nseqs, 2);
    CHECK_STREQ(h.log_id, "");
    fleetbase_header_dispose(&h);
    free(s);
    CHECK_INTEQ(fleetbase_header_encode(f, "w", 1, "g", 1, 0, "12:x", &s, &len), HERALD_EINVAL);
    CHECK_INTEQ(fleetbase_header_encode(f, "w", 1, "a b", 1, 0, NULL, &s, &len), HERALD_EINVAL);
    fleetfold_destroy(f);

    static const char *const bad[] = {
        "",
        "{}",
        "{\"v\":2}",
        "{\"v\":1,\"inst\":\"w\",\"gen\":\"g\",\"t\":1,\"chunks\":1,\"log\":\"\",\"seqs\":[],\"x\":"
        "0}",
        "{\"v\":1,\"inst\":\"w w\",\"gen\":\"g\",\"t\":1,\"chunks\":1,\"log\":\"\",\"seqs\":[]}",
        "{\"v\":1,\"inst\":\"w\",\"gen\":\"g\",\"t\":1,\"chunks\":-1,\"log\":\"\",\"seqs\":[]}",
        "{\"v\":1,\"inst\":\"w\",\"gen\":\"g\",\"t\":1,\"chunks\":100001,\"log\":\"\",\"seqs\":[]}",
        "{\"v\":1,\"inst\":\"w\",\"gen\":\"g\",\"t\":1,\"chunks\":1,\"log\":\"x\",\"seqs\":[]}",
        "{\"v\":1,\"inst\":\"w\",\"gen\":\"g\",\"t\":1,\"chunks\":1,\"log\":\"\",\"seqs\":[[\"a\"]]"
        "}",
        "{\"v\":1,\"inst\":\"w\",\"gen\":\"g\",\"t\":1,\"chunks\":1,\"log\":\"\",\"seqs\":[[\"a\","
        "0]]}",
        "{\"v\":1,\"inst\":\"w\",\"gen\":\"g\",\"t\":1,\"chunks\":1,\"log\":\"\",\"seqs\":[[1,1]]}",
        "{\"v\":1,\"inst\":\"w\",\"gen\":\"g\",\"t\":1,\"chunks\":1,\"log\":\"\",\"seqs\":{}}",
        "{\"v\":1,\"inst\":\"w\",\"gen\":\"g\",\"chunks\":1,\"log\":\"\",\"seqs\":[]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reason[0] = '\0';
        int rc = fleetbase_header_decode(bad[i], strlen(bad[i]), &h, reason, sizeof(reason));
        CHECK(rc == HERALD_EPARSE || (i == 2 && rc == HERALD_EUNSUPPORTED));
        CHECK(reason[0] != '\0' && h.seqs == NULL);
    }
    CHECK_INTEQ(fleetbase_header_decode("{", FLEETBASE_MAX_HEADER_BYTES + 1, &h, NULL, 0),
                HERALD_ETOOBIG);
}

int main(void)
{
    test_chunks();
    test_header();
    return TESTUTIL_SUMMARY();
}
