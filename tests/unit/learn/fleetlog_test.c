/* learn/fleetlog: evidence batches round trip, builder caps, strict decoding (each cap). */
#include "fleetlog.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "herald/error.h"
#include "testutil.h"

#define CSS "https://e.com/a.css"

static digest_t make_digest(void)
{
    digest_builder_t db;
    digest_builder_init(&db, DIGEST_DEFAULT_LOG2P);
    CHECK_INTEQ(digest_builder_add(&db, CSS, "\"v1\""), 0);
    CHECK_INTEQ(digest_builder_add(&db, "https://e.com/b.js", NULL), 0);
    char *val = NULL;
    size_t vl = 0;
    CHECK_INTEQ(digest_builder_finish(&db, &val, &vl), 0);
    digest_builder_dispose(&db);
    digest_t d = {0};
    CHECK_INTEQ(digest_parse(val, vl, &d, NULL), 0);
    free(val);
    return d;
}

static const pagemap_item_t rich_items[] = {
    {.url = CSS,
     .kind = PAGEMAP_KIND_STYLE,
     .as = "style",
     .sources = PAGEMAP_SRC_HTML | PAGEMAP_SRC_FOLLOWUP,
     .blocking = true,
     .strong = true},
    {.url = "https://e.com/f.woff2?x=\"q\"\\\n",
     .key = "https://e.com/f.woff2",
     .kind = PAGEMAP_KIND_FONT,
     .crossorigin = PAGEMAP_CORS_ANONYMOUS,
     .order = 4003,
     .sources = PAGEMAP_SRC_CSS,
     .group = 0,
     .conditional = true},
    {.url = "https://e.com/héro-ü.jpg",
     .kind = PAGEMAP_KIND_IMAGE,
     .crossorigin = PAGEMAP_CORS_CREDENTIALS,
     .order = 7,
     .group = 4000000000u,
     .sources = PAGEMAP_SRC_HTML | PAGEMAP_SRC_HINT,
     .skipped = true,
     .push_cancelled = true},
    {.url = "", .kind = PAGEMAP_KIND_SCRIPT}, /* no URL: left out, as the map does */
    {.url = "https://cdn.e.com", .kind = PAGEMAP_KIND_PRECONNECT, .sources = PAGEMAP_SRC_LINK},
};

static pagemap_visit_t rich_visit(const digest_t *d)
{
    return (pagemap_visit_t){.page_key = "e.com/item/1",
                             .template_key = "e.com/item/*",
                             .now_ms = 1700000000123,
                             .think_ms = 120.25,
                             .html_size = 20480,
                             .status = 200,
                             .html_scanned = true,
                             .css_scanned = true,
                             .browser = true,
                             .multiplexed = true,
                             .pushes_used = true,
                             .page_cookie = true,
                             .page_set_cookie = true,
                             .validator = 0xdeadbeef00000001ull,
                             .digest = d,
                             .items = rich_items,
                             .nitems = sizeof(rich_items) / sizeof(rich_items[0])};
}

static void check_same_visit(const pagemap_visit_t *a, const pagemap_visit_t *b)
{
    CHECK_STREQ(a->page_key, b->page_key);
    CHECK_STREQ(a->template_key, b->template_key);
    CHECK_INTEQ(a->now_ms, b->now_ms);
    CHECK(a->think_ms == b->think_ms);
    CHECK_INTEQ(a->html_size, b->html_size);
    CHECK_INTEQ(a->status, b->status);
    CHECK(a->html_scanned == b->html_scanned && a->css_scanned == b->css_scanned);
    CHECK(a->browser == b->browser && a->multiplexed == b->multiplexed);
    CHECK(a->pushes_used == b->pushes_used && a->page_cookie == b->page_cookie);
    CHECK(a->page_set_cookie == b->page_set_cookie && a->supplement == b->supplement);
    CHECK(a->validator == b->validator);
    CHECK((a->digest == NULL) == (b->digest == NULL));
    if (a->digest && b->digest) {
        CHECK_INTEQ(a->digest->log2n, b->digest->log2n);
        CHECK_INTEQ(a->digest->log2p, b->digest->log2p);
        CHECK_INTEQ(a->digest->n, b->digest->n);
        for (size_t i = 0; i < a->digest->n && i < b->digest->n; i++)
            CHECK(a->digest->v[i] == b->digest->v[i]);
    }
    /* b has the items of a that have a URL, in order */
    size_t j = 0;
    for (size_t i = 0; i < a->nitems; i++) {
        const pagemap_item_t *x = &a->items[i];
        if (x->url == NULL || x->url[0] == '\0')
            continue;
        CHECK(j < b->nitems);
        if (j >= b->nitems)
            return;
        const pagemap_item_t *y = &b->items[j++];
        CHECK_STREQ(x->url, y->url);
        CHECK_STREQ(x->key ? x->key : x->url, y->key);
        CHECK_INTEQ(x->kind, y->kind);
        CHECK_STREQ(x->as, y->as);
        CHECK_INTEQ(x->crossorigin, y->crossorigin);
        CHECK_INTEQ(x->order, y->order);
        CHECK_INTEQ(x->sources, y->sources);
        CHECK_INTEQ(x->group, y->group);
        CHECK(x->blocking == y->blocking && x->strong == y->strong);
        CHECK(x->conditional == y->conditional && x->skipped == y->skipped);
        CHECK(x->push_cancelled == y->push_cancelled);
    }
    CHECK_INTEQ(j, b->nitems);
}

static const pagemap_asset_meta_t rich_meta = {.status = 301,
                                               .size = 12345,
                                               .content_type = "text/css; charset=\"utf-8\"",
                                               .etag = "W/\"abc\"",
                                               .last_modified = "Tue, 15 Nov 1994 08:12:31 GMT",
                                               .location = "https://e.com/a2.css",
                                               .policy = CACHEPOLICY_VARY_ENCODING |
                                                         CACHEPOLICY_SET_COOKIE,
                                               .fresh_ms = 3600000,
                                               .pushed = true};

static void check_same_meta(const pagemap_asset_meta_t *a, const pagemap_asset_meta_t *b)
{
    CHECK_INTEQ(a->status, b->status);
    CHECK_INTEQ(a->size, b->size);
    CHECK_STREQ(a->content_type, b->content_type);
    CHECK_STREQ(a->etag, b->etag);
    CHECK_STREQ(a->last_modified, b->last_modified);
    CHECK_STREQ(a->location, b->location);
    CHECK_INTEQ(a->policy, b->policy);
    CHECK_INTEQ(a->fresh_ms, b->fresh_ms);
    CHECK(a->pushed == b->pushed);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Re-encode a decoded batch with the same instance and number. */
static char *reencode(const fleetlog_batch_t *b, size_t *len)
{
    fleetlog_builder_t *w = NULL;
    CHECK_INTEQ(fleetlog_builder_create(b->instance, b->seq, &w), 0);
    for (size_t i = 0; w && i < b->n; i++) {
        const fleetlog_rec_t *r = &b->recs[i];
        if (r->type == FLEETLOG_REC_VISIT)
            CHECK_INTEQ(fleetlog_builder_add_visit(w, &r->visit, r->client), 0);
        else
            CHECK_INTEQ(fleetlog_builder_add_asset(w, r->asset_key, &r->meta), 0);
    }
    char *out = NULL;
    CHECK_INTEQ(fleetlog_builder_finish(w, b->t_ms, &out, len, NULL), 0);
    fleetlog_builder_destroy(w);
    return out;
}

static void test_round_trip(void)
{
    digest_t d = make_digest();
    pagemap_visit_t v = rich_visit(&d);
    pagemap_visit_t plain = {.page_key = "e.com/", .now_ms = 5, .think_ms = -1};
    fleetlog_builder_t *b = NULL;
    CHECK_INTEQ(fleetlog_builder_create("inst-A.1", 7, &b), 0);
    CHECK_INTEQ(fleetlog_builder_next_seq(b), 7);
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0x9f86d081884c7d65ull), 0);
    CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &rich_meta), 0);
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &plain, 0), 0);
    pagemap_asset_meta_t bare = {.status = 200, .fresh_ms = -1};
    CHECK_INTEQ(fleetlog_builder_add_asset(b, "https://e.com/x", &bare), 0);
    pagemap_visit_t auth = v;
    auth.authorized = true; /* teaches nothing: not recorded */
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &auth, 1), 0);
    CHECK_INTEQ(fleetlog_builder_records(b), 4);
    CHECK(!fleetlog_builder_full(b));
    size_t bound = fleetlog_builder_bytes(b);

    char *s = NULL;
    size_t len = 0;
    uint64_t seq = 0;
    CHECK_INTEQ(fleetlog_builder_finish(b, 1700000000999, &s, &len, &seq), 0);
    CHECK_INTEQ(seq, 7);
    CHECK_INTEQ(fleetlog_builder_next_seq(b), 8);
    CHECK_INTEQ(fleetlog_builder_records(b), 0);
    CHECK(s != NULL && strlen(s) == len);
    CHECK(bound >= len && bound <= len + 64);
    /* every string once: the CSS URL is a key in the visit and in the asset record */
    CHECK_INTEQ(count(s, "\"" CSS "\""), 1);

    testutil_guard_t g;
    const char *gs = testutil_guard(&g, s, len); /* an over-read crashes */
    fleetlog_batch_t out;
    char reason[160];
    CHECK_INTEQ(fleetlog_decode(gs, len, &out, reason, sizeof(reason)), 0);
    testutil_guard_free(&g);
    CHECK_STREQ(out.instance, "inst-A.1");
    CHECK_INTEQ(out.seq, 7);
    CHECK_INTEQ(out.t_ms, 1700000000999);
    CHECK_INTEQ(out.n, 4);
    if (out.n == 4) {
        CHECK_INTEQ(out.recs[0].type, FLEETLOG_REC_VISIT);
        CHECK(out.recs[0].client == 0x9f86d081884c7d65ull);
        check_same_visit(&v, &out.recs[0].visit);
        CHECK_INTEQ(out.recs[1].type, FLEETLOG_REC_ASSET);
        CHECK_STREQ(out.recs[1].asset_key, CSS);
        check_same_meta(&rich_meta, &out.recs[1].meta);
        CHECK(out.recs[2].client == 0);
        check_same_visit(&plain, &out.recs[2].visit);
        check_same_meta(&bare, &out.recs[3].meta);
    }
    /* canonical: decoding and encoding again gives the same bytes */
    size_t len2 = 0;
    char *s2 = reencode(&out, &len2);
    CHECK_STREQ(s, s2);
    free(s2);
    fleetlog_batch_dispose(&out);
    CHECK(out.recs == NULL && out.n == 0);
    free(s);

    /* an empty batch is valid */
    CHECK_INTEQ(fleetlog_builder_finish(b, 1, &s, &len, &seq), 0);
    CHECK_INTEQ(seq, 8);
    CHECK_INTEQ(fleetlog_decode(s, len, &out, reason, sizeof(reason)), 0);
    CHECK_INTEQ(out.n, 0);
    fleetlog_batch_dispose(&out);
    free(s);
    fleetlog_builder_destroy(b);
    digest_dispose(&d);
}

/* The string table: a page visited again costs numbers, not URLs. */
static void test_string_table(void)
{
    char urls[12][100];
    pagemap_item_t it[12];
    size_t total = 0;
    for (int i = 0; i < 12; i++) {
        snprintf(
            urls[i], sizeof(urls[i]),
            "https://www.example.com/wp-content/themes/twentytwentythree/assets/%d.css?ver=6.1", i);
        it[i] = (pagemap_item_t){.url = urls[i],
                                 .kind = PAGEMAP_KIND_STYLE,
                                 .sources = PAGEMAP_SRC_HTML | PAGEMAP_SRC_FOLLOWUP,
                                 .strong = true};
        total += strlen(urls[i]);
    }
    pagemap_visit_t v = {.page_key = "www.example.com/2023/01/hello-world/",
                         .now_ms = 1700000000000,
                         .status = 200,
                         .browser = true,
                         .items = it,
                         .nitems = 12};
    fleetlog_builder_t *b = NULL;
    CHECK_INTEQ(fleetlog_builder_create("a", 1, &b), 0);
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 1), 0);
    size_t one = fleetlog_builder_bytes(b);
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 2), 0);
    size_t two = fleetlog_builder_bytes(b);
    CHECK(two - one < total); /* the second visit repeats no URL */
    char *out = NULL;
    CHECK_INTEQ(fleetlog_builder_finish(b, 1, &out, NULL, NULL), 0);
    for (int i = 0; out && i < 12; i++)
        CHECK_INTEQ(count(out, urls[i]), 1);
    free(out);
    fprintf(stderr,
            "string table: a visit of 12 items (%zu bytes of URLs) costs %zu bytes, "
            "the same page again %zu\n",
            total, one, two - one);
    fleetlog_builder_destroy(b);
}

static void test_builder_refuses(void)
{
    fleetlog_builder_t *b = NULL;
    CHECK_INTEQ(fleetlog_builder_create("bad id", 1, &b), HERALD_EINVAL);
    CHECK_INTEQ(fleetlog_builder_create("a", 0, &b), HERALD_EINVAL);
    char longid[FLEETLOG_MAX_INSTANCE + 2];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    CHECK(!fleetlog_instance_valid(longid));
    longid[FLEETLOG_MAX_INSTANCE] = '\0';
    CHECK(fleetlog_instance_valid(longid));
    CHECK_INTEQ(fleetlog_builder_create("a", 1, &b), 0);

    pagemap_item_t it = {.url = "https://e.com/\xc3\x28", .kind = PAGEMAP_KIND_IMAGE};
    pagemap_visit_t v = {.page_key = "e.com/", .now_ms = 1, .items = &it, .nitems = 1};
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), HERALD_EINVAL); /* not UTF-8 */
    it.url = "https://e.com/\xed\xa0\x80";                            /* a surrogate */
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), HERALD_EINVAL);
    it.url = "https://e.com/\xe0\x80\xaf"; /* overlong */
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), HERALD_EINVAL);
    it.url = "https://e.com/ok";
    it.crossorigin = (pagemap_cors_t)3;
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), HERALD_EINVAL);
    it.crossorigin = PAGEMAP_CORS_NONE;
    v.status = 1000;
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), HERALD_EINVAL);
    v.status = 200;
    v.page_key = "";
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), HERALD_EINVAL);
    v.page_key = "e.com/";
    char *huge = malloc(FLEETLOG_MAX_STRING + 2);
    memset(huge, 'u', FLEETLOG_MAX_STRING + 1);
    huge[FLEETLOG_MAX_STRING + 1] = '\0';
    it.url = huge;
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), HERALD_EINVAL);
    pagemap_asset_meta_t m = {.status = 200, .etag = huge};
    CHECK_INTEQ(fleetlog_builder_add_asset(b, "https://e.com/ok", &m), HERALD_EINVAL);
    huge[FLEETLOG_MAX_STRING] = '\0'; /* exactly the cap: fine */
    CHECK_INTEQ(fleetlog_builder_add_asset(b, "https://e.com/ok", &m), 0);
    CHECK_INTEQ(fleetlog_builder_records(b), 1);

    /* too many items */
    pagemap_item_t *many = calloc(FLEETLOG_MAX_VISIT_ITEMS + 1, sizeof(*many));
    char(*urls)[40] = calloc(FLEETLOG_MAX_VISIT_ITEMS + 1, sizeof(*urls));
    for (size_t i = 0; i <= FLEETLOG_MAX_VISIT_ITEMS; i++) {
        snprintf(urls[i], sizeof(urls[i]), "https://e.com/%zu.png", i);
        many[i] = (pagemap_item_t){.url = urls[i], .kind = PAGEMAP_KIND_IMAGE};
    }
    pagemap_visit_t mv = {
        .page_key = "e.com/m", .now_ms = 1, .items = many, .nitems = FLEETLOG_MAX_VISIT_ITEMS + 1};
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &mv, 0), HERALD_EINVAL);
    mv.nitems = FLEETLOG_MAX_VISIT_ITEMS;
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &mv, 0), 0);
    CHECK_INTEQ(fleetlog_builder_records(b), 2);
    free(urls);
    free(many);

    /* a record over FLEETLOG_MAX_RECORD_BYTES: refused, the builder unchanged */
    size_t nbig = FLEETLOG_MAX_RECORD_BYTES / FLEETLOG_MAX_STRING + 2;
    pagemap_item_t *big = calloc(nbig, sizeof(*big));
    char **bu = calloc(nbig, sizeof(*bu));
    for (size_t i = 0; i < nbig; i++) {
        bu[i] = malloc(FLEETLOG_MAX_STRING + 1);
        memset(bu[i], 'a' + (char)(i % 26), FLEETLOG_MAX_STRING);
        snprintf(bu[i], 24, "https://e.com/%zu/", i);
        bu[i][strlen(bu[i])] = 'z';
        bu[i][FLEETLOG_MAX_STRING] = '\0';
        big[i] = (pagemap_item_t){.url = bu[i], .kind = PAGEMAP_KIND_IMAGE};
    }
    pagemap_visit_t bv = {.page_key = "e.com/big", .now_ms = 1, .items = big, .nitems = nbig};
    size_t before = fleetlog_builder_bytes(b);
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &bv, 0), HERALD_ETOOBIG);
    CHECK_INTEQ(fleetlog_builder_records(b), 2);
    CHECK_INTEQ(fleetlog_builder_bytes(b), before);
    /* ... and what was collected still encodes and decodes */
    char *s = NULL;
    size_t len = 0;
    CHECK_INTEQ(fleetlog_builder_finish(b, 2, &s, &len, NULL), 0);
    fleetlog_batch_t out;
    char reason[160];
    CHECK_INTEQ(fleetlog_decode(s, len, &out, reason, sizeof(reason)), 0);
    CHECK_INTEQ(out.n, 2);
    fleetlog_batch_dispose(&out);
    free(s);

    /* a batch fills up: records near the record cap, until one does not fit */
    bv.nitems = FLEETLOG_MAX_RECORD_BYTES / (FLEETLOG_MAX_STRING + 40) - 1;
    size_t added = 0;
    int rc;
    while ((rc = fleetlog_builder_add_visit(b, &bv, 0)) == 0) {
        added++;
        /* the same URLs again cost little: make them new */
        for (size_t i = 0; i < bv.nitems; i++)
            bu[i][30] = (char)('A' + (char)added);
    }
    CHECK_INTEQ(rc, HERALD_ETOOBIG);
    CHECK(added >= 3 && fleetlog_builder_records(b) == added);
    CHECK(fleetlog_builder_full(b));
    CHECK(fleetlog_builder_bytes(b) <= FLEETLOG_MAX_BATCH_BYTES);
    CHECK_INTEQ(fleetlog_builder_finish(b, 3, &s, &len, NULL), 0);
    CHECK(len <= FLEETLOG_MAX_BATCH_BYTES);
    CHECK_INTEQ(fleetlog_decode(s, len, &out, reason, sizeof(reason)), 0);
    CHECK_INTEQ(out.n, added);
    fleetlog_batch_dispose(&out);
    free(s);
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &bv, 0), 0); /* fits the next batch */
    for (size_t i = 0; i < nbig; i++)
        free(bu[i]);
    free(bu);
    free(big);
    free(huge);
    fleetlog_builder_destroy(b);
}

/* Decode `json` and expect rc with a reason; nothing comes back. */
static void expect(int rc, const char *json)
{
    fleetlog_batch_t out;
    char reason[160] = "";
    int got = fleetlog_decode(json, strlen(json), &out, reason, sizeof(reason));
    CHECK_INTEQ(got, rc);
    if (got != rc)
        fprintf(stderr, "  input: %.200s\n  reason: %s\n", json, reason);
    CHECK(reason[0] != '\0');
    CHECK(out.recs == NULL && out.n == 0 && out.arena == NULL);
    fleetlog_batch_dispose(&out);
}

#define HEAD "{\"v\":1,\"inst\":\"a\",\"seq\":1,\"t\":1,"
#define STR "\"str\":[\"e.com/\",\"https://e.com/a.css\"],"

/* A batch of one visit whose item is `item` (a JSON object). */
static char *with_item(const char *item)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf), HEAD STR "\"rec\":[{\"r\":\"visit\",\"t\":1,\"p\":0,\"it\":[%s]}]}",
             item);
    return buf;
}

/* A batch of one record `rec`. */
static char *with_rec(const char *rec)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf), HEAD STR "\"rec\":[%s]}", rec);
    return buf;
}

static void test_decode_rejects(void)
{
    /* the base case decodes */
    fleetlog_batch_t out;
    const char *ok = with_item("{\"k\":1,\"kd\":\"style\"}");
    CHECK_INTEQ(fleetlog_decode(ok, strlen(ok), &out, NULL, 0), 0);
    fleetlog_batch_dispose(&out);

    expect(HERALD_EPARSE, "");
    expect(HERALD_EPARSE, "{\"v\":1");
    expect(HERALD_EPARSE, "[]");
    expect(HERALD_EPARSE, HEAD STR "\"rec\":[]} x");
    expect(HERALD_EUNSUPPORTED, "{\"v\":2,\"inst\":\"a\",\"seq\":1,\"t\":1,\"str\":[],\"rec\":[]}");
    expect(HERALD_EPARSE, "{\"v\":\"1\",\"inst\":\"a\",\"seq\":1,\"t\":1,\"str\":[],\"rec\":[]}");
    expect(HERALD_EPARSE, HEAD STR "\"rec\":[],\"x\":1}");      /* unknown member */
    expect(HERALD_EPARSE, HEAD "\"seq\":2," STR "\"rec\":[]}"); /* duplicate */
    expect(HERALD_EPARSE, "{\"v\":1,\"inst\":\"a b\",\"seq\":1,\"t\":1,\"str\":[],\"rec\":[]}");
    expect(HERALD_EPARSE,
           "{\"v\":1,\"inst\":\"a\\u0000b\",\"seq\":1,\"t\":1,\"str\":[],\"rec\":[]}");
    expect(HERALD_EPARSE, "{\"v\":1,\"inst\":\"a\",\"seq\":0,\"t\":1,\"str\":[],\"rec\":[]}");
    expect(HERALD_EPARSE,
           "{\"v\":1,\"inst\":\"a\",\"seq\":9007199254740992,\"t\":1,\"str\":[],\"rec\":[]}");
    expect(HERALD_EPARSE, "{\"v\":1,\"inst\":\"a\",\"seq\":1,\"t\":-1,\"str\":[],\"rec\":[]}");
    expect(HERALD_EPARSE, "{\"v\":1,\"inst\":\"a\",\"seq\":1,\"str\":[],\"rec\":[]}");
    expect(HERALD_EPARSE, HEAD "\"str\":[1],\"rec\":[]}");
    expect(HERALD_EPARSE, HEAD "\"str\":[\"a\\u0000\"],\"rec\":[]}");
    expect(HERALD_EPARSE, HEAD "\"str\":{},\"rec\":[]}");
    /* records */
    expect(HERALD_EPARSE, with_rec("1"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"other\"}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"p\":0,\"it\":[]}"));         /* no t */
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"it\":[]}"));         /* no p */
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"p\":0}"));           /* no it */
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"p\":2,\"it\":[]}")); /* index */
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"p\":-1,\"it\":[]}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"p\":0.5,\"it\":[]}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"p\":0,\"it\":[],\"zz\":0}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"p\":0,\"st\":1000,\"it\":[]}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"p\":0,\"f\":256,\"it\":[]}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"p\":0,\"think\":-1,\"it\":[]}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"p\":0,\"think\":1e10,\"it\":[]}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"p\":0,\"html\":-1,\"it\":[]}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"p\":0,\"c\":\"12\",\"it\":[]}"));
    expect(HERALD_EPARSE,
           with_rec("{\"r\":\"visit\",\"t\":1,\"p\":0,\"c\":\"000000000000000G\",\"it\":[]}"));
    expect(HERALD_EPARSE,
           with_rec("{\"r\":\"visit\",\"t\":1,\"p\":0,\"val\":\"ABCDEF0000000000\",\"it\":[]}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"p\":0,\"dig\":\"!!\",\"it\":[]}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"visit\",\"t\":1,\"p\":0,\"dig\":3,\"it\":[]}"));
    expect(HERALD_EPARSE, "{\"v\":1,\"inst\":\"a\",\"seq\":1,\"t\":1,\"str\":[\"\"],\"rec\":"
                          "[{\"r\":\"visit\",\"t\":1,\"p\":0,\"it\":[]}]}"); /* empty page key */
    /* items */
    expect(HERALD_EPARSE, with_item("1"));
    expect(HERALD_EPARSE, with_item("{\"kd\":\"style\"}"));
    expect(HERALD_EPARSE, with_item("{\"k\":1}"));
    expect(HERALD_EPARSE, with_item("{\"k\":1,\"kd\":\"stylesheet\"}"));
    expect(HERALD_EPARSE, with_item("{\"k\":1,\"kd\":\"style\",\"co\":3}"));
    expect(HERALD_EPARSE, with_item("{\"k\":1,\"kd\":\"style\",\"s\":64}"));
    expect(HERALD_EPARSE, with_item("{\"k\":1,\"kd\":\"style\",\"f\":32}"));
    expect(HERALD_EPARSE, with_item("{\"k\":1,\"kd\":\"style\",\"g\":4294967296}"));
    expect(HERALD_EPARSE, with_item("{\"k\":1,\"kd\":\"style\",\"o\":-1}"));
    expect(HERALD_EPARSE, with_item("{\"k\":1,\"kd\":\"style\",\"u\":9}"));
    expect(HERALD_EPARSE, with_item("{\"k\":1,\"kd\":\"style\",\"why\":1}"));
    /* asset records */
    expect(HERALD_EPARSE, with_rec("{\"r\":\"asset\"}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"asset\",\"k\":1,\"pol\":2048}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"asset\",\"k\":1,\"fr\":-2}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"asset\",\"k\":1,\"f\":2}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"asset\",\"k\":1,\"st\":-1}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"asset\",\"k\":1,\"et\":7}"));
    expect(HERALD_EPARSE, with_rec("{\"r\":\"asset\",\"k\":1,\"it\":[]}"));
}

/* Build "{...,"str":[<n strings>],"rec":[<m records>]}" with a printf-style element. */
static char *repeat(const char *head, const char *elem, size_t n, const char *mid,
                    const char *elem2, size_t m, const char *tail)
{
    size_t cap = strlen(head) + strlen(mid) + strlen(tail) + n * (strlen(elem) + 1) +
                 m * (strlen(elem2) + 1) + 1;
    char *s = malloc(cap), *p = s;
    p += sprintf(p, "%s", head);
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i ? "," : "", elem);
    p += sprintf(p, "%s", mid);
    for (size_t i = 0; i < m; i++)
        p += sprintf(p, "%s%s", i ? "," : "", elem2);
    sprintf(p, "%s", tail);
    return s;
}

/* "xxx...x" with n x's, quotes included. */
static char *quoted(size_t n)
{
    char *s = malloc(n + 3);
    s[0] = '"';
    memset(s + 1, 'x', n);
    s[n + 1] = '"';
    s[n + 2] = '\0';
    return s;
}

static void test_decode_caps(void)
{
    /* too many bytes: refused before parsing */
    size_t n = FLEETLOG_MAX_BATCH_BYTES + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    fleetlog_batch_t out;
    char reason[160];
    CHECK_INTEQ(fleetlog_decode(big, n, &out, reason, sizeof(reason)), HERALD_ETOOBIG);
    free(big);
    /* too many strings; exactly the cap is fine */
    char *s =
        repeat(HEAD "\"str\":[", "\"\"", FLEETLOG_MAX_STRINGS + 1, "],\"rec\":[", "", 0, "]}");
    expect(HERALD_ETOOBIG, s);
    free(s);
    s = repeat(HEAD "\"str\":[", "\"\"", FLEETLOG_MAX_STRINGS, "],\"rec\":[", "", 0, "]}");
    CHECK_INTEQ(fleetlog_decode(s, strlen(s), &out, reason, sizeof(reason)), 0);
    CHECK_INTEQ(out.nstr, FLEETLOG_MAX_STRINGS);
    fleetlog_batch_dispose(&out);
    free(s);
    /* a string too long; exactly the cap is fine */
    char *lng = quoted(FLEETLOG_MAX_STRING + 1);
    s = repeat(HEAD "\"str\":[", lng, 1, "],\"rec\":[", "", 0, "]}");
    expect(HERALD_ETOOBIG, s);
    free(s);
    free(lng);
    lng = quoted(FLEETLOG_MAX_STRING);
    s = repeat(HEAD "\"str\":[", lng, 1, "],\"rec\":[", "", 0, "]}");
    CHECK_INTEQ(fleetlog_decode(s, strlen(s), &out, reason, sizeof(reason)), 0);
    fleetlog_batch_dispose(&out);
    free(s);
    free(lng);
    /* too many records */
    s = repeat(HEAD "\"str\":[\"k\"", "", 0, "],\"rec\":[", "{\"r\":\"asset\",\"k\":0}",
               FLEETLOG_MAX_RECORDS + 1, "]}");
    expect(HERALD_ETOOBIG, s);
    free(s);
    /* too many items in one visit, and in one batch */
    char *items =
        repeat("", "{\"k\":0,\"kd\":\"image\"}", FLEETLOG_MAX_VISIT_ITEMS + 1, "", "", 0, "");
    char *rec = malloc(strlen(items) + 64);
    sprintf(rec, "{\"r\":\"visit\",\"t\":1,\"p\":0,\"it\":[%s]}", items);
    s = repeat(HEAD "\"str\":[\"k\"", "", 0, "],\"rec\":[", rec, 1, "]}");
    expect(HERALD_ETOOBIG, s);
    free(s);
    free(items);
    free(rec);
    items = repeat("", "{\"k\":0,\"kd\":\"image\"}", FLEETLOG_MAX_VISIT_ITEMS, "", "", 0, "");
    rec = malloc(strlen(items) + 64);
    sprintf(rec, "{\"r\":\"visit\",\"t\":1,\"p\":0,\"it\":[%s]}", items);
    size_t nrec = FLEETLOG_MAX_ITEMS / FLEETLOG_MAX_VISIT_ITEMS;
    s = repeat(HEAD "\"str\":[\"k\"", "", 0, "],\"rec\":[", rec, nrec, "]}");
    CHECK_INTEQ(fleetlog_decode(s, strlen(s), &out, reason, sizeof(reason)), 0);
    fleetlog_batch_dispose(&out);
    free(s);
    s = repeat(HEAD "\"str\":[\"k\"", "", 0, "],\"rec\":[", rec, nrec + 1, "]}");
    expect(HERALD_ETOOBIG, s);
    free(s);
    free(items);
    free(rec);
}

static void check_same_rec(const fleetlog_rec_t *a, const fleetlog_rec_t *b)
{
    CHECK_INTEQ(a->type, b->type);
    if (a->type != b->type)
        return;
    if (a->type == FLEETLOG_REC_VISIT) {
        CHECK(a->client == b->client);
        CHECK_INTEQ(a->visit.nitems, b->visit.nitems);
        CHECK((a->visit.items == NULL) == (b->visit.items == NULL));
        CHECK(a->visit.authorized == b->visit.authorized);
        check_same_visit(&a->visit, &b->visit);
    } else if (a->type == FLEETLOG_REC_ASSET) {
        CHECK_STREQ(a->asset_key, b->asset_key);
        check_same_meta(&a->meta, &b->meta);
    } else {
        CHECK_STREQ(a->explore.key, b->explore.key);
        CHECK(a->explore.plans == b->explore.plans);
        CHECK(a->explore.explored == b->explore.explored);
        CHECK(a->explore.cursor == b->explore.cursor);
    }
}

/* The builder's decoded copy of a batch (the held records the instance
 * applies itself) is what fleetlog_decode makes of the batch's bytes, also
 * for values the encoding clamps or leaves out; the builder goes on after
 * handing it over. */
static void test_held_copy(void)
{
    digest_t d = make_digest();
    pagemap_visit_t v = rich_visit(&d);
    pagemap_item_t odd_items[] = {
        {.url = "https://e.com/o.js",
         .kind = (pagemap_kind_t)99,
         .sources = 0xffffu,
         .order = UINT32_MAX},
        {.url = "https://e.com/p.css", .key = "https://e.com/p.css", .kind = PAGEMAP_KIND_STYLE},
    };
    pagemap_visit_t odd = {.page_key = "e.com/odd",
                           .template_key = "e.com/odd",
                           .now_ms = 9,
                           .think_ms = 5e12,
                           .html_size = UINT64_MAX,
                           .status = 404,
                           .supplement = true,
                           .items = odd_items,
                           .nitems = 2};
    pagemap_visit_t nan = {.page_key = "e.com/", .template_key = "", .now_ms = 5, .think_ms = NAN};
    pagemap_visit_t empty = {.page_key = "e.com/", .now_ms = 6, .think_ms = 3};
    pagemap_asset_meta_t bare = {.status = 200, .fresh_ms = -1};
    pagemap_asset_meta_t big = {.size = UINT64_MAX, .fresh_ms = INT64_MAX, .policy = 0xffffffffu};
    pagemap_explore_delta_t ex1 = {
        .key = "e.com/item/*", .plans = 5, .explored = 2, .cursor = 0xfeedull};
    pagemap_explore_delta_t ex0 = {.key = "e.com/new", .plans = UINT64_MAX, .cursor = 7};
    fleetlog_builder_t *b = NULL;
    CHECK_INTEQ(fleetlog_builder_create("inst-H", 3, &b), 0);
    for (int round = 0; b && round < 2; round++) {
        CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0x9f86d081884c7d65ull), 0);
        CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &rich_meta), 0);
        CHECK_INTEQ(fleetlog_builder_add_visit(b, &odd, 1), 0);
        CHECK_INTEQ(fleetlog_builder_add_visit(b, &nan, 0), 0);
        CHECK_INTEQ(fleetlog_builder_add_explore(b, &ex1), 0);
        CHECK_INTEQ(fleetlog_builder_add_asset(b, "https://e.com/x", &bare), 0);
        CHECK_INTEQ(fleetlog_builder_add_visit(b, &empty, 0), 0);
        CHECK_INTEQ(fleetlog_builder_add_asset(b, "https://e.com/y", &big), 0);
        CHECK_INTEQ(fleetlog_builder_add_explore(b, &ex0), 0);
        CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), 0); /* strings and digest again */
        /* refused records leave no copy behind */
        pagemap_visit_t bad = {.page_key = "e.com/", .status = 1000};
        CHECK_INTEQ(fleetlog_builder_add_visit(b, &bad, 0), HERALD_EINVAL);
        char *s = NULL;
        size_t len = 0;
        uint64_t seq = 0;
        fleetlog_batch_t held, dec;
        CHECK_INTEQ(fleetlog_builder_finish_held(b, 1700000000999 + round, &s, &len, &seq, &held),
                    0);
        CHECK_INTEQ(seq, 3 + round);
        CHECK_INTEQ(fleetlog_builder_records(b), 0);
        CHECK_INTEQ(fleetlog_decode(s, len, &dec, NULL, 0), 0);
        CHECK_STREQ(held.instance, dec.instance);
        CHECK(held.seq == dec.seq && held.t_ms == dec.t_ms);
        CHECK_INTEQ(held.n, 10);
        CHECK_INTEQ(held.n, dec.n);
        for (size_t i = 0; i < held.n && i < dec.n; i++)
            check_same_rec(&dec.recs[i], &held.recs[i]);
        fleetlog_batch_dispose(&held);
        fleetlog_batch_dispose(&dec);
        free(s);
    }
    /* a builder destroyed with records still held frees them */
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), 0);
    fleetlog_builder_destroy(b);
    digest_dispose(&d);
}

/* An asset seen again with the same metadata in one batch is written
 * once; a change is written, and so is a change back. */
static void test_asset_repeats(void)
{
    fleetlog_builder_t *b = NULL;
    CHECK_INTEQ(fleetlog_builder_create("inst-R", 1, &b), 0);
    pagemap_asset_meta_t m1 = {
        .status = 200, .size = 10, .content_type = "text/css", .etag = "\"a\"", .fresh_ms = -1};
    char ct[] = "text/css"; /* equal, not the same pointer */
    pagemap_asset_meta_t m1b = m1;
    m1b.content_type = ct;
    pagemap_asset_meta_t m2 = m1;
    m2.etag = "\"b\"";
    pagemap_asset_meta_t m3 = m1;
    m3.pushed = true;
    pagemap_asset_meta_t m4 = m1;
    m4.size = (uint64_t)FLEETLOG_MAX_INT + 5; /* recorded as the cap */
    pagemap_asset_meta_t m4b = m1;
    m4b.size = (uint64_t)FLEETLOG_MAX_INT + 9;
    CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &m1), 0);
    CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &m1b), 0);
    CHECK_INTEQ(fleetlog_builder_records(b), 1);
    CHECK_INTEQ(fleetlog_builder_add_asset(b, "https://e.com/x", &m1), 0); /* another asset */
    CHECK_INTEQ(fleetlog_builder_records(b), 2);
    CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &m2), 0);
    CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &m2), 0);
    CHECK_INTEQ(fleetlog_builder_records(b), 3);
    CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &m1), 0); /* back: the last one said m2 */
    CHECK_INTEQ(fleetlog_builder_records(b), 4);
    CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &m3), 0);
    CHECK_INTEQ(fleetlog_builder_records(b), 5);
    CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &m4), 0);
    CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &m4b), 0);
    CHECK_INTEQ(fleetlog_builder_records(b), 6);
    /* a visit naming the asset does not end the run of equal records */
    pagemap_item_t it = {.url = CSS, .kind = PAGEMAP_KIND_STYLE};
    pagemap_visit_t v = {.page_key = "e.com/", .now_ms = 1, .items = &it, .nitems = 1};
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), 0);
    CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &m4), 0);
    CHECK_INTEQ(fleetlog_builder_records(b), 7);
    char *s = NULL;
    size_t len = 0;
    fleetlog_batch_t held, dec;
    CHECK_INTEQ(fleetlog_builder_finish_held(b, 1, &s, &len, NULL, &held), 0);
    CHECK_INTEQ(fleetlog_decode(s, len, &dec, NULL, 0), 0);
    CHECK_INTEQ(dec.n, 7);
    CHECK_INTEQ(held.n, dec.n);
    for (size_t i = 0; i < held.n && i < dec.n; i++)
        check_same_rec(&dec.recs[i], &held.recs[i]);
    if (dec.n == 7) {
        CHECK_STREQ(dec.recs[3].meta.etag, "\"a\"");
        CHECK(dec.recs[4].meta.pushed);
    }
    fleetlog_batch_dispose(&held);
    fleetlog_batch_dispose(&dec);
    free(s);
    /* a new batch writes the asset again */
    CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &m4), 0);
    CHECK_INTEQ(fleetlog_builder_records(b), 1);
    /* an invalid string is refused the first time, and never deduplicated */
    pagemap_asset_meta_t bad = m1;
    bad.etag = "\xc3\x28";
    CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &bad), HERALD_EINVAL);
    CHECK_INTEQ(fleetlog_builder_add_asset(b, CSS, &bad), HERALD_EINVAL);
    CHECK_INTEQ(fleetlog_builder_add_asset(b, "https://e.com/\xc3\x28", &m1), HERALD_EINVAL);
    CHECK_INTEQ(fleetlog_builder_records(b), 1);
    fleetlog_builder_destroy(b);
}

/* Think times go to the microsecond: the text and what every reader
 * parses from it, the held copy included. */
static void test_think_precision(void)
{
    static const struct {
        double in;
        const char *text;
        double out;
    } cases[] = {
        {0.1 + 0.2, "\"think\":0.3,", 0.3},   {123456.7894, "\"think\":123456.789,", 123456.789},
        {2.5, "\"think\":2.5,", 2.5},         {0.0004, "\"think\":0,", 0},
        {1e12, "\"think\":1000000000,", 1e9}, {41.06, "\"think\":41.06,", 41.06},
    };
    fleetlog_builder_t *b = NULL;
    CHECK_INTEQ(fleetlog_builder_create("inst-T", 1, &b), 0);
    for (size_t i = 0; b && i < sizeof(cases) / sizeof(cases[0]); i++) {
        pagemap_visit_t v = {
            .page_key = "e.com/", .now_ms = 1, .status = 200, .think_ms = cases[i].in};
        CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), 0);
        char *s = NULL;
        size_t len = 0;
        fleetlog_batch_t held, dec;
        CHECK_INTEQ(fleetlog_builder_finish_held(b, 1, &s, &len, NULL, &held), 0);
        CHECK(s != NULL && strstr(s, cases[i].text) != NULL);
        CHECK_INTEQ(fleetlog_decode(s, len, &dec, NULL, 0), 0);
        if (held.n == 1 && dec.n == 1) {
            CHECK(dec.recs[0].visit.think_ms == cases[i].out);
            CHECK(held.recs[0].visit.think_ms == cases[i].out);
        }
        fleetlog_batch_dispose(&held);
        fleetlog_batch_dispose(&dec);
        free(s);
    }
    fleetlog_builder_destroy(b);
}

int main(void)
{
    test_think_precision();
    test_asset_repeats();
    test_round_trip();
    test_held_copy();
    test_string_table();
    test_builder_refuses();
    test_decode_rejects();
    test_decode_caps();
    return TESTUTIL_SUMMARY();
}
