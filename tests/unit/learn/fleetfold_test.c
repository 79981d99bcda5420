/*
 * learn/fleetfold: a batch counts once (resends, own batches), the bounded
 * sequence record, client marks while folding, and the strong check: three
 * instances that serve a site between them and exchange batches end with
 * the plans of one map that saw every visit itself, in order.
 */
#include "fleetfold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "testutil.h"

static pagemap_t *new_map(void)
{
    pagemap_t *pm = NULL;
    CHECK_INTEQ(pagemap_create(NULL, &pm), 0);
    return pm;
}

static uint64_t visits_total(pagemap_t *pm, const char *page)
{
    pagemap_page_info_t info;
    if (pagemap_page_get(pm, page, &info, NULL, NULL) != 0)
        return 0;
    uint64_t n = info.visits_total;
    pagemap_page_info_dispose(&info);
    return n;
}

/* Encode what b collected and decode it again (what another instance reads). */
static void roundtrip(fleetlog_builder_t *b, fleetlog_batch_t *out)
{
    char *s = NULL;
    size_t len = 0;
    CHECK_INTEQ(fleetlog_builder_finish(b, 1, &s, &len, NULL), 0);
    char reason[160];
    CHECK_INTEQ(fleetlog_decode(s, len, out, reason, sizeof(reason)), 0);
    free(s);
}

static const pagemap_item_t css = {.url = "https://e.com/a.css",
                                   .kind = PAGEMAP_KIND_STYLE,
                                   .sources = PAGEMAP_SRC_HTML | PAGEMAP_SRC_FOLLOWUP,
                                   .strong = true,
                                   .blocking = true};

static void test_once(void)
{
    fleetlog_builder_t *b = NULL;
    CHECK_INTEQ(fleetlog_builder_create("B", 1, &b), 0);
    pagemap_visit_t v = {.page_key = "e.com/",
                         .now_ms = 1000,
                         .think_ms = -1,
                         .status = 200,
                         .html_scanned = true,
                         .browser = true,
                         .multiplexed = true,
                         .items = &css,
                         .nitems = 1};
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), 0);
    pagemap_asset_meta_t m = {.status = 200, .size = 99, .fresh_ms = 60000};
    CHECK_INTEQ(fleetlog_builder_add_asset(b, css.url, &m), 0);
    CHECK_INTEQ(fleetlog_builder_add_asset(b, "https://e.com/nobody-links.js", &m), 0);
    fleetlog_batch_t b1;
    roundtrip(b, &b1); /* seq 1 */

    pagemap_t *pm = new_map();
    fleetfold_t *f = NULL;
    CHECK_INTEQ(fleetfold_create("A", 8, 1000000, &f), 0);
    fleetfold_result_t r;
    CHECK_INTEQ(fleetfold_apply(f, pm, NULL, &b1, 5000, &r), 0);
    CHECK_INTEQ(r.check, FLEETFOLD_NEW);
    CHECK_INTEQ(r.visits, 1);
    CHECK_INTEQ(r.assets, 1);
    CHECK_INTEQ(r.unknown_assets, 1);
    CHECK_INTEQ(visits_total(pm, "e.com/"), 1);
    CHECK_INTEQ(fleetfold_seq(f, "B"), 1);
    /* the metadata arrived with the visit */
    pagemap_edge_info_t *e = NULL;
    size_t ne = 0;
    pagemap_page_info_t info;
    CHECK_INTEQ(pagemap_page_get(pm, "e.com/", &info, &e, &ne), 0);
    CHECK(ne == 1 && e[0].size == 99 && e[0].status == 200);
    pagemap_page_info_dispose(&info);
    pagemap_edge_infos_free(e, ne);

    /* a resend counts nothing */
    CHECK_INTEQ(fleetfold_apply(f, pm, NULL, &b1, 6000, &r), 0);
    CHECK_INTEQ(r.check, FLEETFOLD_DUPLICATE);
    CHECK_INTEQ(r.visits, 0);
    CHECK_INTEQ(visits_total(pm, "e.com/"), 1);

    /* the next batch counts, then an older one does not */
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), 0);
    fleetlog_batch_t b2;
    roundtrip(b, &b2); /* seq 2 */
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), 0);
    fleetlog_batch_t b3;
    roundtrip(b, &b3); /* seq 3 */
    CHECK_INTEQ(fleetfold_apply(f, pm, NULL, &b3, 7000, &r), 0);
    CHECK_INTEQ(r.check, FLEETFOLD_NEW); /* a gap is fine: batch 2 was lost */
    CHECK_INTEQ(fleetfold_apply(f, pm, NULL, &b2, 7000, &r), 0);
    CHECK_INTEQ(r.check, FLEETFOLD_DUPLICATE);
    CHECK_INTEQ(visits_total(pm, "e.com/"), 2);

    /* the instance's own batches are skipped: its visits are in its map */
    fleetfold_t *own = NULL;
    CHECK_INTEQ(fleetfold_create("B", 8, 1000000, &own), 0);
    CHECK_INTEQ(fleetfold_apply(own, pm, NULL, &b2, 7000, &r), 0);
    CHECK_INTEQ(r.check, FLEETFOLD_OWN);
    CHECK_INTEQ(visits_total(pm, "e.com/"), 2);
    CHECK_INTEQ(fleetfold_count(own), 0);
    fleetfold_destroy(own);

    CHECK_INTEQ(fleetfold_apply(NULL, pm, NULL, &b2, 0, &r), HERALD_EINVAL);
    fleetlog_batch_dispose(&b1);
    fleetlog_batch_dispose(&b2);
    fleetlog_batch_dispose(&b3);
    fleetfold_destroy(f);
    fleetlog_builder_destroy(b);
    pagemap_destroy(pm);
}

static void test_record(void)
{
    fleetfold_t *f = NULL;
    fleetfold_t *bad = (fleetfold_t *)1;
    CHECK_INTEQ(fleetfold_create("bad id", 3, 100, &bad), HERALD_EINVAL);
    CHECK(bad == NULL);
    CHECK_INTEQ(fleetfold_create("self", 0, 100, &bad), HERALD_EINVAL);
    CHECK_INTEQ(fleetfold_create("self", 3, 100, &f), 0);
    CHECK_INTEQ(fleetfold_note(f, "c", 5, 1), 0);
    CHECK_INTEQ(fleetfold_note(f, "a", 7, 2), 0);
    CHECK_INTEQ(fleetfold_note(f, "b", 1, 3), 0);
    CHECK_INTEQ(fleetfold_note(f, "a", 3, 4), 0); /* lower: kept at 7, seen again */
    CHECK_INTEQ(fleetfold_seq(f, "a"), 7);
    CHECK_INTEQ(fleetfold_note(f, "self", 9, 4), 0); /* own: not recorded */
    CHECK_INTEQ(fleetfold_seq(f, "self"), 0);
    CHECK_INTEQ(fleetfold_check(f, "self", 100), FLEETFOLD_OWN);
    CHECK_INTEQ(fleetfold_check(f, "a", 7), FLEETFOLD_DUPLICATE);
    CHECK_INTEQ(fleetfold_check(f, "a", 8), FLEETFOLD_NEW);
    CHECK_INTEQ(fleetfold_check(f, "zz", 1), FLEETFOLD_NEW);
    CHECK_INTEQ(fleetfold_note(f, "x", 0, 4), HERALD_EINVAL);
    CHECK_INTEQ(fleetfold_note(f, "x y", 1, 4), HERALD_EINVAL);

    fleetfold_entry_t *e = NULL;
    size_t n = 0;
    CHECK_INTEQ(fleetfold_entries(f, &e, &n), 0);
    CHECK_INTEQ(n, 3);
    if (n == 3) { /* sorted by id */
        CHECK_STREQ(e[0].instance, "a");
        CHECK_STREQ(e[1].instance, "b");
        CHECK_STREQ(e[2].instance, "c");
        CHECK_INTEQ(e[0].seq, 7);
    }
    free(e);

    /* full: the least recently seen goes (c, seen at 1) */
    CHECK_INTEQ(fleetfold_note(f, "d", 2, 5), 0);
    CHECK_INTEQ(fleetfold_count(f), 3);
    CHECK_INTEQ(fleetfold_seq(f, "c"), 0);
    CHECK_INTEQ(fleetfold_seq(f, "d"), 2);
    /* accept = check + note */
    int rc = 1;
    CHECK(fleetfold_accept(f, "d", 3, 6, &rc) && rc == 0);
    CHECK(!fleetfold_accept(f, "d", 3, 6, &rc) && rc == 0);
    CHECK(!fleetfold_accept(f, "self", 30, 6, &rc) && rc == 0);
    CHECK(!fleetfold_accept(f, "", 30, 6, &rc) && rc == HERALD_EINVAL);
    /* expiry: not seen for 100 ms */
    fleetfold_expire(f, 104); /* a seen at 4, b at 3, d at 6 */
    CHECK_INTEQ(fleetfold_seq(f, "a"), 0);
    CHECK_INTEQ(fleetfold_seq(f, "b"), 0);
    CHECK_INTEQ(fleetfold_seq(f, "d"), 3);
    fleetfold_destroy(f);
}

/* Client marks while folding: one client teaches a page (and a template) once per window. */
static void test_marks(void)
{
    fleetlog_builder_t *b = NULL;
    CHECK_INTEQ(fleetlog_builder_create("B", 1, &b), 0);
    uint64_t c = fleetmark_client_hash("192.0.2.7", NULL, 0);
    uint64_t other = fleetmark_client_hash("192.0.2.8", NULL, 0);
    pagemap_visit_t v = {.page_key = "e.com/item/1",
                         .template_key = "e.com/item/*",
                         .now_ms = 1000,
                         .think_ms = -1,
                         .status = 200,
                         .html_scanned = true,
                         .items = &css,
                         .nitems = 1};
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, c), 0); /* counts */
    v.now_ms = 2000;
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, c), 0); /* vetoed */
    v.page_key = "e.com/item/2";
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, c), 0);     /* its page only */
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, other), 0); /* another client */
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, 0), 0);     /* no mark: counts */
    v.supplement = true;
    v.template_key = NULL;
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, c), 0); /* supplements carry no client vote */
    v.supplement = false;
    v.page_key = "e.com/item/1";
    v.template_key = "e.com/item/*";
    v.now_ms = 1000 + 60000; /* the window is over */
    CHECK_INTEQ(fleetlog_builder_add_visit(b, &v, c), 0);
    fleetlog_batch_t batch;
    roundtrip(b, &batch);

    fleetmark_t *m = NULL;
    CHECK_INTEQ(fleetmark_create(64, 60000, &m), 0);
    fleetfold_t *f = NULL;
    CHECK_INTEQ(fleetfold_create("A", 8, 1000000, &f), 0);
    pagemap_t *pm = new_map();
    fleetfold_result_t r;
    CHECK_INTEQ(fleetfold_apply(f, pm, m, &batch, 5000, &r), 0);
    CHECK_INTEQ(r.visits, 6);
    CHECK_INTEQ(r.vetoed, 1);
    CHECK_INTEQ(visits_total(pm, "e.com/item/1"), 2); /* first and after the window */
    CHECK_INTEQ(visits_total(pm, "e.com/item/2"), 3); /* c, other, no mark (not the supplement) */
    /* template: c (first), other, no mark, c after the window: not c's second page */
    CHECK_INTEQ(visits_total(pm, "e.com/item/*"), 4);
    /* the marks stay: this client's own visit on this instance now counts nothing */
    CHECK(!fleetmark_allows(m, c, "e.com/item/2", 5000));
    CHECK(fleetmark_allows(m, c, "e.com/item/3", 5000));

    /* without marks every visit counts */
    pagemap_t *pm2 = new_map();
    fleetfold_t *f2 = NULL;
    CHECK_INTEQ(fleetfold_create("A", 8, 1000000, &f2), 0);
    CHECK_INTEQ(fleetfold_apply(f2, pm2, NULL, &batch, 5000, &r), 0);
    CHECK_INTEQ(r.vetoed, 0);
    CHECK_INTEQ(visits_total(pm2, "e.com/item/1"), 3);
    fleetfold_destroy(f2);
    pagemap_destroy(pm2);

    fleetlog_batch_dispose(&batch);
    fleetfold_destroy(f);
    fleetmark_destroy(m);
    fleetlog_builder_destroy(b);
    pagemap_destroy(pm);
}

/* ---- three instances and one map ------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

enum { COLD, CURL, WARM };
#define NPAGES 8
#define NINST 3
#define NVISITS 420
#define SWITCH_AT 200 /* app.js?v=1 becomes ?v=2 */
#define T0 1700000000000LL

static const char *const pages[NPAGES] = {"e.com/",       "e.com/about",  "e.com/item/1",
                                          "e.com/item/2", "e.com/item/3", "e.com/item/4",
                                          "e.com/item/5", "e.com/item/6"};
#define TEMPLATE "e.com/item/*"

typedef struct asset {
    const char *url;
    pagemap_kind_t kind;
    unsigned disc; /* PAGEMAP_SRC_HTML or _CSS; 0: follow-up only */
    bool strong, blocking, fetched;
} asset_t;

#define A_CSS                                                                                      \
    {                                                                                              \
        "https://e.com/site.css", PAGEMAP_KIND_STYLE, PAGEMAP_SRC_HTML, true, true, true           \
    }
#define A_FONT                                                                                     \
    {                                                                                              \
        "https://e.com/f.woff2", PAGEMAP_KIND_FONT, PAGEMAP_SRC_CSS, false, false, true            \
    }
#define A_APP                                                                                      \
    {                                                                                              \
        NULL, PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, true, true, true                              \
    } /* versioned */
#define A_OLD                                                                                      \
    {                                                                                              \
        "https://e.com/old.png", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_HTML, true, false, false          \
    }

static const asset_t home[] = {
    A_CSS,
    A_APP,
    A_FONT,
    A_OLD,
    {"https://e.com/hero.jpg", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_HTML, true, false, true},
    {"https://e.com/lazy.jpg", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_HTML, false, false, false},
    {"https://e.com/track.js", PAGEMAP_KIND_SCRIPT, 0, false, false, true},
    {"https://cdn.e.net/lib.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, true, false, true},
};
static const asset_t about[] = {
    A_CSS,
    A_APP,
    A_FONT,
    {"https://e.com/about.jpg", PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_HTML, true, false, true},
};
static const asset_t item[] = {
    A_CSS,
    A_FONT,
    {"https://e.com/item.js", PAGEMAP_KIND_SCRIPT, PAGEMAP_SRC_HTML, true, false, true},
    {NULL, PAGEMAP_KIND_IMAGE, PAGEMAP_SRC_HTML, true, false, true}, /* photo-<n>.jpg */
    A_OLD,
};

typedef struct spec {
    int inst, page, type;
    int64_t t;
    uint64_t client;
    bool digest;
    uint32_t hinted; /* bit i: asset i of the page was hinted (the serving instance's plan) */
} spec_t;

static void page_assets(int page, const asset_t **a, size_t *n)
{
    if (page == 0)
        *a = home, *n = sizeof(home) / sizeof(home[0]);
    else if (page == 1)
        *a = about, *n = sizeof(about) / sizeof(about[0]);
    else
        *a = item, *n = sizeof(item) / sizeof(item[0]);
}

static char photo[NPAGES][40];

static const char *asset_url(int page, const asset_t *a, int64_t t)
{
    if (a->url != NULL)
        return a->url;
    if (a->kind == PAGEMAP_KIND_SCRIPT)
        return t < T0 + SWITCH_AT * 1000 ? "https://e.com/app.js?v=1" : "https://e.com/app.js?v=2";
    snprintf(photo[page], sizeof(photo[page]), "https://e.com/photo-%d.jpg", page);
    return photo[page];
}

typedef struct built {
    pagemap_item_t items[16];
    pagemap_visit_t v;
    digest_t digest;
} built_t;

/* The visit a spec describes, as the serving instance committed it. */
static void build(const spec_t *s, built_t *b)
{
    const asset_t *a;
    size_t n, k = 0;
    page_assets(s->page, &a, &n);
    memset(b, 0, sizeof(*b));
    for (size_t i = 0; i < n; i++) {
        unsigned src = 0;
        if (a[i].disc == PAGEMAP_SRC_HTML || (a[i].disc == PAGEMAP_SRC_CSS && s->type == COLD))
            src |= a[i].disc;
        if (a[i].fetched && s->type != CURL)
            src |= PAGEMAP_SRC_FOLLOWUP;
        if (s->hinted & (1u << i))
            src |= PAGEMAP_SRC_HINT;
        if (src == 0)
            continue;
        b->items[k++] =
            (pagemap_item_t){.url = asset_url(s->page, &a[i], s->t),
                             .kind = a[i].kind,
                             .order = (unsigned)i,
                             .sources = src,
                             .strong = a[i].strong && (src & PAGEMAP_SRC_DISCOVERY),
                             .blocking = a[i].blocking,
                             .conditional = s->type == WARM && (src & PAGEMAP_SRC_FOLLOWUP)};
    }
    if (s->digest) {
        digest_builder_t db;
        digest_builder_init(&db, DIGEST_DEFAULT_LOG2P);
        CHECK_INTEQ(digest_builder_add(&db, "https://e.com/old.png", NULL), 0);
        char *val = NULL;
        size_t vl = 0;
        CHECK_INTEQ(digest_builder_finish(&db, &val, &vl), 0);
        CHECK_INTEQ(digest_parse(val, vl, &b->digest, NULL), 0);
        free(val);
        digest_builder_dispose(&db);
    }
    b->v = (pagemap_visit_t){.page_key = pages[s->page],
                             .template_key = s->page >= 2 ? TEMPLATE : NULL,
                             .now_ms = s->t,
                             .think_ms = 50 + s->page,
                             .html_size = 1000,
                             .status = 200,
                             .html_scanned = true,
                             .css_scanned = s->type == COLD,
                             .browser = s->type != CURL,
                             .multiplexed = true,
                             .validator = s->t < T0 + SWITCH_AT * 1000 ? 1 : 2,
                             .digest = s->digest ? &b->digest : NULL,
                             .items = b->items,
                             .nitems = k};
}

static pagemap_asset_meta_t meta_of(const char *url)
{
    return (pagemap_asset_meta_t){.status = 200,
                                  .size = strlen(url) * 10,
                                  .content_type = "application/octet-stream",
                                  .etag = "\"e1\"",
                                  .policy = CACHEPOLICY_VARY_ENCODING,
                                  .fresh_ms = 86400000};
}

/* Commit a spec's visit to pm, then the metadata of what the client fetched; tell b (may be NULL).
 */
static void commit(pagemap_t *pm, const spec_t *s, fleetlog_builder_t *b)
{
    built_t bv;
    build(s, &bv);
    CHECK_INTEQ(pagemap_commit_visit(pm, &bv.v), 0);
    if (b != NULL)
        CHECK_INTEQ(fleetlog_builder_add_visit(b, &bv.v, s->client), 0);
    for (size_t i = 0; s->type == COLD && i < bv.v.nitems; i++) {
        if (!(bv.items[i].sources & PAGEMAP_SRC_FOLLOWUP))
            continue;
        pagemap_asset_meta_t m = meta_of(bv.items[i].url);
        int rc = pagemap_observe_asset(pm, bv.items[i].url, &m);
        CHECK(rc == 0 || rc == HERALD_ENOTFOUND);
        if (rc == 0 && b != NULL)
            CHECK_INTEQ(fleetlog_builder_add_asset(b, bv.items[i].url, &m), 0);
    }
    digest_dispose(&bv.digest);
}

typedef struct inst {
    char id[4];
    pagemap_t *pm;
    fleetlog_builder_t *b;
    fleetfold_t *f;
    fleetmark_t *marks;
    size_t cursor; /* next log entry to fold */
    size_t flush_at;
} inst_t;

typedef struct shared_log {
    char **v;
    size_t *len;
    size_t n;
} shared_log_t;

static void log_append(shared_log_t *l, char *s, size_t len)
{
    l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->len = realloc(l->len, (l->n + 1) * sizeof(*l->len));
    l->v[l->n] = s;
    l->len[l->n++] = len;
}

static void flush(inst_t *in, shared_log_t *l, int64_t now)
{
    if (fleetlog_builder_records(in->b) == 0)
        return;
    char *s = NULL;
    size_t len = 0;
    CHECK_INTEQ(fleetlog_builder_finish(in->b, now, &s, &len, NULL), 0);
    log_append(l, s, len);
}

static void fold_all(inst_t *in, shared_log_t *l, int64_t now, size_t *dups)
{
    for (; in->cursor < l->n; in->cursor++) {
        fleetlog_batch_t b;
        char reason[160];
        int rc = fleetlog_decode(l->v[in->cursor], l->len[in->cursor], &b, reason, sizeof(reason));
        CHECK_INTEQ(rc, 0);
        if (rc != 0)
            continue;
        fleetfold_result_t r;
        CHECK_INTEQ(fleetfold_apply(in->f, in->pm, in->marks, &b, now, &r), 0);
        CHECK_INTEQ(r.vetoed, 0); /* every visitor here is a new client */
        *dups += r.check == FLEETFOLD_DUPLICATE;
        fleetlog_batch_dispose(&b);
    }
}

/* Plans of two maps for one page: the same assets, in the same order, delivered the same way. */
static void check_same_plan(pagemap_t *x, pagemap_t *y, const char *page, const char *tpl,
                            const char *who)
{
    pagemap_plan_opts_t o = {.min_confidence = PAGEMAP_DEFAULT_MIN_CONFIDENCE};
    pagemap_plan_t p, q;
    CHECK_INTEQ(pagemap_plan(x, page, tpl, "e.com", 0, &o, &p), 0);
    CHECK_INTEQ(pagemap_plan(y, page, tpl, "e.com", 0, &o, &q), 0);
    CHECK_INTEQ(p.source, q.source);
    CHECK_INTEQ(p.n, q.n);
    if (p.n != q.n)
        fprintf(stderr, "  %s, page %s: %zu vs %zu items\n", who, page, p.n, q.n);
    for (size_t i = 0; i < p.n && i < q.n; i++) {
        CHECK_STREQ(p.items[i].key, q.items[i].key);
        CHECK_STREQ(p.items[i].url, q.items[i].url);
        CHECK_STREQ(p.items[i].etag, q.items[i].etag);
        CHECK_INTEQ(p.items[i].verdict, q.items[i].verdict);
        CHECK(p.items[i].pushable == q.items[i].pushable);
        CHECK_INTEQ(p.items[i].hint, q.items[i].hint);
        CHECK_INTEQ(p.items[i].size, q.items[i].size);
        CHECK_INTEQ(p.items[i].policy, q.items[i].policy);
        CHECK(p.items[i].confidence == q.items[i].confidence);
    }
    CHECK_INTEQ(p.npreconnect, q.npreconnect);
    for (size_t i = 0; i < p.npreconnect && i < q.npreconnect; i++)
        CHECK_STREQ(p.preconnect[i], q.preconnect[i]);
    CHECK_INTEQ(p.visits_total, q.visits_total);
    pagemap_plan_dispose(&p);
    pagemap_plan_dispose(&q);
}

/*
 * The counts that do not depend on order: visits, clean visits, each edge's
 * hits and misses. Not the misses of a template's edges: a miss counts
 * only for an edge that exists when the visit is applied, and a template
 * edge is created by the first sibling page that names it, which comes
 * earlier or later depending on when the batches arrive.
 */
static void check_same_counts(pagemap_t *x, pagemap_t *y, const char *page, bool misses)
{
    pagemap_page_info_t a, b;
    pagemap_edge_info_t *ea = NULL, *eb = NULL;
    size_t na = 0, nb = 0;
    CHECK_INTEQ(pagemap_page_get(x, page, &a, &ea, &na), 0);
    CHECK_INTEQ(pagemap_page_get(y, page, &b, &eb, &nb), 0);
    CHECK_INTEQ(a.visits_total, b.visits_total);
    CHECK_INTEQ(a.clean_total, b.clean_total);
    CHECK_INTEQ(a.cold_total, b.cold_total);
    CHECK_INTEQ(na, nb);
    for (size_t i = 0; i < na; i++) {
        const pagemap_edge_info_t *e = &ea[i], *f = NULL;
        for (size_t k = 0; k < nb; k++)
            if (strcmp(eb[k].key, e->key) == 0)
                f = &eb[k];
        CHECK(f != NULL);
        if (f == NULL)
            continue;
        CHECK_INTEQ(e->verdict, f->verdict);
        CHECK_INTEQ(e->clean_hits, f->clean_hits);
        if (misses)
            CHECK_INTEQ(e->clean_misses, f->clean_misses);
        CHECK_INTEQ(e->hit_visits, f->hit_visits);
        CHECK(e->rejected == f->rejected && e->superseded == f->superseded);
        CHECK_INTEQ(e->sources, f->sources);
        CHECK_INTEQ(e->size, f->size);
    }
    pagemap_page_info_dispose(&a);
    pagemap_page_info_dispose(&b);
    pagemap_edge_infos_free(ea, na);
    pagemap_edge_infos_free(eb, nb);
}

static void test_converge(void)
{
    inst_t in[NINST];
    static const size_t flush_at[NINST] = {4, 9, 15}; /* records per batch, unequal on purpose */
    for (int i = 0; i < NINST; i++) {
        memset(&in[i], 0, sizeof(in[i]));
        snprintf(in[i].id, sizeof(in[i].id), "%c", 'A' + i);
        in[i].pm = new_map();
        CHECK_INTEQ(fleetlog_builder_create(in[i].id, 1, &in[i].b), 0);
        CHECK_INTEQ(fleetfold_create(in[i].id, 16, FLEETFOLD_DEFAULT_EXPIRE_MS, &in[i].f), 0);
        CHECK_INTEQ(fleetmark_create(4096, FLEETMARK_DEFAULT_WINDOW_MS, &in[i].marks), 0);
        in[i].flush_at = flush_at[i];
    }
    shared_log_t log = {0};
    spec_t *specs = calloc(NVISITS, sizeof(*specs));
    size_t dups = 0, resent = 0;
    /* the serving instances explore, so that what they hint is checked again */
    pagemap_plan_opts_t o = {.min_confidence = PAGEMAP_DEFAULT_MIN_CONFIDENCE, .explore = 0.25};
    for (int k = 0; k < NVISITS; k++) {
        spec_t *s = &specs[k];
        uint32_t r = rnd();
        s->inst = (int)(r % NINST);
        s->page = (int)((r >> 4) % NPAGES);
        s->type = (r >> 8) % 10 < 6 ? COLD : (r >> 8) % 10 < 8 ? CURL : WARM;
        s->t = T0 + k * 1000;
        char addr[32];
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", k >> 16, (k >> 8) & 255, k & 255);
        s->client = fleetmark_client_hash(addr, "fleet", 5);
        s->digest = s->type == COLD && (r >> 12) % 4 == 0;
        inst_t *x = &in[s->inst];
        /* the client is hinted what the serving instance planned */
        pagemap_plan_t p;
        CHECK_INTEQ(pagemap_plan(x->pm, pages[s->page], s->page >= 2 ? TEMPLATE : NULL, "e.com",
                                 s->t, &o, &p),
                    0);
        const asset_t *a;
        size_t na;
        page_assets(s->page, &a, &na);
        for (size_t i = 0; i < p.n; i++)
            for (size_t j = 0; j < na; j++)
                if (strcmp(p.items[i].url, asset_url(s->page, &a[j], s->t)) == 0)
                    s->hinted |= 1u << j;
        pagemap_plan_dispose(&p);
        /* the local commit path: the mark, the map, the builder */
        CHECK(fleetmark_take(x->marks, s->client, pages[s->page], s->t));
        commit(x->pm, s, x->b);
        if (fleetlog_builder_records(x->b) >= x->flush_at)
            flush(x, &log, s->t);
        if (log.n > 0 && rnd() % 16 == 0) { /* a batch sent again after a reconnect */
            size_t i = rnd() % log.n;
            char *copy = malloc(log.len[i] + 1);
            memcpy(copy, log.v[i], log.len[i] + 1);
            log_append(&log, copy, log.len[i]);
            resent++;
        }
        for (int i = 0; i < NINST; i++)
            if (rnd() % 3 == 0)
                fold_all(&in[i], &log, s->t, &dups);
    }
    for (int i = 0; i < NINST; i++)
        flush(&in[i], &log, T0 + NVISITS * 1000);
    for (int i = 0; i < NINST; i++)
        fold_all(&in[i], &log, T0 + NVISITS * 1000, &dups);
    CHECK(resent > 5 && dups >= resent); /* each resend reached every other instance */

    /* the one map that saw every visit, in order, with the plain map API */
    pagemap_t *ref = new_map();
    for (int k = 0; k < NVISITS; k++)
        commit(ref, &specs[k], NULL);

    for (int i = 0; i < NINST; i++) {
        char who[200];
        snprintf(who, sizeof(who), "instance %s", in[i].id);
        for (int p = 0; p < NPAGES; p++) {
            check_same_plan(in[i].pm, ref, pages[p], p >= 2 ? TEMPLATE : NULL, who);
            check_same_counts(in[i].pm, ref, pages[p], true);
        }
        check_same_plan(in[i].pm, ref, "e.com/item/99", TEMPLATE, who); /* from the template */
        check_same_counts(in[i].pm, ref, TEMPLATE, false);
        pagemap_stats_t st, sr;
        pagemap_stats(in[i].pm, &st);
        pagemap_stats(ref, &sr);
        CHECK_INTEQ(st.pages, sr.pages);
        CHECK_INTEQ(st.edges, sr.edges);
        CHECK_INTEQ(st.visits_committed, sr.visits_committed);
    }
    /* and the model learned the site: a sanity check that the scenario means something */
    pagemap_plan_t p;
    o.explore = 0;
    CHECK_INTEQ(pagemap_plan(ref, "e.com/", NULL, "e.com", 0, &o, &p), 0);
    bool has_css = false, has_v2 = false, has_v1 = false, has_old = false, has_lazy = false;
    for (size_t i = 0; i < p.n; i++) {
        has_css |= strcmp(p.items[i].key, "https://e.com/site.css") == 0;
        has_v2 |= strcmp(p.items[i].key, "https://e.com/app.js?v=2") == 0;
        has_v1 |= strcmp(p.items[i].key, "https://e.com/app.js?v=1") == 0;
        has_old |= strcmp(p.items[i].key, "https://e.com/old.png") == 0;
        has_lazy |= strcmp(p.items[i].key, "https://e.com/lazy.jpg") == 0;
    }
    CHECK(has_css && has_v2 && !has_v1 && !has_old && !has_lazy);
    CHECK(p.npreconnect == 1);
    fprintf(stderr, "converge: %d visits, %zu batches (%zu resent), home plans %zu assets\n",
            NVISITS, log.n, resent, p.n);
    pagemap_plan_dispose(&p);

    pagemap_destroy(ref);
    for (size_t i = 0; i < log.n; i++)
        free(log.v[i]);
    free(log.v);
    free(log.len);
    free(specs);
    for (int i = 0; i < NINST; i++) {
        pagemap_destroy(in[i].pm);
        fleetlog_builder_destroy(in[i].b);
        fleetfold_destroy(in[i].f);
        fleetmark_destroy(in[i].marks);
    }
}

/*
 * The poisoning bound with Redis away: one client sends 300 visits of a
 * page, each with a junk follow-up, through three instances that fold
 * each other's batches. Each map counts exactly one of them per window.
 */
static void test_poison(void)
{
    inst_t in[NINST];
    for (int i = 0; i < NINST; i++) {
        memset(&in[i], 0, sizeof(in[i]));
        snprintf(in[i].id, sizeof(in[i].id), "%c", 'A' + i);
        in[i].pm = new_map();
        CHECK_INTEQ(fleetlog_builder_create(in[i].id, 1, &in[i].b), 0);
        CHECK_INTEQ(fleetfold_create(in[i].id, 16, FLEETFOLD_DEFAULT_EXPIRE_MS, &in[i].f), 0);
        CHECK_INTEQ(fleetmark_create(64, 600000, &in[i].marks), 0);
    }
    uint64_t evil = fleetmark_client_hash("2001:db8:1:2::66", NULL, 0);
    pagemap_item_t junk[2] = {css,
                              {.url = "https://e.com/junk.txt",
                               .kind = PAGEMAP_KIND_OTHER,
                               .sources = PAGEMAP_SRC_FOLLOWUP}};
    shared_log_t log = {0};
    size_t counted = 0;
    for (int k = 0; k < 300; k++) {
        inst_t *x = &in[k % NINST];
        int64_t t = T0 + k * 100;
        /* a different address of the same /64 each time: still one client */
        char addr[48];
        snprintf(addr, sizeof(addr), "2001:db8:1:2::%x", k + 1);
        uint64_t c = fleetmark_client_hash(addr, NULL, 0);
        CHECK(c == evil);
        pagemap_visit_t v = {.page_key = "e.com/",
                             .now_ms = t,
                             .think_ms = -1,
                             .status = 200,
                             .html_scanned = true,
                             .browser = true,
                             .multiplexed = true,
                             .items = junk,
                             .nitems = 2};
        if (fleetmark_take(x->marks, c, v.page_key, t)) {
            CHECK_INTEQ(pagemap_commit_visit(x->pm, &v), 0);
            CHECK_INTEQ(fleetlog_builder_add_visit(x->b, &v, c), 0);
            counted++;
        }
        if (k % 7 == 0)
            flush(x, &log, t);
        size_t dups = 0;
        fold_all(&in[(k + 1) % NINST], &log, t, &dups);
    }
    for (int i = 0; i < NINST; i++)
        flush(&in[i], &log, T0 + 30000);
    for (int i = 0; i < NINST; i++) {
        size_t dups = 0;
        for (; in[i].cursor < log.n; in[i].cursor++) {
            fleetlog_batch_t b;
            CHECK_INTEQ(fleetlog_decode(log.v[in[i].cursor], log.len[in[i].cursor], &b, NULL, 0),
                        0);
            CHECK_INTEQ(fleetfold_apply(in[i].f, in[i].pm, in[i].marks, &b, T0 + 30000, NULL), 0);
            fleetlog_batch_dispose(&b);
        }
        (void)dups;
        CHECK_INTEQ(visits_total(in[i].pm, "e.com/"), 1);
        pagemap_edge_info_t *e = NULL;
        size_t ne = 0;
        pagemap_page_info_t info;
        CHECK_INTEQ(pagemap_page_get(in[i].pm, "e.com/", &info, &e, &ne), 0);
        for (size_t j = 0; j < ne; j++)
            CHECK(e[j].clean_hits <= 1);
        pagemap_page_info_dispose(&info);
        pagemap_edge_infos_free(e, ne);
    }
    CHECK(counted >= 1 && counted <= NINST); /* locally, each instance counted it once at most */
    for (size_t i = 0; i < log.n; i++)
        free(log.v[i]);
    free(log.v);
    free(log.len);
    for (int i = 0; i < NINST; i++) {
        pagemap_destroy(in[i].pm);
        fleetlog_builder_destroy(in[i].b);
        fleetfold_destroy(in[i].f);
        fleetmark_destroy(in[i].marks);
    }
}

/* The held-back keys of one plan of page with explore share 0.5, joined. */
static void plan_held(pagemap_t *pm, const char *page, char *out, size_t len)
{
    pagemap_plan_opts_t o = {PAGEMAP_DEFAULT_MIN_CONFIDENCE, 0.5};
    pagemap_plan_t p;
    CHECK_INTEQ(pagemap_plan(pm, page, NULL, "e.com", 0, &o, &p), 0);
    out[0] = '\0';
    for (size_t i = 0; i < p.nheld; i++)
        snprintf(out + strlen(out), len - strlen(out), "%s ", p.held[i]);
    pagemap_plan_dispose(&p);
}

static int add_explore(void *ctx, const pagemap_explore_delta_t *d)
{
    return fleetlog_builder_add_explore(ctx, d);
}

/*
 * Shared exploration: A's plans of a page, drained into a batch and folded
 * into B, count in B's rotation, so that B holds back what one map that
 * made every plan itself (C) holds back, plan by plan.
 */
static void test_explore(void)
{
    const char *page = "e.com/x";
    pagemap_item_t it[3];
    const char *u[] = {"https://e.com/1.css", "https://e.com/2.js", "https://e.com/3.png"};
    for (int i = 0; i < 3; i++)
        it[i] = (pagemap_item_t){.url = u[i],
                                 .kind = PAGEMAP_KIND_STYLE,
                                 .sources = PAGEMAP_SRC_HTML | PAGEMAP_SRC_FOLLOWUP,
                                 .order = (unsigned)i,
                                 .strong = true};
    pagemap_visit_t v = {.page_key = page,
                         .now_ms = 1000,
                         .think_ms = -1,
                         .status = 200,
                         .html_scanned = true,
                         .browser = true,
                         .multiplexed = true,
                         .items = it,
                         .nitems = 3};
    pagemap_t *a = new_map(), *b = new_map(), *c = new_map();
    CHECK_INTEQ(pagemap_commit_visit(a, &v), 0);
    CHECK_INTEQ(pagemap_commit_visit(b, &v), 0);
    CHECK_INTEQ(pagemap_commit_visit(c, &v), 0);
    pagemap_explore_track(a, true);
    char ha[256], hb[256], hc[256];
    size_t held = 0;
    for (int k = 0; k < 5; k++) {
        plan_held(a, page, ha, sizeof(ha));
        plan_held(c, page, hc, sizeof(hc));
        CHECK_STREQ(ha, hc);
        held += ha[0] != '\0';
    }
    CHECK_INTEQ(held, 2);
    fleetlog_builder_t *w = NULL;
    CHECK_INTEQ(fleetlog_builder_create("A", 1, &w), 0);
    CHECK_INTEQ(pagemap_explore_drain(a, add_explore, w), 0);
    CHECK_INTEQ(fleetlog_builder_records(w), 1);
    CHECK_INTEQ(pagemap_explore_drain(a, add_explore, w), 0); /* drained: nothing new */
    CHECK_INTEQ(fleetlog_builder_records(w), 1);
    fleetlog_batch_t batch;
    roundtrip(w, &batch);
    CHECK_INTEQ(batch.recs[0].type, FLEETLOG_REC_EXPLORE);
    CHECK_INTEQ(batch.recs[0].explore.plans, 5);
    CHECK_INTEQ(batch.recs[0].explore.explored, 2);
    fleetfold_t *f = NULL;
    CHECK_INTEQ(fleetfold_create("B", 4, 60000, &f), 0);
    fleetfold_result_t r;
    CHECK_INTEQ(fleetfold_apply(f, b, NULL, &batch, 2000, &r), 0);
    CHECK_INTEQ(r.explores, 1);
    /* B goes on where the fleet is, as C that made all the plans */
    held = 0;
    for (int k = 0; k < 7; k++) {
        plan_held(b, page, hb, sizeof(hb));
        plan_held(c, page, hc, sizeof(hc));
        CHECK_STREQ(hb, hc);
        held += hb[0] != '\0';
    }
    CHECK_INTEQ(held, 4);
    pagemap_page_info_t ib, ic;
    CHECK_INTEQ(pagemap_page_get(b, page, &ib, NULL, NULL), 0);
    CHECK_INTEQ(pagemap_page_get(c, page, &ic, NULL, NULL), 0);
    CHECK(ib.plans == 12 && ic.plans == 12 && ib.explored == 6 && ic.explored == 6);
    pagemap_page_info_dispose(&ib);
    pagemap_page_info_dispose(&ic);
    /* an unknown entry is nothing to count; a bad delta is refused */
    pagemap_explore_delta_t d = {"e.com/unknown", 3, 1, 7};
    CHECK_INTEQ(pagemap_explore_add(b, &d), HERALD_ENOTFOUND);
    d.key = page;
    d.explored = 4;
    CHECK_INTEQ(pagemap_explore_add(b, &d), HERALD_EINVAL);
    CHECK_INTEQ(fleetlog_builder_add_explore(w, &d), HERALD_EINVAL);
    fleetlog_batch_dispose(&batch);
    fleetlog_builder_destroy(w);
    fleetfold_destroy(f);
    pagemap_destroy(a);
    pagemap_destroy(b);
    pagemap_destroy(c);
}

/* Redis's verdict lists: strict, increasing, in range; flags untouched on error. */
static void test_verdicts(void)
{
    uint8_t fl[8] = {0};
    char why[80];
    CHECK_INTEQ(fleetfold_verdicts_decode("0,3,7", 5, 8, FLEETFOLD_VETO_PAGE, fl, why, sizeof(why)),
                0);
    CHECK(fl[0] == FLEETFOLD_VETO_PAGE && fl[3] == FLEETFOLD_VETO_PAGE &&
          fl[7] == FLEETFOLD_VETO_PAGE && fl[1] == 0);
    CHECK_INTEQ(fleetfold_verdicts_decode("", 0, 8, FLEETFOLD_VETO_TEMPLATE, fl, why, sizeof(why)),
                0);
    const char *bad[] = {"8", "1,1", "3,2", ",1", "1,", "01", "1,,2", "a", "-1", " 1", "1234567"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t g[8] = {0};
        CHECK_INTEQ(fleetfold_verdicts_decode(bad[i], strlen(bad[i]), 8, FLEETFOLD_VETO_PAGE, g,
                                              why, sizeof(why)),
                    HERALD_EPARSE);
        CHECK(why[0] != '\0');
        for (int k = 0; k < 8; k++)
            CHECK_INTEQ(g[k], 0);
    }
}

int main(void)
{
    test_explore();
    test_verdicts();
    test_once();
    test_record();
    test_marks();
    test_converge();
    test_poison();
    return TESTUTIL_SUMMARY();
}
