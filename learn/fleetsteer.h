/*
 * Operator steering shared by a fleet (docs/fleet.md): a pin, ban, unpin
 * (back to learned), forget of an edge or forget of a page made through
 * any instance's admin reaches every instance. The proxy publishes each
 * message (FLEETKEY_LUA_STEER: a durable stream, a pub/sub channel, and a
 * hash holding the current pins and bans); every instance applies the
 * others' messages once (a fleetfold_t dedupes them by instance and
 * sequence number, as for evidence) and, after a disconnect, makes its
 * pins and bans equal to the hash (fleetsteer_sync).
 *
 * A message is a small JSON object, version 1:
 *
 *   {"v":1,"op":"pin","inst":"7f3a0c1d9e2b4a65","seq":3,"t":1700000000000,
 *    "page":"e.com/","asset":"https://e.com/a.css"}
 *
 * "op" is one of "pin", "ban", "learned", "forget-edge", "forget-page";
 * "asset" is absent for "forget-page" and required otherwise. Keys are at
 * most FLEETLOG_MAX_STRING bytes, non-empty, without control characters
 * (a pins-hash field joins them with a newline). Decoding is strict as in
 * fleetlog.h. No network, no logging, no locks.
 */
#ifndef HERALD_FLEETSTEER_H
#define HERALD_FLEETSTEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetlog.h"
#include "pagemap.h"

#define FLEETSTEER_VERSION 1
/** Largest encoded message. */
#define FLEETSTEER_MAX_BYTES (64u * 1024)

typedef enum fleetsteer_op {
    FLEETSTEER_PIN = 0,
    FLEETSTEER_BAN,
    FLEETSTEER_LEARNED,     /* a pin or ban lifted: the edge is learned again */
    FLEETSTEER_FORGET_EDGE, /* pagemap_forget_edge */
    FLEETSTEER_FORGET_PAGE, /* pagemap_forget_page: no asset */
    FLEETSTEER_OP_COUNT_
} fleetsteer_op_t;

/** A message. Strings malloc'd, owned by the struct (fleetsteer_msg_dispose). */
typedef struct fleetsteer_msg {
    fleetsteer_op_t op;
    char instance[FLEETLOG_MAX_INSTANCE + 1];
    uint64_t seq; /* per instance, >= 1 */
    int64_t t_ms; /* wall clock of the operator's request */
    char *page_key;
    char *asset_key; /* NULL for FLEETSTEER_FORGET_PAGE */
} fleetsteer_msg_t;

/** Static name of an op ("pin", ...); "?" out of range. */
const char *fleetsteer_op_name(fleetsteer_op_t op);

/** Parse an op name. Returns 0 and sets *out, or HERALD_EINVAL. */
int fleetsteer_op_parse(const char *name, fleetsteer_op_t *out);

/**
 * Encode m (borrowed). *out malloc'd, NUL-terminated, owned by the caller
 * (free()); *outlen may be NULL. Returns 0, HERALD_EINVAL (invalid
 * instance, seq 0, t_ms outside 0..FLEETLOG_MAX_INT, a missing, empty,
 * over-long or control-character key, an asset key on FORGET_PAGE) or
 * HERALD_ENOMEM.
 */
int fleetsteer_encode(const fleetsteer_msg_t *m, char **out, size_t *outlen);

/**
 * Decode and validate data[0..len) into *out (owned by the caller:
 * fleetsteer_msg_dispose; zeroed on error). Returns 0, HERALD_ETOOBIG (len
 * over FLEETSTEER_MAX_BYTES), HERALD_EUNSUPPORTED (another version),
 * HERALD_EPARSE (anything else malformed) or HERALD_ENOMEM; `reason` as in
 * fleetlog_decode.
 */
int fleetsteer_decode(const char *data, size_t len, fleetsteer_msg_t *out, char *reason,
                      size_t reasonlen);

/** Longest stream id in a published steering message ("<ms>-<seq>"). */
#define FLEETSTEER_MAX_ID 41

/**
 * Split what FLEETKEY_LUA_STEER publishes on the steer channel, "<stream
 * id> <message>": the id of the message's entry in the steer stream
 * (digits, '-', digits; at most FLEETSTEER_MAX_ID characters), one space,
 * the message (fleetsteer_decode). data[0..len) is not NUL-terminated and
 * never read past len. On success id (FLEETSTEER_MAX_ID + 1 bytes) holds
 * the id, NUL-terminated, and *msg, *msglen the message (pointing into
 * data). Returns 0 or HERALD_EPARSE (`reason` as in fleetlog_decode).
 */
int fleetsteer_published_split(const char *data, size_t len, char *id, const char **msg,
                               size_t *msglen, char *reason, size_t reasonlen);

/** Free a message's strings and zero it. NULL is a no-op. */
void fleetsteer_msg_dispose(fleetsteer_msg_t *m);

/**
 * Apply m to the map: PIN/BAN/LEARNED through pagemap_edge_set_state,
 * FORGET_EDGE through pagemap_forget_edge, FORGET_PAGE through
 * pagemap_forget_page. Nothing to unpin or forget is not an error.
 * Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int fleetsteer_apply(pagemap_t *pm, const fleetsteer_msg_t *m);

/** Whether op sets a state kept in the pins hash (PIN, BAN). */
bool fleetsteer_op_is_state(fleetsteer_op_t op);

/**
 * The pins-hash field of an edge message: page key, a newline, asset key.
 * *out malloc'd, owned by the caller. Returns 0, HERALD_EINVAL
 * (FORGET_PAGE or invalid keys) or HERALD_ENOMEM.
 */
int fleetsteer_field(const fleetsteer_msg_t *m, char **out, size_t *outlen);

/**
 * Make the map's pins and bans equal to `set` (n messages, borrowed: the
 * values of the pins hash; only PIN and BAN count): each is applied, and
 * every pinned or banned edge of the map not in the set is learned again
 * (its pin or ban was lifted while this instance was away). *changed (may
 * be NULL) gets the number of edges whose state changed. Returns 0,
 * HERALD_EINVAL or HERALD_ENOMEM (partly applied; call again).
 */
int fleetsteer_sync(pagemap_t *pm, const fleetsteer_msg_t *set, size_t n, size_t *changed);

/**
 * The map's pins and bans as PIN/BAN messages of `instance` with
 * sequence numbers first_seq, first_seq + 1, ... and time t_ms (to
 * publish them into a Redis that lost them). Edges whose keys cannot be
 * carried (fleetsteer_encode would refuse them) are left out. *out
 * malloc'd array (NULL when *n == 0), each message and the array freed by
 * fleetsteer_msgs_free. Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int fleetsteer_collect(pagemap_t *pm, const char *instance, uint64_t first_seq, int64_t t_ms,
                       fleetsteer_msg_t **out, size_t *n);

/** Dispose n messages and free the array. NULL is a no-op. */
void fleetsteer_msgs_free(fleetsteer_msg_t *v, size_t n);

#endif
