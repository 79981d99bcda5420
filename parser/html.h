/*
 * HTML discovery: the subresources a browser fetches early from a page (see
 * docs/architecture.md, "Discovery"). Incremental on input, one-shot on parsing: the
 * proxy feeds bytes as they pass, then runs finish() once, off the loop (on
 * a thread pool). A scanner has no shared state, so scanners on different
 * documents run concurrently; one scanner is used by one thread at a time.
 *
 * Hostile input stays cheap: input is capped (byte_cap), a pre-pass drops
 * start tags that nest deeper than HTML_SCANNER_MAX_DEPTH (html_defuse), gumbo
 * records at most a few errors, and the tree is walked without recursion.
 */
#ifndef HERALD_HTML_H
#define HERALD_HTML_H

#include "asset.h"

#include <stdbool.h>
#include <stddef.h>

/** Default byte cap of a scanner (256 KiB of the document's raw bytes). */
#define HTML_SCANNER_DEFAULT_CAP (256u * 1024u)
/** Nesting depth (approximate, counted by the pre-pass) past which start tags are dropped. */
#define HTML_SCANNER_MAX_DEPTH 256
/** Unclosed formatting elements past which further ones are dropped. */
#define HTML_SCANNER_MAX_FORMATTING 8

typedef struct html_scanner html_scanner_t;

/**
 * A scanner for one document. base_url is the document's absolute URL
 * (copied). charset is the Content-Type charset parameter or NULL (copied);
 * it is overridden only by a BOM. byte_cap 0 means HTML_SCANNER_DEFAULT_CAP.
 * Returns NULL on out of memory or a NULL base_url.
 */
html_scanner_t *html_scanner_create(const char *base_url, const char *charset, size_t byte_cap);

/**
 * Buffer len bytes of the document (copied; data may be reused at once).
 * Bytes past the cap are dropped, not an error. 0 or HERALD_ENOMEM.
 */
int html_scanner_feed(html_scanner_t *s, const void *data, size_t len);

/** True once the cap is reached: nothing more will be read, finish() may run now. */
bool html_scanner_full(const html_scanner_t *s);

/**
 * Parse what was fed and append the assets to *out (owned by the caller,
 * freed with asset_list_dispose; existing entries count for dedupe and
 * order). HTML-found assets come first in document order; assets found in
 * CSS inside <style> elements and style attributes follow, in the order
 * their CSS appears (they do not interleave with element assets: the proxy
 * weighs element assets first, and a browser finds inline CSS references
 * only after style resolution). Each asset's url is what the browser
 * requests: resolved against the first <base href>, non-ASCII in the path
 * percent-encoded as UTF-8 and in the query in the document's encoding.
 * The encoding is chosen by charset_sniff (BOM > charset given at create >
 * <meta> prescan > UTF-8 if valid, else windows-1252). Call once.
 * 0, HERALD_ENOMEM (out keeps what was added), HERALD_EINVAL (called twice).
 */
int html_scanner_finish(html_scanner_t *s, asset_list_t *out);

/** The encoding finish() decoded with (canonical name), or NULL before finish(). */
const char *html_scanner_charset(const html_scanner_t *s);

/** Free the scanner and its buffer. NULL is allowed. */
void html_scanner_destroy(html_scanner_t *s);

/**
 * The pre-pass that keeps gumbo cheap on hostile markup: in html[0..len)
 * (UTF-8 or any ASCII-compatible encoding; modified in place) it blanks out
 * with spaces every start tag that would nest deeper than max_depth, and
 * every formatting start tag (a, b, font, i ...) beyond max_formatting left
 * unclosed (the parser re-creates those at each later insertion). Nesting is
 * counted approximately as a browser builds it: void elements, raw-text
 * elements, comments and the implied end tags of p, li, dt, dd, td, th, tr
 * and option are understood. Blanking instead of cutting keeps the assets
 * that follow. Returns the number of tags blanked. For tests and the bench.
 */
size_t html_defuse(char *html, size_t len, unsigned max_depth, unsigned max_formatting);

/**
 * Append the references of a stylesheet css[0..len) (UTF-8) found by
 * css_scan, resolved against base_url, to *out as style (@import), font or
 * image assets: fonts are anonymous-CORS, none is blocking. For the CSS
 * bodies the proxy sees pass and for herald-scan --type text/css.
 * 0 or HERALD_ENOMEM.
 */
int html_add_css(const char *css, size_t len, const char *base_url, asset_list_t *out);

#endif
