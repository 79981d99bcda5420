/*
 * Pacing pushes ahead of the HTML: see pace.h.
 *
 * The memory of client networks is one process-wide learn/netmem under one
 * mutex, made on first use. Critical sections are one lookup (a connection
 * starts or learns its client's address from X-Forwarded-For) or one note
 * (a connection measured something good enough), both a hash probe and a
 * few dozen comparisons.
 */
#include "pace.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "alloc.h"
#include "pathrate.h"
#include "tcpinfo.h"

enum {
    PING_SPACING = 16 * 1024,     /* output between PINGs while the rate is still being found */
    KERNEL_MIN_ACKED = 64 * 1024, /* before this the kernel's rate measures the handshake */
};
/* A connection's own PING rate outranks the memory once its chain spans this (ns). */
#define OWN_SPAN_NS 10000000ULL
/* A chain spanning this (ns) is good enough to teach the memory. */
#define COMMIT_SPAN_NS 8000000ULL
/* Once the rate is found, PINGs follow this much time's worth of output (s). */
#define SETTLED_SPACING_S 0.025
/* A connection notes a new rate at most this often (ns) unless its chain grew by half. */
#define COMMIT_EVERY_NS 1000000000ULL
/* PING spacing doubles per ACK that saw no queue, up to PING_SPACING << this. */
#define QUIET_MAX 6

struct pace_conn {
    int fd;
    uint64_t id;
    netmem_key_t key;
    bool keyed;
    double fixed; /* bytes/s from --bandwidth-hint; 0: measure */
    pathrate_t pr;
    bool ping_pending; /* a PING was asked for and has not gone out yet */
    unsigned quiet;    /* ACKs in a row that found no queue in front of their PING */
    /* the kernel's view */
    bool kernel_real;
    double kernel_rate;
    double kernel_rtt_ms;
    /* what the memory said when the connection started (or its client changed) */
    double mem_rate, mem_rtt_ms;
    pace_source_t mem_src;
    /* the last note to the memory */
    uint64_t commit_span, commit_at;
    bool committed;
    /* the fluid queue in front of new output */
    uint64_t total;
    double q;
    uint64_t q_at;
};

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;
static netmem_t *mem; /* guarded by mu */
static atomic_uint_fast64_t next_id, n_pings, n_acks, n_samples, n_commits, n_holds;
static atomic_uint_fast64_t n_starts[PACE_SRC_COUNT];

static void global_init(void)
{
    if (uv_mutex_init(&mu) != 0)
        alloc_fail(__FILE__, __LINE__, 0);
    mem = netmem_create(NULL);
    if (mem == NULL)
        alloc_fail(__FILE__, __LINE__, 0);
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

const char *pace_source_name(pace_source_t s)
{
    static const char *const names[PACE_SRC_COUNT] = {"fallback",   "population", "network",
                                                      "connection", "kernel",     "hint"};
    return (unsigned)s < PACE_SRC_COUNT ? names[s] : "?";
}

/* What the memory knows for pc's network, else for everyone. */
static void lookup(pace_conn_t *pc)
{
    netmem_est_t e;
    double now = secs(uv_hrtime());
    pc->mem_src = PACE_SRC_FALLBACK;
    pc->mem_rate = 0;
    pc->mem_rtt_ms = -1;
    uv_mutex_lock(&mu);
    if (pc->keyed && netmem_get(mem, &pc->key, now, &e))
        pc->mem_src = PACE_SRC_NETWORK;
    else if (netmem_population(mem, now, &e))
        pc->mem_src = PACE_SRC_POPULATION;
    uv_mutex_unlock(&mu);
    if (pc->mem_src != PACE_SRC_FALLBACK) {
        pc->mem_rate = e.rate;
        pc->mem_rtt_ms = e.rtt_ms;
    }
}

pace_conn_t *pace_conn_create(int fd, const char *peer_addr, uint64_t hint_bits)
{
    uv_once(&once, global_init);
    pace_conn_t *pc = xcalloc(1, sizeof(*pc));
    pc->fd = fd;
    pc->id = atomic_fetch_add(&next_id, 1) + 1;
    pc->fixed = (double)hint_bits / 8;
    pathrate_init(&pc->pr);
    pc->keyed = peer_addr != NULL && netmem_key_parse(peer_addr, strlen(peer_addr), &pc->key) == 0;
    if (pc->fixed <= 0)
        lookup(pc);
    return pc;
}

void pace_conn_destroy(pace_conn_t *pc)
{
    free(pc);
}

void pace_conn_forwarded(pace_conn_t *pc, const char *value, size_t len)
{
    netmem_key_t k;
    if (netmem_key_forwarded(value, len, &k) != 0)
        return;
    if (pc->keyed && memcmp(&k, &pc->key, sizeof(k)) == 0)
        return;
    pc->key = k;
    pc->keyed = true;
    pc->committed = false; /* what it measures now belongs to this network */
    if (pc->fixed <= 0)
        lookup(pc);
}

double pace_conn_rate(const pace_conn_t *pc, pace_source_t *src)
{
    pace_source_t s;
    double r;
    if (pc->fixed > 0) {
        s = PACE_SRC_HINT, r = pc->fixed;
    } else if (pc->kernel_real && pc->kernel_rate > 0) {
        s = PACE_SRC_KERNEL, r = pc->kernel_rate;
    } else if (pc->pr.rate > 0 &&
               (pc->pr.rate_span >= OWN_SPAN_NS || pc->mem_src == PACE_SRC_FALLBACK)) {
        s = PACE_SRC_CONN, r = pc->pr.rate;
    } else if (pc->mem_rate > 0) {
        s = pc->mem_src, r = pc->mem_rate;
    } else {
        s = PACE_SRC_FALLBACK, r = PACE_FALLBACK_RATE;
    }
    if (src != NULL)
        *src = s;
    return r;
}

double pace_conn_rtt_ms(const pace_conn_t *pc)
{
    if (pc->kernel_real && pc->kernel_rtt_ms > 0)
        return pc->kernel_rtt_ms;
    if (pc->pr.rtt_min > 0)
        return (double)pc->pr.rtt_min / 1e6;
    return pc->mem_rtt_ms;
}

double pace_conn_queued(const pace_conn_t *pc, uint64_t now)
{
    double drained = now > pc->q_at ? pace_conn_rate(pc, NULL) * secs(now - pc->q_at) : 0;
    return pc->q > drained ? pc->q - drained : 0;
}

void pace_conn_output(pace_conn_t *pc, uint64_t total, uint64_t now)
{
    if (total <= pc->total)
        return;
    pc->q = pace_conn_queued(pc, now) + (double)(total - pc->total);
    pc->q_at = now;
    pc->total = total;
}

/* ---- PINGs ---- */

void pace_ping_opaque(uint64_t seq, uint8_t out[8])
{
    out[0] = PACE_PING_TAG0;
    out[1] = PACE_PING_TAG1;
    for (int i = 0; i < 6; i++)
        out[2 + i] = (uint8_t)(seq >> (8 * (5 - i)));
}

bool pace_ping_seq(const uint8_t opaque[8], uint64_t *seq)
{
    if (opaque[0] != PACE_PING_TAG0 || opaque[1] != PACE_PING_TAG1)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 6; i++)
        v = v << 8 | opaque[2 + i];
    *seq = v;
    return true;
}

bool pace_conn_ping_due(pace_conn_t *pc, uint64_t total, uint64_t *seq)
{
    if (pc->fixed > 0 || pc->ping_pending)
        return false;
    double spacing = PING_SPACING;
    if (pc->pr.rate_span >= PATHRATE_GOOD_SPAN_NS && pc->pr.rate * SETTLED_SPACING_S > spacing)
        spacing = pc->pr.rate * SETTLED_SPACING_S;
    /* A path that drains PING_SPACING faster than a PING can time shows no
     * queue and gives no sample: PING it less, until a PING finds a queue. */
    double backoff = (double)PING_SPACING * (double)(1u << pc->quiet);
    if (backoff > spacing)
        spacing = backoff;
    if (!pathrate_ping_due(&pc->pr, total, (uint64_t)spacing))
        return false;
    pc->ping_pending = true;
    *seq = pc->pr.next_seq;
    return true;
}

void pace_conn_ping_sent(pace_conn_t *pc, uint64_t seq, uint64_t total, uint64_t now)
{
    pc->ping_pending = false;
    if (seq != pc->pr.next_seq)
        return; /* not the one asked for last */
    pathrate_ping_sent(&pc->pr, total, now);
    atomic_fetch_add(&n_pings, 1);
}

/* TCP_INFO: is the kernel's peer the client, and what rate does it see? */
static void read_kernel(pace_conn_t *pc)
{
    tcpinfo_t ti;
    if (pc->fd < 0 || pc->pr.rtt_min == 0 || tcpinfo_read(pc->fd, &ti) != 0 || ti.min_rtt_us == 0)
        return;
    /* A peer that drains the socket at local speed (a relay, a TCP-terminating
     * balancer) shows a far smaller RTT than the client's PING ACKs do. */
    pc->kernel_real = (uint64_t)ti.min_rtt_us * 1000 * 2 >= pc->pr.rtt_min;
    if (!pc->kernel_real)
        return;
    pc->kernel_rtt_ms = ti.min_rtt_us / 1000.0;
    if (ti.bytes_acked >= KERNEL_MIN_ACKED && ti.delivery_rate > 0 && !ti.app_limited)
        pc->kernel_rate = (double)ti.delivery_rate;
}

/* Tell the memory what pc measured, when it is new and well founded. */
static void commit(pace_conn_t *pc, uint64_t now)
{
    pace_source_t src;
    double rate = pace_conn_rate(pc, &src);
    uint64_t span = src == PACE_SRC_KERNEL ? COMMIT_SPAN_NS : pc->pr.rate_span;
    if ((src != PACE_SRC_CONN && src != PACE_SRC_KERNEL) || span < COMMIT_SPAN_NS || !pc->keyed)
        return;
    if (pc->committed && span < pc->commit_span + pc->commit_span / 2 &&
        now - pc->commit_at < COMMIT_EVERY_NS)
        return;
    pc->committed = true;
    pc->commit_span = span;
    pc->commit_at = now;
    double rtt = pace_conn_rtt_ms(pc);
    uv_mutex_lock(&mu);
    netmem_note(mem, &pc->key, pc->id, rate, rtt, secs(now));
    uv_mutex_unlock(&mu);
    atomic_fetch_add(&n_commits, 1);
}

bool pace_conn_ping_acked(pace_conn_t *pc, uint64_t seq, uint64_t now)
{
    double before = pace_conn_rate(pc, NULL);
    /* the queue drained at the old rate until now */
    pc->q = pace_conn_queued(pc, now);
    pc->q_at = now;
    int r = pathrate_ping_acked(&pc->pr, seq, now);
    if (r < 0)
        return false;
    atomic_fetch_add(&n_acks, 1);
    if (r > 0)
        atomic_fetch_add(&n_samples, 1);
    /* The first ACK times an idle PING: it says nothing about a queue. */
    uint64_t queued = pc->pr.rtt_last > pc->pr.rtt_min ? pc->pr.rtt_last - pc->pr.rtt_min : 0;
    if (r > 0 || queued >= PATHRATE_MIN_SPAN_NS)
        pc->quiet = 0;
    else if (pc->pr.acks > 1 && pc->quiet < QUIET_MAX)
        pc->quiet++;
    read_kernel(pc);
    commit(pc, now);
    return pace_conn_rate(pc, NULL) != before;
}

/* ---- room ahead of the HTML ---- */

int64_t pace_conn_room(const pace_conn_t *pc, uint64_t t_html, uint64_t now)
{
    if (t_html == 0)
        return INT64_MAX;
    uint64_t left = t_html > now ? t_html - now : 0;
    if (left < PACE_TAIL_NS)
        left = PACE_TAIL_NS;
    double r = pace_conn_rate(pc, NULL) * secs(left) - pace_conn_queued(pc, now);
    if (r > 1e15)
        return INT64_MAX;
    return (int64_t)floor(r);
}

uint64_t pace_conn_recheck(const pace_conn_t *pc, uint64_t t_html, uint64_t now)
{
    /* While the HTML is far off, room stays what it is (queue and time left
     * shrink together); it grows once the tail is reached, when the queue has
     * drained to below PACE_TAIL_NS worth. */
    double rate = pace_conn_rate(pc, NULL);
    double wait = (pace_conn_queued(pc, now) + PACE_MIN_CHUNK) / rate * 1e9 - (double)PACE_TAIL_NS;
    (void)t_html;
    if (wait < 1e6)
        wait = 1e6;
    if (wait > 1e9)
        wait = 1e9;
    return (uint64_t)wait;
}

/* ---- counters ---- */

void pace_note_start(pace_source_t src)
{
    if ((unsigned)src < PACE_SRC_COUNT)
        atomic_fetch_add(&n_starts[src], 1);
}

void pace_note_hold(void)
{
    atomic_fetch_add(&n_holds, 1);
}

void pace_stats_get(pace_stats_t *out)
{
    uv_once(&once, global_init);
    memset(out, 0, sizeof(*out));
    uv_mutex_lock(&mu);
    netmem_stats(mem, secs(uv_hrtime()), &out->mem);
    uv_mutex_unlock(&mu);
    out->pings = atomic_load(&n_pings);
    out->acks = atomic_load(&n_acks);
    out->samples = atomic_load(&n_samples);
    out->commits = atomic_load(&n_commits);
    out->holds = atomic_load(&n_holds);
    for (int i = 0; i < PACE_SRC_COUNT; i++)
        out->starts[i] = atomic_load(&n_starts[i]);
}

size_t pace_networks(netmem_entry_t *out, size_t cap)
{
    uv_once(&once, global_init);
    uv_mutex_lock(&mu);
    size_t n = netmem_list(mem, secs(uv_hrtime()), out, cap);
    uv_mutex_unlock(&mu);
    return n;
}
