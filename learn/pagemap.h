/*
 * The learned page -> asset map (docs/learning.md has the model in full):
 * one store shared by all workers, every public call takes the object's
 * mutex, and everything handed out is a copy owned by the caller: no pointer
 * into the map survives a call. No logging, no network; allocation failure
 * is HERALD_ENOMEM and leaves the map consistent.
 *
 * Store. A page entry is keyed by its page key (template_page_key()); a
 * template key (template_key()) is just another entry flagged as template,
 * fed with the same evidence. An asset table shared by all pages is keyed by
 * the normalised asset URL and holds the response metadata; entries are
 * refcounted by edges and freed with the last edge. Each page has edges
 * (page -> asset) carrying the evidence below.
 *
 * Evidence (pagemap_commit_visit, once per served page visit; evidence.c):
 *  - Discovery proposes. An item named by the page's HTML, CSS or the
 *    origin's Link header creates its edge. `strong` items (render-blocking
 *    stylesheets and scripts, scripts in the markup, markup images that are
 *    neither lazy nor srcset/picture alternates, @imports, origin Link
 *    preloads) are planned from the next visit on; every other (weak) item
 *    waits until a clean visit confirms it.
 *  - Browsers confirm, on clean visits only. A visit is evidence for an
 *    edge only when herald neither pushed nor hinted that asset on it. The
 *    client requested it: a clean hit. It did not: a clean miss, counted only
 *    when the visit was *cold* (see PAGEMAP_COLD_SHARE: the client is a
 *    browser on a multiplexed connection, fetched the page's expected assets
 *    unconditionally, cancelled no push) and the client's cache-digest cookie
 *    does not name the asset. Anything else counts nothing. Clean evidence is
 *    decayed by PAGEMAP_DEFAULT_DECAY per counted visit: ch = ch*d + hit,
 *    cn = cn*d + 1; its confidence is ch / cn.
 *  - PAGEMAP_REJECT_MISSES consecutive clean misses reject an edge; only a
 *    clean hit lifts that (rediscovery does not).
 *  - An edge the scanned HTML stopped naming for PAGEMAP_STALE_SCANS scanned
 *    visits in a row is stale: held back until a clean visit shows the page
 *    still fetches it.
 *  - Versions: a new URL that differs from an edge's URL only in one query
 *    value or one hashed path token (template_is_version_of) replaces it at
 *    once, keeping its evidence, when discovery on the visit names the new
 *    and no longer the old, or a cold clean visit fetched the new and not the
 *    old. The old edge stays as superseded (never planned) until named again.
 *  - Alternates: items with the same non-zero `group` (one srcset or
 *    <picture>) are weak; at most one of a group is planned, the one clean
 *    visits fetched most.
 *  - A follow-up-only URL (never discovered: loaded by script) that appears
 *    on a page whose earlier visits with follow-ups did not fetch it starts
 *    with those visits counted as misses: one visit (one client, however
 *    many requests) cannot make it plannable then.
 *  - Volatile URLs (template_is_volatile_url) and every edge of a template
 *    entry are planned only after >= 2 distinct visits named or fetched them.
 *  - Items are deduplicated by key inside a visit; at most
 *    PAGEMAP_MAX_VISIT_ITEMS distinct items count.
 *  - Visits with `authorized` teach nothing; a non-2xx status is recorded
 *    as the page's last status (such a page is not planned from its own
 *    entry until a 2xx visit).
 *  - Caps: per page at most max_assets_per_page LEARNED edges (the least
 *    useful evicted: superseded and rejected first, then lowest confidence,
 *    oldest, least critical); at most max_pages entries, least recently used
 *    evicted first, pages holding pins or bans kept.
 *  - Delivery counters (pushes, hints, bytes) move only through
 *    pagemap_note_delivery(); they are not evidence.
 *
 * Planning (pagemap_plan; plan.c): see pagemap_plan() and pagemap_verdict_t.
 *
 * Next pages (pagemap_commit_navigation, pagemap_speculation; next.c,
 * speculate.c): where visitors go from each page and its template, with
 * the facts that make a next page safe to prefetch; see "next pages" below.
 */
#ifndef HERALD_PAGEMAP_H
#define HERALD_PAGEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cachepolicy.h"
#include "digest.h"

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
/** Consecutive cold clean misses that reject an edge. */
#define PAGEMAP_REJECT_MISSES 2
/** Scanned visits in a row whose HTML no longer names an edge that make it stale. */
#define PAGEMAP_STALE_SCANS 2
/**
 * A visit is cold when the client fetched, unconditionally, at least this
 * share (and at least one) of the page's expected assets that herald did
 * not push: strong or confirmed edges, and the visit's new strong items.
 */
#define PAGEMAP_COLD_SHARE 0.8
/**
 * A hint is sent only for an asset still fresh this long after the page's
 * think time (the browser's own request comes about then; cachepolicy_hintable).
 */
#define PAGEMAP_HINT_MARGIN_MS 2000
/** Default share of plans that hold back confirmed edges to re-check them (--explore). */
#define PAGEMAP_DEFAULT_EXPLORE 0.05
/** Confirmed edges a plan holds back for exploration: 1, or 2 from this many on. */
#define PAGEMAP_EXPLORE_TWO_FROM 8

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
    PAGEMAP_SRC_FOLLOWUP = 1u << 3, /* the client requested it after the page (and it was served) */
    PAGEMAP_SRC_PUSH = 1u << 4,     /* herald pushed it on this visit */
    PAGEMAP_SRC_HINT = 1u << 5,     /* herald hinted it (103) on this visit */
};
/** Sources that are discovery (what the page names). */
#define PAGEMAP_SRC_DISCOVERY (PAGEMAP_SRC_HTML | PAGEMAP_SRC_CSS | PAGEMAP_SRC_LINK)
/** Sources that mean herald delivered it: the visit says nothing of it. */
#define PAGEMAP_SRC_DELIVERED (PAGEMAP_SRC_PUSH | PAGEMAP_SRC_HINT)

typedef enum pagemap_edge_state {
    PAGEMAP_EDGE_LEARNED = 0,
    PAGEMAP_EDGE_PINNED, /* always planned (still subject to same-origin) */
    PAGEMAP_EDGE_BANNED, /* tombstone: never planned, never relearned */
} pagemap_edge_state_t;

typedef struct pagemap_config {
    size_t max_pages;           /* >= 1 */
    size_t max_assets_per_page; /* learned edges per page, >= 1 */
    double decay;               /* per counted visit, in (0, 1] */
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
    unsigned order;      /* document order hint (lower = earlier) */
    unsigned sources;    /* PAGEMAP_SRC_* seen on this visit */
    uint32_t group;      /* alternates set (one srcset / <picture>), 0 = none */
    bool blocking;       /* render-blocking (classic script in head, CSS) */
    bool strong;         /* discovery on this visit names it as fetched by every browser */
    bool conditional;    /* the client's request carried validators: it had a copy */
    bool skipped;        /* planned, not delivered: the client had it (no evidence) */
    bool push_cancelled; /* the client reset herald's push: it had it */
} pagemap_item_t;

/** One served page visit, built by the proxy. Everything is borrowed for the call. */
typedef struct pagemap_visit {
    const char *page_key;     /* required */
    const char *template_key; /* NULL or equal to page_key: no template entry */
    int64_t now_ms;
    double think_ms; /* origin think-time sample, < 0 when unknown */
    uint64_t html_size;
    int status;           /* the page's response status */
    bool html_scanned;    /* discovery ran on this visit's HTML */
    bool css_scanned;     /* a stylesheet of the page passed through and was scanned */
    bool browser;         /* the client's requests carry Sec-Fetch-*: it fetches what it renders */
    bool multiplexed;     /* the page's subresources all come on this connection (HTTP/2) */
    bool pushes_used;     /* the client kept a pushed stream: it uses subresources */
    bool authorized;      /* request had Authorization: commit does nothing */
    bool page_cookie;     /* the page request carried a Cookie header */
    bool page_set_cookie; /* the page response set a cookie */
    uint64_t validator;   /* hash of the page response's ETag and Last-Modified, 0 none */
    const digest_t *digest; /* the client's cache-digest cookie (borrowed), NULL none */
    /*
     * Late discovery of a visit already committed (the proxy fetched a
     * stylesheet the client did not, after the visit ended): the page's
     * counters do not move, no client evidence is counted; new items create
     * their edges and known ones update their description. Pass no template.
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

/** A page's HTML is scanned on every visit until it has this many visits... */
#define PAGEMAP_SCAN_STABLE_VISITS 8
/** ...then on one visit in this many, and whenever its validators changed. */
#define PAGEMAP_SCAN_SAMPLE 8

/**
 * Whether discovery should run on this visit of page_key, whose response
 * carries `validator` (pagemap_visit_t.validator): always for a page with
 * fewer than PAGEMAP_SCAN_STABLE_VISITS visits; then when the validator
 * differs from the one of its last scanned visit (the page changed: a new
 * asset version is seen at once), else on one call in
 * PAGEMAP_SCAN_SAMPLE (counted per page by this map, not by visits_total,
 * which folded evidence moves in steps). A page without validators is
 * sampled. NULL map: true.
 */
bool pagemap_should_scan(pagemap_t *pm, const char *page_key, uint64_t validator);

/** Response facts of one asset, borrowed for the call. */
typedef struct pagemap_asset_meta {
    int status;
    uint64_t size;             /* body bytes, 0 unknown */
    const char *content_type;  /* NULL = unknown */
    const char *etag;          /* NULL = none */
    const char *last_modified; /* NULL = none */
    const char *location;      /* normalised absolute target of a 301/302/307/308, else NULL */
    unsigned policy;           /* CACHEPOLICY_* bits of the response headers */
    int64_t fresh_ms;          /* cachepolicy_freshness_ms, < 0 unknown */
    bool pushed;               /* this response answered a push herald made */
} pagemap_asset_meta_t;

/**
 * Record the metadata of a response that passed through for the asset
 * `asset_key` (normalised URL). Only assets some page links to are kept:
 * an unknown key is ignored (returns HERALD_ENOTFOUND). The policy bits
 * replace the old ones, except CACHEPOLICY_SET_COOKIE, which stays once
 * seen (a media handler that starts a session sets it on first contact
 * only). A pushed response that is not a 200 marks the asset unpushable
 * (no more pushes; hints go on); a later 200 clears the mark. `location` is
 * kept only for 301/302/307/308.
 * Returns 0, HERALD_ENOTFOUND, HERALD_EINVAL or HERALD_ENOMEM.
 */
int pagemap_observe_asset(pagemap_t *pm, const char *asset_key, const pagemap_asset_meta_t *m);

/** Whether asset_key is an asset of some page in the map (false for NULL arguments). */
bool pagemap_has_asset(pagemap_t *pm, const char *asset_key);

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

/**
 * Why an edge is or is not planned (pagemap_edge_info_t.verdict), in the
 * order plan.c decides it. PINNED, CONFIRMED and STRONG are planned.
 */
typedef enum pagemap_verdict {
    PAGEMAP_VERDICT_PINNED = 0,
    PAGEMAP_VERDICT_CONFIRMED,     /* clean visits fetch it (confidence >= minimum) */
    PAGEMAP_VERDICT_STRONG,        /* discovery alone: a resource every browser fetches */
    PAGEMAP_VERDICT_WEAK,          /* discovered, waits for a clean visit to fetch it */
    PAGEMAP_VERDICT_UNCERTAIN,     /* clean visits fetch it less often than the minimum */
    PAGEMAP_VERDICT_REJECTED,      /* PAGEMAP_REJECT_MISSES cold clean visits did not fetch it */
    PAGEMAP_VERDICT_STALE,         /* the HTML stopped naming it; waits for a clean visit */
    PAGEMAP_VERDICT_SUPERSEDED,    /* a new version of the URL replaced it */
    PAGEMAP_VERDICT_ALTERNATE,     /* another candidate of its srcset/picture is planned */
    PAGEMAP_VERDICT_TWO_VISITS,    /* volatile URL or template entry: needs 2 visits */
    PAGEMAP_VERDICT_OTHER_ORIGIN,  /* another origin: preconnect only */
    PAGEMAP_VERDICT_STATUS,        /* last response not a 200 (nor a redirect to a plannable one) */
    PAGEMAP_VERDICT_UNDELIVERABLE, /* neither pushable nor hintable (cachepolicy) */
    PAGEMAP_VERDICT_BANNED,
    PAGEMAP_VERDICT_COUNT_
} pagemap_verdict_t;

/** Static name of a verdict ("confirmed", ...). */
const char *pagemap_verdict_name(pagemap_verdict_t v);

typedef enum pagemap_plan_source {
    PAGEMAP_PLAN_NONE = 0,
    PAGEMAP_PLAN_PAGE,
    PAGEMAP_PLAN_TEMPLATE,
} pagemap_plan_source_t;

/** Options of one plan. */
typedef struct pagemap_plan_opts {
    double min_confidence; /* clean confidence an edge needs, in [0, 1] */
    /*
     * Share of this page's plans, in [0, 1], that hold back 1 (2 from
     * PAGEMAP_EXPLORE_TWO_FROM confirmed edges on) confirmed edges, chosen in
     * rotation, so that their visits stay clean and re-check them; 0 = never.
     * Such plans are counted on the page (pagemap_page_info_t.explored).
     */
    double explore;
} pagemap_plan_opts_t;

/**
 * A page's (or template's) exploration counts, for the fleet's evidence
 * log: plans made with exploration on and, of those, plans that held
 * edges back since the last pagemap_explore_drain; `cursor` the rotation
 * position after the last edge held back (meaningful when explored > 0).
 */
typedef struct pagemap_explore_delta {
    const char *key;
    uint64_t plans, explored, cursor;
} pagemap_explore_delta_t;

/** Most entries pagemap_explore_track remembers between drains (the rest stay local). */
#define PAGEMAP_EXPLORE_MAX_KEYS 65536

/** One asset to deliver. Strings are malloc'd, owned by the plan. */
typedef struct pagemap_plan_item {
    char *url;  /* absolute URL to push / hint */
    char *key;  /* normalised key (for pagemap_note_delivery and the digest) */
    char *etag; /* NULL = unknown */
    char *as;   /* NULL = none recorded */
    pagemap_kind_t kind;
    pagemap_cors_t crossorigin;
    uint64_t size;           /* 0 = unknown */
    double confidence;       /* 1.0 for pinned and strong-only */
    int status;              /* last status seen, 0 = never observed */
    unsigned policy;         /* CACHEPOLICY_* bits last seen */
    bool pushable;           /* cachepolicy_pushable and no failed push */
    cachepolicy_hint_t hint; /* cachepolicy_hintable */
    bool is_redirect;        /* a 3xx whose target follows as the next item */
    bool pinned;
    pagemap_verdict_t verdict; /* PINNED, CONFIRMED or STRONG */
} pagemap_plan_item_t;

/** A copied-out plan. Zero it or let pagemap_plan fill it; free with pagemap_plan_dispose. */
typedef struct pagemap_plan {
    pagemap_plan_item_t *items; /* in delivery order */
    size_t n;
    char **preconnect; /* other origins ("https://cdn.example"), malloc'd */
    size_t npreconnect;
    char **held; /* keys of confirmed edges held back to explore (malloc'd) */
    size_t nheld;
    pagemap_plan_source_t source;
    double think_ms;       /* EWMA of the entry used (page, else template); < 0 unknown */
    uint64_t visits_total; /* of the page entry (0 if never seen) */
    uint64_t bytes_pushed; /* of the page entry, for reporting */
    uint64_t hints_sent;
    bool page_set_cookie; /* the page's last response set a cookie */
} pagemap_plan_t;

/**
 * Start (on) or stop recording, per entry, the exploration counts its
 * plans add (pagemap_explore_drain hands them out), so that a fleet of
 * maps explores a page at the --explore share of the fleet's plans, not
 * of each map's. Off at creation. Stopping drops what was recorded.
 */
void pagemap_explore_track(pagemap_t *pm, bool on);

/**
 * Hand `cb` the counts of each entry whose plans moved them since the
 * last drain (one call per entry; the delta and its key are borrowed for
 * the call, which runs under the map's lock: cb must not call into pm),
 * then zero them. Returns 0, or the first non-zero value cb returned (the
 * remaining entries are dropped too).
 */
int pagemap_explore_drain(pagemap_t *pm, int (*cb)(void *ctx, const pagemap_explore_delta_t *d),
                          void *ctx);

/**
 * Fold another map's counts into the entry d->key: plans and explored are
 * added, and the rotation continues after d->cursor when d->explored > 0.
 * Not recorded for the next drain. Returns 0, HERALD_ENOTFOUND (no such
 * entry: nothing to count) or HERALD_EINVAL.
 */
int pagemap_explore_add(pagemap_t *pm, const pagemap_explore_delta_t *d);

/**
 * Copy out the delivery plan for a request. `page_key` (required),
 * `template_key` (NULL = none) and `authority` (host[:port] of the page,
 * compared case-insensitively with each asset URL's authority; NULL = the
 * page key's leading authority) are borrowed. `now_ms` is reserved (pass
 * the current time). `opts` NULL = defaults (PAGEMAP_DEFAULT_MIN_CONFIDENCE,
 * no exploration). Only the authority is compared, not the scheme: the
 * proxy keeps one scheme per listener.
 * Items: edges whose verdict is PINNED, CONFIRMED or STRONG (see
 * pagemap_verdict_t), minus those held back to explore; last status 200
 * or never observed (0), or a redirect whose target is a known plannable
 * asset (then the redirect comes first and its target right after it);
 * pushable or hintable. Each item says which (the caller decides per
 * client). Ordered CSS, blocking scripts, fonts, module/deferred scripts,
 * images and icons, others; then document order. Edges to other
 * authorities and PRECONNECT edges give the deduplicated preconnect list.
 * The page entry is used when its last status was 2xx (or unknown) and it
 * yields a non-empty plan (source PAGE), else the template entry (TEMPLATE),
 * else NONE with no items. Touches the entry in the LRU order.
 * *out is overwritten (not freed first); on error it is left empty.
 * Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int pagemap_plan(pagemap_t *pm, const char *page_key, const char *template_key,
                 const char *authority, int64_t now_ms, const pagemap_plan_opts_t *opts,
                 pagemap_plan_t *out);

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
    bool set_cookie;         /* the page's last response set a cookie */
    double cold_visits;      /* decayed count of cold clean visits */
    double followup_visits;  /* decayed count of visits with follow-ups */
    uint64_t clean_total;    /* visits that counted clean evidence (cold or not) */
    uint64_t cold_total;     /* of those, cold */
    uint64_t plans;          /* plans made with exploration on */
    uint64_t explored;       /* of those, plans that held edges back */
    uint64_t explore_cursor; /* rotation position (hash of the last key held back) */
    uint64_t scan_validator; /* validators of the last scanned visit (pagemap_should_scan) */
    size_t nedges;           /* including pinned and banned */
    double navs;             /* decayed count of sessions that navigated away from it */
    uint64_t navs_total;     /* ... in all */
    size_t nnext;            /* next pages, including pinned and banned */
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
    uint32_t group;   /* alternates set, 0 none */
    bool blocking;
    bool volatile_url;
    bool strong;                       /* the latest discovery naming it called it strong */
    bool rejected;                     /* see PAGEMAP_REJECT_MISSES */
    bool superseded;                   /* a new version replaced it */
    double hits, visits;               /* decayed clean hits and clean visits */
    double confidence;                 /* hits / visits (0 with no clean visit) */
    uint64_t clean_hits, clean_misses; /* clean visits that fetched it / cold ones that did not */
    unsigned miss_streak;              /* consecutive cold clean misses */
    unsigned absent_streak;            /* consecutive scanned visits whose HTML did not name it */
    uint64_t hit_visits;               /* distinct visits that named or fetched it */
    int64_t first_seen_ms, last_seen_ms;
    uint64_t promised, completed, cancelled, hinted;
    pagemap_edge_state_t state;
    /* computed when copied out, with PAGEMAP_DEFAULT_MIN_CONFIDENCE */
    pagemap_verdict_t verdict;
    const char *verdict_reason; /* static, never NULL */
    bool pushable;              /* cachepolicy_pushable and no failed push */
    const char *unpushable_why; /* static or NULL */
    cachepolicy_hint_t hint;    /* cachepolicy_hintable */
    const char *hint_why;       /* static or NULL */
    /* asset metadata */
    uint64_t size;
    int status;
    char *content_type, *etag, *last_modified, *location;
    unsigned policy;  /* CACHEPOLICY_* bits */
    int64_t fresh_ms; /* freshness lifetime of its last response, < 0 unknown */
    bool unpushable;  /* a push of it came back non-200 */
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
    size_t nexts;                    /* next-page edges of every entry, all states */
    size_t next_pinned, next_banned; /* of those */
    size_t targets;                  /* distinct next pages (their navigation facts) */
    uint64_t navigations_committed;  /* transitions counted (pagemap_commit_navigation) */
} pagemap_stats_t;

/**
 * Copy the counters into *out. O(1): the totals are kept as the map
 * changes, so a scrape holds the lock only for a few loads.
 */
void pagemap_stats(pagemap_t *pm, pagemap_stats_t *out);

/**
 * Visits committed so far (pagemap_stats_t.visits_committed), read without
 * the lock: the state file's cheap "did the map change" check. Any thread.
 */
uint64_t pagemap_visits_committed(pagemap_t *pm);

/* ---- next pages (pagemap_next.c, pagemap_speculate.c) ------------------- */

/*
 * Where visitors go from a page (docs/learning.md, "Next pages"). Every
 * entry (page or template) keeps, per next page B, a decayed count of the
 * sessions that navigated from it to B, and its own decayed count of
 * sessions that navigated away at all; P(next = B | entry) = count / navs.
 * A next page is identified by its page key and shared by every entry that
 * names it, with the facts of its own navigations (status, what made it
 * unsafe to prefetch, distinct clients), refcounted like assets.
 */

/** Learned next pages per entry, at most (the least likely evicted first); pins and bans come on
 * top. */
#define PAGEMAP_MAX_NEXT 16
/** A learned next page is proposed only after this many sessions navigated to it from the entry. */
#define PAGEMAP_NEXT_MIN_NAVS 2
/**
 * A next page whose URL has a query or an id-like path segment
 * (template_segment_is_id) is proposed only once this many distinct clients
 * navigated to that exact URL: a value private to one client (a session or
 * CSRF token) never reaches another client's rule set.
 */
#define PAGEMAP_NEXT_MIN_CLIENTS 2
/** Consecutive clean navigations of a next page (200, HTML, none of the unsafe facts) that clear
 * its unsafe facts. */
#define PAGEMAP_NEXT_CLEAN_NAVS 16
/** Default minimum P(next | page) of a proposed next page (--speculation-min). */
#define PAGEMAP_SPEC_DEFAULT_MIN 0.3
/** Default most URLs in one rule set (--speculation-max). */
#define PAGEMAP_SPEC_DEFAULT_MAX 5
/** The most likely learned next page is prefetched `immediate` from this probability on; the rest
 * `moderate`. */
#define PAGEMAP_SPEC_IMMEDIATE 0.5
/** A next page loses its rule when at least this many known prefetch outcomes... */
#define PAGEMAP_SPEC_MIN_KNOWN 4
/** ...show a decayed use rate (used / (used + unused)) below this. */
#define PAGEMAP_SPEC_MIN_USE 0.3
/** A known outcome this long after the previous one starts a fresh use record (a lost rule is
 * retried). */
#define PAGEMAP_SPEC_RETRY_MS (24 * 3600 * 1000LL)

/** Facts of a next page's own navigations that make it unsafe to prefetch (bitmask). */
enum pagemap_unsafe_bits {
    PAGEMAP_UNSAFE_SET_COOKIE = 1u << 0,    /* a navigation of it was answered with Set-Cookie */
    PAGEMAP_UNSAFE_REDIRECT = 1u << 1,      /* ... with a redirect (3xx other than 304) */
    PAGEMAP_UNSAFE_NOT_HTML = 1u << 2,      /* ... with a 2xx that was not text/html */
    PAGEMAP_UNSAFE_AUTHORIZATION = 1u << 3, /* a navigation of it carried Authorization */
};
#define PAGEMAP_UNSAFE_NBITS 4
/** Static name of one unsafe bit index ("set-cookie", "redirect", "not-html", "authorization"). */
const char *pagemap_unsafe_name(unsigned bit);

/** One navigation, reported when its response is known (visit_commit does this). Borrowed. */
typedef struct pagemap_nav {
    const char *page_key; /* the page navigated to (B), required */
    const char *url;      /* its normalised absolute URL, required */
    /*
     * The page it came from (A: the same-origin Referer, not B itself, not a
     * reload) and A's template key, or NULL: then only B's facts are recorded.
     */
    const char *from_page_key;
    const char *from_template_key;
    const char
        *client; /* the client's identity (its address) for distinct clients; NULL or "" unknown */
    int64_t now_ms;  /* wall clock */
    int status;      /* B's final status */
    bool html;       /* B's response is text/html */
    bool set_cookie; /* B's response set a cookie */
    bool authorized; /* B's request carried Authorization */
    /*
     * One session's weight (session.h): count_from moves A's navigations
     * away (once per session per A), count_pair A's count of B (once per
     * session per (A, B)); the same for A's template.
     */
    bool count_from, count_pair;
    bool count_template_from, count_template_pair;
} pagemap_nav_t;

/**
 * Record one navigation of n->page_key. Its facts (last status except 304;
 * PAGEMAP_UNSAFE_* bits, kept until PAGEMAP_NEXT_CLEAN_NAVS clean
 * navigations in a row; the client, for distinct clients) go to the next
 * page shared by every entry that names it, when one does. When it is a
 * transition (from_page_key set, status 2xx, HTML, not authorized, B is not
 * A and neither is herald's rule-set URL), it also moves A's entry and A's
 * template entry (created when missing): with count_from, navs = navs*d + 1
 * and every next page's count decays by d; with count_pair, B's count grows
 * by 1 (never above navs). A banned next page counts nothing.
 * Returns 0 (also when nothing counted), HERALD_EINVAL (NULL map, nav, page
 * key or URL) or HERALD_ENOMEM (partly applied; consistent).
 */
int pagemap_commit_navigation(pagemap_t *pm, const pagemap_nav_t *n);

/** What became of a prefetch herald proposed (learn/prefetch.h measures it). */
typedef enum pagemap_prefetch_event {
    PAGEMAP_PREFETCH_SENT,   /* the browser prefetched it through herald */
    PAGEMAP_PREFETCH_USED,   /* the client then used it (follow-ups or an onward navigation from it)
                              */
    PAGEMAP_PREFETCH_UNUSED, /* the client navigated to it again: the prefetch was not used */
    PAGEMAP_PREFETCH_UNKNOWN, /* no signal within the prefetch lifetime */
} pagemap_prefetch_event_t;

/**
 * Count a prefetch event of next page `next_key` proposed for the page
 * `from_page_key` (and its template `from_template_key`, NULL none) on
 * both entries' next-page edges. USED and UNUSED are known outcomes: they
 * move the decayed use rate (hits*d + used over known*d + 1); a known
 * outcome PAGEMAP_SPEC_RETRY_MS after the previous one first clears the use
 * record. `now_ms` is the wall clock. Returns 0, HERALD_ENOTFOUND (neither
 * entry names it) or HERALD_EINVAL.
 */
int pagemap_note_prefetch(pagemap_t *pm, const char *from_page_key, const char *from_template_key,
                          const char *next_key, pagemap_prefetch_event_t event, int64_t now_ms);

/** Why a next page is or is not proposed, in the order it is decided. PINNED and LIKELY are
 * proposed. */
typedef enum pagemap_next_verdict {
    PAGEMAP_NEXT_PINNED = 0,   /* the operator pinned it (safety still applies) */
    PAGEMAP_NEXT_LIKELY,       /* P >= the minimum, enough navigations, prefetches used */
    PAGEMAP_NEXT_UNLIKELY,     /* P below the minimum */
    PAGEMAP_NEXT_TWO_NAVS,     /* fewer than PAGEMAP_NEXT_MIN_NAVS sessions went there from here */
    PAGEMAP_NEXT_UNUSED,       /* its prefetches are seldom used (PAGEMAP_SPEC_MIN_USE) */
    PAGEMAP_NEXT_PRIVATE,      /* query or id in the URL, sent by too few distinct clients */
    PAGEMAP_NEXT_UNSAFE,       /* never seen answered 200 HTML, or an unsafe fact */
    PAGEMAP_NEXT_DENIED,       /* matches a deny pattern (learn/speculation.h) */
    PAGEMAP_NEXT_SELF,         /* the page itself */
    PAGEMAP_NEXT_OTHER_ORIGIN, /* another authority */
    PAGEMAP_NEXT_BANNED,
    PAGEMAP_NEXT_VERDICT_COUNT_
} pagemap_next_verdict_t;

/** Static name of a next-page verdict ("likely", ...). */
const char *pagemap_next_verdict_name(pagemap_next_verdict_t v);

/** Options of a rule-set selection. pagemap_spec_opts_init() gives the defaults. */
typedef struct pagemap_spec_opts {
    double min_probability; /* in [0, 1] */
    double immediate;       /* the most likely gets `immediate` from this P on */
    size_t max_urls;        /* 0 = no URL at all */
    /* Deny patterns (speculation_denied), borrowed; NULL = the default list. */
    const char *const *deny;
    size_t ndeny;
    int64_t now_ms; /* wall clock: a rule lost to unused prefetches is retried later */
} pagemap_spec_opts_t;

/** Fill *o with PAGEMAP_SPEC_DEFAULT_MIN, PAGEMAP_SPEC_IMMEDIATE, PAGEMAP_SPEC_DEFAULT_MAX, the
 * default deny list, now 0. */
void pagemap_spec_opts_init(pagemap_spec_opts_t *o);

/** A copied-out next page. Strings malloc'd, owned by the struct. */
typedef struct pagemap_next_info {
    char *key;          /* the next page's page key */
    char *url;          /* its absolute URL */
    double count;       /* decayed sessions that went there from the entry */
    double probability; /* count / the entry's navs (0 when none) */
    uint64_t navs;      /* sessions that went there from the entry, in all */
    int64_t first_seen_ms, last_seen_ms;
    pagemap_edge_state_t state;
    /* prefetches proposed by this entry */
    uint64_t sent, used, unused, unknown;
    double use_hits, use_known; /* decayed known outcomes: used, and used + unused */
    uint64_t use_n;             /* known outcomes since the use record was last cleared */
    int64_t last_outcome_ms;    /* wall clock of the last known outcome, 0 none */
    /* facts of its own navigations (shared by every entry naming it) */
    int status;         /* last status of a navigation of it, 0 never seen */
    unsigned unsafe;    /* PAGEMAP_UNSAFE_* */
    unsigned clean_run; /* clean navigations since the last unsafe one */
    unsigned nclients;  /* distinct clients seen navigating to it (saturates) */
    uint64_t clients[PAGEMAP_NEXT_MIN_CLIENTS]; /* their hashes */
    bool private_url; /* query or id-like segment: needs PAGEMAP_NEXT_MIN_CLIENTS */
    /* computed when copied out, with the options given (defaults for a dump) */
    pagemap_next_verdict_t verdict;
    const char *reason; /* static, never NULL */
} pagemap_next_info_t;

/** Free the strings of one next info (not the struct). */
void pagemap_next_info_dispose(pagemap_next_info_t *x);
/** Free an array of n next infos and the array. */
void pagemap_next_infos_free(pagemap_next_info_t *v, size_t n);

/**
 * Copy out an entry's next pages, most likely first (then key), with their
 * verdicts under `opts` (NULL = defaults). *out (NULL when *n == 0) is
 * owned by the caller: pagemap_next_infos_free. Returns 0,
 * HERALD_ENOTFOUND (no such entry), HERALD_EINVAL or HERALD_ENOMEM.
 */
int pagemap_next_get(pagemap_t *pm, const char *page_key, const pagemap_spec_opts_t *opts,
                     pagemap_next_info_t **out, size_t *n);

/**
 * Set the state of the next page `next_url` (normalised absolute URL; its
 * page key is derived) of entry `page_key`. PINNED or BANNED on a missing
 * one (or entry) creates it; LEARNED turns a pin or ban back into a
 * learned next page. Returns 0, HERALD_ENOTFOUND (LEARNED on a missing
 * one), HERALD_EINVAL (bad URL) or HERALD_ENOMEM.
 */
int pagemap_next_set_state(pagemap_t *pm, const char *page_key, const char *next_url,
                           pagemap_edge_state_t state);

/** Remove one next page of an entry, whatever its state. Returns 0, HERALD_ENOTFOUND or
 * HERALD_EINVAL. */
int pagemap_forget_next(pagemap_t *pm, const char *page_key, const char *next_url);

typedef enum pagemap_eagerness {
    PAGEMAP_EAGER_IMMEDIATE,
    PAGEMAP_EAGER_MODERATE,
} pagemap_eagerness_t;

/** One URL of a rule set. Strings malloc'd, owned by the set. */
typedef struct pagemap_spec_item {
    char *url; /* absolute, same authority as the page */
    char *key; /* its page key (learn/prefetch.h reports outcomes by it) */
    double probability;
    pagemap_eagerness_t eagerness;
    bool pinned;
} pagemap_spec_item_t;

/** A copied-out rule set selection: free with pagemap_spec_dispose. */
typedef struct pagemap_spec {
    pagemap_spec_item_t *items; /* pins first, then most likely first */
    size_t n;
    pagemap_plan_source_t source; /* the entry used: PAGE, TEMPLATE or NONE */
} pagemap_spec_t;

/**
 * The next pages to prefetch from page `page_key` (its template
 * `template_key`, NULL none; `authority` host[:port] of the page, NULL =
 * the page key's): of the page entry, or when it proposes none of the
 * template entry; those whose verdict is PINNED or LIKELY (see
 * pagemap_next_verdict_t: never banned, denied, unsafe or private, never
 * the page itself, never another authority), pins first then by
 * probability, at most opts->max_urls. The most likely learned one is
 * IMMEDIATE when its P >= opts->immediate, every other MODERATE. Does not
 * touch the LRU order. *out is overwritten; on error it is left empty.
 * Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int pagemap_speculation(pagemap_t *pm, const char *page_key, const char *template_key,
                        const char *authority, const pagemap_spec_opts_t *opts,
                        pagemap_spec_t *out);

/** Free a selection and zero it. NULL is a no-op. */
void pagemap_spec_dispose(pagemap_spec_t *spec);

/**
 * Record whether page `page_key`'s HTML, as just scanned, carries an inline
 * `<script type=speculationrules>` (the page asks for its own prefetches:
 * herald adds no rules of its own to it). Kept in memory only, not in
 * snapshots. A page not in the map is ignored. NULL arguments are a no-op.
 */
void pagemap_set_inline_rules(pagemap_t *pm, const char *page_key, bool has);
/** What pagemap_set_inline_rules last recorded for page_key; false when unknown. */
bool pagemap_inline_rules(pagemap_t *pm, const char *page_key);

/* ---- bulk copy (snapshot) ----------------------------------------------- */

/** A deep copy of pages with their edges. */
typedef struct pagemap_dump_page {
    pagemap_page_info_t info;
    pagemap_edge_info_t *edges;
    size_t nedges;
    pagemap_next_info_t *next; /* next pages, NULL when none */
    size_t nnext;
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

/**
 * The asset kind of a request or response: from Sec-Fetch-Dest when given
 * (style, script, font, image, manifest), else from the Content-Type
 * (text/css, *javascript*, font/..., image/...), else the URL's extension
 * (.css, .js, .mjs, fonts, images, .ico, .webmanifest); PAGEMAP_KIND_OTHER
 * when none says. Pure; any argument may be NULL.
 */
pagemap_kind_t pagemap_kind_guess(const char *sec_fetch_dest, const char *content_type,
                                  const char *url);

/**
 * The preload `as` of a kind ("style", "script" for scripts and modules,
 * "font", "image" for images and icons, "manifest", "fetch" for other),
 * NULL for PAGEMAP_KIND_PRECONNECT. Static string.
 */
const char *pagemap_kind_as(pagemap_kind_t kind);

/** Static name of a kind ("style", ... "preconnect"); "other" when out of range. */
const char *pagemap_kind_name(pagemap_kind_t kind);
/** Parse a kind name; returns 0 and sets *out, or HERALD_EINVAL. */
int pagemap_kind_parse(const char *name, pagemap_kind_t *out);

#endif
