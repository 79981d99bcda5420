/*
 * What discovery finds: the subresources a browser would fetch early, in
 * document order. Produced by html.c (and css.c through it), consumed by
 * herald-scan, by the proxy and by learn/ (as plain data).
 */
#ifndef HERALD_ASSET_H
#define HERALD_ASSET_H

#include <stdbool.h>
#include <stddef.h>

typedef enum asset_kind {
    ASSET_STYLE,
    ASSET_SCRIPT,
    ASSET_MODULE,
    ASSET_FONT,
    ASSET_IMAGE,
    ASSET_ICON,
    ASSET_MANIFEST,
    ASSET_OTHER,
    ASSET_PRECONNECT, /* url is an origin from rel=preconnect|dns-prefetch */
} asset_kind_t;

typedef enum asset_crossorigin {
    ASSET_CORS_NONE = 0,
    ASSET_CORS_ANONYMOUS,
    ASSET_CORS_CREDENTIALS, /* use-credentials */
} asset_crossorigin_t;

typedef struct asset {
    char *url; /* absolute URL a browser would request (malloc'd) */
    asset_kind_t kind;
    const char *as; /* preload "as" value (static string) or NULL */
    asset_crossorigin_t crossorigin;
    char *media;   /* malloc'd or NULL */
    char *type;    /* malloc'd or NULL */
    bool blocking; /* render-blocking */
    bool pick;     /* the srcset candidate a DPR-1 browser picks, or not from srcset */
    /*
     * Every browser fetches it whatever the page's layout and the device:
     * stylesheets and scripts in the markup (not nomodule), markup images
     * that are neither loading=lazy nor srcset/picture alternates, @imports.
     * The rest (CSS url() images and fonts, alternates, lazy images, preloads,
     * icons, manifests, posters, background attributes) depend on styles,
     * viewport or device: the learner waits for a browser to fetch them.
     */
    bool strong;
    /* Alternates: candidates of one srcset / <picture> share a number (1, 2,
     * ... in document order); 0 = not an alternate. */
    unsigned group;
    bool async, defer, nomodule;
    unsigned order; /* 0-based document order; CSS-found assets follow */
} asset_t;

typedef struct asset_list {
    asset_t *v;
    size_t n, cap;
    bool speculation_rules; /* HTML: the page has an inline <script type=speculationrules> */
} asset_list_t;

/** Static name of a kind: "style", "script", ... "preconnect". */
const char *asset_kind_name(asset_kind_t kind);
/** Free every asset's strings and the array; the list is empty afterwards. */
void asset_list_dispose(asset_list_t *l);

/**
 * The fetch destination of a kind as a preload `as` value ("style",
 * "script" for scripts and modules, "font", "image" for images and icons,
 * "manifest", "fetch" for other); NULL for ASSET_PRECONNECT. Static string.
 */
const char *asset_kind_as(asset_kind_t kind);

/**
 * The entry with this exact url and kind, or NULL. The pointer stays valid
 * until the list is next added to or disposed.
 */
asset_t *asset_list_find(const asset_list_t *l, const char *url, asset_kind_t kind);

/**
 * Append *a, taking ownership of its strings (a is zeroed in every case).
 * Sets a->order to the list position. The same url+kind added again is
 * merged into the first entry (a browser fetches it once): pick, blocking
 * and strong are or-ed, a mention outside any alternates set clears the
 * group, the first position stays. 0 or HERALD_ENOMEM (strings freed).
 */
int asset_list_add(asset_list_t *l, asset_t *a);

#endif
