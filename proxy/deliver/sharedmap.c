/*
 * The fleet's shared map through Redis (sharedmap.h, docs/fleet.md).
 *
 * Threads: workers call sharedmap_commit() (marks and the batch builder,
 * under s->mu), the admin calls sharedmap_steer() (the steering queue,
 * under s->mu); the sync thread owns the Redis connection, the fold
 * records, the cursors and the queue of finished batches. The map locks
 * itself; s->mu is taken before the map's lock, never inside it.
 *
 * The sync thread's round: connect (backoff while Redis is away), then
 * every --shared-map-interval close the batch and send the queued ones
 * (APPEND, which also takes the client marks of their visits and answers
 * which it refused: the visits this instance held are applied to its map
 * then), check the epoch (EPOCH) and refresh TTLs (TOUCH); send queued
 * steering at once (STEER); and between rounds wait on XREAD BLOCK for
 * new entries of the log, folding each as it comes.
 *
 * The subscriber thread holds a second connection SUBSCRIBEd to the steer
 * channel and applies each steering message as it is published. A
 * subscription loses what is published while it is away: each time it is
 * made, the sync thread reads the steer stream after its cursor and the
 * pins hash, and while there is none it reads the stream between rounds.
 */
#include "sharedmap.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald/error.h"
#include "headers.h"

static const char *unavailable_reason(void);

#ifdef HERALD_HAVE_HIREDIS

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <sys/random.h>

#include "fleetbase.h"
#include "fleetfold.h"
#include "fleetkey.h"
#include "fleetlog.h"
#include "fleetmark.h"
#include "alloc.h"
#include "log.h"

enum {
    CONNECT_TIMEOUT_MS = 1000,
    COMMAND_TIMEOUT_MS = 2000,
    READ_BLOCK_MS = 200, /* longest wait for the streams between rounds */
    READ_COUNT = 64,     /* entries per XREAD */
    SUB_POLL_MS = 200,   /* longest wait of the subscriber before it looks at stop */
    /* Records applied per hold of mu and the map's lock: the sync thread
     * applies a batch's held visits in a burst once per interval, and a
     * worker planning or committing meanwhile waits for the lock. (The
     * thread keeps the workers' priority: a nicer thread preempted while it
     * holds the lock would keep a worker waiting behind the other.) */
    APPLY_SLICE = 4,
    BACKOFF_MIN_MS = 100,
    BACKOFF_MAX_MS = 5000,
    MAX_QUEUED_BATCHES = 256, /* while Redis is away; the oldest dropped past it */
    MAX_QUEUED_STEER = 10000,
    MAX_REJECT_LOGS = 20, /* rejected values logged, then only counted */
    STOP_FLUSH_MS = 2000,
    /* How often one instance of the fleet (the holder of the base lock) writes
     * its map as the base, so that a starting instance does not depend on the
     * trimmed log alone. */
    BASE_EVERY_MS = 5 * 60 * 1000,
};

/* A visit's client marks, for FLEETKEY_LUA_APPEND: its record number and keys. */
typedef struct markreq {
    uint32_t rec;
    char *keys[2]; /* the page's; the template's or NULL */
} markreq_t;

/* What an evidence batch carries besides its bytes: per record, whether it
 * waits for Redis before the local map gets it (FLEETFOLD_PENDING), and
 * the client marks of its visits. */
typedef struct batchinfo {
    uint8_t *flags;
    size_t nflags, capflags;
    markreq_t *marks;
    size_t nmarks, capmarks;
    size_t pending; /* records flagged FLEETFOLD_PENDING */
} batchinfo_t;

typedef struct queued {
    char *data;
    size_t len;
    uint64_t seq;
    size_t records;
    batchinfo_t info;      /* evidence batches only */
    fleetlog_batch_t held; /* its records decoded, while some are held (info.pending) */
    /* steering only */
    fleetsteer_op_t op;
    char *field; /* pins-hash field; NULL for forget-page */
} queued_t;

typedef struct queue {
    queued_t *v;
    size_t n, cap;
} queue_t;

struct sharedmap {
    pagemap_t *pm;
    char url[1024];
    char host[256];
    int port;
    char unix_path[1024];
    char user[128];
    char pass[512];
    int db;
    int64_t interval_ms;
    char prefix[FLEETKEY_MAX_PREFIX + 1];
    char instance[17];
    char k_epoch[FLEETKEY_MAX_LEN], k_log[FLEETKEY_MAX_LEN], k_steer[FLEETKEY_MAX_LEN],
        k_chan[FLEETKEY_MAX_LEN], k_pins[FLEETKEY_MAX_LEN], k_base[FLEETKEY_MAX_LEN],
        k_seq[FLEETKEY_MAX_LEN], k_steer_seq[FLEETKEY_MAX_LEN], k_base_lock[FLEETKEY_MAX_LEN];

    /* under mu: shared with the workers and the admin */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fleetlog_builder_t *builder;
    batchinfo_t open_info; /* of the builder's open batch: one flag per record */
    fleetmark_t *marks;
    uint64_t steer_next;
    queue_t steer_q;
    bool stop;
    char log_id_pub[FLEETBASE_MAX_LOG_ID + 1]; /* the log cursor, for /stats */

    /* Applying steering: the dedupe record (steer_fold) and the map's
     * pins, so that a resync from the pins hash (read, then applied) and
     * a message the subscriber applies meanwhile happen one after the
     * other, never interleaved. Taken before mu. */
    pthread_mutex_t steer_mu;

    /* the steer stream's cursor (the subscriber advances it too) and
     * whether the sync thread must read the stream again (the
     * subscription was (re)made: what was published before it is there) */
    char steer_id[FLEETBASE_MAX_LOG_ID + 1];
    bool steer_resync;

    /* the sync thread's (and sharedmap_start's before it runs) */
    pthread_t thread, sub_thread;
    bool thread_started, sub_started;
    redisContext *c;
    fleetfold_t *fold, *steer_fold;
    char epoch[40];
    char log_id[FLEETBASE_MAX_LOG_ID + 1];
    bool loaded; /* the base and log were read once */
    queue_t batch_q;
    int64_t next_tick_ms, next_connect_ms, down_since_ms, next_base_ms;
    int backoff_ms;
    bool logged_down;
    unsigned base_gen;

    /* counters, any thread */
    _Atomic int state;       /* sharedmap_state_t; written by the sync thread */
    _Atomic bool subscribed; /* the subscriber listens on the steer channel */
    _Atomic uint64_t commands, sync_errors, batches_sent, records_sent, bytes_sent, batches_dropped,
        records_dropped, batches_folded, visits_folded, visits_vetoed, assets_folded, rejected,
        steer_sent, steer_applied, resyncs, visits_held, visits_refused, held_applied_locally,
        explores_folded, steer_published, subscribes, epoch_changes, bases_uploaded, bases_loaded,
        last_batch_records, queued_batches;
    _Atomic int64_t last_sync_ms;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* learn/ returns HERALD_ENOMEM; in proxy/ that aborts. */
static int check(int rc)
{
    if (rc == HERALD_ENOMEM)
        alloc_fail(__FILE__, __LINE__, 0);
    return rc;
}

static void random_hex(char *out, size_t nbytes)
{
    unsigned char b[32];
    if (nbytes > sizeof(b))
        nbytes = sizeof(b);
    size_t got = 0;
    while (got < nbytes) {
        ssize_t r = getrandom(b + got, nbytes - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            /* no entropy source: time and address still tell instances apart */
            uint64_t t = (uint64_t)mono_ms() ^ (uint64_t)wall_ms() ^ (uintptr_t)out;
            for (; got < nbytes; got++, t = t * 6364136223846793005ull + 1)
                b[got] = (unsigned char)(t >> 33);
            break;
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* ---- queues ---- */

static void q_push(queue_t *q, queued_t item)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->v = xrealloc(q->v, q->cap * sizeof(*q->v));
    }
    q->v[q->n++] = item;
}

static void info_free(batchinfo_t *bi)
{
    for (size_t i = 0; i < bi->nmarks; i++) {
        free(bi->marks[i].keys[0]);
        free(bi->marks[i].keys[1]);
    }
    free(bi->marks);
    free(bi->flags);
    memset(bi, 0, sizeof(*bi));
}

static void q_item_free(queued_t *it)
{
    free(it->data);
    free(it->field);
    info_free(&it->info);
    fleetlog_batch_dispose(&it->held);
}

static void q_pop(queue_t *q)
{
    assert(q->n > 0);
    q_item_free(&q->v[0]);
    memmove(q->v, q->v + 1, (q->n - 1) * sizeof(*q->v));
    q->n--;
}

static void q_free(queue_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        q_item_free(&q->v[i]);
    free(q->v);
    memset(q, 0, sizeof(*q));
}

/* ---- the URL ---- */

static int parse_url(sharedmap_t *s, const char *url, char *err, size_t errlen)
{
    snprintf(s->url, sizeof(s->url), "%s", url);
    if (strncmp(url, "unix://", 7) == 0) {
        const char *p = url + 7;
        if (p[0] != '/' || strlen(p) >= sizeof(s->unix_path)) {
            snprintf(err, errlen, "--shared-map: unix:///PATH needs an absolute path");
            return HERALD_EINVAL;
        }
        snprintf(s->unix_path, sizeof(s->unix_path), "%s", p);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen,
                 "--shared-map takes redis://[USER[:PASS]@]HOST:PORT[/DB] or unix:///PATH "
                 "(rediss:// TLS, Cluster and Sentinel are not supported)");
        return HERALD_EINVAL;
    }
    const char *p = url + 8, *at = strrchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = (size_t)((colon ? colon : at) - p);
        if (ulen >= sizeof(s->user) || (colon && (size_t)(at - colon - 1) >= sizeof(s->pass))) {
            snprintf(err, errlen, "--shared-map: user or password too long");
            return HERALD_EINVAL;
        }
        memcpy(s->user, p, ulen);
        s->user[ulen] = '\0';
        if (colon != NULL) {
            memcpy(s->pass, colon + 1, (size_t)(at - colon - 1));
            s->pass[at - colon - 1] = '\0';
        }
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hplen = slash ? (size_t)(slash - p) : strlen(p);
    const char *colon = NULL;
    if (p[0] == '[') { /* [v6]:port */
        const char *rb = memchr(p, ']', hplen);
        if (rb == NULL || rb[1] != ':') {
            snprintf(err, errlen, "--shared-map: bad [IPv6]:PORT");
            return HERALD_EINVAL;
        }
        colon = rb + 1;
        size_t hl = (size_t)(rb - p - 1);
        if (hl >= sizeof(s->host))
            hl = sizeof(s->host) - 1;
        memcpy(s->host, p + 1, hl);
        s->host[hl] = '\0';
    } else {
        colon = memchr(p, ':', hplen);
        size_t hl = (size_t)((colon ? colon : p + hplen) - p);
        if (hl == 0 || hl >= sizeof(s->host)) {
            snprintf(err, errlen, "--shared-map: missing or too long host");
            return HERALD_EINVAL;
        }
        memcpy(s->host, p, hl);
        s->host[hl] = '\0';
    }
    s->port = 6379;
    if (colon != NULL) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != p + hplen || port < 1 || port > 65535) {
            snprintf(err, errlen, "--shared-map: bad port");
            return HERALD_EINVAL;
        }
        s->port = (int)port;
    }
    if (slash != NULL && slash[1] != '\0') {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end != '\0' || db < 0 || db > 1000000) {
            snprintf(err, errlen, "--shared-map: bad database number");
            return HERALD_EINVAL;
        }
        s->db = (int)db;
    }
    return 0;
}

static int read_password(sharedmap_t *s, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "--shared-map-password-file %s: %s", path, strerror(errno));
        return HERALD_EINVAL;
    }
    char line[sizeof(s->pass)];
    if (fgets(line, sizeof(line), f) == NULL)
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '\0') {
        snprintf(err, errlen, "--shared-map-password-file %s: empty", path);
        return HERALD_EINVAL;
    }
    snprintf(s->pass, sizeof(s->pass), "%s", line);
    return 0;
}

/* ---- Redis calls ---- */

/*
 * The connection's state:
 *   DOWN     no connection; the next attempt at next_connect_ms (backoff)
 *   SYNCING  connected: loading, or catching up after a reconnect or a
 *            change of the shared map's epoch
 *   UP       connected and in step: rounds of send, check, read
 * DOWN -> DOWN (an attempt failed), DOWN -> SYNCING, SYNCING -> UP,
 * SYNCING -> DOWN, UP -> DOWN, UP -> SYNCING (the epoch changed).
 */
typedef enum sharedmap_state {
    SHAREDMAP_DOWN = 0,
    SHAREDMAP_SYNCING,
    SHAREDMAP_UP,
} sharedmap_state_t;

static const char *state_name(int st)
{
    return st == SHAREDMAP_UP ? "up" : st == SHAREDMAP_SYNCING ? "syncing" : "down";
}

static void set_state(sharedmap_t *s, sharedmap_state_t to)
{
    sharedmap_state_t from = (sharedmap_state_t)atomic_load(&s->state);
    assert(to == SHAREDMAP_DOWN || (from == SHAREDMAP_DOWN && to == SHAREDMAP_SYNCING) ||
           (from == SHAREDMAP_SYNCING && to == SHAREDMAP_UP) ||
           (from == SHAREDMAP_UP && to == SHAREDMAP_SYNCING));
    (void)from;
    atomic_store(&s->state, (int)to);
}

static void went_down(sharedmap_t *s, const char *reason)
{
    char why[160]; /* reason may point into s->c */
    snprintf(why, sizeof(why), "%s", reason);
    if (s->c != NULL) {
        redisFree(s->c);
        s->c = NULL;
    }
    atomic_fetch_add(&s->sync_errors, 1);
    set_state(s, SHAREDMAP_DOWN);
    if (!s->logged_down) {
        LOG_WARN("shared map: Redis at %s unavailable (%s): serving and learning from the "
                 "local map, retrying",
                 s->url, why);
        s->logged_down = true;
        s->down_since_ms = mono_ms();
    }
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS)
        s->backoff_ms = BACKOFF_MAX_MS;
    s->next_connect_ms = mono_ms() + s->backoff_ms;
}

/* One command; NULL when the connection failed (then it is closed). An
 * error reply is returned (and counted): the caller frees it. */
static redisReply *run(sharedmap_t *s, int argc, const char **argv, const size_t *lens)
{
    if (s->c == NULL)
        return NULL;
    atomic_fetch_add_explicit(&s->commands, 1, memory_order_relaxed);
    redisReply *r = redisCommandArgv(s->c, argc, argv, lens);
    if (r == NULL) {
        went_down(s, s->c->errstr[0] ? s->c->errstr : "no answer");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        atomic_fetch_add(&s->sync_errors, 1);
        if (!s->logged_down) /* while away, went_down said it once */
            LOG_WARN("shared map: Redis answered %s: %.*s", argv[0], (int)r->len, r->str);
    }
    return r;
}

static redisReply *run2(sharedmap_t *s, const char *a, const char *b)
{
    const char *argv[] = {a, b};
    return run(s, 2, argv, NULL);
}

static bool is_str(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* A script's {status, value} answer. */
static bool script_answer(const redisReply *r, const char **status, const char **value)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !is_str(r->element[0]))
        return false;
    *status = r->element[0]->str;
    *value = is_str(r->element[1]) ? r->element[1]->str : "";
    return true;
}

static void num(char *buf, size_t len, long long v)
{
    snprintf(buf, len, "%lld", v);
}

/* ---- epoch, base, pins ---- */

static void load_base(sharedmap_t *s);
static void upload_base(sharedmap_t *s);
static void upload_pins(sharedmap_t *s);
static void sync_pins(sharedmap_t *s);
static void catch_up(sharedmap_t *s, bool steer_only);

static bool valid_stream_id(const char *id, size_t len)
{
    if (len == 0 || len > FLEETBASE_MAX_LOG_ID)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
            return false;
    return true;
}

static bool parse_id(const char *id, uint64_t *ms, uint64_t *seq);

/* Set the steer cursor (forward only: never back past what was applied). */
static void steer_cursor_set(sharedmap_t *s, const char *id, bool forward_only)
{
    uint64_t am, as, bm, bs;
    pthread_mutex_lock(&s->mu);
    if (!forward_only || !parse_id(s->steer_id, &am, &as) || !parse_id(id, &bm, &bs) || bm > am ||
        (bm == am && bs > as))
        snprintf(s->steer_id, sizeof(s->steer_id), "%s", id);
    pthread_mutex_unlock(&s->mu);
}

static void steer_cursor_get(sharedmap_t *s, char *out)
{
    pthread_mutex_lock(&s->mu);
    memcpy(out, s->steer_id, sizeof(s->steer_id));
    pthread_mutex_unlock(&s->mu);
}

/* The steer stream's last entry: a starting instance takes the pins from
 * the pins hash, not by replaying old messages. */
static void steer_to_end(sharedmap_t *s)
{
    const char *argv[] = {"XREVRANGE", s->k_steer, "+", "-", "COUNT", "1"};
    redisReply *r = run(s, 6, argv, NULL);
    steer_cursor_set(s, "0-0", false);
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        is_str(r->element[0]->element[0]) &&
        valid_stream_id(r->element[0]->element[0]->str, r->element[0]->element[0]->len))
        steer_cursor_set(s, r->element[0]->element[0]->str, false);
    freeReplyObject(r);
}

/*
 * EPOCH: the id of Redis's copy. "new": this instance starts the copy
 * (Redis was empty or lost its data): upload the base and the pins. An
 * epoch other than the one we know: another copy (Redis restarted empty
 * and another instance re-created it): load its base. Returns false when
 * Redis did not answer.
 */
static bool check_epoch(sharedmap_t *s)
{
    char fresh[33], ttl[32];
    random_hex(fresh, 16);
    num(ttl, sizeof(ttl), FLEETKEY_DEFAULT_TTL_MS);
    const char *argv[] = {"EVAL", FLEETKEY_LUA_EPOCH, "1", s->k_epoch, fresh, ttl};
    redisReply *r = run(s, 6, argv, NULL);
    if (r == NULL)
        return false;
    if (r->type == REDIS_REPLY_ERROR) { /* NOAUTH, LOADING, a read-only replica...: unusable */
        char why[160];
        snprintf(why, sizeof(why), "%.*s", (int)r->len, r->str);
        freeReplyObject(r);
        went_down(s, why);
        return false;
    }
    const char *st, *val;
    if (!script_answer(r, &st, &val) || strlen(val) >= sizeof(s->epoch)) {
        freeReplyObject(r);
        return true;
    }
    bool was_up = atomic_load(&s->state) == SHAREDMAP_UP;
    if (strcmp(st, "new") == 0) {
        if (was_up)
            set_state(s, SHAREDMAP_SYNCING);
        if (s->epoch[0] != '\0') {
            LOG_WARN("shared map: Redis lost the shared map (no epoch): uploading this "
                     "instance's map and pins");
            atomic_fetch_add(&s->epoch_changes, 1);
        } else {
            LOG_INFO("shared map: starting a new shared map in Redis");
        }
        snprintf(s->epoch, sizeof(s->epoch), "%s", val);
        snprintf(s->log_id, sizeof(s->log_id), "0-0");
        steer_cursor_set(s, "0-0", false);
        s->loaded = true;
        freeReplyObject(r);
        upload_base(s);
        upload_pins(s);
        if (was_up && s->c != NULL)
            set_state(s, SHAREDMAP_UP);
        return s->c != NULL;
    }
    if (strcmp(s->epoch, val) != 0) {
        if (was_up)
            set_state(s, SHAREDMAP_SYNCING);
        if (s->epoch[0] != '\0') {
            LOG_WARN("shared map: Redis holds another copy of the shared map: loading it");
            atomic_fetch_add(&s->epoch_changes, 1);
        }
        snprintf(s->epoch, sizeof(s->epoch), "%s", val);
        freeReplyObject(r);
        load_base(s);
        steer_to_end(s);
        catch_up(s, false);
        sync_pins(s);
        s->loaded = true;
        if (was_up && s->c != NULL)
            set_state(s, SHAREDMAP_UP);
        return s->c != NULL;
    }
    freeReplyObject(r);
    return true;
}

static void close_batch(sharedmap_t *s);
static bool send_batches(sharedmap_t *s);
static void release_held(sharedmap_t *s);

static void upload_base(sharedmap_t *s)
{
    /* the open batch's visits are in the map: close it, so the header's
     * number covers them and a loader of this base does not fold them again;
     * records held for Redis's verdict go into the map first (sent batches
     * get them from the verdicts, the rest from the local marks) */
    close_batch(s);
    send_batches(s);
    release_held(s);
    pagemap_dump_t d = {0};
    fleetbase_chunks_t ch = {0};
    check(pagemap_dump(s->pm, &d));
    int rc = check(fleetbase_encode(&d, 0, &ch));
    pagemap_dump_dispose(&d);
    if (rc != 0) {
        LOG_WARN("shared map: base not written: %s", herald_strerror(rc));
        return;
    }
    char gen[FLEETLOG_MAX_INSTANCE + 1], k_list[FLEETKEY_MAX_LEN];
    snprintf(gen, sizeof(gen), "%s-%u", s->instance, ++s->base_gen);
    fleetkey_base_chunks(k_list, sizeof(k_list), s->prefix, gen);
    redisReply *r = run2(s, "DEL", k_list);
    freeReplyObject(r);
    for (size_t i = 0; i < ch.n && s->c != NULL; i++) {
        const char *argv[] = {"RPUSH", k_list, ch.v[i]};
        size_t lens[] = {5, strlen(k_list), ch.len[i]};
        freeReplyObject(run(s, 3, argv, lens));
    }
    pthread_mutex_lock(&s->mu);
    uint64_t own = fleetlog_builder_next_seq(s->builder) - 1;
    pthread_mutex_unlock(&s->mu);
    char *hdr = NULL;
    size_t hlen = 0;
    rc = check(fleetbase_header_encode(s->fold, s->instance, own, gen, wall_ms(), ch.n, s->log_id,
                                       &hdr, &hlen));
    if (rc == 0 && s->c != NULL) {
        const char *hargv[] = {"HGET", s->k_base, "list"};
        redisReply *cur = run(s, 3, hargv, NULL);
        char old[FLEETKEY_MAX_LEN];
        snprintf(old, sizeof(old), "%s", is_str(cur) && cur->len < sizeof(old) ? cur->str : k_list);
        freeReplyObject(cur);
        char n[32], ttl[32], keep[32];
        num(n, sizeof(n), (long long)ch.n);
        num(ttl, sizeof(ttl), FLEETKEY_DEFAULT_TTL_MS);
        num(keep, sizeof(keep), 60000);
        const char *argv[] = {"EVAL", FLEETKEY_LUA_BASE, "4", s->k_epoch, s->k_base, k_list,
                              old,    s->epoch,          hdr, n,          ttl,       keep};
        redisReply *br = run(s, 12, argv, NULL);
        const char *st, *val;
        if (script_answer(br, &st, &val)) {
            if (strcmp(st, "ok") == 0) {
                atomic_fetch_add(&s->bases_uploaded, 1);
                LOG_INFO("shared map: base %s written (%zu chunk(s))", gen, ch.n);
            } else {
                LOG_WARN("shared map: base %s not taken: %s", gen, st);
            }
        }
        freeReplyObject(br);
    }
    free(hdr);
    fleetbase_chunks_dispose(&ch);
}

static void load_base(sharedmap_t *s)
{
    snprintf(s->log_id, sizeof(s->log_id), "0-0");
    const char *argv[] = {"HMGET", s->k_base, "hdr", "list"};
    redisReply *r = run(s, 4, argv, NULL);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_str(r->element[0]) ||
        !is_str(r->element[1])) {
        freeReplyObject(r);
        return; /* no base: the whole log is new */
    }
    fleetbase_header_t h = {0};
    char reason[200];
    int rc = check(fleetbase_header_decode(r->element[0]->str, r->element[0]->len, &h, reason,
                                           sizeof(reason)));
    if (rc != 0) {
        atomic_fetch_add(&s->rejected, 1);
        LOG_WARN("shared map: rejected the base header: %s", reason);
        freeReplyObject(r);
        return;
    }
    char list[FLEETKEY_MAX_LEN];
    snprintf(list, sizeof(list), "%.*s", (int)r->element[1]->len, r->element[1]->str);
    freeReplyObject(r);
    size_t loaded = 0;
    for (size_t i = 0; i < h.chunks && s->c != NULL; i += 16) {
        char a[32], b[32];
        num(a, sizeof(a), (long long)i);
        num(b, sizeof(b), (long long)(i + 15));
        const char *largv[] = {"LRANGE", list, a, b};
        redisReply *lr = run(s, 4, largv, NULL);
        if (lr == NULL || lr->type != REDIS_REPLY_ARRAY || lr->elements == 0) {
            freeReplyObject(lr);
            break;
        }
        for (size_t j = 0; j < lr->elements; j++) {
            if (!is_str(lr->element[j]))
                continue;
            rc = check(fleetbase_load_chunk(s->pm, lr->element[j]->str, lr->element[j]->len, reason,
                                            sizeof(reason)));
            if (rc != 0) {
                atomic_fetch_add(&s->rejected, 1);
                LOG_WARN("shared map: rejected base chunk %zu: %s", i + j, reason);
            } else {
                loaded++;
            }
        }
        freeReplyObject(lr);
    }
    check(fleetbase_header_seed(&h, s->fold, wall_ms()));
    if (h.log_id[0] != '\0')
        snprintf(s->log_id, sizeof(s->log_id), "%s", h.log_id);
    atomic_fetch_add(&s->bases_loaded, 1);
    LOG_INFO("shared map: loaded base %s (%zu of %zu chunk(s))", h.gen, loaded, h.chunks);
    fleetbase_header_dispose(&h);
}

/* Queue a steering message of this instance (under mu). */
static void steer_queue_locked(sharedmap_t *s, fleetsteer_msg_t *m)
{
    char *data = NULL, *field = NULL;
    size_t len = 0;
    m->seq = s->steer_next;
    if (check(fleetsteer_encode(m, &data, &len)) != 0)
        return;
    if (m->op != FLEETSTEER_FORGET_PAGE && check(fleetsteer_field(m, &field, NULL)) != 0) {
        free(data);
        return;
    }
    s->steer_next++;
    if (s->steer_q.n >= MAX_QUEUED_STEER) {
        q_pop(&s->steer_q);
        atomic_fetch_add(&s->batches_dropped, 1);
    }
    q_push(&s->steer_q,
           (queued_t){.data = data, .len = len, .seq = m->seq, .op = m->op, .field = field});
}

/* The pins of a map Redis lost: published again as this instance's. */
static void upload_pins(sharedmap_t *s)
{
    fleetsteer_msg_t *msgs = NULL;
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    if (check(fleetsteer_collect(s->pm, s->instance, s->steer_next, wall_ms(), &msgs, &n)) == 0)
        for (size_t i = 0; i < n; i++)
            steer_queue_locked(s, &msgs[i]);
    pthread_mutex_unlock(&s->mu);
    fleetsteer_msgs_free(msgs, n);
}

/* Make the map's pins and bans those of the pins hash (under steer_mu: a
 * message published after the read is applied after the sync). */
static void sync_pins_locked(sharedmap_t *s);

static void sync_pins(sharedmap_t *s)
{
    pthread_mutex_lock(&s->steer_mu);
    sync_pins_locked(s);
    pthread_mutex_unlock(&s->steer_mu);
}

static void sync_pins_locked(sharedmap_t *s)
{
    redisReply *r = run2(s, "HGETALL", s->k_pins);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return;
    }
    size_t n = 0;
    fleetsteer_msg_t *set = xcalloc(r->elements / 2 + 1, sizeof(*set));
    for (size_t i = 1; i < r->elements; i += 2) {
        if (!is_str(r->element[i]))
            continue;
        char reason[200];
        if (check(fleetsteer_decode(r->element[i]->str, r->element[i]->len, &set[n], reason,
                                    sizeof(reason))) != 0) {
            atomic_fetch_add(&s->rejected, 1);
            LOG_WARN("shared map: rejected a pin from Redis: %s", reason);
            continue;
        }
        n++;
    }
    freeReplyObject(r);
    size_t changed = 0;
    check(fleetsteer_sync(s->pm, set, n, &changed));
    if (changed > 0)
        LOG_INFO("shared map: %zu pin(s)/ban(s) changed to match the fleet", changed);
    for (size_t i = 0; i < n; i++)
        fleetsteer_msg_dispose(&set[i]);
    free(set);
}

/* ---- folding ---- */

static _Atomic unsigned rejects_logged; /* the sync thread and the subscriber */

static void reject(sharedmap_t *s, const char *what, const char *id, const char *reason)
{
    atomic_fetch_add(&s->rejected, 1);
    if (rejects_logged++ < MAX_REJECT_LOGS)
        LOG_WARN("shared map: rejected %s %s from Redis: %s", what, id, reason);
}

static const redisReply *field_of(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (is_str(fields->element[i]) && strcmp(fields->element[i]->str, name) == 0 &&
            is_str(fields->element[i + 1]))
            return fields->element[i + 1];
    return NULL;
}

static bool parse_seq(const redisReply *r, uint64_t *out)
{
    if (r == NULL || r->len == 0 || r->len > 16)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < r->len; i++) {
        if (r->str[i] < '0' || r->str[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(r->str[i] - '0');
    }
    *out = v;
    return v >= 1 && v <= (uint64_t)FLEETLOG_MAX_INT;
}

static void fold_log_entry(sharedmap_t *s, const char *id, const redisReply *fields)
{
    const redisReply *ri = field_of(fields, "i"), *rs = field_of(fields, "s"),
                     *rb = field_of(fields, "b");
    uint64_t seq;
    if (ri == NULL || rb == NULL || !parse_seq(rs, &seq) || !fleetlog_instance_valid(ri->str)) {
        reject(s, "log entry", id, "missing or invalid i, s or b");
        return;
    }
    if (fleetfold_check(s->fold, ri->str, seq) != FLEETFOLD_NEW)
        return; /* own, or folded already */
    fleetlog_batch_t b = {0};
    char reason[200];
    int rc = check(fleetlog_decode(rb->str, rb->len, &b, reason, sizeof(reason)));
    if (rc == 0 && (strcmp(b.instance, ri->str) != 0 || b.seq != seq)) {
        snprintf(reason, sizeof(reason), "batch says %s/%" PRIu64 ", entry %s/%" PRIu64, b.instance,
                 b.seq, ri->str, seq);
        rc = HERALD_EPARSE;
    }
    if (rc != 0) {
        reject(s, "batch", id, reason);
        check(fleetfold_note(s->fold, ri->str, seq, wall_ms()));
        fleetlog_batch_dispose(&b);
        return;
    }
    /* Redis's verdicts on the batch's client marks (FLEETKEY_LUA_APPEND) */
    uint8_t *flags = xcalloc(b.n ? b.n : 1, 1);
    const redisReply *rx = field_of(fields, "x"), *ry = field_of(fields, "y");
    if ((rx != NULL && (rc = fleetfold_verdicts_decode(rx->str, rx->len, b.n, FLEETFOLD_VETO_PAGE,
                                                       flags, reason, sizeof(reason))) != 0) ||
        (ry != NULL &&
         (rc = fleetfold_verdicts_decode(ry->str, ry->len, b.n, FLEETFOLD_VETO_TEMPLATE, flags,
                                         reason, sizeof(reason))) != 0)) {
        reject(s, "verdicts of batch", id, reason);
        check(fleetfold_note(s->fold, ri->str, seq, wall_ms()));
        free(flags);
        fleetlog_batch_dispose(&b);
        return;
    }
    /* recorded first (a failure below never counts it twice), then applied
     * in slices: the workers commit (and take marks) in between */
    fleetfold_result_t res = {.check = fleetfold_check(s->fold, b.instance, b.seq)};
    if (res.check == FLEETFOLD_NEW &&
        check(fleetfold_note(s->fold, b.instance, b.seq, wall_ms())) != 0)
        res.check = FLEETFOLD_DUPLICATE;
    for (size_t i = 0; res.check == FLEETFOLD_NEW && i < b.n; i += APPLY_SLICE) {
        pthread_mutex_lock(&s->mu);
        check(fleetfold_apply_range(s->pm, s->marks, &b, flags, i, i + APPLY_SLICE, false, &res));
        pthread_mutex_unlock(&s->mu);
    }
    free(flags);
    if (res.check == FLEETFOLD_NEW) {
        atomic_fetch_add(&s->batches_folded, 1);
        atomic_fetch_add(&s->visits_folded, res.visits);
        atomic_fetch_add(&s->visits_vetoed, res.vetoed);
        atomic_fetch_add(&s->assets_folded, res.assets);
        atomic_fetch_add(&s->explores_folded, res.explores);
        LOG_DEBUG("shared map: folded %s/%" PRIu64 ": %zu visit(s), %zu vetoed, %zu asset(s)",
                  b.instance, b.seq, res.visits, res.vetoed, res.assets);
    }
    fleetlog_batch_dispose(&b);
}

/* Apply one steering message (from the stream or the channel) once. Any
 * of the two threads: the dedupe record is under mu. */
static bool apply_steer(sharedmap_t *s, const char *id, const char *data, size_t len)
{
    fleetsteer_msg_t m = {0};
    char reason[200];
    if (check(fleetsteer_decode(data, len, &m, reason, sizeof(reason))) != 0) {
        reject(s, "steering message", id, reason);
        return false;
    }
    int rc = 0;
    pthread_mutex_lock(&s->steer_mu);
    bool fresh = fleetfold_accept(s->steer_fold, m.instance, m.seq, wall_ms(), &rc);
    if (fresh)
        check(fleetsteer_apply(s->pm, &m));
    pthread_mutex_unlock(&s->steer_mu);
    if (fresh) {
        atomic_fetch_add(&s->steer_applied, 1);
        LOG_INFO("shared map: %s %s%s%s (from %s)", fleetsteer_op_name(m.op), m.page_key,
                 m.asset_key ? " -> " : "", m.asset_key ? m.asset_key : "", m.instance);
    }
    check(rc);
    fleetsteer_msg_dispose(&m);
    return fresh;
}

static void fold_steer_entry(sharedmap_t *s, const char *id, const redisReply *fields)
{
    const redisReply *rm = field_of(fields, "m");
    if (rm == NULL) {
        reject(s, "steer entry", id, "no m");
        return;
    }
    apply_steer(s, id, rm->str, rm->len);
}

/* Fold one XREAD/XRANGE answer of stream `key`; advances its cursor. */
static size_t fold_entries(sharedmap_t *s, bool steer, const redisReply *entries)
{
    size_t n = 0;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !is_str(e->element[0]) ||
            !valid_stream_id(e->element[0]->str, e->element[0]->len))
            continue;
        const char *id = e->element[0]->str;
        if (e->element[1]->type == REDIS_REPLY_ARRAY) {
            if (steer)
                fold_steer_entry(s, id, e->element[1]);
            else
                fold_log_entry(s, id, e->element[1]);
        }
        if (steer)
            steer_cursor_set(s, id, true);
        else
            snprintf(s->log_id, sizeof(s->log_id), "%s", id);
        n++;
    }
    return n;
}

/* XREAD the log and/or the steer stream after the cursors, waiting up to
 * block_ms (< 0: not at all). Returns the entries read, or -1 when Redis
 * did not answer. */
static long read_streams(sharedmap_t *s, long block_ms, bool log, bool steer)
{
    char count[16], block[32], steer_id[sizeof(s->steer_id)];
    steer_cursor_get(s, steer_id);
    num(count, sizeof(count), READ_COUNT);
    num(block, sizeof(block), block_ms);
    const char *argv[10];
    int argc = 0;
    argv[argc++] = "XREAD";
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    if (block_ms >= 0) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    if (log)
        argv[argc++] = s->k_log;
    if (steer)
        argv[argc++] = s->k_steer;
    if (log)
        argv[argc++] = s->log_id;
    if (steer)
        argv[argc++] = steer_id;
    redisReply *r = run(s, argc, argv, NULL);
    if (r == NULL)
        return -1;
    long n = 0;
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *st = r->element[i];
            if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 || !is_str(st->element[0]) ||
                st->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            bool steer = strcmp(st->element[0]->str, s->k_steer) == 0;
            n += (long)fold_entries(s, steer, st->element[1]);
        }
    }
    freeReplyObject(r);
    atomic_store(&s->last_sync_ms, wall_ms());
    pthread_mutex_lock(&s->mu);
    memcpy(s->log_id_pub, s->log_id, sizeof(s->log_id));
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Read until nothing new is left (after a connect or an epoch change). */
static void catch_up(sharedmap_t *s, bool steer_only)
{
    long n;
    do {
        n = read_streams(s, -1, !steer_only, true);
    } while (n > 0 && s->c != NULL);
}

/* ---- sending ---- */

/*
 * Give the local map the records of this instance's batch `b` that wait
 * for Redis (FLEETFOLD_PENDING), with Redis's verdicts `r` (an APPEND
 * answer; NULL: none, Redis did not decide: the local marks alone bound
 * them, as while Redis is away).
 */
static void apply_held(sharedmap_t *s, queued_t *b, const redisReply *r)
{
    if (b->info.pending == 0)
        return;
    /* the builder's copy of the records: what decoding b->data gives */
    fleetlog_batch_t fb = b->held;
    memset(&b->held, 0, sizeof(b->held));
    char reason[200];
    if (fb.n != b->info.nflags) { /* kept with the batch: not expected */
        LOG_ERROR("shared map: own batch %" PRIu64 " has %zu records, not %zu", b->seq, fb.n,
                  b->info.nflags);
        fleetlog_batch_dispose(&fb);
        b->info.pending = 0;
        return;
    }
    static const unsigned bits[2] = {FLEETFOLD_VETO_PAGE, FLEETFOLD_VETO_TEMPLATE};
    for (size_t i = 0; r != NULL && i < 2 && 2 + i < r->elements; i++) {
        const redisReply *e = r->element[2 + i];
        if (is_str(e) && fleetfold_verdicts_decode(e->str, e->len, fb.n, bits[i], b->info.flags,
                                                   reason, sizeof(reason)) != 0)
            LOG_WARN("shared map: Redis's verdicts on batch %" PRIu64 " ignored: %s", b->seq,
                     reason);
    }
    for (size_t i = 0; i < fb.n; i++)
        if ((b->info.flags[i] & FLEETFOLD_VETO_PAGE) && fb.recs[i].type == FLEETLOG_REC_VISIT)
            atomic_fetch_add(&s->visits_refused, 1);
    fleetfold_result_t res = {0};
    for (size_t i = 0; i < fb.n; i += APPLY_SLICE) { /* the workers commit in between */
        pthread_mutex_lock(&s->mu);
        check(fleetfold_apply_range(s->pm, s->marks, &fb, b->info.flags, i, i + APPLY_SLICE, true,
                                    &res));
        pthread_mutex_unlock(&s->mu);
    }
    if (r == NULL)
        atomic_fetch_add(&s->held_applied_locally, res.visits);
    b->info.pending = 0;
    fleetlog_batch_dispose(&fb);
}

static void close_batch(sharedmap_t *s);

/* Redis is away (or the map is about to be written or saved): the held
 * records go to the local map now, bounded by the local marks. */
static void release_held(sharedmap_t *s)
{
    pthread_mutex_lock(&s->mu);
    bool open = s->open_info.pending > 0;
    pthread_mutex_unlock(&s->mu);
    if (open)
        close_batch(s);
    for (size_t i = 0; i < s->batch_q.n; i++)
        apply_held(s, &s->batch_q.v[i], NULL);
}

static void info_push(sharedmap_t *s, bool held);
static void add_failed(sharedmap_t *s, int rc);

/* pagemap_explore_drain's callback, under mu: one explore record. */
static int add_explore(void *ctx, const pagemap_explore_delta_t *d)
{
    sharedmap_t *s = ctx;
    size_t before = fleetlog_builder_records(s->builder);
    int rc = fleetlog_builder_add_explore(s->builder, d);
    if (rc == 0 && fleetlog_builder_records(s->builder) > before)
        info_push(s, false); /* counted here already: for the others */
    else
        add_failed(s, rc);
    return 0;
}

/* Close the open batch (under mu) into the send queue, with the
 * exploration counts of the plans made since the last one. */
static void close_batch(sharedmap_t *s)
{
    pthread_mutex_lock(&s->mu);
    check(pagemap_explore_drain(s->pm, add_explore, s));
    size_t recs = fleetlog_builder_records(s->builder);
    char *data = NULL;
    size_t len = 0;
    uint64_t seq = 0;
    fleetlog_batch_t held = {0};
    int rc = recs > 0 ? check(fleetlog_builder_finish_held(s->builder, wall_ms(), &data, &len, &seq,
                                                           s->open_info.pending ? &held : NULL))
                      : -1;
    batchinfo_t info = {0};
    if (rc == 0) {
        info = s->open_info;
        memset(&s->open_info, 0, sizeof(s->open_info));
    }
    pthread_mutex_unlock(&s->mu);
    if (rc != 0)
        return;
    assert(info.nflags == recs);
    if (s->batch_q.n >= MAX_QUEUED_BATCHES) {
        atomic_fetch_add(&s->batches_dropped, 1);
        atomic_fetch_add(&s->records_dropped, s->batch_q.v[0].records);
        apply_held(s, &s->batch_q.v[0], NULL); /* the local map keeps what it learned */
        q_pop(&s->batch_q);
    }
    q_push(&s->batch_q,
           (queued_t){
               .data = data, .len = len, .seq = seq, .records = recs, .info = info, .held = held});
    atomic_store(&s->queued_batches, s->batch_q.n);
}

/* Send the queued batches in order; false when one must wait (Redis away
 * or the epoch changed). */
static bool send_batches(sharedmap_t *s)
{
    while (s->batch_q.n > 0 && s->c != NULL) {
        queued_t *b = &s->batch_q.v[0];
        char seq[32], maxlen[32], ttl[32], maxb[32], window[32], nkeys[16], me[64];
        num(seq, sizeof(seq), (long long)b->seq);
        num(maxlen, sizeof(maxlen), FLEETKEY_DEFAULT_LOG_MAXLEN);
        num(ttl, sizeof(ttl), FLEETKEY_DEFAULT_TTL_MS);
        num(maxb, sizeof(maxb), FLEETLOG_MAX_BATCH_BYTES);
        num(window, sizeof(window), fleetmark_window(s->marks));
        snprintf(me, sizeof(me), "%s:%s", s->instance, seq);
        size_t nk = 0;
        for (size_t i = 0; i < b->info.nmarks; i++)
            nk += b->info.marks[i].keys[1] ? 2 : 1;
        num(nkeys, sizeof(nkeys), (long long)(3 + nk));
        size_t argc = 15 + nk + 2 * b->info.nmarks;
        const char **argv = xmalloc(argc * sizeof(*argv));
        size_t *lens = xmalloc(argc * sizeof(*lens));
        char(*nums)[2][12] = xmalloc((b->info.nmarks + 1) * sizeof(*nums));
        size_t a = 0;
        argv[a++] = "EVAL";
        argv[a++] = FLEETKEY_LUA_APPEND;
        argv[a++] = nkeys;
        argv[a++] = s->k_epoch;
        argv[a++] = s->k_log;
        argv[a++] = s->k_seq;
        for (size_t i = 0; i < b->info.nmarks; i++)
            for (size_t k = 0; k < 2 && b->info.marks[i].keys[k]; k++)
                argv[a++] = b->info.marks[i].keys[k];
        size_t data_at = a + 3;
        const char *fixed[] = {s->epoch, s->instance, seq, b->data, maxlen, ttl, maxb, window, me};
        for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
            argv[a++] = fixed[i];
        for (size_t i = 0; i < b->info.nmarks; i++) {
            snprintf(nums[i][0], sizeof(nums[i][0]), "%u", (unsigned)b->info.marks[i].rec);
            snprintf(nums[i][1], sizeof(nums[i][1]), "%d", b->info.marks[i].keys[1] ? 2 : 1);
            argv[a++] = nums[i][0];
            argv[a++] = nums[i][1];
        }
        assert(a == argc);
        for (size_t i = 0; i < argc; i++)
            lens[i] = i == data_at ? b->len : strlen(argv[i]);
        redisReply *r = run(s, (int)argc, argv, lens);
        free(argv);
        free(lens);
        free(nums);
        const char *st, *val;
        if (!script_answer(r, &st, &val)) {
            freeReplyObject(r);
            return false;
        }
        if (strcmp(st, "epoch") == 0) {
            freeReplyObject(r);
            return false; /* check_epoch runs on the next round */
        }
        if (strcmp(st, "ok") == 0) {
            atomic_fetch_add(&s->batches_sent, 1);
            atomic_fetch_add(&s->records_sent, b->records);
            atomic_fetch_add(&s->bytes_sent, b->len);
            atomic_store(&s->last_batch_records, b->records);
            apply_held(s, b, r);
        } else if (strcmp(st, "dup") == 0) { /* sent before the connection broke */
            apply_held(s, b, r);
        } else {
            if (strcmp(st, "toobig") == 0) {
                atomic_fetch_add(&s->batches_dropped, 1);
                LOG_WARN("shared map: batch %" PRIu64 " (%zu bytes) refused as too big", b->seq,
                         b->len);
            }
            apply_held(s, b, NULL);
        }
        freeReplyObject(r);
        q_pop(&s->batch_q);
        atomic_store(&s->queued_batches, s->batch_q.n);
    }
    return s->c != NULL;
}

static bool send_steer(sharedmap_t *s)
{
    for (;;) {
        pthread_mutex_lock(&s->mu);
        if (s->steer_q.n == 0 || s->c == NULL) {
            pthread_mutex_unlock(&s->mu);
            return s->c != NULL;
        }
        queued_t m = s->steer_q.v[0];
        m.data = xstrdup(m.data);
        m.field = xstrdup(m.field ? m.field : "");
        pthread_mutex_unlock(&s->mu);
        char seq[32], maxlen[32], ttl[32], maxb[32], maxpins[32];
        num(seq, sizeof(seq), (long long)m.seq);
        num(maxlen, sizeof(maxlen), FLEETKEY_DEFAULT_STEER_MAXLEN);
        num(ttl, sizeof(ttl), FLEETKEY_DEFAULT_TTL_MS);
        num(maxb, sizeof(maxb), FLEETSTEER_MAX_BYTES);
        num(maxpins, sizeof(maxpins), FLEETKEY_DEFAULT_MAX_PINS);
        const char *argv[] = {"EVAL",
                              FLEETKEY_LUA_STEER,
                              "4",
                              s->k_epoch,
                              s->k_pins,
                              s->k_steer,
                              s->k_steer_seq,
                              s->epoch,
                              s->instance,
                              seq,
                              fleetsteer_op_name(m.op),
                              m.field,
                              m.data,
                              s->k_chan,
                              maxlen,
                              ttl,
                              maxb,
                              maxpins};
        redisReply *r = run(s, 18, argv, NULL);
        const char *st, *val;
        bool ok = script_answer(r, &st, &val) && strcmp(st, "epoch") != 0;
        if (ok && strcmp(st, "ok") == 0)
            atomic_fetch_add(&s->steer_sent, 1);
        else if (ok && strcmp(st, "dup") != 0)
            LOG_WARN("shared map: %s %s not shared: %s", fleetsteer_op_name(m.op), m.field, st);
        freeReplyObject(r);
        free(m.data);
        free(m.field);
        if (!ok)
            return false;
        pthread_mutex_lock(&s->mu);
        if (s->steer_q.n > 0 && s->steer_q.v[0].seq == m.seq)
            q_pop(&s->steer_q);
        pthread_mutex_unlock(&s->mu);
    }
}

/* "ms-seq" stream ids as numbers; false when malformed. */
static bool parse_id(const char *id, uint64_t *ms, uint64_t *seq)
{
    char *end;
    errno = 0;
    *ms = strtoull(id, &end, 10);
    if (errno != 0 || end == id)
        return false;
    *seq = 0;
    if (*end == '-') {
        const char *p = end + 1;
        *seq = strtoull(p, &end, 10);
        if (errno != 0 || end == p)
            return false;
    }
    return *end == '\0';
}

/*
 * After a disconnect: when Redis trimmed log entries past our cursor (its
 * max-deleted-entry-id is beyond it), the evidence in the gap is lost to
 * this instance; load the base, which holds what the fleet learned.
 */
static void check_gap(sharedmap_t *s)
{
    const char *argv[] = {"XINFO", "STREAM", s->k_log};
    redisReply *r = run(s, 3, argv, NULL);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return;
    }
    uint64_t dm, ds, cm, cs;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (!is_str(r->element[i]) || strcmp(r->element[i]->str, "max-deleted-entry-id") != 0 ||
            !is_str(r->element[i + 1]))
            continue;
        if (parse_id(r->element[i + 1]->str, &dm, &ds) && parse_id(s->log_id, &cm, &cs) &&
            (dm > cm || (dm == cm && ds > cs))) {
            LOG_WARN("shared map: the log was trimmed past this instance's position while it was "
                     "away: loading the base");
            freeReplyObject(r);
            load_base(s);
            return;
        }
    }
    freeReplyObject(r);
}

/* Now and then, one instance at a time writes its map as the base. */
static void maybe_write_base(sharedmap_t *s)
{
    if (mono_ms() < s->next_base_ms)
        return;
    s->next_base_ms = mono_ms() + BASE_EVERY_MS;
    char px[32];
    num(px, sizeof(px), BASE_EVERY_MS / 2);
    const char *argv[] = {"SET", s->k_base_lock, s->instance, "NX", "PX", px};
    redisReply *r = run(s, 6, argv, NULL);
    bool mine = r != NULL && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (mine)
        upload_base(s);
}

static void touch(sharedmap_t *s)
{
    char ttl[32];
    num(ttl, sizeof(ttl), FLEETKEY_DEFAULT_TTL_MS);
    const char *argv[] = {"EVAL", FLEETKEY_LUA_TOUCH, "3", s->k_pins, s->k_base, s->k_steer, ttl};
    freeReplyObject(run(s, 7, argv, NULL));
}

/* ---- the connection ---- */

static bool connect_redis(sharedmap_t *s)
{
    struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, (CONNECT_TIMEOUT_MS % 1000) * 1000};
    redisContext *c = s->unix_path[0] ? redisConnectUnixWithTimeout(s->unix_path, tv)
                                      : redisConnectWithTimeout(s->host, s->port, tv);
    if (c == NULL || c->err) {
        char why[160];
        snprintf(why, sizeof(why), "%s", c ? c->errstr : "out of memory");
        if (c != NULL)
            redisFree(c);
        went_down(s, why);
        return false;
    }
    struct timeval ctv = {COMMAND_TIMEOUT_MS / 1000, (COMMAND_TIMEOUT_MS % 1000) * 1000};
    redisSetTimeout(c, ctv);
    s->c = c;
    set_state(s, SHAREDMAP_SYNCING);
    if (s->pass[0] != '\0') {
        const char *argv[] = {"AUTH", s->user, s->pass};
        redisReply *r = s->user[0] ? run(s, 3, argv, NULL) : run2(s, "AUTH", s->pass);
        bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (!ok) {
            went_down(s, "AUTH refused");
            return false;
        }
    }
    if (s->db != 0) {
        char db[16];
        num(db, sizeof(db), s->db);
        redisReply *r = run2(s, "SELECT", db);
        bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (!ok) {
            went_down(s, "SELECT refused");
            return false;
        }
    }
    bool first = !s->loaded;
    if (!check_epoch(s))
        return false;
    if (!first) {
        /* what was published while away, then the pins as they are now */
        atomic_fetch_add(&s->resyncs, 1);
        check_gap(s);
        catch_up(s, true);
        sync_pins(s);
    }
    if (s->c == NULL)
        return false;
    if (s->logged_down)
        LOG_INFO("shared map: Redis at %s answers again after %.1fs: resynced", s->url,
                 (double)(mono_ms() - s->down_since_ms) / 1000.0);
    else
        LOG_INFO("shared map: connected to Redis at %s (instance %s)", s->url, s->instance);
    s->logged_down = false;
    s->backoff_ms = 0;
    set_state(s, SHAREDMAP_UP);
    atomic_store(&s->last_sync_ms, wall_ms());
    return true;
}

static bool stopping(sharedmap_t *s)
{
    pthread_mutex_lock(&s->mu);
    bool st = s->stop;
    pthread_mutex_unlock(&s->mu);
    return st;
}

static void wait_ms(sharedmap_t *s, int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->mu);
    if (!s->stop)
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    pthread_mutex_unlock(&s->mu);
}

/* Name the calling thread, for top and ps. */
static void thread_setup(const char *name)
{
    pthread_setname_np(pthread_self(), name);
}

static void *sync_main(void *arg)
{
    sharedmap_t *s = arg;
    thread_setup("herald-shmap");
    while (!stopping(s)) {
        int64_t now = mono_ms();
        if (now >= s->next_tick_ms) {
            s->next_tick_ms = now + s->interval_ms;
            close_batch(s);
            if (s->c != NULL && check_epoch(s) && send_batches(s)) {
                touch(s);
                maybe_write_base(s);
            }
            fleetfold_expire(s->fold, wall_ms());
            pthread_mutex_lock(&s->steer_mu);
            fleetfold_expire(s->steer_fold, wall_ms());
            pthread_mutex_unlock(&s->steer_mu);
        }
        if (s->c == NULL) {
            release_held(s);
            if (now >= s->next_connect_ms && connect_redis(s))
                continue;
            int64_t until =
                s->next_connect_ms < s->next_tick_ms ? s->next_connect_ms : s->next_tick_ms;
            wait_ms(s, until - mono_ms());
            continue;
        }
        pthread_mutex_lock(&s->mu);
        bool full = fleetlog_builder_full(s->builder);
        pthread_mutex_unlock(&s->mu);
        if (full) {
            close_batch(s);
            send_batches(s);
        }
        if (!send_steer(s)) {
            if (s->c != NULL) { /* the epoch changed under us */
                check_epoch(s);
                wait_ms(s, 50);
            }
            continue;
        }
        pthread_mutex_lock(&s->mu);
        bool resync = s->steer_resync;
        s->steer_resync = false;
        pthread_mutex_unlock(&s->mu);
        if (resync) { /* (re)subscribed: what was published before is in the stream */
            catch_up(s, true);
            sync_pins(s);
        }
        /* steering comes through the subscription; through the stream
         * only while there is none */
        int64_t left = s->next_tick_ms - mono_ms();
        read_streams(s,
                     left < 1               ? 1
                     : left < READ_BLOCK_MS ? left
                                            : READ_BLOCK_MS,
                     true, !atomic_load(&s->subscribed));
    }
    /* what is left, briefly */
    close_batch(s);
    int64_t end = mono_ms() + STOP_FLUSH_MS;
    if (s->c == NULL && mono_ms() < end)
        connect_redis(s);
    if (s->c != NULL) {
        send_batches(s);
        send_steer(s);
    }
    release_held(s); /* not sent: the local map (and its saved state) keeps them */
    return NULL;
}

/* ---- the steering subscription ---- */

/*
 * The subscriber thread: its own connection, SUBSCRIBEd to the steer
 * channel, applies each published message as it comes (FLEETKEY_LUA_STEER
 * publishes "<stream id> <message>"). A subscription loses what is
 * published while it is away, so each time it is (re)made the sync thread
 * reads the steer stream after its cursor and the pins hash (steer_resync)
 * and, while there is none, reads the steer stream between its rounds.
 */
static redisContext *sub_connect(sharedmap_t *s)
{
    struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, (CONNECT_TIMEOUT_MS % 1000) * 1000};
    redisContext *c = s->unix_path[0] ? redisConnectUnixWithTimeout(s->unix_path, tv)
                                      : redisConnectWithTimeout(s->host, s->port, tv);
    if (c == NULL || c->err) {
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    struct timeval ctv = {COMMAND_TIMEOUT_MS / 1000, (COMMAND_TIMEOUT_MS % 1000) * 1000};
    redisSetTimeout(c, ctv);
    redisReply *r = NULL;
    if (s->pass[0] != '\0') {
        const char *argv[] = {"AUTH", s->user, s->pass};
        r = s->user[0] ? redisCommandArgv(c, 3, argv, NULL)
                       : redisCommandArgv(c, 2, (const char *[]){"AUTH", s->pass}, NULL);
        bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    /* channels are not per database: the prefix tells fleets apart */
    r = redisCommandArgv(c, 2, (const char *[]){"SUBSCRIBE", s->k_chan}, NULL);
    bool ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
              is_str(r->element[0]) && strcmp(r->element[0]->str, "subscribe") == 0;
    freeReplyObject(r);
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static void on_published(sharedmap_t *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !is_str(r->element[0]) ||
        strcmp(r->element[0]->str, "message") != 0 || !is_str(r->element[2]))
        return;
    char id[FLEETSTEER_MAX_ID + 1], reason[120];
    const char *msg = NULL;
    size_t len = 0;
    if (fleetsteer_published_split(r->element[2]->str, r->element[2]->len, id, &msg, &len, reason,
                                   sizeof(reason)) != 0) {
        reject(s, "published steering message", "", reason);
        return;
    }
    atomic_fetch_add(&s->steer_published, 1);
    apply_steer(s, id, msg, len);
    steer_cursor_set(s, id, true);
}

static void *sub_main(void *arg)
{
    sharedmap_t *s = arg;
    thread_setup("herald-shsub");
    redisContext *c = NULL;
    int backoff = 0;
    while (!stopping(s)) {
        if (c == NULL) {
            if ((c = sub_connect(s)) == NULL) {
                backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
                if (backoff > BACKOFF_MAX_MS)
                    backoff = BACKOFF_MAX_MS;
                wait_ms(s, backoff);
                continue;
            }
            backoff = 0;
            atomic_fetch_add(&s->subscribes, 1);
            atomic_store(&s->subscribed, true);
            pthread_mutex_lock(&s->mu);
            s->steer_resync = true;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            LOG_DEBUG("shared map: subscribed to %s", s->k_chan);
        }
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            atomic_store(&s->subscribed, false);
            redisFree(c);
            c = NULL;
            continue;
        }
        if (reply != NULL) {
            on_published(s, reply);
            freeReplyObject(reply);
            continue;
        }
        /* nothing buffered: wait for bytes, a while at most, to see stop */
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int n = poll(&pfd, 1, SUB_POLL_MS);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != 0 && redisBufferRead(c) != REDIS_OK) {
            atomic_store(&s->subscribed, false); /* the next one resyncs */
            redisFree(c);
            c = NULL;
        }
    }
    atomic_store(&s->subscribed, false);
    if (c != NULL)
        redisFree(c);
    return NULL;
}

/* ---- the workers' side ---- */

typedef struct tap_ctx {
    sharedmap_t *s;
    uint64_t client;
    bool defer; /* Redis answers: the records wait for its verdicts */
} tap_ctx_t;

static void add_failed(sharedmap_t *s, int rc)
{
    check(rc);
    if (rc != 0) /* cannot be shared: counted, the local map has it */
        atomic_fetch_add(&s->records_dropped, 1);
}

/* One more record of the open batch (under mu). */
static void info_push(sharedmap_t *s, bool held)
{
    batchinfo_t *bi = &s->open_info;
    if (bi->nflags == bi->capflags) {
        bi->capflags = bi->capflags ? bi->capflags * 2 : 64;
        bi->flags = xrealloc(bi->flags, bi->capflags);
    }
    bi->flags[bi->nflags++] = held ? FLEETFOLD_PENDING : 0;
    bi->pending += held;
}

static char *mark_key(const sharedmap_t *s, uint64_t client, const char *key)
{
    char buf[FLEETKEY_MAX_LEN];
    if (key == NULL || fleetkey_mark(buf, sizeof(buf), s->prefix, client, key) < 0)
        return NULL;
    return xstrdup(buf);
}

static bool on_tap_visit(void *ctx, const pagemap_visit_t *pv)
{
    tap_ctx_t *t = ctx;
    sharedmap_t *s = t->s;
    markreq_t mr = {0};
    if (t->client != 0 && !pv->supplement) {
        mr.keys[0] = mark_key(s, t->client, pv->page_key);
        if (mr.keys[0] != NULL && pv->template_key != NULL &&
            strcmp(pv->template_key, pv->page_key) != 0)
            mr.keys[1] = mark_key(s, t->client, pv->template_key);
    }
    pthread_mutex_lock(&s->mu);
    size_t before = fleetlog_builder_records(s->builder);
    int rc = fleetlog_builder_add_visit(s->builder, pv, t->client);
    bool taken = rc == 0 && fleetlog_builder_records(s->builder) > before;
    if (taken) {
        info_push(s, t->defer);
        if (mr.keys[0] != NULL) {
            batchinfo_t *bi = &s->open_info;
            if (bi->nmarks == bi->capmarks) {
                bi->capmarks = bi->capmarks ? bi->capmarks * 2 : 16;
                bi->marks = xrealloc(bi->marks, bi->capmarks * sizeof(*bi->marks));
            }
            mr.rec = (uint32_t)before;
            bi->marks[bi->nmarks++] = mr;
            memset(&mr, 0, sizeof(mr));
        }
    } else {
        add_failed(s, rc);
    }
    pthread_mutex_unlock(&s->mu);
    free(mr.keys[0]);
    free(mr.keys[1]);
    if (taken && t->defer)
        atomic_fetch_add(&s->visits_held, 1);
    return taken && t->defer;
}

static bool on_tap_asset(void *ctx, const char *key, const pagemap_asset_meta_t *m)
{
    tap_ctx_t *t = ctx;
    pthread_mutex_lock(&t->s->mu);
    size_t before = fleetlog_builder_records(t->s->builder);
    int rc = fleetlog_builder_add_asset(t->s->builder, key, m);
    bool taken = rc == 0 && fleetlog_builder_records(t->s->builder) > before;
    if (taken)
        info_push(t->s, t->defer);
    else
        add_failed(t->s, rc);
    pthread_mutex_unlock(&t->s->mu);
    return taken && t->defer;
}

int sharedmap_commit(sharedmap_t *s, visit_t *v, pagemap_t *pm, int64_t wall, bool supplement)
{
    if (s == NULL)
        return visit_commit(v, pm, wall, supplement);
    /* While Redis answers, the visit waits for its verdict on the client's
     * marks (FLEETKEY_LUA_APPEND) before it counts here: then every map of
     * the fleet counts the same visit. Planning does not wait: it uses the
     * map as it is. While Redis is away, the local marks decide alone. */
    tap_ctx_t t = {.s = s,
                   .client = fleetmark_client_hash(visit_client(v), s->prefix, strlen(s->prefix)),
                   .defer = atomic_load(&s->state) == SHAREDMAP_UP};
    if (!supplement && t.client != 0 && !visit_authorized(v)) {
        bool page = true, tpl = true;
        pthread_mutex_lock(&s->mu);
        if (t.defer)
            fleetmark_hold_visit(s->marks, t.client, visit_page_key(v), visit_template_key(v), wall,
                                 &page, &tpl);
        else
            fleetmark_take_visit(s->marks, t.client, visit_page_key(v), visit_template_key(v), wall,
                                 false, &page, &tpl);
        pthread_mutex_unlock(&s->mu);
        visit_restrict(v, page, tpl);
    }
    visit_tap_t tap = {.visit = on_tap_visit, .asset = on_tap_asset, .ctx = &t, .defer = t.defer};
    return visit_commit_tap(v, pm, wall, supplement, &tap);
}

void sharedmap_steer(sharedmap_t *s, fleetsteer_op_t op, const char *page, const char *asset)
{
    if (s == NULL || page == NULL)
        return;
    fleetsteer_msg_t m = {.op = op, .t_ms = wall_ms()};
    memcpy(m.instance, s->instance, sizeof(s->instance));
    m.page_key = (char *)page;
    m.asset_key = op == FLEETSTEER_FORGET_PAGE ? NULL : (char *)asset;
    pthread_mutex_lock(&s->mu);
    steer_queue_locked(s, &m);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- start and stop ---- */

static void key(char *buf, const char *prefix, fleetkey_name_t n)
{
    fleetkey_build(buf, FLEETKEY_MAX_LEN, prefix, n);
}

/* Parse and check the options into a new s (*out), or fail with a message. */
static int configure(const config_t *cfg, sharedmap_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!fleetkey_prefix_valid(cfg->shared_map_prefix)) {
        snprintf(err, errlen, "--shared-map-prefix: at most %d printable characters without spaces",
                 FLEETKEY_MAX_PREFIX);
        return HERALD_EINVAL;
    }
    sharedmap_t *s = xcalloc(1, sizeof(*s));
    int rc = parse_url(s, cfg->shared_map, err, errlen);
    if (rc == 0 && cfg->shared_map_password_file[0] != '\0')
        rc = read_password(s, cfg->shared_map_password_file, err, errlen);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int sharedmap_check(const config_t *cfg, char *err, size_t errlen)
{
    if (cfg->shared_map[0] == '\0')
        return 0;
    sharedmap_t *s = NULL;
    int rc = configure(cfg, &s, err, errlen);
    if (s != NULL)
        memset(s->pass, 0, sizeof(s->pass));
    free(s);
    return rc;
}

int sharedmap_start(const config_t *cfg, pagemap_t *pm, sharedmap_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->shared_map[0] == '\0')
        return 0;
    sharedmap_t *s = NULL;
    int rc = configure(cfg, &s, err, errlen);
    if (rc != 0)
        return rc;
    s->pm = pm;
    pagemap_explore_track(pm, true);
    s->interval_ms = (int64_t)(cfg->shared_map_interval * 1000.0);
    if (s->interval_ms < 1)
        s->interval_ms = 1;
    snprintf(s->prefix, sizeof(s->prefix), "%.*s", FLEETKEY_MAX_PREFIX, cfg->shared_map_prefix);
    random_hex(s->instance, 8);
    key(s->k_epoch, s->prefix, FLEETKEY_EPOCH);
    key(s->k_log, s->prefix, FLEETKEY_LOG);
    key(s->k_steer, s->prefix, FLEETKEY_STEER);
    key(s->k_chan, s->prefix, FLEETKEY_STEER_CHANNEL);
    key(s->k_pins, s->prefix, FLEETKEY_PINS);
    key(s->k_base, s->prefix, FLEETKEY_BASE);
    key(s->k_base_lock, s->prefix, FLEETKEY_BASE_LOCK);
    fleetkey_seq(s->k_seq, sizeof(s->k_seq), s->prefix, s->instance);
    fleetkey_steer_seq(s->k_steer_seq, sizeof(s->k_steer_seq), s->prefix, s->instance);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->steer_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    check(fleetlog_builder_create(s->instance, 1, &s->builder));
    check(fleetmark_create(FLEETMARK_DEFAULT_CAP, FLEETMARK_DEFAULT_WINDOW_MS, &s->marks));
    check(fleetfold_create(s->instance, FLEETFOLD_DEFAULT_MAX_INSTANCES,
                           FLEETFOLD_DEFAULT_EXPIRE_MS, &s->fold));
    check(fleetfold_create(s->instance, FLEETFOLD_DEFAULT_MAX_INSTANCES,
                           FLEETFOLD_DEFAULT_EXPIRE_MS, &s->steer_fold));
    s->steer_next = 1;
    snprintf(s->log_id, sizeof(s->log_id), "0-0");
    snprintf(s->steer_id, sizeof(s->steer_id), "0-0"); /* no other thread yet */
    /* The load, before any connection is accepted: a bounded wait. */
    int64_t t0 = mono_ms();
    if (connect_redis(s))
        LOG_INFO("shared map: loaded in %" PRId64 " ms (%" PRIu64 " batch(es) folded)",
                 mono_ms() - t0, atomic_load(&s->batches_folded));
    s->next_tick_ms = mono_ms() + s->interval_ms;
    char r4[9];
    random_hex(r4, 4);
    /* spread over the fleet: each instance tries at its own time */
    s->next_base_ms =
        mono_ms() + BASE_EVERY_MS / 2 + (int64_t)(strtoul(r4, NULL, 16) % BASE_EVERY_MS);
    if (pthread_create(&s->thread, NULL, sync_main, s) != 0)
        alloc_fail(__FILE__, __LINE__, 0);
    s->thread_started = true;
    if (pthread_create(&s->sub_thread, NULL, sub_main, s) != 0)
        alloc_fail(__FILE__, __LINE__, 0);
    s->sub_started = true;
    *out = s;
    return 0;
}

void sharedmap_stop(sharedmap_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->sub_started)
        pthread_join(s->sub_thread, NULL);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    if (s->c != NULL)
        redisFree(s->c);
    q_free(&s->batch_q);
    q_free(&s->steer_q);
    fleetlog_builder_destroy(s->builder);
    info_free(&s->open_info);
    fleetmark_destroy(s->marks);
    fleetfold_destroy(s->fold);
    fleetfold_destroy(s->steer_fold);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->steer_mu);
    pthread_cond_destroy(&s->cv);
    memset(s->pass, 0, sizeof(s->pass));
    free(s);
}

bool sharedmap_degraded(sharedmap_t *s)
{
    return s != NULL && atomic_load(&s->state) != SHAREDMAP_UP;
}

static double lag_s(sharedmap_t *s)
{
    int64_t last = atomic_load(&s->last_sync_ms);
    int64_t d = wall_ms() - last;
    return last == 0 ? -1 : d < 0 ? 0 : (double)d / 1000.0;
}

json_t *sharedmap_stats_json(sharedmap_t *s)
{
    if (s == NULL)
        return NULL;
    pthread_mutex_lock(&s->mu);
    size_t steer_q = s->steer_q.n, open = fleetlog_builder_records(s->builder);
    char log_id[sizeof(s->log_id_pub)];
    memcpy(log_id, s->log_id_pub, sizeof(log_id));
    pthread_mutex_unlock(&s->mu);
    json_t *j = json_pack(
        "{s:s, s:s, s:b, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:I, s:I, s:I, s:I, s:I, s:I}",
        "instance", s->instance, "prefix", s->prefix, "up", atomic_load(&s->state) == SHAREDMAP_UP,
        "lag_s", lag_s(s), "commands", (json_int_t)atomic_load(&s->commands), "sync_errors",
        (json_int_t)atomic_load(&s->sync_errors), "batches_sent",
        (json_int_t)atomic_load(&s->batches_sent), "records_sent",
        (json_int_t)atomic_load(&s->records_sent), "bytes_sent",
        (json_int_t)atomic_load(&s->bytes_sent), "last_batch_records",
        (json_int_t)atomic_load(&s->last_batch_records), "batches_dropped",
        (json_int_t)atomic_load(&s->batches_dropped), "records_dropped",
        (json_int_t)atomic_load(&s->records_dropped), "batches_folded",
        (json_int_t)atomic_load(&s->batches_folded), "visits_folded",
        (json_int_t)atomic_load(&s->visits_folded), "visits_vetoed",
        (json_int_t)atomic_load(&s->visits_vetoed), "assets_folded",
        (json_int_t)atomic_load(&s->assets_folded), "rejected",
        (json_int_t)atomic_load(&s->rejected), "steer_sent",
        (json_int_t)atomic_load(&s->steer_sent), "steer_applied",
        (json_int_t)atomic_load(&s->steer_applied), "resyncs", (json_int_t)atomic_load(&s->resyncs),
        "epoch_changes", (json_int_t)atomic_load(&s->epoch_changes), "open_records",
        (json_int_t)open, "queued_steering", (json_int_t)steer_q);
    if (j == NULL)
        abort();
    json_object_set_new(j, "log_id", json_string(log_id));
    json_object_set_new(j, "state", json_string(state_name(atomic_load(&s->state))));
    json_object_set_new(j, "subscribed", json_boolean(atomic_load(&s->subscribed)));
    json_object_set_new(j, "subscribes", json_integer((json_int_t)atomic_load(&s->subscribes)));
    json_object_set_new(j, "steer_published",
                        json_integer((json_int_t)atomic_load(&s->steer_published)));
    json_object_set_new(j, "explores_folded",
                        json_integer((json_int_t)atomic_load(&s->explores_folded)));
    json_object_set_new(j, "visits_held", json_integer((json_int_t)atomic_load(&s->visits_held)));
    json_object_set_new(j, "visits_refused",
                        json_integer((json_int_t)atomic_load(&s->visits_refused)));
    json_object_set_new(j, "held_applied_locally",
                        json_integer((json_int_t)atomic_load(&s->held_applied_locally)));
    json_object_set_new(j, "queued_batches",
                        json_integer((json_int_t)atomic_load(&s->queued_batches)));
    return j;
}

char *sharedmap_metrics_append(sharedmap_t *s, char *text)
{
    if (s == NULL)
        return text;
    char add[2048];
    int n = snprintf(
        add, sizeof(add),
        "# HELP herald_shared_map_up 1 when Redis answers the shared map's sync\n"
        "# TYPE herald_shared_map_up gauge\nherald_shared_map_up %d\n"
        "# HELP herald_shared_map_lag_seconds seconds since the last successful read of the "
        "shared map\n"
        "# TYPE herald_shared_map_lag_seconds gauge\nherald_shared_map_lag_seconds %.3f\n"
        "# TYPE herald_shared_map_sync_errors_total counter\n"
        "herald_shared_map_sync_errors_total %" PRIu64 "\n"
        "# TYPE herald_shared_map_commands_total counter\n"
        "herald_shared_map_commands_total %" PRIu64 "\n"
        "# TYPE herald_shared_map_batches_sent_total counter\n"
        "herald_shared_map_batches_sent_total %" PRIu64 "\n"
        "# TYPE herald_shared_map_batch_records_total counter\n"
        "herald_shared_map_batch_records_total %" PRIu64 "\n"
        "# TYPE herald_shared_map_batch_bytes_total counter\n"
        "herald_shared_map_batch_bytes_total %" PRIu64 "\n"
        "# TYPE herald_shared_map_batches_dropped_total counter\n"
        "herald_shared_map_batches_dropped_total %" PRIu64 "\n"
        "# TYPE herald_shared_map_batches_folded_total counter\n"
        "herald_shared_map_batches_folded_total %" PRIu64 "\n"
        "# TYPE herald_shared_map_visits_folded_total counter\n"
        "herald_shared_map_visits_folded_total %" PRIu64 "\n"
        "# TYPE herald_shared_map_rejected_total counter\n"
        "herald_shared_map_rejected_total %" PRIu64 "\n",
        atomic_load(&s->state) == SHAREDMAP_UP, lag_s(s) < 0 ? 0.0 : lag_s(s),
        atomic_load(&s->sync_errors), atomic_load(&s->commands), atomic_load(&s->batches_sent),
        atomic_load(&s->records_sent), atomic_load(&s->bytes_sent),
        atomic_load(&s->batches_dropped), atomic_load(&s->batches_folded),
        atomic_load(&s->visits_folded), atomic_load(&s->rejected));
    size_t old = strlen(text);
    text = xrealloc(text, old + (size_t)n + 1);
    memcpy(text + old, add, (size_t)n + 1);
    return text;
}

static const char *unavailable_reason(void)
{
    return NULL;
}

#else /* !HERALD_HAVE_HIREDIS */

static const char *unavailable_reason(void)
{
    return "--shared-map is unavailable: this herald was built without hiredis "
           "(install libhiredis-dev and rebuild)";
}

int sharedmap_check(const config_t *cfg, char *err, size_t errlen)
{
    if (cfg->shared_map[0] == '\0')
        return 0;
    snprintf(err, errlen, "%s", unavailable_reason());
    return HERALD_EUNSUPPORTED;
}

int sharedmap_start(const config_t *cfg, pagemap_t *pm, sharedmap_t **out, char *err, size_t errlen)
{
    (void)pm;
    *out = NULL;
    if (cfg->shared_map[0] == '\0')
        return 0;
    snprintf(err, errlen, "%s", unavailable_reason());
    return HERALD_EUNSUPPORTED;
}

void sharedmap_stop(sharedmap_t *s)
{
    (void)s;
}

int sharedmap_commit(sharedmap_t *s, visit_t *v, pagemap_t *pm, int64_t wall, bool supplement)
{
    (void)s;
    return visit_commit(v, pm, wall, supplement);
}

void sharedmap_steer(sharedmap_t *s, fleetsteer_op_t op, const char *page, const char *asset)
{
    (void)s, (void)op, (void)page, (void)asset;
}

bool sharedmap_degraded(sharedmap_t *s)
{
    (void)s;
    return false;
}

json_t *sharedmap_stats_json(sharedmap_t *s)
{
    (void)s;
    return NULL;
}

char *sharedmap_metrics_append(sharedmap_t *s, char *text)
{
    (void)s;
    return text;
}

#endif

const char *sharedmap_client(const exchange_t *ex, char *buf, size_t len)
{
    if (unavailable_reason() != NULL || !ex->ctx->cfg->trust_forwarded ||
        ex->ctx->cfg->shared_map[0] == '\0')
        return ex->client_addr;
    const header_t *last = NULL;
    for (size_t i = 0; i < ex->req_headers.n; i++)
        if (headers_name_eq(ex->req_headers.v[i].name, ex->req_headers.v[i].name_len,
                            "x-forwarded-for"))
            last = &ex->req_headers.v[i];
    if (last == NULL)
        return ex->client_addr;
    const char *v = last->value, *end = v + last->value_len, *p = end;
    while (p > v && p[-1] != ',')
        p--;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t n = (size_t)(end - p);
    if (n == 0 || n >= len)
        return ex->client_addr;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}
