/*
 * The fleet's shared map (docs/fleet.md): with --shared-map, this instance
 * appends its committed visit evidence to Redis in batches, folds what the
 * other instances appended into its own map with learn/'s code
 * (fleetfold.h), publishes the operator's pins, bans and forgets
 * (fleetsteer.h) and applies the others', and keeps a client from
 * teaching a page more than once per window across the fleet
 * (fleetmark.h).
 *
 * Two threads talk to Redis (blocking hiredis calls with timeouts: the
 * sync thread, and a subscriber for the steering channel); the workers
 * and the admin only hand them records under a mutex, so planning and
 * request handling never wait for Redis. The map is loaded from Redis in
 * sharedmap_start(), before the workers accept connections.
 *
 * main.c owns the sharedmap_t and hands it to the workers (their
 * learning) and the admin; the functions below take it, and do nothing
 * (or the local-only thing) when it is NULL (--shared-map is off). Built
 * without hiredis, sharedmap_start() refuses the option with a message.
 */
#ifndef HERALD_SHAREDMAP_H
#define HERALD_SHAREDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "fleetsteer.h"
#include "pagemap.h"
#include "visit.h"
#include "config.h"
#include "exchange.h"

typedef struct sharedmap sharedmap_t;

/**
 * Check the --shared-map options before anything is set up: the URL, the
 * password file (readable, not empty), the prefix; built without hiredis,
 * the option itself. Returns 0 (also when the option is off), or
 * HERALD_EINVAL / HERALD_EUNSUPPORTED with a message in err[errlen].
 */
int sharedmap_check(const config_t *cfg, char *err, size_t errlen);

/**
 * With cfg->shared_map set: read the password file, connect, load the
 * shared map into `pm` (base, log, pins; bounded by short timeouts: an
 * unreachable Redis is logged and the instance starts from what it has),
 * then start the sync thread. `pm` is borrowed and must outlive
 * sharedmap_stop(). *out is NULL when the option is off. Returns 0, or
 * HERALD_EINVAL / HERALD_EUNSUPPORTED (built without hiredis) with a
 * message in err[errlen] (the caller exits).
 */
int sharedmap_start(const config_t *cfg, pagemap_t *pm, sharedmap_t **out, char *err,
                    size_t errlen);

/** Send what is left (bounded by a short timeout), stop the thread, free. NULL: no-op. */
void sharedmap_stop(sharedmap_t *s);

/**
 * visit_commit with the fleet: the client's mark decides whether the
 * visit may count (visit_restrict), and what the map took is added to the
 * next batch. Without the shared map: visit_commit. Any worker thread.
 */
int sharedmap_commit(sharedmap_t *s, visit_t *v, pagemap_t *pm, int64_t wall_ms, bool supplement);

/**
 * The address that identifies ex's client for the poisoning bound: with
 * --shared-map and --trust-forwarded=on, the last address of the request's
 * X-Forwarded-For (what the balancer in front saw), else ex->client_addr.
 * Returns buf (len bytes) or ex->client_addr.
 */
const char *sharedmap_client(const exchange_t *ex, char *buf, size_t len);

/**
 * An operator's change, applied locally already: publish it to the fleet.
 * `asset` NULL for FLEETSTEER_FORGET_PAGE. Queued, never blocks; no-op
 * when s is NULL. Any thread.
 */
void sharedmap_steer(sharedmap_t *s, fleetsteer_op_t op, const char *page, const char *asset);

/** True when s is not NULL and Redis is not answering. */
bool sharedmap_degraded(sharedmap_t *s);

/** The shared map's state for /stats (a new object), or NULL when s is NULL. */
json_t *sharedmap_stats_json(sharedmap_t *s);

/**
 * Append the shared map's Prometheus metrics to the malloc'd `text`
 * (realloc'd; returned). Unchanged when s is NULL.
 */
char *sharedmap_metrics_append(sharedmap_t *s, char *text);

#endif
