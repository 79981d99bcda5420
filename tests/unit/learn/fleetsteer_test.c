/* learn/fleetsteer: steering messages round trip, strict decoding, apply, resync, collect. */
#include "fleetsteer.h"

#include <stdio.h>
#include <stdlib.h>

#include "herald/error.h"
#include "testutil.h"

#define PAGE "e.com/"
#define CSS "https://e.com/a.css"
#define JS "https://e.com/b.js"

static fleetsteer_msg_t msg(fleetsteer_op_t op, const char *page, const char *asset, uint64_t seq)
{
    fleetsteer_msg_t m = {.op = op, .seq = seq, .t_ms = 1700000000000};
    snprintf(m.instance, sizeof(m.instance), "inst-1");
    m.page_key = (char *)page;
    m.asset_key = (char *)asset;
    return m;
}

static void test_round_trip(void)
{
    for (int op = 0; op < FLEETSTEER_OP_COUNT_; op++) {
        fleetsteer_msg_t m = msg((fleetsteer_op_t)op, PAGE,
                                 op == FLEETSTEER_FORGET_PAGE ? NULL : "https://e.com/é\"x", 9);
        char *s = NULL;
        size_t len = 0;
        CHECK_INTEQ(fleetsteer_encode(&m, &s, &len), 0);
        CHECK(s != NULL && strlen(s) == len);
        fleetsteer_op_t parsed;
        CHECK_INTEQ(fleetsteer_op_parse(fleetsteer_op_name((fleetsteer_op_t)op), &parsed), 0);
        CHECK_INTEQ(parsed, op);
        testutil_guard_t g;
        const char *gs = testutil_guard(&g, s, len);
        fleetsteer_msg_t d;
        char reason[128];
        CHECK_INTEQ(fleetsteer_decode(gs, len, &d, reason, sizeof(reason)), 0);
        testutil_guard_free(&g);
        CHECK_INTEQ(d.op, op);
        CHECK_STREQ(d.instance, "inst-1");
        CHECK_INTEQ(d.seq, 9);
        CHECK_INTEQ(d.t_ms, 1700000000000);
        CHECK_STREQ(d.page_key, PAGE);
        CHECK_STREQ(d.asset_key, m.asset_key);
        fleetsteer_msg_dispose(&d);
        CHECK(d.page_key == NULL);
        free(s);
    }
    CHECK_STREQ(fleetsteer_op_name(FLEETSTEER_OP_COUNT_), "?");
    fleetsteer_op_t o;
    CHECK_INTEQ(fleetsteer_op_parse("unpin", &o), HERALD_EINVAL);

    /* what cannot be carried is refused at the source */
    char *s = (char *)1;
    fleetsteer_msg_t m = msg(FLEETSTEER_PIN, PAGE, NULL, 1);
    CHECK_INTEQ(fleetsteer_encode(&m, &s, NULL), HERALD_EINVAL); /* no asset */
    CHECK(s == NULL);
    m = msg(FLEETSTEER_FORGET_PAGE, PAGE, CSS, 1);
    CHECK_INTEQ(fleetsteer_encode(&m, &s, NULL), HERALD_EINVAL); /* an asset on forget-page */
    m = msg(FLEETSTEER_PIN, "e.com/\nx", CSS, 1);
    CHECK_INTEQ(fleetsteer_encode(&m, &s, NULL), HERALD_EINVAL); /* a control character */
    m = msg(FLEETSTEER_PIN, "", CSS, 1);
    CHECK_INTEQ(fleetsteer_encode(&m, &s, NULL), HERALD_EINVAL);
    m = msg(FLEETSTEER_PIN, PAGE, "\xff", 1);
    CHECK_INTEQ(fleetsteer_encode(&m, &s, NULL), HERALD_EINVAL);
    m = msg(FLEETSTEER_PIN, PAGE, CSS, 0);
    CHECK_INTEQ(fleetsteer_encode(&m, &s, NULL), HERALD_EINVAL);
    m = msg(FLEETSTEER_PIN, PAGE, CSS, 1);
    m.t_ms = -1;
    CHECK_INTEQ(fleetsteer_encode(&m, &s, NULL), HERALD_EINVAL);
    m = msg(FLEETSTEER_PIN, PAGE, CSS, 1);
    m.instance[0] = '\0';
    CHECK_INTEQ(fleetsteer_encode(&m, &s, NULL), HERALD_EINVAL);
}

static void expect(int rc, const char *json)
{
    fleetsteer_msg_t m;
    char reason[128] = "";
    int got = fleetsteer_decode(json, strlen(json), &m, reason, sizeof(reason));
    CHECK_INTEQ(got, rc);
    if (got != rc)
        fprintf(stderr, "  input: %s\n", json);
    CHECK(reason[0] != '\0');
    CHECK(m.page_key == NULL && m.asset_key == NULL);
    fleetsteer_msg_dispose(&m);
}

#define H "{\"v\":1,\"inst\":\"a\",\"seq\":1,\"t\":1,"

static void test_decode_rejects(void)
{
    fleetsteer_msg_t m;
    const char *ok = H "\"op\":\"ban\",\"page\":\"p\",\"asset\":\"a\"}";
    CHECK_INTEQ(fleetsteer_decode(ok, strlen(ok), &m, NULL, 0), 0);
    fleetsteer_msg_dispose(&m);

    expect(HERALD_EPARSE, "");
    expect(HERALD_EPARSE, "null");
    expect(HERALD_EUNSUPPORTED, "{\"v\":3,\"op\":\"pin\"}");
    expect(HERALD_EPARSE, H "\"op\":\"pin\",\"page\":\"p\",\"asset\":\"a\",\"x\":1}");
    expect(HERALD_EPARSE, H "\"op\":\"pin\",\"page\":\"p\",\"asset\":\"a\",\"op\":\"ban\"}");
    expect(HERALD_EPARSE, H "\"op\":\"unpin\",\"page\":\"p\",\"asset\":\"a\"}");
    expect(HERALD_EPARSE, H "\"op\":\"pin\",\"page\":\"p\"}");
    expect(HERALD_EPARSE, H "\"op\":\"forget-page\",\"page\":\"p\",\"asset\":\"a\"}");
    expect(HERALD_EPARSE, H "\"op\":\"pin\",\"page\":\"\",\"asset\":\"a\"}");
    expect(HERALD_EPARSE, H "\"op\":\"pin\",\"page\":\"p\\nq\",\"asset\":\"a\"}");
    expect(HERALD_EPARSE, H "\"op\":\"pin\",\"page\":\"p\",\"asset\":\"a\\u0000b\"}");
    expect(HERALD_EPARSE, H "\"op\":\"pin\",\"page\":7,\"asset\":\"a\"}");
    expect(HERALD_EPARSE, "{\"v\":1,\"inst\":\"a\",\"seq\":0,\"t\":1,\"op\":\"forget-page\","
                          "\"page\":\"p\"}");
    expect(HERALD_EPARSE, "{\"v\":1,\"inst\":\"a/b\",\"seq\":1,\"t\":1,\"op\":\"forget-page\","
                          "\"page\":\"p\"}");
    expect(HERALD_EPARSE, "{\"v\":1,\"inst\":\"a\",\"seq\":1,\"op\":\"forget-page\","
                          "\"page\":\"p\"}");
    size_t n = FLEETSTEER_MAX_BYTES + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    CHECK_INTEQ(fleetsteer_decode(big, n, &m, NULL, 0), HERALD_ETOOBIG);
    free(big);
}

/* The edge's state, -1 when there is no such edge. */
static int state_of(pagemap_t *pm, const char *page, const char *asset)
{
    pagemap_page_info_t info;
    pagemap_edge_info_t *e = NULL;
    size_t n = 0;
    int st = -1;
    if (pagemap_page_get(pm, page, &info, &e, &n) != 0)
        return st;
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].key, asset) == 0)
            st = (int)e[i].state;
    pagemap_page_info_dispose(&info);
    pagemap_edge_infos_free(e, n);
    return st;
}

static void test_apply(void)
{
    pagemap_t *pm = NULL;
    CHECK_INTEQ(pagemap_create(NULL, &pm), 0);
    pagemap_item_t it = {
        .url = JS, .kind = PAGEMAP_KIND_SCRIPT, .sources = PAGEMAP_SRC_HTML, .strong = true};
    pagemap_visit_t v = {.page_key = PAGE,
                         .now_ms = 1,
                         .think_ms = -1,
                         .status = 200,
                         .html_scanned = true,
                         .items = &it,
                         .nitems = 1};
    CHECK_INTEQ(pagemap_commit_visit(pm, &v), 0);

    fleetsteer_msg_t m = msg(FLEETSTEER_PIN, PAGE, CSS, 1);
    CHECK_INTEQ(fleetsteer_apply(pm, &m), 0);
    CHECK_INTEQ(state_of(pm, PAGE, CSS), PAGEMAP_EDGE_PINNED);
    m.op = FLEETSTEER_BAN;
    CHECK_INTEQ(fleetsteer_apply(pm, &m), 0);
    CHECK_INTEQ(state_of(pm, PAGE, CSS), PAGEMAP_EDGE_BANNED);
    m.op = FLEETSTEER_LEARNED;
    CHECK_INTEQ(fleetsteer_apply(pm, &m), 0);
    CHECK_INTEQ(state_of(pm, PAGE, CSS), PAGEMAP_EDGE_LEARNED);
    m.op = FLEETSTEER_FORGET_EDGE;
    CHECK_INTEQ(fleetsteer_apply(pm, &m), 0);
    CHECK_INTEQ(state_of(pm, PAGE, CSS), -1);
    CHECK_INTEQ(fleetsteer_apply(pm, &m), 0); /* twice: nothing to forget is fine */
    m.op = FLEETSTEER_LEARNED;
    CHECK_INTEQ(fleetsteer_apply(pm, &m), 0); /* nothing to unpin */
    fleetsteer_msg_t fp = msg(FLEETSTEER_FORGET_PAGE, PAGE, NULL, 2);
    CHECK_INTEQ(fleetsteer_apply(pm, &fp), 0);
    CHECK_INTEQ(state_of(pm, PAGE, JS), -1);
    CHECK_INTEQ(fleetsteer_apply(pm, &fp), 0);
    m.asset_key = NULL;
    CHECK_INTEQ(fleetsteer_apply(pm, &m), HERALD_EINVAL);

    char *field = NULL;
    size_t fl = 0;
    m = msg(FLEETSTEER_PIN, PAGE, CSS, 1);
    CHECK_INTEQ(fleetsteer_field(&m, &field, &fl), 0);
    CHECK_STREQ(field, PAGE "\n" CSS);
    CHECK_INTEQ(fl, strlen(PAGE "\n" CSS));
    free(field);
    CHECK_INTEQ(fleetsteer_field(&fp, &field, NULL), HERALD_EINVAL);
    CHECK(fleetsteer_op_is_state(FLEETSTEER_PIN) && fleetsteer_op_is_state(FLEETSTEER_BAN));
    CHECK(!fleetsteer_op_is_state(FLEETSTEER_LEARNED));
    pagemap_destroy(pm);
}

/* After a disconnect: the fleet's set is the truth for pins and bans. */
static void test_sync_collect(void)
{
    pagemap_t *pm = NULL;
    CHECK_INTEQ(pagemap_create(NULL, &pm), 0);
    /* local: CSS pinned (lifted elsewhere since), JS banned (still), X pinned (now banned) */
    CHECK_INTEQ(pagemap_edge_set_state(pm, PAGE, CSS, PAGEMAP_EDGE_PINNED), 0);
    CHECK_INTEQ(pagemap_edge_set_state(pm, PAGE, JS, PAGEMAP_EDGE_BANNED), 0);
    CHECK_INTEQ(pagemap_edge_set_state(pm, "e.com/x", "https://e.com/x.png", PAGEMAP_EDGE_PINNED),
                0);
    fleetsteer_msg_t set[] = {
        msg(FLEETSTEER_BAN, PAGE, JS, 4), msg(FLEETSTEER_BAN, "e.com/x", "https://e.com/x.png", 5),
        msg(FLEETSTEER_PIN, "e.com/new", "https://e.com/n.css", 6), /* pinned while away */
        msg(FLEETSTEER_FORGET_PAGE, "e.com/ignored", NULL, 7),      /* not a state: ignored */
    };
    size_t changed = 0;
    CHECK_INTEQ(fleetsteer_sync(pm, set, 4, &changed), 0);
    CHECK_INTEQ(changed, 3);
    CHECK_INTEQ(state_of(pm, PAGE, CSS), PAGEMAP_EDGE_LEARNED);
    CHECK_INTEQ(state_of(pm, PAGE, JS), PAGEMAP_EDGE_BANNED);
    CHECK_INTEQ(state_of(pm, "e.com/x", "https://e.com/x.png"), PAGEMAP_EDGE_BANNED);
    CHECK_INTEQ(state_of(pm, "e.com/new", "https://e.com/n.css"), PAGEMAP_EDGE_PINNED);
    CHECK_INTEQ(fleetsteer_sync(pm, set, 4, &changed), 0); /* again: nothing changes */
    CHECK_INTEQ(changed, 0);
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    CHECK_INTEQ(st.pinned, 1);
    CHECK_INTEQ(st.banned, 2);

    /* the map's pins and bans, as messages to publish */
    fleetsteer_msg_t *v = NULL;
    size_t n = 0;
    CHECK_INTEQ(fleetsteer_collect(pm, "me", 10, 99, &v, &n), 0);
    CHECK_INTEQ(n, 3);
    size_t pins = 0, bans = 0;
    uint64_t seqsum = 0;
    for (size_t i = 0; i < n; i++) {
        pins += v[i].op == FLEETSTEER_PIN;
        bans += v[i].op == FLEETSTEER_BAN;
        seqsum += v[i].seq;
        CHECK_STREQ(v[i].instance, "me");
        CHECK_INTEQ(v[i].t_ms, 99);
        char *s = NULL;
        CHECK_INTEQ(fleetsteer_encode(&v[i], &s, NULL), 0);
        free(s);
    }
    CHECK(pins == 1 && bans == 2 && seqsum == 10 + 11 + 12);
    /* a fresh map synced to them holds the same pins and bans */
    pagemap_t *pm2 = NULL;
    CHECK_INTEQ(pagemap_create(NULL, &pm2), 0);
    CHECK_INTEQ(fleetsteer_sync(pm2, v, n, &changed), 0);
    CHECK_INTEQ(changed, 3);
    CHECK_INTEQ(state_of(pm2, PAGE, JS), PAGEMAP_EDGE_BANNED);
    fleetsteer_msgs_free(v, n);
    pagemap_destroy(pm2);
    /* an empty set lifts every pin and ban */
    CHECK_INTEQ(fleetsteer_sync(pm, NULL, 0, &changed), 0);
    CHECK_INTEQ(changed, 3);
    pagemap_stats(pm, &st);
    CHECK(st.pinned == 0 && st.banned == 0);
    CHECK_INTEQ(fleetsteer_collect(pm, "me", 1, 0, &v, &n), 0);
    CHECK(n == 0 && v == NULL);
    CHECK_INTEQ(fleetsteer_collect(pm, "bad id", 1, 0, &v, &n), HERALD_EINVAL);
    pagemap_destroy(pm);
}

/* What the steer channel carries: "<stream id> <message>". */
static void test_published_split(void)
{
    char id[FLEETSTEER_MAX_ID + 1], why[80];
    const char *m = NULL;
    size_t ml = 0;
    const char *ok = "1700000000000-12 {\"v\":1}";
    CHECK_INTEQ(fleetsteer_published_split(ok, strlen(ok), id, &m, &ml, why, sizeof(why)), 0);
    CHECK_STREQ(id, "1700000000000-12");
    CHECK(m == ok + 17 && ml == strlen(ok) - 17);
    const char *bad[] = {"",        " {}",   "17 {}",
                         "-1 {}",   "1- {}", "1-2-3 {}",
                         "1x-2 {}", "1-2",   "12345678901234567890123-12345678901234567890 {}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        CHECK_INTEQ(
            fleetsteer_published_split(bad[i], strlen(bad[i]), id, &m, &ml, why, sizeof(why)),
            HERALD_EPARSE);
        CHECK(why[0] != '\0');
    }
}

int main(void)
{
    test_published_split();
    test_round_trip();
    test_decode_rejects();
    test_apply();
    test_sync_collect();
    return TESTUTIL_SUMMARY();
}
