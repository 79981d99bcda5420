/*
 * proxy/pathrate.c against a simulated path: a bottleneck of `rate` bytes/s
 * right after herald (as bench/relay.py has it), then `rtt` of propagation;
 * each PING is ACKed when the bytes in front of it have crossed.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "herald/error.h"
#include "proxy/pathrate.h"
#include "tests/unit/testutil.h"

#define MS 1000000ULL

typedef struct path {
    double rate;    /* bytes/s */
    uint64_t rtt;   /* ns */
    uint64_t off;   /* bytes written so far */
    uint64_t free_; /* when the bottleneck has sent everything written so far (ns) */
} path_t;

/* Write n bytes at time t; returns when the last of them leaves the bottleneck. */
static uint64_t path_write(path_t *p, uint64_t n, uint64_t t)
{
    uint64_t start = t > p->free_ ? t : p->free_;
    p->free_ = start + (uint64_t)((double)n / p->rate * 1e9);
    p->off += n;
    return p->free_;
}

typedef struct pending {
    uint64_t seq, ack;
} pending_t;

static bool within(double got, double want, double tol)
{
    return fabs(got - want) <= tol * want;
}

/* A burst of `total` bytes written at t0 in 16 KiB frames, a PING after each. */
static void burst(pathrate_t *pr, path_t *p, uint64_t t0, uint64_t total, pending_t *out,
                  unsigned *n, double jitter_ms)
{
    for (uint64_t done = 0; done < total; done += 16384) {
        uint64_t dep = path_write(p, 16384, t0);
        CHECK(pathrate_ping_due(pr, p->off, 16384));
        uint64_t seq = pathrate_ping_sent(pr, p->off, t0);
        /* alternate early and late ACKs: the client's scheduling */
        double j = (*n % 2 ? 1 : -1) * jitter_ms * (double)MS;
        out[(*n)++] = (pending_t){seq, (uint64_t)((double)(dep + p->rtt) + j)};
    }
}

static void test_busy_chain(void)
{
    pathrate_t pr;
    pathrate_init(&pr);
    path_t p = {.rate = 2.5e6, .rtt = 20 * MS};
    CHECK(pathrate_ping_due(&pr, 0, 16384)); /* the first PING goes at once */
    /* an idle PING at connection start gives the RTT */
    uint64_t s0 = pathrate_ping_sent(&pr, 50, 1 * MS);
    path_write(&p, 50, 1 * MS);
    CHECK(!pathrate_ping_due(&pr, 60, 16384)); /* spacing */
    CHECK_INTEQ(pathrate_ping_acked(&pr, s0, 21 * MS), 0);
    CHECK_INTEQ(pr.rtt_min, 20 * MS);
    CHECK(pr.rate == 0);
    pending_t pend[32];
    unsigned n = 0;
    burst(&pr, &p, 100 * MS, 160 * 1024, pend, &n, 0);
    int changes = 0;
    for (unsigned i = 0; i < n; i++)
        changes += pathrate_ping_acked(&pr, pend[i].seq, pend[i].ack) == 1;
    CHECK(changes >= 5);
    CHECK(within(pr.rate, 2.5e6, 0.01));
    CHECK(pr.rate_span >= 50 * MS);
    CHECK_INTEQ(pr.rtt_min, 20 * MS);
    CHECK_INTEQ(pr.n, 0);
}

static void test_jitter(void)
{
    /* ACK times off by +-0.5 ms: the chain's long span keeps the error small. */
    pathrate_t pr;
    pathrate_init(&pr);
    path_t p = {.rate = 2.5e6, .rtt = 100 * MS};
    uint64_t s0 = pathrate_ping_sent(&pr, 50, 0);
    path_write(&p, 50, 0);
    pathrate_ping_acked(&pr, s0, 100 * MS);
    pending_t pend[32];
    unsigned n = 0;
    burst(&pr, &p, 200 * MS, 200 * 1024, pend, &n, 0.5);
    for (unsigned i = 0; i < n; i++)
        pathrate_ping_acked(&pr, pend[i].seq, pend[i].ack);
    CHECK(within(pr.rate, 2.5e6, 0.03));
}

static void test_sender_limited(void)
{
    /* 16 KiB every 50 ms on a 2.5 MB/s path: the bottleneck idles between
     * them, so no pair of ACKs times it, and no rate comes out (certainly
     * not the 330 KB/s the sender managed). */
    pathrate_t pr;
    pathrate_init(&pr);
    path_t p = {.rate = 2.5e6, .rtt = 20 * MS};
    for (int i = 0; i < 10; i++) {
        uint64_t t = (uint64_t)i * 50 * MS;
        uint64_t dep = path_write(&p, 16384, t);
        uint64_t seq = pathrate_ping_sent(&pr, p.off, t);
        pathrate_ping_acked(&pr, seq, dep + p.rtt);
    }
    CHECK(pr.rate == 0);
    CHECK_INTEQ(pr.rtt_min, 20 * MS + (uint64_t)(16384 / 2.5e6 * 1e9));
}

static void test_two_bursts(void)
{
    /* A busy run, a pause, another: the second run starts a new chain, not
     * one across the idle gap (which would read low). */
    pathrate_t pr;
    pathrate_init(&pr);
    path_t p = {.rate = 1e6, .rtt = 30 * MS};
    uint64_t s0 = pathrate_ping_sent(&pr, 10, 0);
    path_write(&p, 10, 0);
    pathrate_ping_acked(&pr, s0, 30 * MS);
    pending_t pend[32];
    unsigned n = 0;
    burst(&pr, &p, 100 * MS, 64 * 1024, pend, &n, 0);
    for (unsigned i = 0; i < n; i++)
        pathrate_ping_acked(&pr, pend[i].seq, pend[i].ack);
    CHECK(within(pr.rate, 1e6, 0.01));
    n = 0;
    burst(&pr, &p, 2000 * MS, 64 * 1024, pend, &n, 0);
    for (unsigned i = 0; i < n; i++)
        pathrate_ping_acked(&pr, pend[i].seq, pend[i].ack);
    CHECK(within(pr.rate, 1e6, 0.01));
}

static void test_bookkeeping(void)
{
    pathrate_t pr;
    pathrate_init(&pr);
    uint64_t seqs[PATHRATE_MAX_PINGS + 2];
    for (unsigned i = 0; i < PATHRATE_MAX_PINGS; i++) {
        CHECK(pathrate_ping_due(&pr, (uint64_t)i * 20000, 16384));
        seqs[i] = pathrate_ping_sent(&pr, (uint64_t)i * 20000, i * MS);
    }
    CHECK(!pathrate_ping_due(&pr, 1u << 30, 16384));                       /* too many unanswered */
    seqs[PATHRATE_MAX_PINGS] = pathrate_ping_sent(&pr, 1u << 30, 20 * MS); /* oldest forgotten */
    CHECK_INTEQ(pathrate_ping_acked(&pr, seqs[0], 30 * MS), HERALD_ENOTFOUND);
    CHECK_INTEQ(pathrate_ping_acked(&pr, 999999, 30 * MS), HERALD_ENOTFOUND);
    /* an ACK for a later PING drops the earlier ones: ACKs come in order */
    CHECK(pathrate_ping_acked(&pr, seqs[5], 40 * MS) >= 0);
    CHECK_INTEQ(pathrate_ping_acked(&pr, seqs[3], 41 * MS), HERALD_ENOTFOUND);
    CHECK_INTEQ(pr.n, PATHRATE_MAX_PINGS - 5);
    CHECK_INTEQ(pr.acks, 1);
}

int main(void)
{
    test_busy_chain();
    test_jitter();
    test_sender_limited();
    test_two_bursts();
    test_bookkeeping();
    return TESTUTIL_SUMMARY();
}
