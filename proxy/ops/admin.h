/*
 * The admin listener (docs/architecture.md, "Admin"): a small HTTP/1.1 server
 * (llhttp) answering JSON (jansson) about and to the learned map, plus
 * /stats, Prometheus /metrics, /healthz and one self-contained HTML page.
 *
 * Threads. It runs on the main thread's loop, which otherwise only watches
 * signals: admin work (a large /export, an /import) never delays a worker's
 * traffic. It reads the shared map through pagemap's locked calls, the
 * counters through metrics_collect(), and is closed before the workers are
 * told to stop.
 *
 * Connections. One request per connection: every response carries
 * `Connection: close`; the request must arrive within 30 s. A request body is buffered up to
 * ADMIN_MAX_BODY (larger: 413). With a token, every request but GET / (a static page holding no
 * data; its script sends the token it is given) needs `Authorization: Bearer TOKEN`, compared in
 * constant time.
 */
#ifndef HERALD_ADMIN_H
#define HERALD_ADMIN_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "metrics.h"

/* the fleet's shared map (proxy/deliver/sharedmap.h) */
typedef struct sharedmap sharedmap_t;

typedef struct admin admin_t;
typedef struct pagemap pagemap_t;
typedef struct state state_t;

/** Largest request body accepted (an /import document); larger gets 413. */
#define ADMIN_MAX_BODY (64u * 1024 * 1024)

/**
 * Work out the admin token from cfg (--admin-token, else the first line of
 * --admin-token-file) into out[cap] ("" = none) and check the listener may
 * start: a non-loopback --admin needs a token. Returns 0, or HERALD_EINVAL
 * with a message in err[errlen] (the caller exits with status 2).
 */
int admin_resolve_token(const config_t *cfg, char *out, size_t cap, char *err, size_t errlen);

/**
 * Start listening on cfg->admin on `loop`. Everything is borrowed and must
 * outlive admin_close()'s completion: cfg (read for --min-confidence and the
 * origin address; the caller may update it on this loop's thread), the
 * gauges of the `nworkers` running workers (`gauges` called with
 * `gauges_arg` from this loop's thread; NULL: none), the map, `shared`
 * (the fleet's shared map: steering is published through it, its state
 * shown; NULL: no --shared-map) and `st` (may be NULL: no --state).
 * *out is owned by the caller until admin_close(). Returns 0 or a libuv
 * error (address in use, ...).
 */
int admin_start(uv_loop_t *loop, const config_t *cfg, const char *token, int nworkers,
                metrics_gauges_fn gauges, void *gauges_arg, pagemap_t *pm, sharedmap_t *shared,
                state_t *st, admin_t **out);

/** Replace the token (SIGHUP; same thread as the loop). "" = none. */
void admin_set_token(admin_t *a, const char *token);

/**
 * Stop accepting, close idle connections; requests in progress finish. The
 * object frees itself once every handle is closed. NULL is a no-op.
 */
void admin_close(admin_t *a);

/** The embedded HTML page (admin_page.c), NUL-terminated. */
extern const char admin_page_html[];

#endif
