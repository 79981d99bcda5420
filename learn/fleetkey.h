/*
 * Where a fleet keeps its shared map in Redis, and the Lua scripts that
 * change it (docs/fleet.md, "Key layout"). Every key starts with the
 * operator's prefix (--shared-map-prefix, default "herald:") and the
 * layout version "v1:", so two fleets (or two layouts) can share one Redis:
 *
 *   <p>v1:epoch                 string  id of this Redis's copy of the map (FLEETKEY_LUA_EPOCH)
 *   <p>v1:log                   stream  evidence batches: fields i (instance), s (seq), b (batch),
 *                                       x, y (visits whose client marks Redis refused)
 *   <p>v1:seq:<instance>        string  highest batch number the log took from the instance
 *   <p>v1:steer                 stream  steering messages: field m (fleetsteer.h)
 *   <p>v1:steer:seq:<instance>  string  highest steering number taken from the instance
 *   <p>v1:steer:chan            channel pub/sub copy of each steering message (not a key)
 *   <p>v1:pins                  hash    "<page>\n<asset>" -> the PIN or BAN message in force
 *   <p>v1:base                  hash    hdr: the base header (fleetbase.h), list: its chunk list
 *   <p>v1:base:<gen>            list    the chunks of base generation <gen>
 *   <p>v1:base:lock             string  held (SET NX PX) by the instance writing a base
 *   <p>v1:mark:<client>:<key>   string  a client mark: 16 hex digits each (fleetmark.h)
 *
 * Every key has a TTL, refreshed when used (the scripts below, and
 * FLEETKEY_LUA_TOUCH for the rest), so a fleet that stopped leaves
 * nothing behind for ever. Redis Cluster is not supported (the scripts
 * touch keys of different hash slots). Pure: builds strings only.
 */
#ifndef HERALD_FLEETKEY_H
#define HERALD_FLEETKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FLEETKEY_DEFAULT_PREFIX "herald:"
/** Longest prefix. */
#define FLEETKEY_MAX_PREFIX 64
/** A buffer this large holds any key or channel name. */
#define FLEETKEY_MAX_LEN (FLEETKEY_MAX_PREFIX + 96)

/** Default TTL of the log, sequence keys, steering and base (refreshed on use): 3 days. */
#define FLEETKEY_DEFAULT_TTL_MS (3LL * 24 * 3600 * 1000)
/** Default number of batches the log keeps. */
#define FLEETKEY_DEFAULT_LOG_MAXLEN 10000
/** Default number of steering messages the steer stream keeps. */
#define FLEETKEY_DEFAULT_STEER_MAXLEN 10000
/** Default cap on pins and bans in the pins hash. */
#define FLEETKEY_DEFAULT_MAX_PINS 100000

typedef enum fleetkey_name {
    FLEETKEY_EPOCH = 0,
    FLEETKEY_LOG,
    FLEETKEY_STEER,
    FLEETKEY_STEER_CHANNEL,
    FLEETKEY_PINS,
    FLEETKEY_BASE,
    FLEETKEY_BASE_LOCK,
    FLEETKEY_NAME_COUNT_
} fleetkey_name_t;

/**
 * Whether prefix may start the keys: 0..FLEETKEY_MAX_PREFIX printable
 * ASCII characters without space. NULL: false.
 */
bool fleetkey_prefix_valid(const char *prefix);

/**
 * Write the fixed key (or channel) `which` under `prefix` into buf[0..len)
 * (NUL-terminated). Returns its length, or HERALD_EINVAL (bad prefix or
 * name) or HERALD_ETOOBIG (buf too small; FLEETKEY_MAX_LEN always fits).
 */
int fleetkey_build(char *buf, size_t len, const char *prefix, fleetkey_name_t which);

/** <p>v1:seq:<instance> (fleetlog_instance_valid). Returns as fleetkey_build. */
int fleetkey_seq(char *buf, size_t len, const char *prefix, const char *instance);

/** <p>v1:steer:seq:<instance>. Returns as fleetkey_build. */
int fleetkey_steer_seq(char *buf, size_t len, const char *prefix, const char *instance);

/** <p>v1:base:<gen> (gen as an instance id). Returns as fleetkey_build. */
int fleetkey_base_chunks(char *buf, size_t len, const char *prefix, const char *gen);

/**
 * <p>v1:mark:<client>:<key hash>, both as 16 lowercase hex digits
 * (fleetmark_key_hash(key)). client 0 (no mark) or key NULL: HERALD_EINVAL.
 * Returns as fleetkey_build.
 */
int fleetkey_mark(char *buf, size_t len, const char *prefix, uint64_t client, const char *key);

/*
 * The scripts (EVAL/EVALSHA; Redis >= 7.0; numbers as decimal strings).
 * Each answers a two-element array {status, value} unless said otherwise.
 * An epoch that is not ARGV[1] (Redis restarted empty, or another
 * instance started a new copy) answers {"epoch", current or ""} and
 * changes nothing.
 */

/**
 * KEYS[1] epoch. ARGV[1] a new random epoch, ARGV[2] TTL ms. Answers
 * {"new", ARGV[1]} when there was none (this instance starts the copy:
 * upload a base and the pins), else {"existing", epoch} (TTL refreshed).
 */
extern const char FLEETKEY_LUA_EPOCH[];

/**
 * Append one evidence batch and take its visits' client marks.
 * KEYS[1] epoch, KEYS[2] log, KEYS[3] seq:<instance>, KEYS[4..] mark
 * keys (fleetkey_mark). ARGV[1] epoch, ARGV[2] instance, ARGV[3] seq,
 * ARGV[4] batch, ARGV[5] log MAXLEN, ARGV[6] TTL ms, ARGV[7] largest
 * batch bytes, ARGV[8] the marks' window ms, ARGV[9] "<instance>:<seq>",
 * then pairs ARGV[10], ARGV[11], ...: a visit's record number in the
 * batch and how many of the next mark keys are its (1: the page's; 2:
 * the page's, then the template's). Each mark is SET NX PX window to
 * "<instance>:<seq>:<record>", or found holding that value already (a
 * resend): then the visit keeps it. A page mark held by anyone else
 * refuses the visit (its template mark is not taken); a template mark
 * alone refuses the template. The refused record numbers go with the
 * batch into the log entry as fields x (page) and y (template alone),
 * comma-separated and increasing (absent when none; read them with
 * fleetfold_verdicts_decode). Answers {"ok", stream id, x, y}; {"dup",
 * highest seq, x, y} when seq is not above the instance's highest (a
 * resend: not appended twice; the marks give the same verdicts);
 * {"toobig", ""} and {"epoch", ...} before any mark is taken. Sets the
 * TTL of the log, the epoch and the seq key.
 */
extern const char FLEETKEY_LUA_APPEND[];

/**
 * Publish one steering message. KEYS[1] epoch, KEYS[2] pins, KEYS[3]
 * steer, KEYS[4] steer:seq:<instance>. ARGV[1] epoch, ARGV[2] instance,
 * ARGV[3] seq, ARGV[4] op name, ARGV[5] pins field (fleetsteer_field; ""
 * for forget-page), ARGV[6] message, ARGV[7] channel, ARGV[8] steer
 * MAXLEN, ARGV[9] TTL ms, ARGV[10] largest message bytes, ARGV[11] most
 * pins. pin/ban set the field, learned/forget-edge delete it; the message
 * is appended to the stream and published on the channel as "<its stream
 * id> <message>" (fleetsteer_published_split). Answers {"ok", stream id},
 * {"dup", highest seq}, {"toobig", ""}, {"full", ""} (a new pin past the
 * cap) or {"epoch", ...}.
 */
extern const char FLEETKEY_LUA_STEER[];

/**
 * Take client marks in order. KEYS = mark keys (the page's, then the
 * template's), ARGV[1] window ms. For each key: 0 when the mark was free
 * (now set for the window), else the live mark's remaining ms (>= 1), and
 * the keys after a live one are not taken (the answer is shorter: a visit
 * whose page does not count takes no template mark). Answers an array of
 * integers (fleetmark_redis_reply folds each).
 */
extern const char FLEETKEY_LUA_MARK[];

/**
 * Make a fully uploaded chunk list the current base. KEYS[1] epoch,
 * KEYS[2] base, KEYS[3] the new chunk list, KEYS[4] the list the writer
 * saw as current (KEYS[3] when none). ARGV[1] epoch, ARGV[2] header,
 * ARGV[3] chunk count, ARGV[4] TTL ms, ARGV[5] how long the old list
 * stays for loaders still reading it (ms). Answers {"ok", ""}, {"race",
 * current list} (another writer won), {"short", ""} (the list does not
 * hold ARGV[3] chunks) or {"epoch", ...}.
 */
extern const char FLEETKEY_LUA_BASE[];

/** Refresh the TTL of every existing key of KEYS to ARGV[1] ms. Answers how many had one. */
extern const char FLEETKEY_LUA_TOUCH[];

#endif
