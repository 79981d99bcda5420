/*
 * One page visit as herald sees it on one client connection: the page
 * request, what discovery found in the page (HTML, CSS, the origin's Link
 * headers), what the client fetched after it, and what herald delivered on
 * it. A visit collects these events and commits them once to the learned
 * map (pagemap_commit_visit); the evidence rules themselves live in the
 * map. Which requests belong to which visit is decided by session.h.
 *
 * The proxy drives a visit from its exchanges; everything here is plain
 * data over strings and clock values (no network, no locks): a visit is
 * used by one thread at a time. Allocation failure comes back as
 * HERALD_ENOMEM and leaves the visit consistent.
 *
 * Navigations. A page request names the page it came from in its Referer;
 * a same-origin Referer that is not the page itself, on a navigation that
 * is not a reload, makes the visit a transition from that page (A -> this
 * page B), committed with the visit (pagemap_commit_navigation) when B is
 * served 2xx HTML, once per session per A and per (A, B) (session.h). Every
 * committed visit also reports B's response facts for prefetch safety.
 *
 * Prefetches. A page request carrying `Sec-Purpose: prefetch` opens a
 * dormant visit (visit_page_t.prefetch): it collects the page's response and
 * discovery like any visit but attributes nothing and teaches nothing until
 * the session activates it (a request whose Referer names its page: the
 * visitor opened the page from the browser's prefetch cache). Never
 * activated, it reports only its response facts.
 *
 * Lifetime: refcounted. visit_create() returns one reference; every holder
 * (the session's list, an exchange, a discovery job in flight) takes its
 * own with visit_ref() and drops it with visit_unref(); the last frees it.
 *
 * States (visit_set_state() asserts the order):
 *   VISIT_OPEN       within the learn window: follow-ups are attributed to it
 *   VISIT_EXPIRED    handed over by the session (window over, connection
 *                    gone, or not a page after all): waits for the page's
 *                    response and the discovery jobs (holds) to finish
 *   VISIT_COMMITTED  committed, or discarded; later events are ignored except
 *                    the discovery of stylesheets herald fetched itself
 */
#ifndef HERALD_VISIT_H
#define HERALD_VISIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "pagemap.h"

/** Items one visit collects at most (the map counts PAGEMAP_MAX_VISIT_ITEMS). */
#define VISIT_MAX_ITEMS PAGEMAP_MAX_VISIT_ITEMS
/** Stylesheets herald may fetch itself per visit (visit_next_chase). */
#define VISIT_MAX_CHASES 8
/** Order bases: HTML first, then Link headers, then CSS-found, then follow-ups. */
#define VISIT_ORDER_LINK 2000u
#define VISIT_ORDER_CSS 4000u
#define VISIT_ORDER_FOLLOWUP 8000u

typedef struct visit visit_t;

typedef enum visit_state {
    VISIT_OPEN,
    VISIT_EXPIRED,
    VISIT_COMMITTED,
} visit_state_t;

/** Facts of the page request. Strings are copied. */
typedef struct visit_page {
    const char *url;          /* normalised absolute URL of the page (required) */
    const char *page_key;     /* required */
    const char *template_key; /* NULL or equal to page_key: none */
    const char *authority;    /* host[:port] of the page (required) */
    uint64_t t_ms;            /* monotonic clock at the request */
    bool authorized;          /* the request carried Authorization: teaches nothing */
    bool multiplexed;         /* HTTP/2: the page's subresources come on this connection */
    bool cookie;              /* the request carried a Cookie header */
    bool counts;              /* false: the client already taught this page (session.h) */
    bool counts_template;     /* false: ... or this template (then only the page learns) */
    const char *client;       /* the client's address, for herald's own fetches (NULL none) */
    const char *referer;      /* the request's Referer, normalised absolute URL, NULL none */
    bool reload;              /* a reload (session_is_reload): no transition */
    bool prefetch;            /* Sec-Purpose: prefetch: a dormant visit (session_open) */
} visit_page_t;

/**
 * A new OPEN visit with one reference. Returns 0, HERALD_EINVAL (a
 * required string missing) or HERALD_ENOMEM (*out untouched).
 */
int visit_create(const visit_page_t *pg, visit_t **out);
void visit_ref(visit_t *v);
/** Drop a reference; the last one frees the visit. NULL is a no-op. */
void visit_unref(visit_t *v);

visit_state_t visit_state(const visit_t *v);
/** Move to a later state (OPEN -> EXPIRED -> COMMITTED, or OPEN -> COMMITTED); aborts otherwise. */
void visit_set_state(visit_t *v, visit_state_t to);

/** The page's strings and clock, as given at creation: valid while a reference is held. */
const char *visit_client(const visit_t *v); /* "" when none */
const char *visit_url(const visit_t *v);
const char *visit_page_key(const visit_t *v);
const char *visit_template_key(const visit_t *v); /* NULL when none */
const char *visit_authority(const visit_t *v);
uint64_t visit_started(const visit_t *v);
bool visit_authorized(const visit_t *v);

/**
 * The page this visit's navigation came from, derived at creation from
 * visit_page_t.referer: its page key and template key (NULL when the
 * template is the page key), or NULL when there is none (no Referer,
 * another origin, the page itself, a reload, herald's rule-set URL).
 */
const char *visit_from_page_key(const visit_t *v);
const char *visit_from_template_key(const visit_t *v);

/**
 * One session's weight for the visit's transition (pagemap_nav_t.count_*),
 * decided by session.c when it opens or activates the visit. All false
 * until then: a visit made outside a session commits no transition.
 */
void visit_set_nav_counts(visit_t *v, bool from, bool pair, bool template_from, bool template_pair);

/** True for a prefetch's visit the session has not activated: it attributes and teaches nothing. */
bool visit_dormant(const visit_t *v);

/**
 * Activate a dormant visit (session.c): from now on it is an ordinary
 * visit that teaches its page (`counts`) and template (`counts_template`).
 * No effect on a visit that is not dormant.
 */
void visit_activate(visit_t *v, bool counts, bool counts_template);

/**
 * The client's cache-digest cookie, taken over (*d is zeroed; the visit
 * disposes it). Misses of edges it names are not counted.
 */
void visit_set_digest(visit_t *v, digest_t *d);

/* ---- the page's own response ------------------------------------------ */

/**
 * The page's final response head: its status, whether it is HTML (a
 * non-HTML answer teaches nothing: the session hands it over at once), the
 * origin's think time (< 0 unknown) and whether it sets a cookie.
 */
void visit_page_head(visit_t *v, int status, bool is_html, double think_ms, bool set_cookie);
/** The page response's validators (pagemap_visit_t.validator), when discovery runs on it. */
void visit_set_validator(visit_t *v, uint64_t validator);
/** The page's response ended (ok) or failed / was abandoned: then nothing is committed. */
void visit_page_end(visit_t *v, bool ok, uint64_t html_size);
/** True once visit_page_head said the page was not HTML (before it: false). */
bool visit_not_html(const visit_t *v);
bool visit_page_done(const visit_t *v);

/** Discovery work in flight for this visit: the commit waits for it. */
void visit_hold(visit_t *v);
void visit_release(visit_t *v);
/** Page done and no hold (in any state): nothing is pending for the visit. */
bool visit_idle(const visit_t *v);
/** EXPIRED and idle: visit_commit may run. */
bool visit_ready(const visit_t *v);

/* ---- evidence ---------------------------------------------------------- */

/** One asset discovery found (borrowed for the call; strings copied). */
typedef struct visit_found {
    const char *url, *key;
    pagemap_kind_t kind;
    const char *as; /* NULL: the kind's default */
    pagemap_cors_t crossorigin;
    unsigned order; /* within its source; the visit adds the source's base */
    uint32_t group; /* alternates set, 0 none */
    bool blocking;
    bool strong;
} visit_found_t;

/**
 * Discovery on this visit found f. `source` is one of PAGEMAP_SRC_HTML,
 * _CSS, _LINK. The first discovery of an item decides its kind, `as` and
 * CORS mode (over a follow-up's guess). Returns 0 or HERALD_ENOMEM; an item
 * past VISIT_MAX_ITEMS or on a committed visit is ignored.
 */
int visit_found(visit_t *v, const visit_found_t *f, unsigned source);

/** Discovery ran on the page's HTML (PAGEMAP_SRC_HTML) or on a stylesheet of it (_CSS). */
void visit_scanned(visit_t *v, unsigned source);

/** A follow-up request attributed to this visit (borrowed for the call). */
typedef struct visit_fetch {
    const char *url, *key;
    pagemap_kind_t kind; /* a guess (session_kind_guess) */
    bool kind_sure;      /* from Sec-Fetch-Dest: not revised by the response */
    bool conditional;    /* the request carried If-None-Match / If-Modified-Since */
    bool browser;        /* the request carried Sec-Fetch-* */
} visit_fetch_t;

/**
 * The client requested f after the page. It counts as fetched once
 * visit_fetch_served() reports its response. 0 or HERALD_ENOMEM.
 */
int visit_fetch(visit_t *v, const visit_fetch_t *f);

/**
 * The response to a follow-up of key was served to the client: the fetch
 * counts; `m` (borrowed, may be NULL) is kept to record the asset's
 * metadata at commit (the first visit of a page knows no edge yet); its
 * content type refines the kind of an item only follow-ups know. A 304
 * makes the fetch conditional. 0 or HERALD_ENOMEM.
 */
int visit_fetch_served(visit_t *v, const char *key, const pagemap_asset_meta_t *m);

typedef enum visit_delivery {
    VISIT_PUSHED,         /* herald promised it on this visit */
    VISIT_PUSH_CANCELLED, /* the client reset the push: it had it */
    VISIT_PUSH_COMPLETED, /* the pushed stream was delivered: the client uses subresources */
    VISIT_HINTED,         /* herald named it in a 103 */
    VISIT_SKIPPED,        /* planned, not delivered: the client had it */
} visit_delivery_t;

/** What herald did with a planned asset on this visit (url/key borrowed). 0 or HERALD_ENOMEM. */
int visit_delivered(visit_t *v, const char *url, const char *key, visit_delivery_t what);

/**
 * True when key is an item of this visit with any of `sources`
 * (PAGEMAP_SRC_* bits): a Referer naming it attributes to this visit.
 */
bool visit_has(const visit_t *v, const char *key, unsigned sources);

/**
 * The next stylesheet this visit's CSS imports that neither the client
 * fetched nor herald pushed nor chased yet, on the page's origin, at most
 * VISIT_MAX_CHASES per visit: marks it chased and sets *url and *key
 * (valid while the visit lives). False when none is left.
 */
bool visit_next_chase(visit_t *v, const char **url, const char **key);

/**
 * Commit what the visit collected since the last commit to `pm` (once as a
 * visit, then as supplements: pagemap_visit_t.supplement), with the asset
 * metadata of served follow-ups. The first (non-supplement) commit also
 * reports the navigation (pagemap_commit_navigation: the page's response
 * facts, and its transition when it counts) unless the page failed or got
 * no response. The visit's evidence is not committed when the page failed,
 * was not HTML, or the visit does not count (a dormant prefetch never does). `wall_ms` is the wall
 * clock stored in the map. Returns 0, or the map's error (the visit stays usable).
 */
int visit_commit(visit_t *v, pagemap_t *pm, int64_t wall_ms, bool supplement);

/**
 * What a commit handed to the map, for the fleet's evidence log
 * (fleetlog.h): `visit` gets the visit as committed (pagemap_commit_visit
 * returned 0), then `asset` each metadata record the map took
 * (pagemap_observe_asset returned 0). Everything is borrowed for the call;
 * either callback may be NULL. Failures are the tap's to count: the commit
 * is done.
 *
 * With `defer`, the tap is offered the visit and its metadata records
 * instead of the map (the fleet applies them once Redis has decided on
 * the client's mark): a callback that returns true took the record and
 * the map does not get it here; one that returns false (or is NULL)
 * leaves it to the map, as without `defer` (the visit then is not handed
 * to the tap again). Without `defer` the return values are ignored.
 */
typedef struct visit_tap {
    bool (*visit)(void *ctx, const pagemap_visit_t *pv);
    bool (*asset)(void *ctx, const char *key, const pagemap_asset_meta_t *m);
    void *ctx;
    bool defer;
} visit_tap_t;

/** visit_commit, calling `tap` (NULL: none) with what was committed. */
int visit_commit_tap(visit_t *v, pagemap_t *pm, int64_t wall_ms, bool supplement,
                     const visit_tap_t *tap);

/**
 * Lower what the visit may teach, never raise it: counts &= page,
 * counts_template &= tpl (a fleet-wide client mark said this client
 * already taught the page or template: fleetmark.h). Call before the
 * commit.
 */
void visit_restrict(visit_t *v, bool page, bool tpl);

/** Whether the page was scanned on this visit (so herald may chase its imports). */
bool visit_sampled(const visit_t *v);
void visit_set_sampled(visit_t *v);

/**
 * After the commit, while herald fetches the stylesheets the visit's CSS
 * imports (visit_next_chase) and commits what they name as supplements, the
 * visit is "chasing": discovery still lands in it. Set by the proxy.
 */
bool visit_chasing(const visit_t *v);
void visit_set_chasing(visit_t *v, bool on);

#endif
