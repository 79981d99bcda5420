/*
 * Pacing what is pushed ahead of a page's HTML (DESIGN.md, "Delivery
 * policy"): how fast the path to this client drains, and how many bytes may
 * join the queue in front of the HTML now.
 *
 * The rate comes, in this order, from: --bandwidth-hint when the operator
 * set one (then nothing is measured); the kernel (TCP_INFO delivery rate)
 * when its view is the real path's, i.e. its minimum RTT is not far below
 * the RTT the client's PING ACKs show; the connection's own PING chains
 * (pathrate.h); the client network's recent connections (learn/netmem.h,
 * shared by all workers under one mutex); the population of recent
 * connections of every network; and, before herald has measured anything
 * since it started, PACE_FALLBACK_RATE.
 *
 * The queue in front of new output is modelled as a fluid: bytes the
 * connection wrote, drained at the rate since. A page whose HTML is expected
 * at t_html may add rate x max(t_html - now, PACE_TAIL) minus that queue: the
 * bottleneck then works through the pushes exactly while the origin thinks,
 * and when the origin is late, a short queue keeps the path busy without
 * holding the HTML long.
 *
 * Threads: a pace_conn_t belongs to its connection's worker loop; the
 * memory and the counters are process-wide (pace_stats_get, pace_networks:
 * any thread). Times are uv_hrtime() nanoseconds.
 */
#ifndef HERALD_PACE_H
#define HERALD_PACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "learn/netmem.h"

/** Bytes/s assumed before anything was measured since start (10 Mbit/s). */
#define PACE_FALLBACK_RATE 1250000.0
/** When the HTML is due, or late, this much time's worth (ns) of queue is still kept. */
#define PACE_TAIL_NS 2000000ULL
/** A held push never gets less than this (bytes) once it may go: frames stay whole packets. */
#define PACE_MIN_CHUNK 1400
/** PING opaque data starts with these two bytes; the other six carry the sequence. */
#define PACE_PING_TAG0 'H'
#define PACE_PING_TAG1 'P'

/** Where a connection's current rate came from. */
typedef enum pace_source {
    PACE_SRC_FALLBACK,   /* nothing measured since start */
    PACE_SRC_POPULATION, /* recent connections of every network */
    PACE_SRC_NETWORK,    /* recent connections of the client's network */
    PACE_SRC_CONN,       /* this connection's PINGs */
    PACE_SRC_KERNEL,     /* this connection's TCP_INFO, the kernel seeing the real path */
    PACE_SRC_HINT,       /* --bandwidth-hint */
    PACE_SRC_COUNT,
} pace_source_t;

/** The name of a source for logs, /stats and /metrics ("network", ...). */
const char *pace_source_name(pace_source_t s);

typedef struct pace_conn pace_conn_t;

/**
 * State for one client connection: `fd` its socket (TCP_INFO; -1 none),
 * `peer_addr` its printable peer address (copied; its network keys the
 * memory until pace_conn_forwarded says otherwise), `hint_bits`
 * --bandwidth-hint (0: measure). Never NULL.
 */
pace_conn_t *pace_conn_create(int fd, const char *peer_addr, uint64_t hint_bits);
/** Free pc (NULL is a no-op). What it measured is already in the memory. */
void pace_conn_destroy(pace_conn_t *pc);

/**
 * A request on the connection carried this X-Forwarded-For value (borrowed
 * for the call), from a peer herald trusts (--trust-forwarded=on): the
 * client network is its rightmost address's from now on. An unparseable
 * value changes nothing.
 */
void pace_conn_forwarded(pace_conn_t *pc, const char *value, size_t len);

/** The connection has written `total` bytes in all by `now` (h2 output, plaintext). */
void pace_conn_output(pace_conn_t *pc, uint64_t total, uint64_t now);

/**
 * Whether a PING should go out behind the output that ends at `total`; if
 * so, returns true and its sequence number in *seq, to be put into the
 * PING's opaque data (pace_ping_opaque). No other PING is due until this
 * one was reported sent.
 */
bool pace_conn_ping_due(pace_conn_t *pc, uint64_t total, uint64_t *seq);
/** Write the opaque data of PING `seq` into out[8]. */
void pace_ping_opaque(uint64_t seq, uint8_t out[8]);
/** The sequence number in a PING's opaque data; false when the PING is not ours. */
bool pace_ping_seq(const uint8_t opaque[8], uint64_t *seq);
/** PING `seq` went out behind `total` bytes of output at `now`. */
void pace_conn_ping_sent(pace_conn_t *pc, uint64_t seq, uint64_t total, uint64_t now);
/**
 * Its ACK came at `now`. Returns true when the rate estimate moved (held
 * pushes may go now). Measurements good enough are noted in the memory.
 */
bool pace_conn_ping_acked(pace_conn_t *pc, uint64_t seq, uint64_t now);

/** The rate now, bytes/s (> 0); *src (may be NULL) gets where it came from. */
double pace_conn_rate(const pace_conn_t *pc, pace_source_t *src);
/** The modelled bytes queued in front of new output at `now`. */
double pace_conn_queued(const pace_conn_t *pc, uint64_t now);
/** The connection's smallest PING RTT in ms, < 0 unknown. */
double pace_conn_rtt_ms(const pace_conn_t *pc);

/**
 * Bytes that may join the queue at `now` for a page whose HTML is expected
 * at t_html (0: unknown, then INT64_MAX). <= 0: hold them.
 */
int64_t pace_conn_room(const pace_conn_t *pc, uint64_t t_html, uint64_t now);
/** When held bytes for a page due at t_html should look again: ns from `now` (>= 1 ms). */
uint64_t pace_conn_recheck(const pace_conn_t *pc, uint64_t t_html, uint64_t now);

/** Count a page that starts delivery with pc's rate (for /stats: which source served). */
void pace_note_start(pace_source_t src);
/** Count a pushed stream's DATA held back by the pacer. */
void pace_note_hold(void);

/** Process-wide pacing state for /stats and /metrics. */
typedef struct pace_stats {
    netmem_stats_t mem;
    uint64_t pings, acks, samples, commits, holds;
    uint64_t starts[PACE_SRC_COUNT];
} pace_stats_t;

/** Fill *out (any thread). */
void pace_stats_get(pace_stats_t *out);
/** Up to cap client networks with their estimates, most recently measured first (any thread). */
size_t pace_networks(netmem_entry_t *out, size_t cap);

#endif
