/*
 * CSS scan: every @import and url() of a stylesheet (CSS Syntax Level 3
 * tokenization: comments, strings, escapes, bad-url tokens), resolved against
 * the stylesheet's own URL. Pure; safe to run concurrently on different input.
 */
#ifndef HERALD_CSS_H
#define HERALD_CSS_H

#include <stddef.h>

typedef enum css_ref_kind {
    CSS_REF_IMPORT, /* @import: a stylesheet */
    CSS_REF_FONT,   /* url() in an @font-face src descriptor */
    CSS_REF_IMAGE,  /* any other url()/image-set() (backgrounds, cursors, ...) */
} css_ref_kind_t;

typedef struct css_ref {
    const char *url; /* absolute, resolved; valid only during the callback */
    css_ref_kind_t kind;
    const char *media;  /* @import media list, or NULL */
    const char *format; /* @font-face format("woff2"), or NULL */
} css_ref_t;

/** Return non-zero to stop the scan (that value is returned by css_scan). */
typedef int (*css_ref_cb)(void *arg, const css_ref_t *ref);

/**
 * Scan css[0..len) (UTF-8) and call cb for each reference in source order;
 * references that do not resolve to http(s) URLs (data: and so on) are
 * skipped. Returns 0, the callback's non-zero value, or HERALD_ENOMEM.
 * Malformed CSS is not an error: it is tokenized as the spec says.
 */
int css_scan(const char *css, size_t len, const char *base_url, css_ref_cb cb, void *arg);

#endif
