/*
 * proxy/deliver/pace.c: where a connection's rate comes from (its own PINGs, its
 * client network's memory, the population, the operator's hint), which
 * network a trusted X-Forwarded-For makes it, and the room ahead of the HTML.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "netmem.h"
#include "pace.h"
#include "testutil.h"

#define MS 1000000ULL

static bool within(double got, double want, double tol)
{
    return fabs(got - want) <= tol * want;
}

/* Measure `rate` bytes/s on pc: an idle PING, then a burst behind PINGs,
 * ACKed as a bottleneck of that rate with a 20 ms RTT would. */
static void measure(pace_conn_t *pc, double rate, uint64_t t0)
{
    uint64_t seq, total = 100;
    pace_conn_output(pc, total, t0);
    CHECK(pace_conn_ping_due(pc, total, &seq));
    CHECK(!pace_conn_ping_due(pc, total + 100000, &seq)); /* one at a time until it is out */
    pace_conn_ping_sent(pc, seq, total, t0);
    pace_conn_ping_acked(pc, seq, t0 + 20 * MS);
    uint64_t t1 = t0 + 50 * MS;
    struct {
        uint64_t seq, ack;
    } p[16];
    int n = 0;
    for (int i = 0; i < 12; i++) {
        total += 16384;
        pace_conn_output(pc, total, t1);
        CHECK(pace_conn_ping_due(pc, total, &seq));
        pace_conn_ping_sent(pc, seq, total, t1);
        p[n].seq = seq;
        p[n].ack = t1 + (uint64_t)((double)(total - 100) / rate * 1e9) + 20 * MS;
        n++;
    }
    for (int i = 0; i < n; i++)
        pace_conn_ping_acked(pc, p[i].seq, p[i].ack);
}

static netmem_est_t listed(const char *net)
{
    netmem_entry_t v[16];
    size_t n = pace_networks(v, 16);
    netmem_est_t none = {0};
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        netmem_key_format(&v[i].key, buf, sizeof(buf));
        if (strcmp(buf, net) == 0)
            return v[i].est;
    }
    return none;
}

int main(void)
{
    uint64_t now = uv_hrtime();
    pace_source_t src;

    /* Nothing measured since start: the fallback. */
    pace_conn_t *a = pace_conn_create(-1, "10.20.30.40", 0);
    CHECK(within(pace_conn_rate(a, &src), PACE_FALLBACK_RATE, 1e-9));
    CHECK_INTEQ(src, PACE_SRC_FALLBACK);
    CHECK(pace_conn_rtt_ms(a) < 0);

    /* Behind a trusted proxy: the rightmost X-Forwarded-For address's network. */
    pace_conn_forwarded(a, "unknown", 7); /* unparseable: no change */
    pace_conn_forwarded(a, "203.0.113.9, 198.51.100.7", 25);
    measure(a, 2.5e6, now);
    CHECK(within(pace_conn_rate(a, &src), 2.5e6, 0.02));
    CHECK_INTEQ(src, PACE_SRC_CONN);
    CHECK(within(pace_conn_rtt_ms(a), 20, 0.01));
    netmem_est_t e = listed("198.51.100.0/24");
    CHECK(e.n == 1 && within(e.rate, 2.5e6, 0.02));
    CHECK(listed("10.20.30.0/24").n == 0);  /* the proxy's own network learned nothing */
    CHECK(listed("203.0.113.0/24").n == 0); /* nor the address the client could forge */

    /* A new connection from that network starts from its memory ... */
    pace_conn_t *b = pace_conn_create(-1, "198.51.100.200", 0);
    CHECK(within(pace_conn_rate(b, &src), 2.5e6, 0.02));
    CHECK_INTEQ(src, PACE_SRC_NETWORK);
    CHECK(within(pace_conn_rtt_ms(b), 20, 0.01));
    /* ... one from a network never seen from the population's. */
    pace_conn_t *c = pace_conn_create(-1, "192.0.2.1", 0);
    CHECK(within(pace_conn_rate(c, &src), 2.5e6, 0.02));
    CHECK_INTEQ(src, PACE_SRC_POPULATION);
    /* ... and one keyed by X-Forwarded-For looks its network up. */
    pace_conn_t *d = pace_conn_create(-1, "10.20.30.40", 0);
    pace_conn_forwarded(d, "198.51.100.99", 13);
    pace_conn_rate(d, &src);
    CHECK_INTEQ(src, PACE_SRC_NETWORK);

    /* Measuring a slower path moves that network's memory (median of two). */
    measure(c, 0.5e6, now);
    CHECK(within(pace_conn_rate(c, &src), 0.5e6, 0.02));
    CHECK_INTEQ(src, PACE_SRC_CONN);
    CHECK(within(listed("192.0.2.0/24").rate, 0.5e6, 0.02));

    /* The operator's hint: assumed as given, nothing measured. */
    pace_conn_t *h = pace_conn_create(-1, "198.51.100.1", 8000000);
    CHECK(within(pace_conn_rate(h, &src), 1e6, 1e-9));
    CHECK_INTEQ(src, PACE_SRC_HINT);
    uint64_t seq;
    CHECK(!pace_conn_ping_due(h, 1 << 20, &seq));

    /* The queue ahead and the room: at 1 MB/s, 100 kB written at t drains
     * 10 kB per 10 ms; a page due 50 ms later may add 50 kB less the queue. */
    uint64_t t = now + 10000 * MS;
    pace_conn_output(h, 100000, t);
    CHECK(within(pace_conn_queued(h, t), 100000, 1e-6));
    CHECK(within(pace_conn_queued(h, t + 10 * MS), 90000, 1e-6));
    CHECK_INTEQ(pace_conn_queued(h, t + 200 * MS), 0);
    CHECK(llabs(pace_conn_room(h, t + 150 * MS, t) - 50000) <= 1);
    CHECK(llabs(pace_conn_room(h, t + 150 * MS, t + 50 * MS) - 50000) <= 1); /* constant ... */
    /* ... until the tail: PACE_TAIL_NS of queue is still allowed past the due time. */
    CHECK(llabs(pace_conn_room(h, t + 50 * MS, t) + 50000) <= 1); /* hold: 50 kB too many */
    CHECK(llabs(pace_conn_room(h, t + 50 * MS, t + 40 * MS) + 50000) <= 1);
    CHECK(pace_conn_room(h, t + 50 * MS, t + 97 * MS) <= 0);
    CHECK(pace_conn_room(h, t + 50 * MS, t + 99 * MS) > 0);
    CHECK(pace_conn_room(h, 0, t) == INT64_MAX); /* think time unknown: no time limit */
    uint64_t w = pace_conn_recheck(h, t + 50 * MS, t);
    CHECK(w >= 97 * MS && w <= 100 * MS);
    pace_conn_output(h, 100001, t); /* totals only grow: an older total changes nothing */
    pace_conn_output(h, 50, t);
    CHECK(within(pace_conn_queued(h, t), 100001, 1e-6));

    /* A path that shows no queue behind any PING (a fast LAN, loopback):
     * PINGs come less often, up to 64 times the spacing; the first ACK (an
     * idle PING) does not count, and a PING that finds a queue resets it. */
    pace_conn_t *f = pace_conn_create(-1, "192.0.2.77", 0);
    uint64_t off = 100, tf = now + 20000 * MS;
    unsigned sent = 0;
    for (int i = 0; i < 400; i++) {
        off += 16384;
        pace_conn_output(f, off, tf);
        if (pace_conn_ping_due(f, off, &seq)) {
            pace_conn_ping_sent(f, seq, off, tf);
            pace_conn_ping_acked(f, seq, tf + MS / 10); /* 0.1 ms RTT, every time */
            sent++;
        }
        tf += MS;
    }
    /* 1, 1, 2, 4, ... 64 KiB-steps apart, then every 64: about 12 in 400 */
    CHECK(sent >= 8 && sent <= 16);
    off += 16384;
    CHECK(!pace_conn_ping_due(f, off, &seq)); /* still spaced out */
    off += 64 * 16384;
    CHECK(pace_conn_ping_due(f, off, &seq));
    pace_conn_ping_sent(f, seq, off, tf);
    pace_conn_ping_acked(f, seq, tf + 5 * MS); /* 5 ms over the minimum: a queue */
    off += 16384;
    CHECK(pace_conn_ping_due(f, off, &seq)); /* back to one per 16 KiB */
    pace_conn_destroy(f);

    /* Opaque data of our PINGs, and others'. */
    uint8_t op[8];
    pace_ping_opaque(0x123456789aULL, op);
    CHECK(pace_ping_seq(op, &seq) && seq == 0x123456789aULL);
    CHECK(!pace_ping_seq((const uint8_t *)"heraldgo", &seq));

    pace_stats_t st;
    pace_stats_get(&st);
    CHECK(st.mem.networks == 2);
    CHECK(st.commits >= 2);
    CHECK(st.samples >= 2 && st.acks >= 26 && st.pings >= 26);
    CHECK(st.mem.population.n == 2);
    for (pace_conn_t **p = (pace_conn_t *[]){a, b, c, d, h, NULL}; *p != NULL; p++)
        pace_conn_destroy(*p);
    return TESTUTIL_SUMMARY();
}
