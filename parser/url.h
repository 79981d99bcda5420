/*
 * URLs: resolve a reference found in a document the way a browser would
 * (RFC 3986 via uriparser, after browser-style cleaning), normalise a URL
 * into a stable key for the learned map, and compare origins.
 *
 * All results are malloc'd NUL-terminated strings the caller frees.
 */
#ifndef HERALD_URL_H
#define HERALD_URL_H

#include <stdbool.h>
#include <stddef.h>

/**
 * Resolve `ref` (raw attribute/CSS value, ref_len bytes, not necessarily
 * NUL-terminated; UTF-8) against the absolute URL `base`.
 * Cleaning first: strip leading/trailing ASCII whitespace and C0 controls,
 * remove tabs and newlines, '\' -> '/' for http(s), percent-encode spaces,
 * non-ASCII and other bytes uriparser rejects.
 * As in browsers, in http(s) URLs two or more leading slashes start the
 * host ("///h/x"), and "http:x" on an http page is relative. The scheme and
 * host come out lower-case and a default port is dropped; the path is sent as
 * written (no percent-decoding). An IPv6 host comes out in short form (RFC 5952).
 * Returns 0 and sets *out to the absolute URL a browser would request
 * (fragment removed); HERALD_EINVAL for an empty or fragment-only ref, a
 * base that is not absolute, a result without a host, or an unparsable one;
 * HERALD_EUNSUPPORTED when the result is not http/https (data:,
 * javascript:, blob:, about:, mailto:...); HERALD_ENOMEM. *out is NULL on
 * error.
 */
int url_resolve(const char *base, const char *ref, size_t ref_len, char **out);

/**
 * The learned map's key for an absolute http(s) URL: lower-case scheme and
 * host, default port dropped, empty path -> "/", dot segments removed,
 * percent-encoding hex upper-cased and unreserved characters decoded,
 * fragment dropped; query kept as is. `url` is cleaned as url_resolve
 * cleans a ref. 0, HERALD_EINVAL (not absolute, no host),
 * HERALD_EUNSUPPORTED (not http/https), HERALD_ENOMEM.
 */
int url_normalize(const char *url, char **out);

/**
 * True when url is its own key (url_normalize would return it unchanged):
 * an http(s) URL with a lower-case host, no default port and a path and
 * query of plain characters. One pass, no allocation; false means "maybe
 * not", and url_normalize decides.
 */
bool url_is_key(const char *url);

/**
 * url_normalize() without its shortcut for URLs that are keys already:
 * the reference the shortcut is checked against (tests and url_fuzz).
 */
int url_normalize_slow(const char *url, char **out);

/**
 * The origin "scheme://host[:port]" (lower-case, default port omitted, no
 * trailing '/') of an absolute http(s) URL. Same codes as url_normalize.
 */
int url_origin(const char *url, char **out);

/**
 * True when both absolute URLs have the same scheme, host and (effective)
 * port; false when either does not parse (or memory runs out).
 */
bool url_same_origin(const char *a, const char *b);

#endif
