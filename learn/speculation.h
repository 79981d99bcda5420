/*
 * Speculation Rules that herald serves for learned next pages
 * (docs/learning.md, "Next pages"): the deny patterns that keep a URL out of
 * every rule set whatever was learned, herald's own rule-set URL, and the
 * JSON rule set built from a selection (pagemap_speculation). Pure: no
 * network, no logging; allocation failure is HERALD_ENOMEM.
 */
#ifndef HERALD_SPECULATION_H
#define HERALD_SPECULATION_H

#include <stdbool.h>
#include <stddef.h>

#include "pagemap.h"

/** Path of herald's own rule set; the page it is for goes in `?page=`. Never learned. */
#define SPECULATION_RULES_PATH "/.well-known/herald/speculation.json"
/** Media type of a rule set. */
#define SPECULATION_MEDIA_TYPE "application/speculationrules+json"
/** A URL whose path and query are longer than this is denied (speculation_denied). */
#define SPECULATION_MAX_URL 2048

/**
 * The default deny patterns (--speculation-deny): logout, log-out, log_out,
 * signout, sign-out, sign_out, logoff, log-off, delete, remove, destroy,
 * unsubscribe, cancel, cart, basket, checkout, admin, and the query keys
 * do= and action=. Static; *n gets the count.
 */
const char *const *speculation_default_deny(size_t *n);

/**
 * Whether `url` (absolute or a path; borrowed) matches a deny pattern. The
 * path and query are percent-decoded and compared case-insensitively; the
 * scheme, authority and fragment are not looked at. A pattern ending in
 * '=' ("do=") matches a query key equal to what precedes the '='; any other
 * pattern matches when it occurs anywhere in the path or the query (keys
 * and values: "cart" denies /cart, /shop/add-to-cart.php and
 * ?page=cart). Empty patterns are ignored. `patterns` NULL = the defaults
 * (n ignored). A NULL url, or a path and query longer than
 * SPECULATION_MAX_URL, is denied: what cannot be read is never prefetched.
 */
bool speculation_denied(const char *url, const char *const *patterns, size_t n);

/** True when url (absolute, a path or a page key) names herald's rule set (SPECULATION_RULES_PATH).
 */
bool speculation_is_rules_url(const char *url);

/** The action a rule set asks of the browser (--speculation). */
typedef enum speculation_action {
    SPECULATION_PREFETCH,
    SPECULATION_PRERENDER,
} speculation_action_t;

/**
 * The rule set of a selection as JSON:
 * {"prefetch":[{"source":"list","urls":[...],"eagerness":"immediate"},
 * {"source":"list","urls":[...],"eagerness":"moderate"}]}: one list rule
 * per eagerness that has URLs, in the selection's order ("prerender"
 * instead of "prefetch" for SPECULATION_PRERENDER); an empty selection
 * gives {"prefetch":[]}. `spec` is borrowed; *json (NUL-terminated,
 * malloc'd) is owned by the caller (free()); *len (may be NULL) gets its
 * length. Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int speculation_rules_json(const pagemap_spec_t *spec, speculation_action_t action, char **json,
                           size_t *len);

#endif
