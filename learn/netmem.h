/*
 * Per-client-network memory of path estimates (DESIGN.md, "Delivery
 * policy": the budget needs the connection's delivery rate before the
 * connection has measured anything). A client network is an IPv4 /24 or an
 * IPv6 /48: clients behind one access network usually share its bottleneck.
 *
 * Each network keeps the rate and RTT of its last few connections (a
 * connection that measures again replaces its own sample rather than adding
 * one); its estimate is their median. Alongside, a ring of the last
 * connections of every network gives a population estimate for networks
 * never seen. Both forget samples older than the time to live.
 *
 * Bounded: at most `max_networks` networks; when full, or when a network's
 * newest sample has expired, the network updated longest ago goes. Times are
 * seconds on any monotonic clock the caller chooses. Pure data: no locks
 * (the caller serialises), no logging.
 */
#ifndef HERALD_NETMEM_H
#define HERALD_NETMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Samples a network keeps at most (netmem_opts_t.per_network is clamped to this). */
#define NETMEM_MAX_PER_NETWORK 8
/** Population samples kept at most (netmem_opts_t.population is clamped to this). */
#define NETMEM_MAX_POPULATION 256

/** A client network: the address with its host bits cleared. */
typedef struct netmem_key {
    uint8_t family;   /* 4 (IPv4, /24) or 6 (IPv6, /48) */
    uint8_t addr[16]; /* IPv4 in the first 4 bytes; bits past the prefix are 0 */
} netmem_key_t;

/**
 * The network of the address in s[0..len): dotted IPv4, IPv6 (an
 * IPv4-mapped one counts as IPv4), optionally in brackets and with a
 * ":port" (IPv4 "a.b.c.d:port", IPv6 "[...]:port"); spaces around it are
 * ignored. Returns 0 or HERALD_EINVAL (not an address).
 */
int netmem_key_parse(const char *s, size_t len, netmem_key_t *out);

/**
 * The network of the rightmost address in an X-Forwarded-For value
 * (comma-separated; the element the nearest proxy appended). Returns 0, or
 * HERALD_EINVAL when that element is not an address ("unknown", an
 * obfuscated identifier, empty).
 */
int netmem_key_forwarded(const char *value, size_t len, netmem_key_t *out);

/** "203.0.113.0/24" or "2001:db8:1::/48" into buf[0..cap), NUL-terminated; returns its length. */
size_t netmem_key_format(const netmem_key_t *k, char *buf, size_t cap);

/** Limits; zero fields take the defaults in brackets. */
typedef struct netmem_opts {
    size_t max_networks; /* networks remembered at most [4096] */
    size_t per_network;  /* samples per network [4] */
    size_t population;   /* connections in the population ring [64] */
    double ttl_s;        /* a sample is forgotten after this long [600] */
} netmem_opts_t;

/** An estimate: medians of the unexpired samples it rests on. */
typedef struct netmem_est {
    double rate;   /* bytes per second */
    double rtt_ms; /* < 0 when no sample had one */
    unsigned n;    /* samples used */
    double age_s;  /* since the newest of them */
} netmem_est_t;

typedef struct netmem netmem_t;

/** A new, empty memory with `opts` (NULL: defaults). NULL on out of memory. */
netmem_t *netmem_create(const netmem_opts_t *opts);
/** Free m (NULL is a no-op). */
void netmem_destroy(netmem_t *m);

/**
 * Record connection `conn_id`'s measurement for network k at time now:
 * `rate` bytes/s (> 0), `rtt_ms` (< 0 unknown). A sample of the same
 * connection already held (in the network and in the population ring) is
 * replaced. Returns 0, or HERALD_EINVAL for a rate that is not positive and
 * finite. Never allocates.
 */
int netmem_note(netmem_t *m, const netmem_key_t *k, uint64_t conn_id, double rate, double rtt_ms,
                double now);

/** Network k's estimate at time now; false when it has no unexpired sample. */
bool netmem_get(netmem_t *m, const netmem_key_t *k, double now, netmem_est_t *out);

/** The population estimate (recent connections of every network); false when none. */
bool netmem_population(const netmem_t *m, double now, netmem_est_t *out);

/** Counts and the spread of the networks' estimates, for the admin. */
typedef struct netmem_stats {
    size_t networks;         /* with an unexpired sample */
    double p10, p50, p90;    /* of those networks' rate estimates, bytes/s (0 when none) */
    netmem_est_t population; /* n == 0 when none */
    uint64_t notes;          /* netmem_note calls accepted */
    uint64_t evicted;        /* networks dropped because the memory was full */
    uint64_t expired;        /* networks dropped because their samples expired */
} netmem_stats_t;

/** Fill *out at time now (drops expired networks first). */
void netmem_stats(netmem_t *m, double now, netmem_stats_t *out);

/** One network, as netmem_list reports it. */
typedef struct netmem_entry {
    netmem_key_t key;
    netmem_est_t est;
} netmem_entry_t;

/** Up to cap networks with an unexpired sample, most recently updated first; returns how many. */
size_t netmem_list(netmem_t *m, double now, netmem_entry_t *out, size_t cap);

#endif
