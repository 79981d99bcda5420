/*
 * learn/fleetkey's Lua scripts against a real redis-server (started on a
 * private unix socket by tests/unit/learn/redis_run.py), and learn/'s fleet
 * code through it: batches appended, read back and folded; resends
 * deduplicated; a Redis that lost its data detected; steering published,
 * kept and resynced; client marks bounding one client fleet-wide; a base
 * written and loaded. Usage: fleetredis_test SOCKET phase1|phase2
 * (phase2 runs after the runner restarted Redis with appendonly yes and
 * checks what survived).
 */
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fleetbase.h"
#include "fleetfold.h"
#include "fleetkey.h"
#include "fleetsteer.h"
#include "snapshot.h"
#include "herald/error.h"
#include "testutil.h"

#define P "t:"
#define TTL "600000"
#define EPOCH_A "epoch-a"

static redisContext *rc_;
static char sha_epoch[41], sha_append[41], sha_steer[41], sha_mark[41], sha_base[41], sha_touch[41];

static char *key(fleetkey_name_t which)
{
    static char buf[8][FLEETKEY_MAX_LEN];
    static int next;
    char *b = buf[next++ % 8];
    CHECK(fleetkey_build(b, FLEETKEY_MAX_LEN, P, which) > 0);
    return b;
}

/* A command from a NULL-terminated list of strings; `blob`/`bloblen` replace a "%b" argument. */
static redisReply *cmd(redisContext *c, const char *blob, size_t bloblen, ...)
{
    const char *argv[32];
    size_t len[32];
    int n = 0;
    va_list ap;
    va_start(ap, bloblen);
    for (const char *a; n < 32 && (a = va_arg(ap, const char *)) != NULL; n++) {
        bool is_blob = strcmp(a, "%b") == 0 && blob != NULL;
        argv[n] = is_blob ? blob : a;
        len[n] = is_blob ? bloblen : strlen(a);
    }
    va_end(ap);
    redisReply *r = redisCommandArgv(c, n, argv, len);
    if (r == NULL)
        fprintf(stderr, "redis: %s\n", c->errstr);
    CHECK(r != NULL);
    return r;
}

#define R(...) cmd(rc_, NULL, 0, __VA_ARGS__, NULL)
#define RB(blob, len, ...) cmd(rc_, blob, len, __VA_ARGS__, NULL)

static long long integer(redisReply *r)
{
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -999;
    freeReplyObject(r);
    return v;
}

/* {status, value} of a script; status copied into st. */
static void status(redisReply *r, char *st, size_t stlen, char *val, size_t vallen)
{
    st[0] = val[0] = '\0';
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2);
    if (r && r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "script error: %s\n", r->str);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        snprintf(st, stlen, "%s", r->element[0]->str ? r->element[0]->str : "");
        snprintf(val, vallen, "%s", r->element[1]->str ? r->element[1]->str : "");
    }
    freeReplyObject(r);
}

static void load(const char *script, char *sha)
{
    redisReply *r = R("SCRIPT", "LOAD", script);
    CHECK(r && r->type == REDIS_REPLY_STRING && r->len == 40);
    if (r && r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "SCRIPT LOAD: %s\n", r->str);
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(sha, 41, "%s", r->str);
    freeReplyObject(r);
}

/* EVALSHA APPEND for one batch of `inst` numbered seq. */
static void append(const char *epoch, const char *inst, uint64_t seq, const char *batch, size_t len,
                   const char *maxlen, const char *maxbytes, char *st, char *val)
{
    char seqkey[FLEETKEY_MAX_LEN], seqs[24];
    CHECK(fleetkey_seq(seqkey, sizeof(seqkey), P, inst) > 0);
    snprintf(seqs, sizeof(seqs), "%llu", (unsigned long long)seq);
    status(RB(batch, len, "EVALSHA", sha_append, "3", key(FLEETKEY_EPOCH), key(FLEETKEY_LOG),
              seqkey, epoch, inst, seqs, "%b", maxlen, TTL, maxbytes),
           st, 16, val, 64);
}

/* ---- an instance ----------------------------------------------------------- */

typedef struct inst {
    const char *id;
    pagemap_t *pm;
    fleetlog_builder_t *b;
    fleetfold_t *f;
    fleetmark_t *marks;
    char last_id[64]; /* stream position read */
} inst_t;

static void inst_init(inst_t *in, const char *id)
{
    memset(in, 0, sizeof(*in));
    in->id = id;
    CHECK_INTEQ(pagemap_create(NULL, &in->pm), 0);
    CHECK_INTEQ(fleetlog_builder_create(id, 1, &in->b), 0);
    CHECK_INTEQ(fleetfold_create(id, 16, FLEETFOLD_DEFAULT_EXPIRE_MS, &in->f), 0);
    CHECK_INTEQ(fleetmark_create(1024, 600000, &in->marks), 0);
    snprintf(in->last_id, sizeof(in->last_id), "0-0");
}

static void inst_dispose(inst_t *in)
{
    pagemap_destroy(in->pm);
    fleetlog_builder_destroy(in->b);
    fleetfold_destroy(in->f);
    fleetmark_destroy(in->marks);
}

/* Finish the batch and append it; returns its number (0 when empty). */
static uint64_t send_batch(inst_t *in, int64_t now)
{
    if (fleetlog_builder_records(in->b) == 0)
        return 0;
    char *s = NULL, st[16], val[64];
    size_t len = 0;
    uint64_t seq = 0;
    CHECK_INTEQ(fleetlog_builder_finish(in->b, now, &s, &len, &seq), 0);
    append(EPOCH_A, in->id, seq, s, len, "1000", "4194304", st, val);
    CHECK_STREQ(st, "ok");
    free(s);
    return seq;
}

/* Read the log from where the instance stopped and fold every batch. */
static size_t read_log(inst_t *in, int64_t now)
{
    char from[80];
    snprintf(from, sizeof(from), "(%s", in->last_id); /* after the last entry read */
    redisReply *r = R("XRANGE", key(FLEETKEY_LOG), strcmp(in->last_id, "0-0") ? from : "-", "+");
    size_t folded = 0;
    CHECK(r && r->type == REDIS_REPLY_ARRAY);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i], *id = e->element[0], *fields = e->element[1];
        snprintf(in->last_id, sizeof(in->last_id), "%s", id->str);
        const redisReply *rb = NULL, *rx = NULL;
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
            if (strcmp(fields->element[k]->str, "b") == 0)
                rb = fields->element[k + 1];
            else if (strcmp(fields->element[k]->str, "x") == 0)
                rx = fields->element[k + 1];
        }
        CHECK(rb != NULL);
        if (rb == NULL)
            continue;
        fleetlog_batch_t b;
        char reason[160];
        int rc = fleetlog_decode(rb->str, rb->len, &b, reason, sizeof(reason));
        CHECK_INTEQ(rc, 0);
        if (rc != 0)
            continue;
        uint8_t *flags = calloc(b.n + 1, 1);
        if (rx != NULL)
            CHECK_INTEQ(fleetfold_verdicts_decode(rx->str, rx->len, b.n, FLEETFOLD_VETO_PAGE, flags,
                                                  reason, sizeof(reason)),
                        0);
        fleetfold_result_t res;
        CHECK_INTEQ(fleetfold_apply_flags(in->f, in->pm, in->marks, &b, flags, now, &res), 0);
        folded += res.check == FLEETFOLD_NEW;
        free(flags);
        fleetlog_batch_dispose(&b);
    }
    freeReplyObject(r);
    return folded;
}

static const pagemap_item_t items[] = {
    {.url = "https://e.com/a.css",
     .kind = PAGEMAP_KIND_STYLE,
     .sources = PAGEMAP_SRC_HTML | PAGEMAP_SRC_FOLLOWUP,
     .strong = true,
     .blocking = true},
    {.url = "https://e.com/f.woff2",
     .kind = PAGEMAP_KIND_FONT,
     .crossorigin = PAGEMAP_CORS_ANONYMOUS,
     .sources = PAGEMAP_SRC_CSS | PAGEMAP_SRC_FOLLOWUP},
};

static pagemap_visit_t visit(const char *page, int64_t t)
{
    return (pagemap_visit_t){.page_key = page,
                             .now_ms = t,
                             .think_ms = 40,
                             .status = 200,
                             .html_scanned = true,
                             .css_scanned = true,
                             .browser = true,
                             .multiplexed = true,
                             .items = items,
                             .nitems = 2};
}

static void check_same_plans(pagemap_t *a, pagemap_t *b, const char *page)
{
    pagemap_plan_t p, q;
    CHECK_INTEQ(pagemap_plan(a, page, NULL, "e.com", 0, NULL, &p), 0);
    CHECK_INTEQ(pagemap_plan(b, page, NULL, "e.com", 0, NULL, &q), 0);
    CHECK_INTEQ(p.n, q.n);
    for (size_t i = 0; i < p.n && i < q.n; i++)
        CHECK_STREQ(p.items[i].key, q.items[i].key);
    CHECK_INTEQ(p.visits_total, q.visits_total);
    pagemap_plan_dispose(&p);
    pagemap_plan_dispose(&q);
}

/* ---- the scripts ------------------------------------------------------------ */

static void test_epoch(void)
{
    char st[16], val[64];
    status(R("EVALSHA", sha_epoch, "1", key(FLEETKEY_EPOCH), EPOCH_A, TTL), st, sizeof(st), val,
           sizeof(val));
    CHECK_STREQ(st, "new");
    CHECK_STREQ(val, EPOCH_A);
    status(R("EVALSHA", sha_epoch, "1", key(FLEETKEY_EPOCH), "epoch-b", TTL), st, sizeof(st), val,
           sizeof(val));
    CHECK_STREQ(st, "existing");
    CHECK_STREQ(val, EPOCH_A);
    long long ttl = integer(R("PTTL", key(FLEETKEY_EPOCH)));
    CHECK(ttl > 0 && ttl <= 600000);
}

static void test_append_fold(void)
{
    inst_t a, reader;
    inst_init(&a, "A");
    inst_init(&reader, "R");
    /* A learns three pages and sends two batches; one is sent again after a "reconnect" */
    const char *pages[] = {"e.com/", "e.com/x", "e.com/y"};
    for (int i = 0; i < 6; i++) {
        pagemap_visit_t v = visit(pages[i % 3], 1000 + i);
        CHECK_INTEQ(pagemap_commit_visit(a.pm, &v), 0);
        CHECK_INTEQ(fleetlog_builder_add_visit(a.b, &v, 100 + (uint64_t)i), 0);
        pagemap_asset_meta_t m = {.status = 200, .size = 1234, .fresh_ms = 3600000};
        CHECK_INTEQ(pagemap_observe_asset(a.pm, items[0].url, &m), 0);
        CHECK_INTEQ(fleetlog_builder_add_asset(a.b, items[0].url, &m), 0);
        if (i == 2)
            CHECK_INTEQ(send_batch(&a, 2000), 1);
    }
    char *s = NULL, st[16], val[64];
    size_t len = 0;
    uint64_t seq = 0;
    CHECK_INTEQ(fleetlog_builder_finish(a.b, 3000, &s, &len, &seq), 0);
    CHECK_INTEQ(seq, 2);
    append(EPOCH_A, "A", 2, s, len, "1000", "4194304", st, val);
    CHECK_STREQ(st, "ok");
    append(EPOCH_A, "A", 2, s, len, "1000", "4194304", st, val); /* the resend */
    CHECK_STREQ(st, "dup");
    CHECK_STREQ(val, "2");
    append(EPOCH_A, "A", 1, s, len, "1000", "4194304", st, val); /* older still */
    CHECK_STREQ(st, "dup");
    CHECK_INTEQ(integer(R("XLEN", key(FLEETKEY_LOG))), 2);
    append(EPOCH_A, "A", 3, s, len, "1000", "100", st, val); /* over the byte cap */
    CHECK_STREQ(st, "toobig");
    append("epoch-z", "A", 3, s, len, "1000", "4194304", st, val); /* another epoch */
    CHECK_STREQ(st, "epoch");
    CHECK_STREQ(val, EPOCH_A);
    CHECK_INTEQ(integer(R("XLEN", key(FLEETKEY_LOG))), 2);
    char seqkey[FLEETKEY_MAX_LEN];
    fleetkey_seq(seqkey, sizeof(seqkey), P, "A");
    long long ttl = integer(R("PTTL", seqkey));
    CHECK(ttl > 0 && ttl <= 600000);
    ttl = integer(R("PTTL", key(FLEETKEY_LOG)));
    CHECK(ttl > 0 && ttl <= 600000);

    /* another instance reads the log and ends with A's plans; A skips its own */
    CHECK_INTEQ(read_log(&reader, 5000), 2);
    for (int i = 0; i < 3; i++)
        check_same_plans(a.pm, reader.pm, pages[i]);
    CHECK_INTEQ(read_log(&a, 5000), 0);
    snprintf(reader.last_id, sizeof(reader.last_id), "0-0"); /* a resync reads it all again */
    CHECK_INTEQ(read_log(&reader, 5000), 0);
    check_same_plans(a.pm, reader.pm, "e.com/");

    /* the log keeps MAXLEN entries */
    for (uint64_t k = 3; k < 15; k++) {
        append(EPOCH_A, "A", k, s, len, "5", "4194304", st, val);
        CHECK_STREQ(st, "ok");
    }
    CHECK_INTEQ(integer(R("XLEN", key(FLEETKEY_LOG))), 5);
    free(s);
    inst_dispose(&a);
    inst_dispose(&reader);
}

/* A Redis that lost its data: the next append says so, and a new epoch starts. */
static void test_data_loss(void)
{
    char st[16], val[64];
    freeReplyObject(R("FLUSHALL"));
    append(EPOCH_A, "A", 20, "{}", 2, "1000", "4194304", st, val);
    CHECK_STREQ(st, "epoch");
    CHECK_STREQ(val, "");
    status(R("EVALSHA", sha_epoch, "1", key(FLEETKEY_EPOCH), EPOCH_A, TTL), st, sizeof(st), val,
           sizeof(val));
    CHECK_STREQ(st, "new"); /* this instance re-uploads its base and pins */
}

static void steer(const fleetsteer_msg_t *m, const char *maxpins, char *st, char *val)
{
    char *s = NULL, *field = NULL, sseq[FLEETKEY_MAX_LEN], seq[24];
    size_t len = 0;
    CHECK_INTEQ(fleetsteer_encode(m, &s, &len), 0);
    if (m->op != FLEETSTEER_FORGET_PAGE)
        CHECK_INTEQ(fleetsteer_field(m, &field, NULL), 0);
    fleetkey_steer_seq(sseq, sizeof(sseq), P, m->instance);
    snprintf(seq, sizeof(seq), "%llu", (unsigned long long)m->seq);
    status(RB(s, len, "EVALSHA", sha_steer, "4", key(FLEETKEY_EPOCH), key(FLEETKEY_PINS),
              key(FLEETKEY_STEER), sseq, EPOCH_A, m->instance, seq, fleetsteer_op_name(m->op),
              field ? field : "", "%b", key(FLEETKEY_STEER_CHANNEL), "100", TTL, "65536", maxpins),
           st, 16, val, 64);
    free(s);
    free(field);
}

static fleetsteer_msg_t smsg(fleetsteer_op_t op, const char *asset, uint64_t seq)
{
    fleetsteer_msg_t m = {.op = op, .seq = seq, .t_ms = 1};
    snprintf(m.instance, sizeof(m.instance), "A");
    m.page_key = "e.com/";
    m.asset_key = (char *)asset;
    return m;
}

static void test_steer(const char *sock)
{
    /* another instance listens on the channel */
    redisContext *sub = redisConnectUnix(sock);
    CHECK(sub != NULL && sub->err == 0);
    redisReply *r = cmd(sub, NULL, 0, "SUBSCRIBE", key(FLEETKEY_STEER_CHANNEL), NULL);
    freeReplyObject(r);

    char st[16], val[64];
    fleetsteer_msg_t pin = smsg(FLEETSTEER_PIN, "https://e.com/p.css", 1);
    steer(&pin, "100", st, val);
    CHECK_STREQ(st, "ok");
    void *msg = NULL;
    CHECK_INTEQ(redisGetReply(sub, &msg), REDIS_OK); /* the published copy */
    r = msg;
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    if (r && r->elements == 3) {
        fleetsteer_msg_t got;
        char id[FLEETSTEER_MAX_ID + 1];
        const char *m = NULL;
        size_t mlen = 0;
        CHECK_INTEQ(fleetsteer_published_split(r->element[2]->str, r->element[2]->len, id, &m,
                                               &mlen, NULL, 0),
                    0);
        CHECK_STREQ(id, val); /* the stream entry's id, as the script answered */
        CHECK_INTEQ(fleetsteer_decode(m, mlen, &got, NULL, 0), 0);
        CHECK_INTEQ(got.op, FLEETSTEER_PIN);
        CHECK_STREQ(got.asset_key, "https://e.com/p.css");
        fleetsteer_msg_dispose(&got);
    }
    freeReplyObject(r);
    redisFree(sub);

    steer(&pin, "100", st, val); /* sent again: once */
    CHECK_STREQ(st, "dup");
    fleetsteer_msg_t ban = smsg(FLEETSTEER_BAN, "https://e.com/b.js", 2);
    steer(&ban, "100", st, val);
    CHECK_STREQ(st, "ok");
    CHECK_INTEQ(integer(R("HLEN", key(FLEETKEY_PINS))), 2);
    fleetsteer_msg_t more = smsg(FLEETSTEER_PIN, "https://e.com/c.css", 3);
    steer(&more, "2", st, val); /* a third pin past a cap of 2 */
    CHECK_STREQ(st, "full");
    fleetsteer_msg_t again = smsg(FLEETSTEER_PIN, "https://e.com/b.js", 4);
    steer(&again, "2", st, val); /* changing one in place is fine */
    CHECK_STREQ(st, "ok");
    fleetsteer_msg_t lift = smsg(FLEETSTEER_LEARNED, "https://e.com/p.css", 5);
    steer(&lift, "100", st, val);
    CHECK_STREQ(st, "ok");
    fleetsteer_msg_t fp = smsg(FLEETSTEER_FORGET_PAGE, NULL, 6);
    steer(&fp, "100", st, val);
    CHECK_STREQ(st, "ok");
    CHECK_INTEQ(integer(R("HLEN", key(FLEETKEY_PINS))), 1);
    CHECK_INTEQ(integer(R("XLEN", key(FLEETKEY_STEER))), 5); /* not the refused pin */
    long long ttl = integer(R("PTTL", key(FLEETKEY_PINS)));
    CHECK(ttl > 0 && ttl <= 600000);

    /* a resync: an instance that was away makes its pins and bans the hash's */
    pagemap_t *pm = NULL;
    CHECK_INTEQ(pagemap_create(NULL, &pm), 0);
    CHECK_INTEQ(pagemap_edge_set_state(pm, "e.com/", "https://e.com/p.css", PAGEMAP_EDGE_PINNED),
                0);
    r = R("HVALS", key(FLEETKEY_PINS));
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    fleetsteer_msg_t set[4];
    size_t n = 0;
    for (size_t i = 0; r && i < r->elements && n < 4; i++)
        if (fleetsteer_decode(r->element[i]->str, r->element[i]->len, &set[n], NULL, 0) == 0)
            n++;
    freeReplyObject(r);
    size_t changed = 0;
    CHECK_INTEQ(fleetsteer_sync(pm, set, n, &changed), 0);
    CHECK_INTEQ(changed, 2); /* p.css unpinned, b.js pinned (as last set) */
    pagemap_stats_t stats;
    pagemap_stats(pm, &stats);
    CHECK(stats.pinned == 1 && stats.banned == 0);
    for (size_t i = 0; i < n; i++)
        fleetsteer_msg_dispose(&set[i]);
    pagemap_destroy(pm);
}

/* Answer of FLEETKEY_LUA_MARK for the page (and template) marks of client c. */
static size_t mark(uint64_t c, const char *page, const char *tpl, const char *window,
                   long long *out)
{
    char k1[FLEETKEY_MAX_LEN], k2[FLEETKEY_MAX_LEN];
    fleetkey_mark(k1, sizeof(k1), P, c, page);
    redisReply *r = tpl ? R("EVALSHA", sha_mark, "2", k1,
                            (fleetkey_mark(k2, sizeof(k2), P, c, tpl), k2), window)
                        : R("EVALSHA", sha_mark, "1", k1, window);
    size_t n = 0;
    CHECK(r && r->type == REDIS_REPLY_ARRAY);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && i < 2; i++)
        out[n++] = r->element[i]->integer;
    freeReplyObject(r);
    return n;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_marks(void)
{
    long long a[2];
    uint64_t c = fleetmark_client_hash("198.51.100.9", NULL, 0);
    CHECK_INTEQ(mark(c, "e.com/i/1", "e.com/i/*", "60000", a), 2);
    CHECK(a[0] == 0 && a[1] == 0);
    CHECK_INTEQ(mark(c, "e.com/i/1", "e.com/i/*", "60000", a), 1); /* stops at the live page */
    CHECK(a[0] > 0 && a[0] <= 60000);
    CHECK_INTEQ(mark(c, "e.com/i/2", "e.com/i/*", "60000", a), 2);
    CHECK(a[0] == 0 && a[1] > 0); /* its page only */
    /* a short window ends: wait for the key to expire (a condition, bounded) */
    CHECK_INTEQ(mark(c, "e.com/short", NULL, "50", a), 1);
    CHECK(a[0] == 0);
    char k[FLEETKEY_MAX_LEN];
    fleetkey_mark(k, sizeof(k), P, c, "e.com/short");
    int64_t until = now_ms() + 5000;
    while (integer(R("EXISTS", k)) == 1 && now_ms() < until)
        freeReplyObject(R("PING"));
    CHECK_INTEQ(integer(R("EXISTS", k)), 0);
    CHECK_INTEQ(mark(c, "e.com/short", NULL, "50", a), 1);
    CHECK(a[0] == 0);
}

/*
 * The fleet-wide bound: one client, 300 visits with a junk follow-up
 * spread over three instances that ask Redis for the client's mark before
 * committing; every map ends with exactly one of those visits.
 */
static void test_poison(void)
{
    inst_t in[3];
    inst_init(&in[0], "P0");
    inst_init(&in[1], "P1");
    inst_init(&in[2], "P2");
    freeReplyObject(R("DEL", key(FLEETKEY_LOG)));
    pagemap_item_t junk[2] = {items[0],
                              {.url = "https://e.com/junk.txt",
                               .kind = PAGEMAP_KIND_OTHER,
                               .sources = PAGEMAP_SRC_FOLLOWUP}};
    size_t counted = 0;
    for (int k = 0; k < 300; k++) {
        inst_t *x = &in[k % 3];
        char addr[32];
        snprintf(addr, sizeof(addr), "203.0.113.%d", 7);
        uint64_t c = fleetmark_client_hash(addr, NULL, 0);
        int64_t t = 1700000000000 + k;
        long long a[2] = {0, 0};
        CHECK_INTEQ(mark(c, "e.com/poisoned", NULL, "600000", a), 1);
        if (!fleetmark_redis_reply(x->marks, c, "e.com/poisoned", t, a[0]))
            continue;
        pagemap_visit_t v = visit("e.com/poisoned", t);
        v.items = junk;
        CHECK_INTEQ(pagemap_commit_visit(x->pm, &v), 0);
        CHECK_INTEQ(fleetlog_builder_add_visit(x->b, &v, c), 0);
        counted++;
        if (k % 10 == 0)
            send_batch(x, t);
    }
    CHECK_INTEQ(counted, 1);
    for (int i = 0; i < 3; i++)
        send_batch(&in[i], 1700000001000);
    for (int i = 0; i < 3; i++) {
        read_log(&in[i], 1700000001000);
        pagemap_page_info_t info;
        CHECK_INTEQ(pagemap_page_get(in[i].pm, "e.com/poisoned", &info, NULL, NULL), 0);
        CHECK_INTEQ(info.visits_total, 1);
        pagemap_page_info_dispose(&info);
    }
    for (int i = 0; i < 3; i++)
        inst_dispose(&in[i]);
}

/* APPEND one batch whose record 0 is a visit of page (template tpl) by c;
 * *x and *y get the refused record lists. */
static void append_marked(inst_t *in, uint64_t c, const char *page, const char *tpl, uint64_t seq,
                          const char *batch, size_t len, char *st, char *x, char *y)
{
    char seqkey[FLEETKEY_MAX_LEN], seqs[24], me[64], k1[FLEETKEY_MAX_LEN], k2[FLEETKEY_MAX_LEN];
    CHECK(fleetkey_seq(seqkey, sizeof(seqkey), P, in->id) > 0);
    snprintf(seqs, sizeof(seqs), "%llu", (unsigned long long)seq);
    snprintf(me, sizeof(me), "%s:%s", in->id, seqs);
    CHECK(fleetkey_mark(k1, sizeof(k1), P, c, page) > 0);
    CHECK(fleetkey_mark(k2, sizeof(k2), P, c, tpl) > 0);
    redisReply *r =
        RB(batch, len, "EVALSHA", sha_append, "5", key(FLEETKEY_EPOCH), key(FLEETKEY_LOG), seqkey,
           k1, k2, EPOCH_A, in->id, seqs, "%b", "1000", TTL, "4194304", "600000", me, "0", "2");
    st[0] = x[0] = y[0] = '\0';
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 4);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 4) {
        snprintf(st, 16, "%s", r->element[0]->str);
        snprintf(x, 64, "%s", r->element[2]->str);
        snprintf(y, 64, "%s", r->element[3]->str);
    }
    freeReplyObject(r);
}

/*
 * The marks taken by APPEND: one client's visits of one page reach two
 * instances before either folded the other's batch; each holds its visit
 * (fleetmark_hold_visit) until Redis decides. Redis gives the mark to the
 * first batch appended and refuses the second's visit (a resend gets the
 * same verdict); every map, the two writers' and a third's, then counts
 * the same single visit: the first's.
 */
static void test_append_marks(void)
{
    inst_t in[3];
    inst_init(&in[0], "M0");
    inst_init(&in[1], "M1");
    inst_init(&in[2], "M2");
    freeReplyObject(R("DEL", key(FLEETKEY_LOG)));
    uint64_t c = fleetmark_client_hash("203.0.113.99", P, strlen(P));
    const char *page = "e.com/marked/1", *tpl = "e.com/marked/*";
    const char *junk[2] = {"https://e.com/only-a.txt", "https://e.com/only-b.txt"};
    char *data[2];
    size_t len[2];
    for (int i = 0; i < 2; i++) {
        bool p = false, t = false;
        fleetmark_hold_visit(in[i].marks, c, page, tpl, 1700000000000 + i, &p, &t);
        CHECK(p && t);
        pagemap_item_t it[2] = {
            items[0],
            {.url = junk[i], .kind = PAGEMAP_KIND_OTHER, .sources = PAGEMAP_SRC_FOLLOWUP}};
        pagemap_visit_t v = visit(page, 1700000000000 + i);
        v.template_key = tpl;
        v.items = it;
        v.nitems = 2;
        CHECK_INTEQ(fleetlog_builder_add_visit(in[i].b, &v, c), 0);
        uint64_t seq = 0;
        CHECK_INTEQ(fleetlog_builder_finish(in[i].b, 1700000000100, &data[i], &len[i], &seq), 0);
        CHECK_INTEQ(seq, 1);
    }
    char st[16], x[64], y[64];
    append_marked(&in[0], c, page, tpl, 1, data[0], len[0], st, x, y);
    CHECK_STREQ(st, "ok");
    CHECK_STREQ(x, "");
    CHECK_STREQ(y, "");
    append_marked(&in[1], c, page, tpl, 1, data[1], len[1], st, x, y);
    CHECK_STREQ(st, "ok");
    CHECK_STREQ(x, "0"); /* the page mark is the first's */
    append_marked(&in[1], c, page, tpl, 1, data[1], len[1], st, x, y);
    CHECK_STREQ(st, "dup");
    CHECK_STREQ(x, "0");
    append_marked(&in[0], c, page, tpl, 1, data[0], len[0], st, x, y);
    CHECK_STREQ(st, "dup");
    CHECK_STREQ(x, ""); /* a resend keeps its own mark */
    /* the writers apply their held visit with the verdicts, then fold the log */
    const char *verdict[2] = {"", "0"};
    for (int i = 0; i < 2; i++) {
        fleetlog_batch_t b;
        char reason[160];
        CHECK_INTEQ(fleetlog_decode(data[i], len[i], &b, reason, sizeof(reason)), 0);
        uint8_t flags[1] = {FLEETFOLD_PENDING};
        CHECK_INTEQ(fleetfold_verdicts_decode(verdict[i], strlen(verdict[i]), b.n,
                                              FLEETFOLD_VETO_PAGE, flags, reason, sizeof(reason)),
                    0);
        fleetfold_result_t res;
        CHECK_INTEQ(fleetfold_apply_own(in[i].pm, in[i].marks, &b, flags, &res), 0);
        CHECK_INTEQ(res.visits, i == 0 ? 1 : 0);
        CHECK_INTEQ(flags[0] & FLEETFOLD_PENDING, 0);
        fleetlog_batch_dispose(&b);
        free(data[i]);
    }
    for (int i = 0; i < 3; i++) {
        read_log(&in[i], 1700000001000);
        pagemap_page_info_t info;
        pagemap_edge_info_t *e = NULL;
        size_t ne = 0;
        CHECK_INTEQ(pagemap_page_get(in[i].pm, page, &info, &e, &ne), 0);
        CHECK_INTEQ(info.visits_total, 1);
        bool a = false, b = false;
        for (size_t k = 0; k < ne; k++) {
            a |= strcmp(e[k].url, junk[0]) == 0;
            b |= strcmp(e[k].url, junk[1]) == 0;
        }
        CHECK(a && !b); /* the first's visit, everywhere */
        pagemap_edge_infos_free(e, ne);
        pagemap_page_info_dispose(&info);
    }
    for (int i = 0; i < 3; i++)
        inst_dispose(&in[i]);
}

static void test_base(void)
{
    freeReplyObject(R("DEL", key(FLEETKEY_LOG)));
    inst_t w, loader;
    inst_init(&w, "W");
    inst_init(&loader, "L");
    char page[32];
    for (int i = 0; i < 200; i++) {
        snprintf(page, sizeof(page), "e.com/b/%d", i);
        pagemap_visit_t v = visit(page, 1000 + i);
        CHECK_INTEQ(pagemap_commit_visit(w.pm, &v), 0);
        CHECK_INTEQ(fleetlog_builder_add_visit(w.b, &v, 0), 0);
        if (i == 100)
            send_batch(&w, 2000); /* batch 1: in the base */
    }
    CHECK_INTEQ(
        pagemap_edge_set_state(w.pm, "e.com/b/3", "https://e.com/pin.js", PAGEMAP_EDGE_PINNED), 0);
    /* the writer closes its open batch, then dumps: the base holds batches 1..2 */
    char *s = NULL;
    size_t len = 0;
    uint64_t own = 0;
    CHECK_INTEQ(fleetlog_builder_finish(w.b, 3000, &s, &len, &own), 0);
    CHECK_INTEQ(own, 2);
    pagemap_dump_t d;
    CHECK_INTEQ(pagemap_dump(w.pm, &d), 0);
    fleetbase_chunks_t c;
    CHECK_INTEQ(fleetbase_encode(&d, 8192, &c), 0);
    CHECK(c.n > 3);
    pagemap_dump_dispose(&d);
    char list[FLEETKEY_MAX_LEN], cnt[24];
    fleetkey_base_chunks(list, sizeof(list), P, "W-1");
    for (size_t i = 0; i < c.n; i++)
        CHECK_INTEQ(integer(RB(c.v[i], c.len[i], "RPUSH", list, "%b")), (long long)i + 1);
    char *hdr = NULL;
    size_t hlen = 0;
    CHECK_INTEQ(fleetbase_header_encode(w.f, "W", own, "W-1", 3000, c.n, "0-0", &hdr, &hlen), 0);
    snprintf(cnt, sizeof(cnt), "%zu", c.n + 1);
    char st[16], val[64];
    status(RB(hdr, hlen, "EVALSHA", sha_base, "4", key(FLEETKEY_EPOCH), key(FLEETKEY_BASE), list,
              list, EPOCH_A, "%b", cnt, TTL, "60000"),
           st, sizeof(st), val, sizeof(val));
    CHECK_STREQ(st, "short"); /* the count must match what was uploaded */
    snprintf(cnt, sizeof(cnt), "%zu", c.n);
    status(RB(hdr, hlen, "EVALSHA", sha_base, "4", key(FLEETKEY_EPOCH), key(FLEETKEY_BASE), list,
              list, EPOCH_A, "%b", cnt, TTL, "60000"),
           st, sizeof(st), val, sizeof(val));
    CHECK_STREQ(st, "ok");
    /* a second writer that saw no base loses the race */
    char list2[FLEETKEY_MAX_LEN];
    fleetkey_base_chunks(list2, sizeof(list2), P, "X-1");
    freeReplyObject(R("RPUSH", list2, "{}"));
    status(RB(hdr, hlen, "EVALSHA", sha_base, "4", key(FLEETKEY_EPOCH), key(FLEETKEY_BASE), list2,
              list2, EPOCH_A, "%b", "1", TTL, "60000"),
           st, sizeof(st), val, sizeof(val));
    CHECK_STREQ(st, "race");
    CHECK_STREQ(val, list);

    /* the next batch (3) goes to the log after the base */
    pagemap_visit_t v = visit("e.com/after", 4000);
    CHECK_INTEQ(pagemap_commit_visit(w.pm, &v), 0);
    CHECK_INTEQ(fleetlog_builder_add_visit(w.b, &v, 0), 0);
    char st2[16], val2[64];
    append(EPOCH_A, "W", own, s, len, "1000", "4194304", st2, val2); /* batch 2, late */
    CHECK_STREQ(st2, "ok");
    CHECK_INTEQ(send_batch(&w, 4000), 3);

    /* a new instance: header, chunks, then the log; nothing counted twice */
    redisReply *r = R("HMGET", key(FLEETKEY_BASE), "hdr", "list");
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    fleetbase_header_t h;
    CHECK_INTEQ(fleetbase_header_decode(r->element[0]->str, r->element[0]->len, &h, NULL, 0), 0);
    CHECK_STREQ(r->element[1]->str, list);
    freeReplyObject(r);
    CHECK_INTEQ(fleetbase_header_seed(&h, loader.f, 5000), 0);
    for (size_t i = 0; i < h.chunks; i++) {
        char idx[24];
        snprintf(idx, sizeof(idx), "%zu", i);
        r = R("LINDEX", list, idx);
        char reason[160];
        CHECK(r && r->type == REDIS_REPLY_STRING);
        if (r && r->type == REDIS_REPLY_STRING)
            CHECK_INTEQ(fleetbase_load_chunk(loader.pm, r->str, r->len, reason, sizeof(reason)), 0);
        freeReplyObject(r);
    }
    fleetbase_header_dispose(&h);
    read_log(&loader, 5000);
    char *ea = NULL, *eb = NULL;
    CHECK_INTEQ(snapshot_export(w.pm, &ea, NULL), 0);
    CHECK_INTEQ(snapshot_export(loader.pm, &eb, NULL), 0);
    CHECK(ea && eb && strcmp(ea, eb) == 0); /* the writer's map, exactly */
    free(ea);
    free(eb);
    free(s);
    free(hdr);
    fleetbase_chunks_dispose(&c);
    inst_dispose(&w);
    inst_dispose(&loader);
}

static void test_touch(void)
{
    freeReplyObject(R("SET", "t:plain", "1"));
    CHECK_INTEQ(
        integer(R("EVALSHA", sha_touch, "3", key(FLEETKEY_PINS), "t:plain", "t:none", "1234567")),
        2);
    long long ttl = integer(R("PTTL", "t:plain"));
    CHECK(ttl > 1200000 && ttl <= 1234567);
}

/* After Redis restarted (appendonly yes): the map's state is still there. */
static void test_survived(void)
{
    char st[16], val[64];
    status(R("EVALSHA", sha_epoch, "1", key(FLEETKEY_EPOCH), "epoch-new", TTL), st, sizeof(st), val,
           sizeof(val));
    CHECK_STREQ(st, "existing");
    CHECK_STREQ(val, EPOCH_A);
    CHECK_INTEQ(integer(R("HLEN", key(FLEETKEY_PINS))), 1);
    CHECK(integer(R("XLEN", key(FLEETKEY_LOG))) > 0);
    CHECK_INTEQ(integer(R("HEXISTS", key(FLEETKEY_BASE), "hdr")), 1);
    long long ttl = integer(R("PTTL", key(FLEETKEY_PINS))); /* as test_touch set it */
    CHECK(ttl > 600000 && ttl <= 1234567);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKET phase1|phase2\n", argv[0]);
        return 2;
    }
    rc_ = redisConnectUnix(argv[1]);
    if (rc_ == NULL || rc_->err) {
        fprintf(stderr, "cannot connect to %s: %s\n", argv[1], rc_ ? rc_->errstr : "no memory");
        return 1;
    }
    load(FLEETKEY_LUA_EPOCH, sha_epoch);
    load(FLEETKEY_LUA_APPEND, sha_append);
    load(FLEETKEY_LUA_STEER, sha_steer);
    load(FLEETKEY_LUA_MARK, sha_mark);
    load(FLEETKEY_LUA_BASE, sha_base);
    load(FLEETKEY_LUA_TOUCH, sha_touch);
    if (strcmp(argv[2], "phase2") == 0) {
        test_survived();
    } else {
        test_epoch();
        test_append_fold();
        test_data_loss();
        test_steer(argv[1]);
        test_marks();
        test_poison();
        test_append_marks();
        test_base();
        test_touch();
    }
    redisFree(rc_);
    return TESTUTIL_SUMMARY();
}
