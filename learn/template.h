/*
 * Page keys and template keys (docs/architecture.md, "Learning"). A page key is the
 * authority followed by the already-normalised path and query
 * ("example.com/item/123?x=1"). A template key generalises the parts of a
 * page key that look like identifiers so that sibling pages
 * ("/item/123", "/item/456") share one learned entry: the id segment
 * becomes "*", giving "example.com/item/" followed by "*".
 * Pure functions; no logging, no locks.
 */
#ifndef HERALD_TEMPLATE_H
#define HERALD_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

/**
 * Build the page key `authority` + `pathquery` (pathquery is the normalised
 * path and query, starting with '/'; a missing leading '/' is added).
 * Both inputs are borrowed for the call. On success *out is a malloc'd
 * NUL-terminated string owned by the caller (free()).
 * Returns 0, HERALD_EINVAL (NULL or empty authority) or HERALD_ENOMEM.
 */
int template_page_key(const char *authority, const char *pathquery, char **out);

/**
 * The page key of a normalised absolute URL ("https://e.com/a?x=1" gives
 * "e.com/a?x=1"): its authority and its path and query as
 * template_page_key() builds them (the fragment dropped, an empty path read
 * as "/"). `url` is borrowed; *out is malloc'd, owned by the caller.
 * Returns 0, HERALD_EINVAL (NULL, or not "scheme://authority...") or
 * HERALD_ENOMEM.
 */
int template_url_page_key(const char *url, char **out);

/**
 * True when the absolute URLs `a` and `b` have the same scheme and
 * authority (compared case-insensitively). Borrowed; NULL or a URL without
 * "://" → false.
 */
bool template_same_origin(const char *a, const char *b);

/**
 * Derive the template key of a page key (as built by template_page_key).
 * Path segments become "*" when they are: all digits; hex of >= 8 chars
 * with at least one digit; a UUID; or made of [A-Za-z0-9_-] mixing letters
 * with >= 4 digits ("a1b2c3d4", "item-12345"). A segment "<id>.<ext>"
 * (extension of 1..5 letters) becomes "*.<ext>". Words ("v2", "css",
 * "html5") stay. In the query, parameter names and order are kept and a
 * value becomes "*" when template_value_is_volatile() says so. A fragment
 * is dropped. The result equals the page key when nothing was generalised
 * (the caller may then skip the template entry).
 * `page_key` is borrowed; *out is malloc'd, owned by the caller.
 * Returns 0, HERALD_EINVAL (NULL) or HERALD_ENOMEM.
 */
int template_key(const char *page_key, char **out);

/** True when the path segment seg[0..len) looks like an identifier (rules of template_key()). */
bool template_segment_is_id(const char *seg, size_t len);

/**
 * True when the query value v[0..len) looks volatile for template keys:
 * >= 6 digits; hex >= 12 chars with a digit; a UUID; or base64-ish
 * ([A-Za-z0-9+/_%=-]) of >= 16 chars mixing digits and letters.
 */
bool template_value_is_volatile(const char *v, size_t len);

/**
 * True when an asset URL carries a value that looks per-visit: a query
 * value of >= 9 digits (a timestamp), hex of >= 16 chars (a nonce), a UUID,
 * or base64-ish >= 20 chars, in the query or as a path segment UUID.
 * pagemap plans such a URL only after hits on >= 2 distinct visits, so a
 * per-visit cache buster is never planned while a stable content hash is.
 * `url` is borrowed; NULL → false.
 */
bool template_is_volatile_url(const char *url);

/**
 * True when the absolute URLs `a` and `b` look like two versions of one
 * asset: they are different, and differ only in the value of one query
 * parameter (same names in the same order: "app.js?ver=6.1" and
 * "app.js?ver=6.2"), or, with equal queries, only in one hashed token of
 * one path segment ("app.3f2a9c1b.js" and "app.77e01d5a.js",
 * "/static/3f2a9c1b/app.js" and "/static/9e0d71aa/app.js"), where a hashed
 * token (split at '.', '-', '_' and '~') is >= 6 alphanumerics with a digit,
 * and either all hex or >= 8 long. Scheme and authority must match
 * (case-insensitively). Both borrowed; NULL → false.
 */
bool template_is_version_of(const char *a, const char *b);

#endif
