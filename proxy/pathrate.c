/* A connection's rate and RTT from PINGs behind its data: see pathrate.h. */
#include "proxy/pathrate.h"

#include <string.h>

#include "herald/error.h"

/* A stored rate older than this (ns) gives way to any new one that spans enough. */
#define STALE_NS 2000000000ULL

void pathrate_init(pathrate_t *p)
{
    memset(p, 0, sizeof(*p));
    p->next_seq = 1;
}

bool pathrate_ping_due(const pathrate_t *p, uint64_t off, uint64_t spacing)
{
    if (p->n >= PATHRATE_MAX_PINGS)
        return false;
    return !p->sent_any || off >= p->last_off + spacing;
}

uint64_t pathrate_ping_sent(pathrate_t *p, uint64_t off, uint64_t now)
{
    if (p->n == PATHRATE_MAX_PINGS) {
        p->first = (p->first + 1) % PATHRATE_MAX_PINGS;
        p->n--;
    }
    pathrate_ping_t *g = &p->out[(p->first + p->n) % PATHRATE_MAX_PINGS];
    g->seq = p->next_seq++;
    g->off = off;
    g->sent = now;
    p->n++;
    p->last_off = off;
    p->sent_any = true;
    return g->seq;
}

/* Keep the new chain rate when it is at least as well founded as the one held. */
static bool take_rate(pathrate_t *p, double rate, uint64_t span, uint64_t now)
{
    bool better = p->rate == 0 || span >= p->rate_span || span >= PATHRATE_GOOD_SPAN_NS ||
                  now - p->rate_at > STALE_NS;
    if (!better)
        return false;
    p->rate = rate;
    p->rate_span = span;
    p->rate_at = now;
    return true;
}

int pathrate_ping_acked(pathrate_t *p, uint64_t seq, uint64_t now)
{
    unsigned k = 0;
    while (k < p->n && p->out[(p->first + k) % PATHRATE_MAX_PINGS].seq != seq)
        k++;
    if (k == p->n)
        return HERALD_ENOTFOUND;
    pathrate_ping_t g = p->out[(p->first + k) % PATHRATE_MAX_PINGS];
    p->first = (p->first + k + 1) % PATHRATE_MAX_PINGS; /* earlier ones will not come */
    p->n -= k + 1;
    p->acks++;
    uint64_t rtt = now > g.sent ? now - g.sent : 0;
    p->rtt_last = rtt;
    if (p->rtt_min == 0 || (rtt > 0 && rtt < p->rtt_min))
        p->rtt_min = rtt;
    int changed = 0;
    /* Was g sent before the previous PING left the bottleneck (ack - min RTT
     * at the latest)? Then every byte between them was queued there while it
     * drained: the run of busy time goes on. */
    bool busy = p->have_prev && g.off > p->prev_off && p->prev_ack >= p->rtt_min &&
                g.sent <= p->prev_ack - p->rtt_min && now > p->prev_ack;
    if (busy) {
        if (!p->chain) {
            p->chain = true;
            p->chain_off = p->prev_off;
            p->chain_ack = p->prev_ack;
        }
        uint64_t span = now - p->chain_ack;
        if (span >= PATHRATE_MIN_SPAN_NS) {
            double rate = (double)(g.off - p->chain_off) * 1e9 / (double)span;
            changed = take_rate(p, rate, span, now);
        }
    } else {
        p->chain = false;
    }
    p->have_prev = true;
    p->prev_off = g.off;
    p->prev_sent = g.sent;
    p->prev_ack = now;
    return changed;
}
