/*
 * The fleet's evidence log codec (docs/fleet.md): what one herald instance
 * tells the others it learned, as batches of records that every instance
 * folds into its own map with the same commit code it uses locally
 * (fleetfold.h). Redis stores these batches as strings; nothing here
 * talks to Redis, logs, or locks.
 *
 * Records, in the order the instance committed them:
 *  - visit: one committed page visit (pagemap_visit_t with its items, the
 *    client's cache-digest cookie) plus the client mark (an opaque hash
 *    of the client's address, fleetmark.h; 0 = none) and the wall clock of
 *    the commit. Visits with `authorized` teach nothing and are not
 *    recorded.
 *  - asset: the metadata of a response that passed through for an asset
 *    some page links to (pagemap_observe_asset), so that every instance
 *    knows its size, validators and cache policy.
 *  - explore: a page's (or template's) exploration counts since the last
 *    batch (pagemap_explore_drain), so that the fleet holds edges back at
 *    the --explore share of all its plans, in one rotation.
 *
 * Encoding: one compact JSON object (UTF-8, no NUL), version 1:
 *
 *   {"v":1,"inst":"7f3a0c1d9e2b4a65","seq":42,"t":1700000000000,
 *    "str":["e.com/item/1","e.com/item/ *","https://e.com/a.css",...],
 *    "rec":[{"r":"visit","t":1700000000000,"c":"9f86d081884c7d65","p":0,"tp":1,
 *            "st":200,"think":120.5,"html":20480,"f":7,"val":"00000000deadbeef",
 *            "dig":"<cookie value>",
 *            "it":[{"k":2,"u":3,"kd":"style","as":4,"co":1,"o":0,"s":9,"g":0,"f":3}]},
 *           {"r":"asset","k":2,"st":200,"sz":1234,"ct":5,"et":6,"lm":7,"loc":8,
 *            "pol":32,"fr":3600000,"f":1},
 *           {"r":"explore","p":0,"n":40,"x":2,"cur":"3c1f00a2b4d5e6f7"}]}
 *
 * (the space in the template key only keeps this C comment open). Every
 * string of a batch (page keys, URLs, `as`, content types, validators)
 * sits once in "str" and records name it by index: a batch of visits to
 * the same pages repeats numbers, not URLs. Members: "inst" the writer's
 * instance id (fleetlog_instance_valid), "seq" its batch sequence number
 * (>= 1, increasing per instance: a resend carries the same number and is
 * folded once), "t" the wall clock of the batch. A visit: "t" wall clock
 * of the commit (pagemap_visit_t.now_ms), "c" client mark (16 hex digits,
 * absent = 0), "p" page key, "tp" template key (absent = none), "st"
 * status, "think" think time in ms to the microsecond (absent = unknown), "html" HTML bytes,
 * "f" FLEETLOG_VF_* bits, "val" validator (16 hex digits, absent = 0),
 * "dig" the digest re-encoded as its cookie value (digest.h; absent =
 * none), "it" items. An item: "k" key, "u" URL (absent = the key), "kd"
 * kind name (pagemap_kind_name), "as" (absent = none), "co" CORS mode
 * (pagemap_cors_t, absent = none), "o" order, "s" PAGEMAP_SRC_* bits, "g"
 * alternates group, "f" FLEETLOG_IF_* bits (absent members = 0). An asset:
 * "k" key, "st" status, "sz" size, "ct" content type, "et" ETag, "lm"
 * Last-Modified, "loc" redirect target, "pol" CACHEPOLICY_* bits, "fr"
 * freshness ms (absent = unknown), "f" 1 when it answered a push. An
 * explore record: "p" the entry's key, "n" plans (>= 1), "x" of those,
 * plans that held edges back (absent = 0; at most "n"), "cur" the
 * rotation position (16 hex digits; present exactly when "x" is). The bit
 * values are wire values: fleetlog.c asserts at compile time that the
 * enums still have them (a change needs a new version).
 *
 * Why JSON and not a binary format: the batches stay readable with
 * redis-cli when a fleet misbehaves, jansson is already here (and fuzzed
 * through the snapshot), and the string table takes away what makes JSON
 * large (URLs repeated per visit). Decoding is strict: a value of another
 * version, an unknown member, a duplicate member, a wrong type, an index
 * out of range or anything over a FLEETLOG_MAX_* cap rejects the whole
 * batch with a reason; nothing of it is applied.
 */
#ifndef HERALD_FLEETLOG_H
#define HERALD_FLEETLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "pagemap.h"

#define FLEETLOG_VERSION 1
/** Largest encoded batch, in bytes (the decoder's first check). */
#define FLEETLOG_MAX_BATCH_BYTES (4u * 1024 * 1024)
/** A builder this large should be finished and sent (fleetlog_builder_full). */
#define FLEETLOG_FLUSH_BYTES (256u * 1024)
/** Largest encoded record with its new strings: a larger visit is not shared. */
#define FLEETLOG_MAX_RECORD_BYTES (1024u * 1024)
/** Records per batch. */
#define FLEETLOG_MAX_RECORDS 4096
/** Entries of a batch's string table. */
#define FLEETLOG_MAX_STRINGS 65536
/** Bytes of one string (as the snapshot: SNAPSHOT_MAX_STRING). */
#define FLEETLOG_MAX_STRING 16384
/** Items of one visit (as many as a visit collects). */
#define FLEETLOG_MAX_VISIT_ITEMS PAGEMAP_MAX_VISIT_ITEMS
/** Items of all the visits of one batch. */
#define FLEETLOG_MAX_ITEMS 65536
/** Longest instance id. */
#define FLEETLOG_MAX_INSTANCE 64
/** Largest integer on the wire (2^53 - 1: exact in Lua and JavaScript numbers). */
#define FLEETLOG_MAX_INT 9007199254740991LL

/** Visit flags ("f" of a visit record). */
enum fleetlog_visit_flags {
    FLEETLOG_VF_HTML_SCANNED = 1u << 0,
    FLEETLOG_VF_CSS_SCANNED = 1u << 1,
    FLEETLOG_VF_BROWSER = 1u << 2,
    FLEETLOG_VF_MULTIPLEXED = 1u << 3,
    FLEETLOG_VF_PUSHES_USED = 1u << 4,
    FLEETLOG_VF_PAGE_COOKIE = 1u << 5,
    FLEETLOG_VF_PAGE_SET_COOKIE = 1u << 6,
    FLEETLOG_VF_SUPPLEMENT = 1u << 7,
};
#define FLEETLOG_VF_ALL 0xffu

/** Item flags ("f" of an item). */
enum fleetlog_item_flags {
    FLEETLOG_IF_BLOCKING = 1u << 0,
    FLEETLOG_IF_STRONG = 1u << 1,
    FLEETLOG_IF_CONDITIONAL = 1u << 2,
    FLEETLOG_IF_SKIPPED = 1u << 3,
    FLEETLOG_IF_PUSH_CANCELLED = 1u << 4,
};
#define FLEETLOG_IF_ALL 0x1fu

/**
 * Whether `id` is a valid instance id: 1..FLEETLOG_MAX_INSTANCE characters
 * of [A-Za-z0-9._-] (it appears in Redis key names). NULL: false.
 */
bool fleetlog_instance_valid(const char *id);

/**
 * Whether s may be carried as a string of a batch: well-formed UTF-8 (no
 * overlong forms, surrogates or code points past U+10FFFF) of at most
 * FLEETLOG_MAX_STRING bytes. NULL: false.
 */
bool fleetlog_string_valid(const char *s);

/* ---- writing ----------------------------------------------------------- */

/**
 * Collects one instance's records into the next batch. One thread at a
 * time (the proxy serialises its calls). Create with
 * fleetlog_builder_create, free with fleetlog_builder_destroy.
 */
typedef struct fleetlog_builder fleetlog_builder_t;

/**
 * A new empty builder for instance `instance` (copied; must pass
 * fleetlog_instance_valid) whose first batch gets sequence number
 * `first_seq` (1 for a new instance id; 1..FLEETLOG_MAX_INT). *out is owned
 * by the caller. Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int fleetlog_builder_create(const char *instance, uint64_t first_seq, fleetlog_builder_t **out);

/** Free the builder and what it collected. NULL is a no-op. */
void fleetlog_builder_destroy(fleetlog_builder_t *b);

/**
 * Record a visit just committed to the local map (`v` borrowed for the
 * call; its wall clock is v->now_ms, 0..FLEETLOG_MAX_INT) with the client
 * mark `client` (0 = none). An authorized visit teaches nothing and is
 * not recorded (returns 0). Items with no URL are left out, as the map
 * ignores them; an out-of-range kind is recorded as PAGEMAP_KIND_OTHER, a
 * negative or non-finite think time as unknown, a think time to the
 * microsecond, sizes over
 * FLEETLOG_MAX_INT as that maximum, an empty digest as none: what the map
 * makes of them anyway. Returns 0; HERALD_EINVAL (NULL arguments, no page
 * key, a status outside 0..999, a CORS mode out of range, a string that
 * is not UTF-8 or longer than FLEETLOG_MAX_STRING, more than
 * FLEETLOG_MAX_VISIT_ITEMS items); HERALD_ETOOBIG: the record does not
 * fit this batch (FLEETLOG_MAX_BATCH_BYTES, the count caps), or it is
 * over FLEETLOG_MAX_RECORD_BYTES and fits none: with records collected,
 * finish the batch and add it once more; ETOOBIG on an empty builder means
 * it can never be shared; HERALD_ENOMEM. On any error the builder is
 * unchanged.
 */
int fleetlog_builder_add_visit(fleetlog_builder_t *b, const pagemap_visit_t *v, uint64_t client);

/**
 * Record a page's exploration counts (pagemap_explore_drain; `d`
 * borrowed for the call): d->plans >= 1, d->explored <= d->plans, both
 * clamped to FLEETLOG_MAX_INT. Errors as fleetlog_builder_add_visit.
 */
int fleetlog_builder_add_explore(fleetlog_builder_t *b, const pagemap_explore_delta_t *d);

/**
 * Record asset metadata just observed (pagemap_observe_asset returned 0
 * for it). `key` and `m` borrowed for the call. When the batch's last
 * record of `key` says the same (sizes and times as recorded), nothing is
 * added and 0 comes back: fleetlog_builder_records() tells. Errors as
 * fleetlog_builder_add_visit.
 */
int fleetlog_builder_add_asset(fleetlog_builder_t *b, const char *key,
                               const pagemap_asset_meta_t *m);

/** Records collected since the last finish. */
size_t fleetlog_builder_records(const fleetlog_builder_t *b);

/** An upper bound (within 64 bytes) of the size of the batch if finished now. */
size_t fleetlog_builder_bytes(const fleetlog_builder_t *b);

/** True once the batch reached FLEETLOG_FLUSH_BYTES or 3/4 of a count cap: finish it. */
bool fleetlog_builder_full(const fleetlog_builder_t *b);

/** The sequence number the next finished batch gets. */
uint64_t fleetlog_builder_next_seq(const fleetlog_builder_t *b);

/**
 * Close the batch: encode what was collected with the next sequence
 * number and wall clock `now_ms`, then empty the builder and advance the
 * number. An empty builder gives a valid batch with no record (the caller
 * usually skips it: fleetlog_builder_records). *out is malloc'd,
 * NUL-terminated, owned by the caller (free()); *outlen (may be NULL) gets
 * its length; *seq (may be NULL) the batch's number. Returns 0 or
 * HERALD_ENOMEM (the builder is unchanged; try again later), HERALD_EINVAL.
 */
int fleetlog_builder_finish(fleetlog_builder_t *b, int64_t now_ms, char **out, size_t *outlen,
                            uint64_t *seq);

struct fleetlog_batch;

/**
 * fleetlog_builder_finish that also gives the batch's records in decoded
 * form: on success *held (may be NULL: not wanted) is what fleetlog_decode
 * of *out returns, without encoding and decoding again (the instance
 * applies its own held records from it). *held is owned by the caller:
 * fleetlog_batch_dispose. Errors as fleetlog_builder_finish (*held is then
 * left untouched).
 */
int fleetlog_builder_finish_held(fleetlog_builder_t *b, int64_t now_ms, char **out, size_t *outlen,
                                 uint64_t *seq, struct fleetlog_batch *held);

/* ---- reading ----------------------------------------------------------- */

typedef enum fleetlog_rec_type {
    FLEETLOG_REC_VISIT = 1,
    FLEETLOG_REC_ASSET,
    FLEETLOG_REC_EXPLORE,
} fleetlog_rec_type_t;

/** One decoded record. Every pointer points into its batch. */
typedef struct fleetlog_rec {
    fleetlog_rec_type_t type;
    /* VISIT: the visit as pagemap_commit_visit takes it (now_ms = its wall
     * clock; digest NULL when none), and the client mark (0 = none). */
    pagemap_visit_t visit;
    uint64_t client;
    /* ASSET: the asset key and its metadata. */
    const char *asset_key;
    pagemap_asset_meta_t meta;
    /* EXPLORE: the counts (key points into the batch). */
    pagemap_explore_delta_t explore;
} fleetlog_rec_t;

/** A decoded batch. Fill it with fleetlog_decode; free with fleetlog_batch_dispose. */
typedef struct fleetlog_batch {
    char instance[FLEETLOG_MAX_INSTANCE + 1];
    uint64_t seq;
    int64_t t_ms;
    fleetlog_rec_t *recs;
    size_t n;
    /* private: what the records point into */
    char *arena;
    const char **strs;
    size_t nstr;
    pagemap_item_t *items;
    digest_t *digests;
    size_t ndigests;
    bool own_strs; /* each of strs is malloc'd (not in arena) */
} fleetlog_batch_t;

/**
 * Decode and validate data[0..len) (not NUL-terminated; never read past
 * len). On success *out holds the batch (owned by the caller:
 * fleetlog_batch_dispose). Returns 0; HERALD_ETOOBIG (len over
 * FLEETLOG_MAX_BATCH_BYTES, or a count cap); HERALD_EUNSUPPORTED ("v" is
 * not FLEETLOG_VERSION); HERALD_EPARSE (anything else malformed: the
 * whole batch is rejected); HERALD_ENOMEM. On error *out is empty and
 * `reason` (may be NULL) receives a NUL-terminated message (truncated to
 * reasonlen). (jansson 2.14 reports an allocation failure inside its
 * parser as a syntax error: that case comes back as HERALD_EPARSE.)
 */
int fleetlog_decode(const char *data, size_t len, fleetlog_batch_t *out, char *reason,
                    size_t reasonlen);

/** Free a decoded batch and zero it. NULL is a no-op. */
void fleetlog_batch_dispose(fleetlog_batch_t *b);

#endif
