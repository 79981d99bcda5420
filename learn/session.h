/*
 * A client connection's page visits: which requests open a visit, which
 * belong to one (attribution), when a visit's window closes, and what the
 * connection already requested or was pushed. The proxy keeps one session
 * per client connection (with the connection, not under the map's lock),
 * feeds it requests with normalised URL keys and a monotonic clock, and
 * drives a timer from session_next_due(). No network, no locks, no logging.
 *
 * Attribution. A page request (session_classify) opens a visit. Later
 * requests for subresources on the same connection within the learn window
 * belong to a visit: the one whose page URL their Referer names, or whose
 * fetched or pushed items it names (a stylesheet's fonts), or, with no
 * Referer, the most recent. A Referer naming nothing of this connection
 * attributes nothing (a forged or cross-connection one).
 *
 * One visit's weight. A connection teaches a page once: the second visit of
 * the same page key on one connection is attributed as usual but commits
 * nothing (visit_page_t.counts), and a template once: a second sibling page
 * on the connection teaches its own page only (counts_template). Requests
 * repeated on one connection, however many, move a page's (or template's)
 * plan by at most one visit. At most
 * SESSION_MAX_OPEN visits keep their window open; a page-after-page client
 * (a crawler) closes the oldest early.
 *
 * Navigations (visit.h). A page visit whose Referer names another page of
 * the same origin is a transition from it; the session lets each source
 * page A (and A's template) count one navigation away, and each (A, B) one
 * navigation, per connection (SESSION_NAVS remembered), however often the
 * client goes back and forth.
 *
 * Prefetches. A page request carrying `Sec-Purpose: prefetch`
 * (session_classify_purpose) is no visit: the proxy opens it with
 * visit_page_t.prefetch, sends it no 103 and no push, and the session keeps
 * its visit dormant for SESSION_PREFETCH_MS (at most SESSION_MAX_DORMANT).
 * When the browser opens the page from its prefetch cache, no request for
 * it arrives; its subresources then come with `Referer: <page>`:
 * session_attribute() activates the dormant visit (its window starts then)
 * and attributes them to it, as a navigation's would be; a navigation
 * onward from the page (session_open with that Referer) activates it too.
 * A navigation request for the page itself means the prefetch was not
 * used: the dormant visit is handed over and commits nothing but the
 * response facts.
 */
#ifndef HERALD_SESSION_H
#define HERALD_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagemap.h"
#include "visit.h"

/** Visits with an open window per connection, at most. */
#define SESSION_MAX_OPEN 8
/** URLs remembered per connection (requested, pushed); the oldest are forgotten. */
#define SESSION_URLS 512
/** Page keys a connection has taught, remembered (one visit's weight each). */
#define SESSION_PAGES 64
/** Transitions (sources and source -> page pairs) a connection has taught, remembered. */
#define SESSION_NAVS 64
/** How long a prefetch's dormant visit waits for the visitor (Chrome's prefetch lifetime). */
#define SESSION_PREFETCH_MS (5 * 60 * 1000)
/** Dormant prefetch visits per connection, at most (the oldest is handed over). */
#define SESSION_MAX_DORMANT 8

typedef struct session session_t;

/** How a request head looks to the learner. */
typedef enum session_class {
    SESSION_OTHER = 0,  /* not GET/HEAD: teaches nothing */
    SESSION_PAGE,       /* a navigation: opens a visit */
    SESSION_MAYBE_PAGE, /* no Sec-Fetch-*, Accept absent or only a wildcard: a page when it has
                           no Referer and no visit is open (session_resolve) */
    SESSION_SUBRESOURCE,
    SESSION_PREFETCH, /* a page request with Sec-Purpose: prefetch (session_classify_purpose) */
} session_class_t;

/**
 * Classify a request head: GET/HEAD with Sec-Fetch-Dest: document or
 * Sec-Fetch-Mode: navigate is a page; without any Sec-Fetch-Dest/-Mode, an
 * Accept naming text/html is a page, and an absent or wildcard-only Accept
 * (as curl and nghttp send) MAYBE_PAGE; other GET/HEAD are subresources;
 * anything else OTHER. Header values NULL = absent. A page is confirmed
 * only by its text/html response (visit_page_head).
 */
session_class_t session_classify(const char *method, const char *sec_fetch_dest,
                                 const char *sec_fetch_mode, const char *accept);

/**
 * Refine a class with the request's `Sec-Purpose` header (NULL = absent):
 * a PAGE or MAYBE_PAGE request whose Sec-Purpose names `prefetch` (also
 * "prefetch;prerender") is SESSION_PREFETCH: not a visit, no 103, no push
 * (session_open with visit_page_t.prefetch). Other classes come back
 * unchanged.
 */
session_class_t session_classify_purpose(session_class_t cls, const char *sec_purpose);

/**
 * Whether a navigation is a reload, by its request headers (NULL =
 * absent): Cache-Control max-age=0 or no-cache, or Pragma no-cache, as
 * browsers send on reload. A reload is no transition (visit_page_t.reload).
 */
bool session_is_reload(const char *cache_control, const char *pragma);

/**
 * A new empty session whose visits keep their window open for window_ms.
 * Returns 0, HERALD_EINVAL (NULL out) or HERALD_ENOMEM.
 */
int session_create(uint64_t window_ms, session_t **out);

/**
 * Free the session. Visits still listed lose the list's reference (expire
 * them first with session_expire(s, UINT64_MAX, ...) to commit them).
 * NULL is a no-op.
 */
void session_destroy(session_t *s);

/**
 * MAYBE_PAGE resolved: a page when there is no Referer and no open visit at
 * `now`, else a subresource. Other classes come back unchanged.
 */
session_class_t session_resolve(session_t *s, session_class_t cls, bool has_referer, uint64_t now);

/**
 * Open a visit for a page request. pg->counts and pg->counts_template are
 * set here (false when this session already opened one for the page key,
 * resp. the template key), and the transition's weight
 * (visit_set_nav_counts: the first navigation away from its source page,
 * the first to this page from it, the same for the source's template). The
 * session keeps one reference; *out gets another, for the caller. Past
 * SESSION_MAX_OPEN open visits the oldest are due at once (session_expire
 * hands them over).
 * With pg->prefetch the visit is dormant (see the top): counts are decided
 * when it is activated; past SESSION_MAX_DORMANT the oldest dormant one is
 * handed over. A request for a page with a dormant visit hands that over
 * (a navigation: the prefetch was not used; a prefetch: it replaces it); a
 * navigation whose pg->referer names a dormant visit's page activates it
 * first.
 * Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int session_open(session_t *s, visit_page_t *pg, visit_t **out);

/**
 * The open visit a subresource request at `now` belongs to, by its Referer
 * (`referer_key`, normalised; NULL = none), or NULL. When no open visit
 * matches and the Referer names the page of a dormant prefetch visit (not
 * answered non-HTML), that visit is activated (its window starts at `now`;
 * what it may teach is decided as in session_open, and nothing when that
 * cannot be remembered for lack of memory) and returned. No reference is
 * taken: the pointer is valid until the next session_expire or
 * session_destroy.
 */
visit_t *session_attribute(session_t *s, const char *referer_key, uint64_t now);

/**
 * Hand over visits that are done with the session: those whose window
 * ended by `now` (all of them with UINT64_MAX), that are no longer OPEN
 * (not a page after all), or that overflowed SESSION_MAX_OPEN. Each is
 * removed from the list, moved to EXPIRED if it was OPEN, and put in
 * out[0..max) with the list's reference (the caller unrefs). Returns the
 * number put; call again while it returns max.
 */
size_t session_expire(session_t *s, uint64_t now, visit_t **out, size_t max);

/** The earliest clock value at which session_expire has something, UINT64_MAX when none. */
uint64_t session_next_due(const session_t *s);

/** Number of visits listed (open or waiting to be handed over). */
size_t session_visits(const session_t *s);

/**
 * Remember that the client requested `key` on this connection (a plan item
 * it asked for itself is not pushed again). 0 or HERALD_ENOMEM.
 */
int session_note_requested(session_t *s, const char *key);
bool session_requested(const session_t *s, const char *key);
/** Remember that herald promised `key` on this connection (the push diary). 0 or HERALD_ENOMEM. */
int session_note_pushed(session_t *s, const char *key);
bool session_pushed(const session_t *s, const char *key);

#endif
