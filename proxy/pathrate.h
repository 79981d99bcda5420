/*
 * One connection's path estimate from HTTP/2 PINGs sent behind its data:
 * the delivery rate and round-trip time of the path to the client, as the
 * client sees it, whatever drains herald's socket (a relay, a TCP-
 * terminating load balancer) in between.
 *
 * A PING leaves herald at byte offset `off` of the connection's output and
 * its ACK comes back once every byte before it has crossed the path's
 * bottleneck (and the return trip). Two PINGs i < j whose ACKs both come
 * from one busy period of the bottleneck give its rate as
 * (off_j - off_i) / (ack_j - ack_i). The bottleneck stayed busy from i to j
 * when j was sent before i could have left it: sent_j <= ack_i - min RTT.
 * A run of consecutive PINGs that each pass this test is a chain; its rate
 * is taken over the whole run, so the error of one ACK's timing shrinks as
 * the run grows. A PING sent while nothing is queued measures the RTT.
 *
 * Pure: the caller passes offsets and monotonic times (nanoseconds), sends
 * and receives the frames. Not thread-safe (one connection, one loop).
 */
#ifndef HERALD_PATHRATE_H
#define HERALD_PATHRATE_H

#include <stdbool.h>
#include <stdint.h>

/** PINGs awaiting their ACK at most; pathrate_ping_due() says no beyond this. */
enum { PATHRATE_MAX_PINGS = 16 };
/** A chain spanning less than this (ns) gives no rate: one ACK's jitter would dominate it. */
#define PATHRATE_MIN_SPAN_NS 2000000ULL
/** A rate spanning at least this (ns) is trusted over any longer but older one. */
#define PATHRATE_GOOD_SPAN_NS 20000000ULL

typedef struct pathrate_ping {
    uint64_t seq, off, sent;
} pathrate_ping_t;

/** Embed and pathrate_init(); fields below `rate` may be read by the caller. */
typedef struct pathrate {
    pathrate_ping_t out[PATHRATE_MAX_PINGS]; /* awaiting ACK, oldest first from `first` */
    unsigned first, n;
    uint64_t next_seq;
    uint64_t last_off; /* offset of the newest PING sent */
    bool sent_any;
    bool have_prev; /* the newest ACKed PING: */
    uint64_t prev_off, prev_sent, prev_ack;
    bool chain; /* the busy run that ends at the newest ACK starts at: */
    uint64_t chain_off, chain_ack;

    double rate;        /* bytes/s over the best recent chain; 0 until one spans enough */
    uint64_t rate_span; /* ns that chain spans */
    uint64_t rate_at;   /* when it was taken */
    uint64_t rtt_min;   /* ns, smallest PING RTT seen; 0 unknown */
    uint64_t rtt_last;  /* ns, the newest PING RTT */
    uint64_t acks;      /* PING ACKs matched */
} pathrate_t;

/** An empty estimate. */
void pathrate_init(pathrate_t *p);

/**
 * Whether a PING should follow the output that now ends at `off`: at least
 * `spacing` bytes since the last one (or none sent yet) and fewer than
 * PATHRATE_MAX_PINGS unanswered.
 */
bool pathrate_ping_due(const pathrate_t *p, uint64_t off, uint64_t spacing);

/**
 * A PING left at output offset `off` (the bytes before it, itself included)
 * at time `now`. Returns its sequence number, which the caller puts in the
 * PING's opaque data and hands back on the ACK. With PATHRATE_MAX_PINGS
 * unanswered the oldest is forgotten.
 */
uint64_t pathrate_ping_sent(pathrate_t *p, uint64_t off, uint64_t now);

/**
 * The ACK of PING `seq` arrived at `now`. PINGs sent before it and not
 * answered are forgotten (ACKs come in order). Returns 1 when p->rate
 * changed, 0 when only the RTT did, HERALD_ENOTFOUND when seq is not
 * awaited (an old or foreign PING).
 */
int pathrate_ping_acked(pathrate_t *p, uint64_t seq, uint64_t now);

#endif
