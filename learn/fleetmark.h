/*
 * The fleet-wide poisoning bound (docs/fleet.md): one client moves a page's
 * (and a template's) plan by at most one visit's weight per window, across
 * all instances. A client is identified by a mark, an opaque 64-bit hash of
 * its address (fleetmark_client_hash), never the address itself. A visit
 * counts only when no live mark (client, page key) exists; counting it
 * sets the mark until the visit's time + the window.
 *
 * Redis holds the fleet's marks with a TTL (fleetkey_mark names the key;
 * FLEETKEY_LUA_APPEND takes them for each batch and refuses the visits
 * whose mark another visit holds). The proxy mirrors what it knows in a
 * fleetmark_t, a bounded local cache of two kinds of marks:
 *  - counted: this map counted a visit of the client to the page (its own,
 *    or a visit folded from another instance's batch);
 *  - seen: a visit of the client holds or asked for the mark, but this
 *    map has not counted it (fleetmark_hold_visit: waiting for Redis's
 *    verdict; fleetmark_note, fleetmark_redis_reply: another instance
 *    holds it).
 * A local visit asks both, so one instance sends Redis at most one visit
 * per client, page and window. While Redis answers, the visit is held
 * (a seen mark) and counts once Redis gave it the mark, through the fold
 * (fleetfold_apply_own). While Redis is away, the cache decides alone and
 * the visit counts at once (fleetmark_take_visit: a counted mark).
 * Folding a visit asks only the counted marks (fleetmark_take_visit with
 * `folded`): the visit that holds a Redis mark must count where it is
 * folded, and a second visit of the client that this map already counted
 * (two instances decided alone while Redis was away) must not. So every
 * map counts at most one visit per client, page and window, with Redis
 * or without, and with Redis the same one everywhere.
 *
 * Pure: no network, no logging, no locks (one thread at a time); a
 * fleetmark_t allocates only at creation.
 */
#ifndef HERALD_FLEETMARK_H
#define HERALD_FLEETMARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * Default window. A plan follows roughly the last ten counted visits
 * (PAGEMAP_DEFAULT_DECAY), so one client alone needs hours to move a
 * confirmed edge while other clients keep voting; a window much longer
 * would lose the visits of many users behind one address (a NAT).
 */
#define FLEETMARK_DEFAULT_WINDOW_MS (10 * 60 * 1000)
/** Default capacity of the local cache (40 bytes a mark). */
#define FLEETMARK_DEFAULT_CAP 65536

/**
 * The mark of a client address: the first 64 bits of SHA-256(salt, the
 * address's network), never 0. The network is the IPv4 address (also
 * when written as an IPv4-mapped IPv6 address), the /64 prefix of an IPv6
 * address (one subscriber holds a /64), or the string itself when it is
 * neither (brackets around IPv6 are ignored; a port is not expected).
 * `salt` (saltlen bytes, may be NULL/0; longer than 32 bytes: hashed
 * first) is the same on every instance of a
 * fleet. `addr` NULL or "": 0 (no mark: the visit always counts).
 */
uint64_t fleetmark_client_hash(const char *addr, const void *salt, size_t saltlen);

/** The hash of a page or template key in a mark: first 64 bits of SHA-256, never 0. */
uint64_t fleetmark_key_hash(const char *key);

typedef struct fleetmark fleetmark_t;

/**
 * A local mark cache holding at most `cap` marks (>= 1), each set for
 * `window_ms` (>= 1). When full, the oldest inserted mark goes (that
 * client may count once more early). *out owned by the caller
 * (fleetmark_destroy). Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int fleetmark_create(size_t cap, int64_t window_ms, fleetmark_t **out);

/** Free the cache. NULL is a no-op. */
void fleetmark_destroy(fleetmark_t *m);

/** The window given at creation. */
int64_t fleetmark_window(const fleetmark_t *m);

/** Live and expired marks held. */
size_t fleetmark_count(const fleetmark_t *m);

/**
 * The decision alone: a local visit of `key` by `client` at `now_ms` may
 * count (no counted or seen mark of it lives past now_ms). client 0:
 * true. `key` borrowed.
 */
bool fleetmark_allows(const fleetmark_t *m, uint64_t client, const char *key, int64_t now_ms);

/**
 * Decide and record a local visit: true when it counts (fleetmark_allows),
 * and then a counted mark lives until now_ms + window; false when a live
 * mark exists (unchanged). client 0: true, nothing recorded.
 */
bool fleetmark_take(fleetmark_t *m, uint64_t client, const char *key, int64_t now_ms);

/**
 * One visit: *page true when the page key's mark was free (now taken as
 * counted); *tpl true when, in addition, `template_key` (NULL or equal to
 * page_key: none) was free (now taken). A visit whose page does not count
 * commits nothing, so its template mark is not taken either (as a
 * connection that teaches a page only once: session.h). `folded`: the
 * visit comes from another instance's batch, so only counted marks bar
 * it (see the top).
 */
void fleetmark_take_visit(fleetmark_t *m, uint64_t client, const char *page_key,
                          const char *template_key, int64_t now_ms, bool folded, bool *page,
                          bool *tpl);

/**
 * As fleetmark_take_visit for a local visit (not folded), but the marks
 * taken are seen marks, not counted ones: the proxy holds the visit until
 * Redis decides (fleetfold_apply_own). A held visit keeps the client's
 * next local visits from counting for the window, and bars no fold: when
 * Redis gives the mark to another instance's visit, that visit counts here
 * too; when Redis gives it to this one, fleetfold_apply_own takes the
 * counted marks.
 */
void fleetmark_hold_visit(fleetmark_t *m, uint64_t client, const char *page_key,
                          const char *template_key, int64_t now_ms, bool *page, bool *tpl);

/**
 * Record a seen mark (another instance holds it in Redis) that lives until
 * until_ms. A later end replaces an earlier one. client 0: no-op.
 */
void fleetmark_note(fleetmark_t *m, uint64_t client, const char *key, int64_t until_ms);

/**
 * Fold one answer of FLEETKEY_LUA_MARK for a local visit of (client, key)
 * at now_ms: `reply` 0 means Redis set the mark for this visit (it counts;
 * a counted mark for the window), a positive value is the remaining TTL
 * in ms of another instance's mark (it does not count; a seen mark).
 * Returns whether the visit counts. A negative reply (no answer: Redis
 * away or slow) falls back to fleetmark_take.
 */
bool fleetmark_redis_reply(fleetmark_t *m, uint64_t client, const char *key, int64_t now_ms,
                           long long reply);

#endif
