/*
 * The insides of the learned map, shared by its files and by nothing
 * else: pagemap.c (the store: tables, LRU, caps, admin copy-out, dump and
 * restore), pagemap_evidence.c (pagemap_commit_visit), pagemap_plan.c
 * (pagemap_plan and the verdict of an edge), pagemap_next.c (next pages:
 * navigations, prefetch outcomes, steering, copy-out) and
 * pagemap_speculate.c (their verdicts and the rule-set selection). Every function here expects
 * the map's lock to be held by its caller. Names start with pm_.
 */
#ifndef HERALD_PAGEMAP_IMPL_H
#define HERALD_PAGEMAP_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagemap.h"

typedef struct pm_hnode {
    struct pm_hnode *next;
    uint64_t hash;
    char *key;
} pm_hnode_t;

typedef struct pm_table {
    pm_hnode_t **b;
    size_t nb, n;
} pm_table_t;

/** An asset shared by every page linking to it; refcounted by edges. */
typedef struct pm_asset {
    pm_hnode_t h; /* first: the table links assets through it */
    char *url;
    size_t refs;
    int status;
    uint64_t size;
    char *content_type, *etag, *last_modified, *location;
    unsigned policy;  /* CACHEPOLICY_* */
    int64_t fresh_ms; /* < 0 unknown */
    bool unpushable;  /* a push of it came back non-200 */
} pm_asset_t;

typedef struct pm_edge {
    pm_asset_t *asset;
    char as[PAGEMAP_AS_MAX + 1];
    pagemap_kind_t kind;
    pagemap_cors_t cors;
    unsigned order, sources;
    uint32_t group;
    bool blocking, volatile_url;
    bool strong, rejected, superseded;
    double ch, cn; /* decayed clean hits, clean visits */
    uint64_t clean_hits, clean_misses;
    unsigned miss_streak, absent_streak;
    uint64_t hit_visits;
    int64_t first_seen, last_seen;
    uint64_t promised, completed, cancelled, hinted;
    pagemap_edge_state_t state;
    bool seen;  /* scratch during a commit: the visit has an item for it */
    bool named; /* scratch: ... that discovery named or the client fetched */
} pm_edge_t;

/**
 * A next page shared by every entry that navigates to it, refcounted by
 * next edges: the facts of its own navigations (pagemap_commit_navigation).
 */
typedef struct pm_target {
    pm_hnode_t h; /* first: the table links targets through it; key = its page key */
    char *url;
    size_t refs;
    int status;         /* last status of a navigation of it (not 304), 0 never */
    unsigned unsafe;    /* PAGEMAP_UNSAFE_* */
    unsigned clean_run; /* clean navigations since the last unsafe one */
    unsigned nclients;
    uint64_t clients[PAGEMAP_NEXT_MIN_CLIENTS];
    bool private_url; /* query or id-like segment */
} pm_target_t;

/** An entry's next page: how often sessions went there, and its prefetches' fate. */
typedef struct pm_next {
    pm_target_t *target;
    double count; /* decayed sessions that went there from the entry */
    uint64_t navs;
    int64_t first_seen, last_seen;
    pagemap_edge_state_t state;
    uint64_t sent, used, unused, unknown;
    double use_hits, use_known;
    uint64_t use_n;
    int64_t last_outcome;
} pm_next_t;

typedef struct pm_page {
    pm_hnode_t h;
    struct pm_page *prev, *next; /* LRU: pm->head is the most recent */
    char *template_key;
    bool is_template;
    pm_edge_t *edges;
    size_t n, cap, nlearned;
    double visits;
    uint64_t visits_total;
    int64_t last_visit;
    double think;
    uint64_t html_size;
    int status;
    uint64_t bytes_pushed, hints_sent;
    bool followups_seen;
    bool set_cookie;
    double cold_visits; /* decayed count of cold clean visits */
    double fvisits;     /* decayed count of visits with follow-ups */
    uint64_t clean_total, cold_total;
    uint64_t plans, explored, explore_cursor;
    uint64_t plans_out, explored_out; /* since the last pagemap_explore_drain */
    bool explore_listed;              /* its key is in pm->explore_keys */
    uint64_t scan_validator;
    uint32_t scan_asks; /* pagemap_should_scan() calls once stable: the sampling clock */
    pm_next_t *nexts;   /* next pages (pagemap_next.c) */
    size_t nnext, capnext, nnext_learned;
    double navs; /* decayed sessions that navigated away */
    uint64_t navs_total;
    bool inline_rules; /* its HTML, as last scanned, has inline speculation rules (not saved) */
} pm_page_t;

struct pagemap {
    pthread_mutex_t lock;
    pagemap_config_t cfg;
    pm_table_t pages, assets, targets;
    pm_page_t *head, *tail;
    uint64_t pages_evicted, edges_evicted;
    /* Kept as edges and pages change, so that pagemap_stats() (a /metrics
     * scrape) holds the lock for O(1), not for a walk of every edge:
     * edges of every page, those pinned and banned, template entries. */
    size_t nedges, npinned, nbanned, ntemplates;
    size_t nnexts;                     /* next-page edges of every entry */
    size_t nnext_pinned, nnext_banned; /* of those */
    uint64_t navigations_committed;
    /* pagemap_explore_track: keys of the entries whose exploration counts
     * moved since the last drain (malloc'd) */
    bool explore_track;
    char **explore_keys;
    size_t nexplore_keys, capexplore_keys;
    /* Written under the lock, read without it (pagemap_visits_committed). */
    _Atomic uint64_t visits_committed;
};

/** Count edge e (just added, or removed next) in pm's totals: dir +1 or -1. */
void pm_count_edge(pagemap_t *pm, const pm_edge_t *e, int dir);
/** Make p a template entry (or not), keeping pm->ntemplates. */
void pm_set_template(pagemap_t *pm, pm_page_t *p, bool is_template);

/* ---- helpers (pagemap.c) ---- */

uint64_t pm_hash(const char *s);
/** malloc'd copies (NULL on ENOMEM); pm_dup_or_null(NULL) is NULL. */
char *pm_dup(const char *s);
char *pm_dupn(const char *s, size_t len);
char *pm_dup_or_null(const char *s);
/** Replace *dst with a copy of src (NULL clears); false on ENOMEM (dst unchanged). */
bool pm_set_str(char **dst, const char *src);

pm_asset_t *pm_asset_find(pagemap_t *pm, const char *key);
/** The asset for key, created with refs 0 when missing; NULL on ENOMEM. */
pm_asset_t *pm_asset_get(pagemap_t *pm, const char *key, const char *url);
/** Drop an asset that got no edge after pm_asset_get (refs still 0). */
void pm_asset_drop_unused(pagemap_t *pm, pm_asset_t *a);

pm_page_t *pm_page_find(pagemap_t *pm, const char *key);
/** The page for key, created (evicting under the cap) when missing; NULL on ENOMEM. */
pm_page_t *pm_page_get(pagemap_t *pm, const char *key, bool *created);
void pm_lru_touch(pagemap_t *pm, pm_page_t *p);
/** Unlink and free a page entry with everything it holds. */
void pm_page_remove(pagemap_t *pm, pm_page_t *p);

pm_edge_t *pm_edge_find(pm_page_t *p, const pm_asset_t *a);
/**
 * Append a zeroed edge to asset a (taking a reference); a learned edge first
 * makes room under the cap. NULL on ENOMEM (a untouched). Edge pointers into
 * p->edges are invalid afterwards (the array may move or lose an entry).
 */
pm_edge_t *pm_edge_add(pagemap_t *pm, pm_page_t *p, pm_asset_t *a, pagemap_edge_state_t state);

/** Clean confidence ch / cn, 0 with no clean visit. */
double pm_confidence(const pm_edge_t *e);
/** Criticality rank: CSS, blocking scripts, fonts, module/deferred scripts, images, others. */
int pm_kind_rank(pagemap_kind_t kind, bool blocking);
/** Plan order of two edges (qsort over pointers). */
int pm_cmp_edge_plan(const void *a, const void *b);
/** host[:port] of an absolute URL equals authority (case-insensitive); relative: true. */
bool pm_same_authority(const char *url, const char *authority);
/** Length of "scheme://authority" of an absolute URL, 0 when not absolute. */
size_t pm_origin_len(const char *url);

/**
 * How a 103 preload of a's response would be used, for a page whose think
 * time is think_ms (< 0 unknown), by a request of edge e's kind and CORS
 * mode (cachepolicy_hintable). An asset never observed counts as fresh.
 */
cachepolicy_hint_t pm_hint(const pm_asset_t *a, const pm_edge_t *e, double think_ms,
                           const char **why);

/* ---- next pages (pagemap_next.c, pagemap_speculate.c) ---- */

/** The hash tables' node operations, for the targets table (pagemap.c). */
pm_hnode_t *pm_table_find(const pm_table_t *t, const char *key, uint64_t h);
int pm_table_insert(pm_table_t *t, pm_hnode_t *node);
void pm_table_remove(pm_table_t *t, pm_hnode_t *node);

/** Remove p's next pages: every one, or (learned_only) the learned ones; navs counters stay. */
void pm_next_clear(pagemap_t *pm, pm_page_t *p, bool learned_only);
/** Next pages of p that are pinned or banned (they keep the entry over the page cap). */
size_t pm_next_overrides(const pm_page_t *p);
/** Copy out p's next pages with verdicts under o (NULL defaults), most likely first. */
int pm_next_copy(const pm_page_t *p, const pagemap_spec_opts_t *o, pagemap_next_info_t **out,
                 size_t *n);
/** Load dumped next pages into p (restore); learned ones past PAGEMAP_MAX_NEXT are dropped. */
int pm_next_restore(pagemap_t *pm, pm_page_t *p, const pagemap_next_info_t *v, size_t n);
/** count / navs of x in p, 0 when p has none. */
double pm_next_probability(const pm_page_t *p, const pm_next_t *x);

/**
 * Why x (a next page of entry p) is or is not proposed for the page
 * `self_key` at `authority` (host[:port], NULL = p's key's) under o.
 * `why` gets a static reason.
 */
pagemap_next_verdict_t pm_next_verdict(const pm_page_t *p, const pm_next_t *x, const char *self_key,
                                       const char *authority, const pagemap_spec_opts_t *o,
                                       const char **why);

/* ---- verdicts (pagemap_plan.c) ---- */

/**
 * Why e is or is not planned, before status, alternates and delivery
 * rules (those need the page's other edges: pagemap_plan applies them).
 * `is_template`: e belongs to a template entry. `why` gets a static reason.
 */
pagemap_verdict_t pm_edge_verdict(const pm_edge_t *e, bool is_template, double min_confidence,
                                  const char **why);

/**
 * Of two planned candidates of one alternates set, is x the one to plan
 * over y: a pin, then the more decayed clean hits, the higher confidence,
 * more clean hits in all, earlier in the document.
 */
bool pm_alternate_better(const pm_edge_t *x, const pm_edge_t *y);

#endif
