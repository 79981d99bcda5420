/*
 * Folding what other instances shared into the local map (docs/fleet.md).
 *
 * A batch of evidence (fleetlog.h) is applied with the code the instance
 * uses for its own visits: pagemap_commit_visit for each visit and
 * pagemap_observe_asset for each asset record, in the order they were
 * recorded. Idempotent per (instance, sequence number): a fleetfold_t
 * remembers the highest sequence number applied per instance, so a batch
 * sent again after a reconnect (or read again after a resync) is counted
 * once, and the instance's own batches are skipped (its visits are in its
 * map already). The same record, in a second fleetfold_t, dedupes the
 * steering messages (fleetsteer.h).
 *
 * The record is bounded: at most max_instances entries, an entry not seen
 * for expire_ms goes (fleetfold_expire), and when full the least recently
 * seen goes. A forgotten instance's old batch would count again, so
 * expire_ms must exceed how long Redis keeps a batch (the log's TTL).
 *
 * Pure: no network, no logging, no locks (one thread at a time; the map
 * has its own lock). Allocation failure is HERALD_ENOMEM.
 */
#ifndef HERALD_FLEETFOLD_H
#define HERALD_FLEETFOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetlog.h"
#include "fleetmark.h"
#include "pagemap.h"

#define FLEETFOLD_DEFAULT_MAX_INSTANCES 1024
/** A week: longer than the default log TTL (fleetkey.h). */
#define FLEETFOLD_DEFAULT_EXPIRE_MS (7LL * 24 * 3600 * 1000)

typedef struct fleetfold fleetfold_t;

/**
 * A new empty record for the instance `self` (copied; fleetlog_instance_valid).
 * max_instances >= 1, expire_ms >= 1. *out owned by the caller
 * (fleetfold_destroy). Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int fleetfold_create(const char *self, size_t max_instances, int64_t expire_ms, fleetfold_t **out);

/** Free the record. NULL is a no-op. */
void fleetfold_destroy(fleetfold_t *f);

typedef enum fleetfold_check {
    FLEETFOLD_NEW = 0,   /* not applied yet */
    FLEETFOLD_OWN,       /* this instance's own */
    FLEETFOLD_DUPLICATE, /* its sequence number is not above the highest applied */
} fleetfold_check_t;

/** Whether (instance, seq) is new, own or a duplicate. `instance` borrowed. */
fleetfold_check_t fleetfold_check(const fleetfold_t *f, const char *instance, uint64_t seq);

/** The highest sequence number applied of `instance` (0 = none, or own). */
uint64_t fleetfold_seq(const fleetfold_t *f, const char *instance);

/**
 * Record (instance, seq) as applied at now_ms: the instance's highest
 * number becomes max(recorded, seq) and its entry is seen. Own instance:
 * no-op. Evicts the least recently seen entry when full. Returns 0,
 * HERALD_EINVAL (invalid id, seq 0) or HERALD_ENOMEM.
 */
int fleetfold_note(fleetfold_t *f, const char *instance, uint64_t seq, int64_t now_ms);

/**
 * fleetfold_check, then fleetfold_note when new: true when the caller
 * should apply (instance, seq). False for own, duplicate, invalid or
 * ENOMEM (*rc, may be NULL, gets 0 or the error).
 */
bool fleetfold_accept(fleetfold_t *f, const char *instance, uint64_t seq, int64_t now_ms, int *rc);

/** Forget instances not seen since now_ms - expire_ms. */
void fleetfold_expire(fleetfold_t *f, int64_t now_ms);

/** Instances recorded. */
size_t fleetfold_count(const fleetfold_t *f);

/** One recorded instance (fleetfold_entries). */
typedef struct fleetfold_entry {
    char instance[FLEETLOG_MAX_INSTANCE + 1];
    uint64_t seq;
} fleetfold_entry_t;

/**
 * Copy the record out, sorted by instance id. *out is malloc'd (NULL when
 * *n == 0), owned by the caller (free()). Returns 0, HERALD_EINVAL or
 * HERALD_ENOMEM.
 */
int fleetfold_entries(const fleetfold_t *f, fleetfold_entry_t **out, size_t *n);

/** What one fleetfold_apply did. */
typedef struct fleetfold_result {
    fleetfold_check_t check; /* NEW: applied; OWN, DUPLICATE: nothing done */
    size_t visits;           /* visits committed */
    size_t vetoed;           /* visits a live client mark kept from counting */
    size_t assets;           /* asset records applied */
    size_t unknown_assets;   /* ... for assets no page links to here (ignored) */
    size_t explores;         /* exploration counts added to a known entry */
} fleetfold_result_t;

/**
 * Fold batch `b` (borrowed; decoded by fleetlog_decode) into `pm`. When
 * fleetfold_check says OWN or DUPLICATE nothing happens. Otherwise the
 * batch is first recorded as applied (so a failure below never leads to
 * counting it twice), then each record applied in order: a visit, unless
 * it is a supplement, first passes the client marks of `marks` (may be
 * NULL: no bound; fleetmark_take_visit as folded, at the visit's own
 * time: only visits this map counted bar it): a visit
 * whose page mark is live commits nothing, one whose template mark alone
 * is live commits to its page only. `res` (may be NULL) is filled.
 * Returns 0, HERALD_EINVAL (NULL f, pm or b) or HERALD_ENOMEM (before the
 * record: nothing applied; after: the batch is partly applied and
 * recorded; the map stays consistent).
 */
int fleetfold_apply(fleetfold_t *f, pagemap_t *pm, fleetmark_t *marks, const fleetlog_batch_t *b,
                    int64_t now_ms, fleetfold_result_t *res);

/**
 * Per-record flags of a batch: what Redis decided for its visits
 * (FLEETKEY_LUA_APPEND answers and stores the record numbers whose client
 * marks it refused) and, for the instance's own batches, which records
 * still wait to be applied to the local map.
 */
enum fleetfold_rec_flags {
    FLEETFOLD_VETO_PAGE = 1u << 0,     /* the page mark was refused: the visit counts nowhere */
    FLEETFOLD_VETO_TEMPLATE = 1u << 1, /* the template mark alone: it counts for its page only */
    FLEETFOLD_PENDING = 1u << 2,       /* own record held until Redis decides */
};

/** Longest verdict list accepted (FLEETLOG_MAX_RECORDS numbers of up to 4 digits, commas). */
#define FLEETFOLD_MAX_VERDICTS_BYTES (FLEETLOG_MAX_RECORDS * 5)

/**
 * Decode a verdict list read from Redis: record numbers in decimal,
 * separated by commas, strictly increasing, each below `n` ("" = none).
 * data[0..len) is not NUL-terminated and never read past len. On success
 * `bit` is or-ed into flags[number] for each (flags has n entries).
 * Returns 0; HERALD_EPARSE (anything else; `flags` unchanged, `reason`
 * (may be NULL) gets a NUL-terminated message truncated to reasonlen);
 * HERALD_ETOOBIG (longer than FLEETFOLD_MAX_VERDICTS_BYTES); HERALD_EINVAL
 * (NULL flags with n > 0).
 */
int fleetfold_verdicts_decode(const char *data, size_t len, size_t n, unsigned bit, uint8_t *flags,
                              char *reason, size_t reasonlen);

/**
 * fleetfold_apply with Redis's verdicts: `flags` (b->n entries, may be
 * NULL: none) keeps a visit with FLEETFOLD_VETO_PAGE from counting and
 * takes the template from one with FLEETFOLD_VETO_TEMPLATE, before the
 * client marks are asked. Returns as fleetfold_apply.
 */
int fleetfold_apply_flags(fleetfold_t *f, pagemap_t *pm, fleetmark_t *marks,
                          const fleetlog_batch_t *b, const uint8_t *flags, int64_t now_ms,
                          fleetfold_result_t *res);

/**
 * Apply records [from, to) of batch `b` (to capped at b->n) as
 * fleetfold_apply does once the batch is recorded (fleetfold_accept): the
 * caller may apply a batch in slices, letting other threads at the marks
 * in between. `flags` (b->n entries, may be NULL unless pending_only):
 * vetoes as fleetfold_apply_flags; with pending_only, only records
 * flagged FLEETFOLD_PENDING, whose flag is then cleared. Adds to *res
 * (not zeroed; may be NULL). Returns 0, HERALD_EINVAL or HERALD_ENOMEM
 * (the records before the failing one are applied).
 */
int fleetfold_apply_range(pagemap_t *pm, fleetmark_t *marks, const fleetlog_batch_t *b,
                          uint8_t *flags, size_t from, size_t to, bool pending_only,
                          fleetfold_result_t *res);

/**
 * Apply the records of this instance's own batch `b` that carry
 * FLEETFOLD_PENDING in flags[0..b->n) (then cleared), in order, as
 * fleetfold_apply would apply another instance's: vetoes first, then the
 * counted client marks of `marks` (may be NULL) at each visit's time.
 * `res` (may be NULL) is filled (check is FLEETFOLD_OWN). Returns 0,
 * HERALD_EINVAL (NULL pm, b or flags) or HERALD_ENOMEM (the records up
 * to the failing one are applied and their flag cleared).
 */
int fleetfold_apply_own(pagemap_t *pm, fleetmark_t *marks, const fleetlog_batch_t *b,
                        uint8_t *flags, fleetfold_result_t *res);

#endif
