/*
 * The learned map as one versioned JSON document (docs/architecture.md, "State on
 * disk"; the admin export/import uses the same format):
 *
 *   {"version":2,"pages":[{"key":"example.com/item/1","template_key":"example.com/item/ *",
 *     "template":false,"visits":1.9,"visits_total":2,"last_visit_ms":1700000000000,
 *     "think_ms":120.5,"html_size":20480,"status":200,"bytes_pushed":0,"hints_sent":3,
 *     "followups_seen":true,"set_cookie":false,"cold_visits":1.0,"clean_total":1,
 *     "cold_total":1,"plans":2,"explored":0,"explore_share":0.0,"explore_cursor":0,
 *     "edges":[{"key":"https://example.com/a.css","url":"https://example.com/a.css",
 *     "kind":"style","as":"style","crossorigin":"none","order":0,"sources":["html","hint"],
 *     "group":0,"blocking":true,"volatile":false,"strong":true,"rejected":false,
 *     "superseded":false,"hits":1.0,"visits":1.0,"confidence":1.0,"clean_hits":1,
 *     "clean_misses":0,"miss_streak":0,"absent_streak":0,"hit_visits":2,
 *     "first_seen_ms":...,"last_seen_ms":...,"promised":0,"completed":0,
 *     "cancelled":0,"hinted":1,"state":"learned","size":1234,"status":200,
 *     "content_type":"text/css","etag":"\"abc\"","last_modified":null,
 *     "location":null,"policy":["vary-accept-encoding"],"unpushable":false,
 *     "verdict":"confirmed","reason":"clean visits fetch it","pushable":true,
 *     "unpushable_why":null,"hintable":"yes","hint_why":null}]}]}
 *
 * Each page object also carries its next pages (pagemap.h, "next pages"):
 *   "navs":9.1,"navs_total":14,"next":[{"key":"example.com/item/2",
 *     "url":"https://example.com/item/2","count":4.2,"navs":6,
 *     "first_seen_ms":...,"last_seen_ms":...,"state":"learned","sent":3,
 *     "used":2,"unused":0,"unknown":1,"use_hits":1.9,"use_known":1.9,"use_n":2,
 *     "last_outcome_ms":...,"status":200,"unsafe":["set-cookie"],"clean_run":0,
 *     "clients":[-4880301744011456131,77012312],"probability":0.46,"use_rate":1.0,
 *     "private":false,"verdict":"likely","reason":"likely next page"}]
 * "status", "unsafe", "clean_run" and "clients" are facts of the next page's
 * own navigations, shared by every page naming it (the last one imported
 * wins). "probability", "use_rate", "private", "verdict" and "reason" are
 * computed and ignored on import. These members were added without a
 * version change: a reader that does not know them ignores them, and a
 * document without them (older, or version 1) has no next pages.
 * "hits" and "visits" of an edge are its decayed clean evidence (pagemap.h).
 * "explore_share", "verdict", "reason", "pushable", "unpushable_why",
 * "hintable" and "hint_why" are computed for the operator and ignored on
 * import. Version 1 documents (no clean evidence, one "cacheable" flag) are
 * read too: their discovery-named edges count as strong, and an edge that
 * was not cacheable is delivered by neither means until herald sees a
 * response of it again.
 * (the space in the template key only keeps this C comment open).
 * Pages are listed most recently used first. Optional members may be
 * omitted on import (defaults: 0, false, null, "learned", "none"); unknown
 * members are ignored. Serialisation works from a deep copy taken under the
 * map's lock, so the JSON is built with the lock released. No logging.
 */
#ifndef HERALD_SNAPSHOT_H
#define HERALD_SNAPSHOT_H

#include <stddef.h>

#include "pagemap.h"

#define SNAPSHOT_VERSION 2
/** Largest document snapshot_load_file reads. */
#define SNAPSHOT_MAX_FILE (256u * 1024 * 1024)
/** Validation caps on import. */
#define SNAPSHOT_MAX_PAGES 1000000
#define SNAPSHOT_MAX_EDGES 10000
#define SNAPSHOT_MAX_STRING 16384

typedef enum snapshot_mode {
    SNAPSHOT_MERGE,   /* pages in the document replace same-key pages; others stay */
    SNAPSHOT_REPLACE, /* the map becomes the document */
} snapshot_mode_t;

/**
 * Serialise the whole map (compact JSON). *json_out is malloc'd and
 * NUL-terminated, owned by the caller (free()); *len_out (may be NULL) gets
 * its length. Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int snapshot_export(pagemap_t *pm, char **json_out, size_t *len_out);

/**
 * Serialise an already taken dump (pagemap_dump): lets the proxy take the
 * copy on the loop and build the JSON on a thread pool. `d` is borrowed.
 * Same results as snapshot_export.
 */
int snapshot_export_dump(const pagemap_dump_t *d, char **json_out, size_t *len_out);

/**
 * Serialise one page and its edges as the page object of the document
 * (the admin's GET /maps/page). Returns 0, HERALD_ENOTFOUND, HERALD_EINVAL
 * or HERALD_ENOMEM; *json_out as in snapshot_export.
 */
int snapshot_export_page(pagemap_t *pm, const char *page_key, char **json_out, size_t *len_out);

/**
 * snapshot_export_page with the next pages' verdicts computed under `opts`
 * (the configured --speculation-* values; NULL = defaults).
 */
int snapshot_export_page_spec(pagemap_t *pm, const char *page_key, const pagemap_spec_opts_t *opts,
                              char **json_out, size_t *len_out);

/**
 * The admin's page list (GET /maps) as JSON: {"total":N,"offset":O,
 * "pages":[page objects as in the document, without "edges" but with
 * "edge_count"]}, sorted by key, filtered and paged as pagemap_list.
 * *json_out as in snapshot_export. Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int snapshot_export_list(pagemap_t *pm, size_t offset, size_t limit, const char *filter,
                         char **json_out, size_t *len_out);

/**
 * Parse json[0..len) and validate all of it before touching the map; then
 * load it (pagemap_restore). Malformed input (bad JSON, wrong types,
 * negative or non-finite numbers, hits > visits, a next page's count >
 * the page's navs or use_hits > use_known, a next page's URL not absolute,
 * unknown kind, state or unsafe fact,
 * over the SNAPSHOT_MAX_* caps) → HERALD_EPARSE; "version" > SNAPSHOT_VERSION →
 * HERALD_EUNSUPPORTED; in both cases the map is untouched and `reason`
 * (may be NULL) receives a NUL-terminated message (truncated to
 * reasonlen). Returns 0, those, HERALD_EINVAL or HERALD_ENOMEM. (jansson
 * 2.14 reports an allocation failure inside its parser as a syntax error,
 * so that one case comes back as HERALD_EPARSE.)
 */
int snapshot_import(pagemap_t *pm, const char *json, size_t len, snapshot_mode_t mode, char *reason,
                    size_t reasonlen);

/**
 * Write data[0..len) to `path` atomically: a temp file "<path>.tmp.<pid>"
 * in the same directory, write, fsync, rename over path, fsync the
 * directory. Blocking: call it off the event loop. On error the temp file
 * is removed and the old file is intact. Returns 0 or a negative errno.
 */
int snapshot_write_file(const char *path, const char *data, size_t len);

/**
 * Export the map and snapshot_write_file it. Returns 0, the codes of
 * snapshot_export or a negative errno.
 */
int snapshot_save_file(pagemap_t *pm, const char *path);

/**
 * Load `path` into the map (REPLACE). A missing file returns
 * HERALD_ENOTFOUND with the map untouched (not an error: start empty). A
 * corrupt, truncated, oversized or future-version file is renamed to
 * "<path>.corrupt-<unix seconds>" and HERALD_EPARSE / HERALD_EUNSUPPORTED /
 * HERALD_ETOOBIG is returned with a reason (which mentions where the file
 * went); the map is untouched and the caller starts empty. Other read
 * errors: a negative errno. `reason` may be NULL.
 */
int snapshot_load_file(pagemap_t *pm, const char *path, char *reason, size_t reasonlen);

#endif
