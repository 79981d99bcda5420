/*
 * The learned page -> asset map (DESIGN.md, "Learning", "Delivery policy"):
 * one store shared by all workers, every public call takes the object's
 * mutex, and everything handed out is a copy owned by the caller: no pointer
 * into the map survives a call. No logging, no network; allocation failure
 * is HERALD_ENOMEM and leaves the map consistent.
 *
 * Model. A page entry is keyed by its page key (template_page_key()); a
 * template key (template_key()) is just another entry flagged as template,
 * fed with the same evidence. An asset table shared by all pages is keyed by
 * the normalised asset URL and holds the response metadata; entries are
 * refcounted by edges and freed with the last edge. Each page has edges
 * (page -> asset) carrying the evidence below.
 *
 * Learning rules (pagemap_commit_visit, once per served page visit):
 *  - Each edge counts a visit as a hit, a miss or nothing. A counted visit
 *    decays the edge first: hits = hits * decay + (1 if hit), visits =
 *    visits * decay + 1 (PAGEMAP_DEFAULT_DECAY = 0.9, so roughly the last
 *    ten counted visits matter); confidence = hits / visits. A visit that
 *    counts nothing for an edge leaves it untouched (no silent decay, so
 *    curl-like visits do not make an edge fragile either). The page's own
 *    `visits` decays on every visit: visits = visits * decay + 1.
 *  - Items are deduplicated by normalised key inside a visit (1,000 copies of
 *    one URL weigh as one); at most PAGEMAP_MAX_VISIT_ITEMS distinct items
 *    count, the rest are ignored.
 *  - An item present in the visit is a hit unless
 *    it is `skipped` (the client had it: neither hit nor miss), or it was
 *    only pushed (sources == PUSH) and `push_cancelled` (a miss; a push of
 *    something also discovered on this visit is a hit). A new edge
 *    starts at hits = visits = 1, i.e. confidence 1.0, so HTML/CSS discovery
 *    on the first served visit alone reaches the default minimum
 *    (PAGEMAP_DEFAULT_MIN_CONFIDENCE = 0.5) and the second visit is planned.
 *  - An edge absent from the visit is a miss only when the
 *    visit could have shown it: an edge ever seen from HTML or LINK
 *    misses when `html_scanned`; one seen from CSS (not HTML/LINK) when
 *    `css_scanned`; an edge seen only as FOLLOWUP (or PUSH)
 *    misses only when `had_followups`. Otherwise nothing changes, so curl,
 *    crawlers and health checks do not dilute follow-up edges.
 *  - A URL for which template_is_volatile_url() is true is planned only
 *    after hits on >= 2 distinct visits (a per-visit timestamp never is).
 *    Likewise every edge of a template entry: only what >= 2 sibling visits
 *    showed is planned for a never-seen page (not one sibling's images).
 *  - Per page at most max_assets_per_page LEARNED edges: adding one more
 *    evicts the lowest confidence, then oldest last_seen, then least
 *    critical, then latest in document order. PINNED and BANNED edges are
 *    not counted and never evicted.
 *  - Pages: at most max_pages entries (templates included), least recently
 *    used (commit or plan) evicted first; pages holding pins or bans are
 *    skipped by eviction.
 *  - Visits with `authorized` or a status outside 200..299 teach nothing
 *    (a non-2xx status is recorded as the page's last status: such a page
 *    is not planned from its own entry until a 2xx visit).
 *  - Counters (pushes promised/completed/cancelled, hints, bytes) move only
 *    through pagemap_note_delivery(); evidence flags move only confidence.
 */
#ifndef HERALD_PAGEMAP_H
#define HERALD_PAGEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAGEMAP_DEFAULT_DECAY 0.9
#define PAGEMAP_DEFAULT_MIN_CONFIDENCE 0.5
#define PAGEMAP_DEFAULT_MAX_PAGES 10000
#define PAGEMAP_DEFAULT_MAX_ASSETS_PER_PAGE 64
/** Distinct items of one visit that count; more are ignored. */
#define PAGEMAP_MAX_VISIT_ITEMS 1024
/** Think-time EWMA weight of a new sample. */
#define PAGEMAP_THINK_ALPHA 0.25
/** Longest `as` value kept (longer ones are truncated). */
#define PAGEMAP_AS_MAX 15

typedef struct pagemap pagemap_t;

/** Same order and values as parser/asset.h asset_kind_t (the proxy may cast). */
typedef enum pagemap_kind {
    PAGEMAP_KIND_STYLE,
    PAGEMAP_KIND_SCRIPT,
    PAGEMAP_KIND_MODULE,
    PAGEMAP_KIND_FONT,
    PAGEMAP_KIND_IMAGE,
    PAGEMAP_KIND_ICON,
    PAGEMAP_KIND_MANIFEST,
    PAGEMAP_KIND_OTHER,
    PAGEMAP_KIND_PRECONNECT, /* url is an origin ("https://cdn.example") */
    PAGEMAP_KIND_COUNT_
} pagemap_kind_t;

/** Same values as parser/asset.h asset_crossorigin_t. */
typedef enum pagemap_cors {
    PAGEMAP_CORS_NONE = 0,
    PAGEMAP_CORS_ANONYMOUS,
    PAGEMAP_CORS_CREDENTIALS,
} pagemap_cors_t;

/** Where evidence came from (bitmask). */
enum pagemap_source_bits {
    PAGEMAP_SRC_HTML = 1u << 0,
    PAGEMAP_SRC_CSS = 1u << 1,
    PAGEMAP_SRC_LINK = 1u << 2,     /* origin Link header or 103 */
    PAGEMAP_SRC_FOLLOWUP = 1u << 3, /* client fetched it after the page */
    PAGEMAP_SRC_PUSH = 1u << 4,     /* herald pushed it on this visit */
};

typedef enum pagemap_edge_state {
    PAGEMAP_EDGE_LEARNED = 0,
    PAGEMAP_EDGE_PINNED, /* always planned (still subject to same-origin) */
    PAGEMAP_EDGE_BANNED, /* tombstone: never planned, never relearned */
} pagemap_edge_state_t;

typedef struct pagemap_config {
    size_t max_pages;           /* >= 1 */
    size_t max_assets_per_page; /* learned edges per page, >= 1 */
    double decay;               /* per page visit, in (0, 1] */
} pagemap_config_t;

/** Fill *cfg with the PAGEMAP_DEFAULT_* values. */
void pagemap_config_init(pagemap_config_t *cfg);

/**
 * Create an empty map. `cfg` is copied (NULL = defaults). *out is owned by
 * the caller until pagemap_destroy(). Returns 0, HERALD_EINVAL (bad config)
 * or HERALD_ENOMEM.
 */
int pagemap_create(const pagemap_config_t *cfg, pagemap_t **out);

/** Free the map and everything in it. No other thread may be using it. NULL is a no-op. */
void pagemap_destroy(pagemap_t *pm);

/* ---- evidence ---------------------------------------------------------- */

/** One asset seen during a visit. All pointers are borrowed for the call. */
typedef struct pagemap_item {
    const char *url; /* absolute URL as requested/found (kept for planning) */
    const char *key; /* normalised URL: the asset's identity (NULL = url) */
    pagemap_kind_t kind;
    const char *as; /* preload `as` or NULL */
    pagemap_cors_t crossorigin;
    unsigned order;   /* document order hint (lower = earlier) */
    unsigned sources; /* PAGEMAP_SRC_* seen on this visit */
    bool blocking;    /* render-blocking (classic script in head, CSS) */
    bool skipped;     /* client already had it: neither hit nor miss */
    bool push_cancelled;
    bool push_completed;
} pagemap_item_t;

/** One served page visit, built by the proxy. Everything is borrowed for the call. */
typedef struct pagemap_visit {
    const char *page_key;     /* required */
    const char *template_key; /* NULL or equal to page_key: no template entry */
    int64_t now_ms;
    double think_ms; /* origin think-time sample, < 0 when unknown */
    uint64_t html_size;
    int status;         /* the page's response status */
    bool html_scanned;  /* discovery ran on this visit */
    bool css_scanned;   /* a stylesheet of the page passed through and was scanned */
    bool had_followups; /* the client fetched subresources after the page */
    bool authorized;    /* request had Authorization: commit does nothing */
    /*
     * Late evidence of a visit already committed (the proxy fetched a
     * stylesheet the client did not, after the visit ended): the page's
     * counters do not move and absent edges are not missed; each item is a
     * hit (an edge the first commit counted as a miss, per html_scanned /
     * had_followups as passed then, has that miss turned into a hit), new
     * edges start as usual. Pass the first commit's flags and no template.
     */
    bool supplement;
    const pagemap_item_t *items;
    size_t nitems;
} pagemap_visit_t;

/**
 * Commit one visit's evidence to its page entry and its template entry (see
 * the rules at the top). Returns 0 (also when nothing was learned:
 * authorized, non-2xx), HERALD_EINVAL (NULL map, visit or page key) or
 * HERALD_ENOMEM (the visit may be partly applied; the map stays consistent).
 */
int pagemap_commit_visit(pagemap_t *pm, const pagemap_visit_t *v);

/** Response facts of one asset, borrowed for the call. */
typedef struct pagemap_asset_meta {
    int status;
    uint64_t size;             /* body bytes, 0 unknown */
    const char *content_type;  /* NULL = unknown */
    const char *etag;          /* NULL = none */
    const char *last_modified; /* NULL = none */
    const char *location;      /* normalised absolute target of a 301/302/307/308, else NULL */
    bool cacheable;            /* see pagemap_cacheable() */
    bool pushed;               /* this response answered a push herald made */
} pagemap_asset_meta_t;

/**
 * Whether a response may be pushed/hinted as a shared asset: false with
 * Cache-Control no-store, private or no-cache; with Vary naming anything but
 * Accept-Encoding ("*" included); or with Set-Cookie. Strings are borrowed,
 * NULL = header absent.
 */
bool pagemap_cacheable(const char *cache_control, const char *vary, bool set_cookie);

/**
 * Record the metadata of a response that passed through for the asset
 * `asset_key` (normalised URL). Only assets some page links to are kept:
 * an unknown key is ignored (returns HERALD_ENOTFOUND). A pushed response
 * that is non-200 or not cacheable marks the asset unpushable (excluded
 * from plans); a later non-pushed 200 cacheable response clears the mark.
 * `location` is kept only for 301/302/307/308.
 * Returns 0, HERALD_ENOTFOUND, HERALD_EINVAL or HERALD_ENOMEM.
 */
int pagemap_observe_asset(pagemap_t *pm, const char *asset_key, const pagemap_asset_meta_t *m);

typedef enum pagemap_delivery {
    PAGEMAP_DELIVERY_PROMISED,
    PAGEMAP_DELIVERY_COMPLETED, /* bytes = body bytes pushed */
    PAGEMAP_DELIVERY_CANCELLED, /* client RST_STREAM on the pushed stream */
    PAGEMAP_DELIVERY_HINTED,    /* sent as a 103 Link preload */
} pagemap_delivery_t;

/**
 * Count a delivery of `asset_key` for `page_key` (the page's edge and the
 * page's bytes_pushed / hints_sent). Returns 0, HERALD_ENOTFOUND (no such
 * page or edge: the page may have been evicted since the plan) or
 * HERALD_EINVAL.
 */
int pagemap_note_delivery(pagemap_t *pm, const char *page_key, const char *asset_key,
                          pagemap_delivery_t event, uint64_t bytes);

/* ---- planning ---------------------------------------------------------- */

typedef enum pagemap_plan_source {
    PAGEMAP_PLAN_NONE = 0,
    PAGEMAP_PLAN_PAGE,
    PAGEMAP_PLAN_TEMPLATE,
} pagemap_plan_source_t;

/** One asset to deliver. Strings are malloc'd, owned by the plan. */
typedef struct pagemap_plan_item {
    char *url;  /* absolute URL to push / hint */
    char *key;  /* normalised key (for pagemap_note_delivery and the digest) */
    char *etag; /* NULL = unknown */
    char *as;   /* NULL = none recorded */
    pagemap_kind_t kind;
    pagemap_cors_t crossorigin;
    uint64_t size;     /* 0 = unknown */
    double confidence; /* 1.0 for pinned */
    int status;        /* last status seen, 0 = never observed */
    bool is_redirect;  /* a 3xx whose target follows as the next item */
    bool pinned;
} pagemap_plan_item_t;

/** A copied-out plan. Zero it or let pagemap_plan fill it; free with pagemap_plan_dispose. */
typedef struct pagemap_plan {
    pagemap_plan_item_t *items; /* in delivery order */
    size_t n;
    char **preconnect; /* other origins ("https://cdn.example"), malloc'd */
    size_t npreconnect;
    pagemap_plan_source_t source;
    double think_ms;       /* EWMA of the entry used (page, else template); < 0 unknown */
    uint64_t visits_total; /* of the page entry (0 if never seen) */
    uint64_t bytes_pushed; /* of the page entry, for reporting */
    uint64_t hints_sent;
} pagemap_plan_t;

/**
 * Copy out the delivery plan for a request. `page_key` (required),
 * `template_key` (NULL = none) and `authority` (host[:port] of the page,
 * compared case-insensitively with each asset URL's authority; NULL = the
 * page key's leading authority) are borrowed. `now_ms` is reserved (pass
 * the current time). Only the authority is compared, not the scheme: the
 * proxy keeps one scheme per listener.
 * Items: edges with confidence >= min_confidence or PINNED (a pin skips
 * the confidence, volatile and template rules, not the others); never
 * BANNED, unpushable or not cacheable; volatile URLs only after hits on >= 2
 * visits; last status 200 or never observed (0), or a redirect whose target
 * is a known plannable asset (then the redirect comes first and its target
 * right after it). Ordered CSS, blocking scripts, fonts, module/deferred
 * scripts, images and icons, others; then document order. Edges to other
 * authorities and PRECONNECT edges give the deduplicated preconnect list.
 * The page entry is used when its last status was 2xx (or unknown) and it
 * yields a non-empty plan (source PAGE), else the template entry (TEMPLATE),
 * else NONE with no items. Touches the entry in the LRU order.
 * *out is overwritten (not freed first); on error it is left empty.
 * Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int pagemap_plan(pagemap_t *pm, const char *page_key, const char *template_key,
                 const char *authority, int64_t now_ms, double min_confidence, pagemap_plan_t *out);

/** Free everything a plan holds and zero it. NULL is a no-op. */
void pagemap_plan_dispose(pagemap_plan_t *plan);

/* ---- inspection and steering (admin, snapshot) -------------------------- */

/** A copied-out page. Strings malloc'd, owned by the struct; free with pagemap_page_info_dispose.
 */
typedef struct pagemap_page_info {
    char *key;
    char *template_key; /* last template key committed with the page, NULL if none */
    bool is_template;
    double visits; /* decayed */
    uint64_t visits_total;
    int64_t last_visit_ms;
    double think_ms; /* EWMA, < 0 unknown */
    uint64_t html_size;
    int status; /* last page status, 0 unknown */
    uint64_t bytes_pushed;
    uint64_t hints_sent;
    bool followups_seen;
    size_t nedges; /* including pinned and banned */
} pagemap_page_info_t;

/** A copied-out edge with its asset's metadata. Strings malloc'd, owned by the struct. */
typedef struct pagemap_edge_info {
    char *key;
    char *url;
    char *as;
    pagemap_kind_t kind;
    pagemap_cors_t crossorigin;
    unsigned order;
    unsigned sources; /* PAGEMAP_SRC_* ever seen */
    bool blocking;
    bool volatile_url;
    double hits, visits; /* decayed */
    double confidence;
    uint64_t hit_visits; /* distinct visits with a hit */
    int64_t first_seen_ms, last_seen_ms;
    uint64_t promised, completed, cancelled, hinted;
    pagemap_edge_state_t state;
    /* asset metadata */
    uint64_t size;
    int status;
    char *content_type, *etag, *last_modified, *location;
    bool cacheable;
    bool unpushable;
} pagemap_edge_info_t;

/** Free the strings of one page info (not the struct itself). */
void pagemap_page_info_dispose(pagemap_page_info_t *p);
/** Free the strings of one edge info (not the struct itself). */
void pagemap_edge_info_dispose(pagemap_edge_info_t *e);
/** Free an array of n page infos and the array. */
void pagemap_page_infos_free(pagemap_page_info_t *v, size_t n);
/** Free an array of n edge infos and the array. */
void pagemap_edge_infos_free(pagemap_edge_info_t *v, size_t n);

/**
 * List pages sorted by key whose key contains `filter` (NULL or "" = all),
 * skipping `offset` matches and returning at most `limit`. *out (malloc'd
 * array, NULL when *n == 0) is owned by the caller: pagemap_page_infos_free.
 * *total (may be NULL) gets the number of matches. Returns 0, HERALD_EINVAL
 * or HERALD_ENOMEM.
 */
int pagemap_list(pagemap_t *pm, size_t offset, size_t limit, const char *filter,
                 pagemap_page_info_t **out, size_t *n, size_t *total);

/**
 * Copy out one page and its edges (sorted by plan order: kind rank, then
 * document order). `edges`/`nedges` may be NULL to skip the edges; *edges
 * is owned by the caller (pagemap_edge_infos_free); `info` is filled and
 * owned by the caller (pagemap_page_info_dispose).
 * Returns 0, HERALD_ENOTFOUND, HERALD_EINVAL or HERALD_ENOMEM.
 */
int pagemap_page_get(pagemap_t *pm, const char *page_key, pagemap_page_info_t *info,
                     pagemap_edge_info_t **edges, size_t *nedges);

/**
 * Set an edge's state. PINNED or BANNED on a missing edge (or page) creates
 * it (kind guessed from the extension, url = asset_key); LEARNED turns a pin
 * or ban back into an ordinary learned edge. Returns 0, HERALD_ENOTFOUND
 * (LEARNED on a missing edge), HERALD_EINVAL or HERALD_ENOMEM.
 */
int pagemap_edge_set_state(pagemap_t *pm, const char *page_key, const char *asset_key,
                           pagemap_edge_state_t state);

/**
 * Remove one edge whatever its state (this also removes a pin or a ban).
 * Returns 0, HERALD_ENOTFOUND or HERALD_EINVAL.
 */
int pagemap_forget_edge(pagemap_t *pm, const char *page_key, const char *asset_key);

/**
 * Forget what a page learned: its LEARNED edges and counters go; its PINNED
 * and BANNED edges stay (remove those with pagemap_forget_edge), and the
 * entry itself goes when none are left. Returns 0, HERALD_ENOTFOUND or
 * HERALD_EINVAL.
 */
int pagemap_forget_page(pagemap_t *pm, const char *page_key);

typedef struct pagemap_stats {
    size_t pages; /* entries, templates included */
    size_t templates;
    size_t edges; /* all states */
    size_t pinned, banned;
    size_t assets; /* shared asset entries */
    uint64_t pages_evicted;
    uint64_t edges_evicted;
    uint64_t visits_committed;
} pagemap_stats_t;

/** Copy the counters into *out. */
void pagemap_stats(pagemap_t *pm, pagemap_stats_t *out);

/* ---- bulk copy (snapshot) ----------------------------------------------- */

/** A deep copy of pages with their edges. */
typedef struct pagemap_dump_page {
    pagemap_page_info_t info;
    pagemap_edge_info_t *edges;
    size_t nedges;
} pagemap_dump_page_t;

typedef struct pagemap_dump {
    pagemap_dump_page_t *pages;
    size_t n;
} pagemap_dump_t;

/** Free a dump's contents and zero it. */
void pagemap_dump_dispose(pagemap_dump_t *d);

/**
 * Deep-copy the whole map (LRU order, most recent first) under the lock, so
 * the caller can serialise it without holding the lock. *out is owned by
 * the caller (pagemap_dump_dispose). Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int pagemap_dump(pagemap_t *pm, pagemap_dump_t *out);

typedef enum pagemap_restore_mode {
    PAGEMAP_RESTORE_MERGE,   /* dumped pages replace same-key pages; others stay */
    PAGEMAP_RESTORE_REPLACE, /* the map is emptied first */
} pagemap_restore_mode_t;

/**
 * Load a (validated) dump into the map under one lock hold: each page in
 * `d` replaces any entry with the same key (edges, states and counters as
 * dumped; asset metadata of the dump overwrites the shared entry). Caps
 * still apply (max_pages evicts; learned edges beyond max_assets_per_page
 * are dropped, lowest confidence first). `d` is borrowed. Returns 0,
 * HERALD_EINVAL or HERALD_ENOMEM (partly loaded; consistent).
 */
int pagemap_restore(pagemap_t *pm, const pagemap_dump_t *d, pagemap_restore_mode_t mode);

/** Static name of a kind ("style", ... "preconnect"); "other" when out of range. */
const char *pagemap_kind_name(pagemap_kind_t kind);
/** Parse a kind name; returns 0 and sets *out, or HERALD_EINVAL. */
int pagemap_kind_parse(const char *name, pagemap_kind_t *out);

#endif
