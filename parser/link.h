/*
 * The HTTP Link header (RFC 8288): parse the links an origin names (in a
 * response or a 103) and format the preload/preconnect links herald sends in
 * 103 Early Hints. Pure; no logging.
 */
#ifndef HERALD_LINK_H
#define HERALD_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include "asset.h"

/** Relation types herald acts on, as bits of link_t.rel; any other is LINK_REL_OTHER. */
enum link_rel {
    LINK_REL_PRELOAD = 1u << 0,
    LINK_REL_PRECONNECT = 1u << 1,
    LINK_REL_MODULEPRELOAD = 1u << 2,
    LINK_REL_DNS_PREFETCH = 1u << 3,
    LINK_REL_STYLESHEET = 1u << 4,
    LINK_REL_PREFETCH = 1u << 5,
    LINK_REL_ICON = 1u << 6,
    LINK_REL_OTHER = 1u << 15,
};

/** One link-value. From link_parse() it owns its strings (freed by link_list_dispose). */
typedef struct link {
    char *url;    /* absolute http(s) URL, resolved against the base (malloc'd) */
    unsigned rel; /* LINK_REL_* bits; 0 when the link had no rel */
    char *as;     /* "as" lower-cased (malloc'd) or NULL */
    asset_crossorigin_t crossorigin; /* bare or "anonymous" -> ANONYMOUS */
    char *type;                      /* malloc'd or NULL */
    char *media;                     /* malloc'd or NULL */
    char *anchor;                    /* as written, unresolved (malloc'd) or NULL */
    bool nopush;                     /* "nopush" present, with or without a value */
} link_t;

/** A growable array of links; zero-initialise, then free with link_list_dispose(). */
typedef struct link_list {
    link_t *v;
    size_t n, cap;
} link_list_t;

/**
 * Parse one Link header field value value[0..len) (a comma-separated list of
 * link-values; call once per header line to gather several) and append its
 * links to `list`, which the caller zero-initialises and frees with
 * link_list_dispose(). uri-references are resolved against the absolute URL
 * `base`; links whose target is not http(s) (or does not resolve) are
 * skipped. When a parameter repeats, its first occurrence wins (RFC 8288
 * §3). A trailing ';' before ',' or the end is tolerated; unknown parameters
 * (title*, hreflang, ...) are ignored.
 * Returns 0; HERALD_EPARSE with *reason set to a static string (unterminated
 * '<', missing '>', bad parameter, unterminated quote...), in which case the
 * list is left as it was before the call; or HERALD_ENOMEM (list unchanged).
 * `reason` may be NULL.
 */
int link_parse(const char *value, size_t len, const char *base, link_list_t *list,
               const char **reason);

/** Free every link's strings and the array; the list is empty (reusable) afterwards. */
void link_list_dispose(link_list_t *list);

/**
 * Format one link-value for a 103 or a response: `<url>; rel=preload;
 * as=style; crossorigin; type="font/woff2"; nopush`. The rel parameter lists
 * the bits of link->rel by name (quoted when more than one; LINK_REL_OTHER is
 * not printed). When `page_url` is non-NULL and link->url has the page's
 * origin, the target is written path-absolute (`</app.css>`), as h2o and
 * nghttpx do, which keeps 103s short; otherwise absolute. Values that are
 * not tokens are quoted. `as`, `type` and `media` are printed when non-NULL,
 * anchor never. Borrows everything; *out is malloc'd and NUL-terminated.
 * Returns 0; HERALD_EINVAL when link->url is not an absolute http(s) URL or
 * a value holds control characters, or `rel` is empty; HERALD_ENOMEM.
 */
int link_format(const link_t *link, const char *page_url, char **out);

/**
 * link_format() for n links joined with ", " into one header value.
 * 0, HERALD_EINVAL (n == 0 or a bad link), HERALD_ENOMEM.
 */
int link_format_list(const link_t *links, size_t n, const char *page_url, char **out);

/**
 * Shorthands filling a link_t for the two links herald emits: a preload of
 * `url` (borrowed) `as` with the given CORS mode, optional type (NULL) and
 * nopush; and a preconnect to `origin` (borrowed). The result borrows the
 * strings: do not pass it to link_list_dispose.
 */
link_t link_preload(const char *url, const char *as, asset_crossorigin_t crossorigin,
                    const char *type, bool nopush);
link_t link_preconnect(const char *origin, asset_crossorigin_t crossorigin);

#endif
