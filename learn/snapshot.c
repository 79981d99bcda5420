/*
 * JSON snapshot of the learned map: dump (under the map's lock) -> JSON (no
 * lock) on the way out; JSON -> validated dump -> restore (one lock hold)
 * on the way in, so bad input never touches the map.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cachepolicy.h"
#include "herald/error.h"

static const char *const cors_names[] = {"none", "anonymous", "use-credentials"};
static const char *const state_names[] = {"learned", "pinned", "banned"};
static const char *const source_names[] = {"html", "css", "link", "followup", "push", "hint"};
#define NSOURCES (sizeof(source_names) / sizeof(source_names[0]))

/* ---- out --------------------------------------------------------------- */

/* Set obj[k] = v (stolen); a NULL v or a failed set marks *bad. */
static void put(json_t *obj, const char *k, json_t *v, bool *bad)
{
    if (v == NULL || json_object_set_new(obj, k, v) != 0)
        *bad = true;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *policy_json(unsigned bits)
{
    json_t *a = json_array();
    for (unsigned b = 0; a != NULL && b < CACHEPOLICY_NBITS; b++)
        if ((bits & (1u << b)) && json_array_append_new(a, json_string(cachepolicy_bit_name(b)))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *unsafe_json(unsigned bits)
{
    json_t *a = json_array();
    for (unsigned b = 0; a != NULL && b < PAGEMAP_UNSAFE_NBITS; b++)
        if ((bits & (1u << b)) && json_array_append_new(a, json_string(pagemap_unsafe_name(b)))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *next_json(const pagemap_next_info_t *x)
{
    bool bad = false;
    json_t *o = json_object(), *cl = json_array();
    if (o == NULL || cl == NULL) {
        json_decref(o);
        json_decref(cl);
        return NULL;
    }
    for (unsigned i = 0; i < x->nclients && i < PAGEMAP_NEXT_MIN_CLIENTS; i++)
        if (json_array_append_new(cl, json_integer((json_int_t)(int64_t)x->clients[i])) != 0)
            bad = true;
    put(o, "key", json_string(x->key), &bad);
    put(o, "url", json_string(x->url), &bad);
    put(o, "count", json_real(x->count), &bad);
    put(o, "navs", json_integer((json_int_t)x->navs), &bad);
    put(o, "first_seen_ms", json_integer(x->first_seen_ms), &bad);
    put(o, "last_seen_ms", json_integer(x->last_seen_ms), &bad);
    put(o, "state", json_string(state_names[(unsigned)x->state % 3]), &bad);
    put(o, "sent", json_integer((json_int_t)x->sent), &bad);
    put(o, "used", json_integer((json_int_t)x->used), &bad);
    put(o, "unused", json_integer((json_int_t)x->unused), &bad);
    put(o, "unknown", json_integer((json_int_t)x->unknown), &bad);
    put(o, "use_hits", json_real(x->use_hits), &bad);
    put(o, "use_known", json_real(x->use_known), &bad);
    put(o, "use_n", json_integer((json_int_t)x->use_n), &bad);
    put(o, "last_outcome_ms", json_integer(x->last_outcome_ms), &bad);
    put(o, "status", json_integer(x->status), &bad);
    put(o, "unsafe", unsafe_json(x->unsafe), &bad);
    put(o, "clean_run", json_integer(x->clean_run), &bad);
    put(o, "clients", cl, &bad);
    /* computed, for the operator; ignored on import */
    put(o, "probability", json_real(x->probability), &bad);
    put(o, "use_rate", x->use_known > 0 ? json_real(x->use_hits / x->use_known) : json_null(),
        &bad);
    put(o, "private", json_boolean(x->private_url), &bad);
    put(o, "verdict", json_string(pagemap_next_verdict_name(x->verdict)), &bad);
    put(o, "reason", json_string(x->reason ? x->reason : ""), &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *page_json(const pagemap_dump_page_t *dp)
{
    const pagemap_page_info_t *i = &dp->info;
    bool bad = false;
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    put(o, "key", json_string(i->key), &bad);
    put(o, "template_key", str_or_null(i->template_key), &bad);
    put(o, "template", json_boolean(i->is_template), &bad);
    put(o, "visits", json_real(i->visits), &bad);
    put(o, "visits_total", json_integer((json_int_t)i->visits_total), &bad);
    put(o, "last_visit_ms", json_integer(i->last_visit_ms), &bad);
    put(o, "think_ms", json_real(i->think_ms), &bad);
    put(o, "html_size", json_integer((json_int_t)i->html_size), &bad);
    put(o, "status", json_integer(i->status), &bad);
    put(o, "bytes_pushed", json_integer((json_int_t)i->bytes_pushed), &bad);
    put(o, "hints_sent", json_integer((json_int_t)i->hints_sent), &bad);
    put(o, "followups_seen", json_boolean(i->followups_seen), &bad);
    put(o, "set_cookie", json_boolean(i->set_cookie), &bad);
    put(o, "cold_visits", json_real(i->cold_visits), &bad);
    put(o, "followup_visits", json_real(i->followup_visits), &bad);
    put(o, "clean_total", json_integer((json_int_t)i->clean_total), &bad);
    put(o, "cold_total", json_integer((json_int_t)i->cold_total), &bad);
    put(o, "plans", json_integer((json_int_t)i->plans), &bad);
    put(o, "explored", json_integer((json_int_t)i->explored), &bad);
    put(o, "explore_share", json_real(i->plans ? (double)i->explored / (double)i->plans : 0.0),
        &bad);
    put(o, "explore_cursor", json_integer((json_int_t)(int64_t)i->explore_cursor), &bad);
    put(o, "scan_validator", json_integer((json_int_t)(int64_t)i->scan_validator), &bad);
    json_t *edges = json_array();
    for (size_t k = 0; edges && k < dp->nedges && !bad; k++) {
        const pagemap_edge_info_t *e = &dp->edges[k];
        json_t *eo = json_object(), *src = json_array();
        if (eo == NULL || src == NULL) {
            json_decref(eo);
            json_decref(src);
            bad = true;
            break;
        }
        for (size_t b = 0; b < NSOURCES; b++)
            if ((e->sources & (1u << b)) &&
                json_array_append_new(src, json_string(source_names[b])))
                bad = true;
        put(eo, "key", json_string(e->key), &bad);
        put(eo, "url", json_string(e->url), &bad);
        put(eo, "kind", json_string(pagemap_kind_name(e->kind)), &bad);
        put(eo, "as", str_or_null(e->as), &bad);
        put(eo, "crossorigin", json_string(cors_names[(unsigned)e->crossorigin % 3]), &bad);
        put(eo, "order", json_integer(e->order), &bad);
        put(eo, "sources", src, &bad);
        put(eo, "group", json_integer(e->group), &bad);
        put(eo, "blocking", json_boolean(e->blocking), &bad);
        put(eo, "volatile", json_boolean(e->volatile_url), &bad);
        put(eo, "strong", json_boolean(e->strong), &bad);
        put(eo, "rejected", json_boolean(e->rejected), &bad);
        put(eo, "superseded", json_boolean(e->superseded), &bad);
        put(eo, "hits", json_real(e->hits), &bad);
        put(eo, "visits", json_real(e->visits), &bad);
        put(eo, "confidence", json_real(e->confidence), &bad);
        put(eo, "clean_hits", json_integer((json_int_t)e->clean_hits), &bad);
        put(eo, "clean_misses", json_integer((json_int_t)e->clean_misses), &bad);
        put(eo, "miss_streak", json_integer(e->miss_streak), &bad);
        put(eo, "absent_streak", json_integer(e->absent_streak), &bad);
        put(eo, "hit_visits", json_integer((json_int_t)e->hit_visits), &bad);
        put(eo, "first_seen_ms", json_integer(e->first_seen_ms), &bad);
        put(eo, "last_seen_ms", json_integer(e->last_seen_ms), &bad);
        put(eo, "promised", json_integer((json_int_t)e->promised), &bad);
        put(eo, "completed", json_integer((json_int_t)e->completed), &bad);
        put(eo, "cancelled", json_integer((json_int_t)e->cancelled), &bad);
        put(eo, "hinted", json_integer((json_int_t)e->hinted), &bad);
        put(eo, "state", json_string(state_names[(unsigned)e->state % 3]), &bad);
        put(eo, "size", json_integer((json_int_t)e->size), &bad);
        put(eo, "status", json_integer(e->status), &bad);
        put(eo, "content_type", str_or_null(e->content_type), &bad);
        put(eo, "etag", str_or_null(e->etag), &bad);
        put(eo, "last_modified", str_or_null(e->last_modified), &bad);
        put(eo, "location", str_or_null(e->location), &bad);
        put(eo, "policy", policy_json(e->policy), &bad);
        put(eo, "fresh_ms", json_integer(e->fresh_ms), &bad);
        put(eo, "unpushable", json_boolean(e->unpushable), &bad);
        /* computed, for the operator; ignored on import */
        put(eo, "verdict", json_string(pagemap_verdict_name(e->verdict)), &bad);
        put(eo, "reason", json_string(e->verdict_reason ? e->verdict_reason : ""), &bad);
        put(eo, "pushable", json_boolean(e->pushable), &bad);
        put(eo, "unpushable_why", str_or_null(e->unpushable_why), &bad);
        put(eo, "hintable",
            json_string(e->hint == CACHEPOLICY_HINT_YES  ? "yes"
                        : e->hint == CACHEPOLICY_HINT_NO ? "no"
                                                         : "if-cookie-stable"),
            &bad);
        put(eo, "hint_why", str_or_null(e->hint_why), &bad);
        if (json_array_append_new(edges, eo) != 0)
            bad = true;
    }
    put(o, "edges", edges, &bad);
    put(o, "navs", json_real(i->navs), &bad);
    put(o, "navs_total", json_integer((json_int_t)i->navs_total), &bad);
    json_t *next = json_array();
    for (size_t k = 0; next && k < dp->nnext && !bad; k++)
        if (json_array_append_new(next, next_json(&dp->next[k])) != 0)
            bad = true;
    put(o, "next", next, &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int dumps(json_t *root, char **json_out, size_t *len_out)
{
    char *s = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (s == NULL)
        return HERALD_ENOMEM;
    *json_out = s;
    if (len_out)
        *len_out = strlen(s);
    return 0;
}

int snapshot_export_dump(const pagemap_dump_t *d, char **json_out, size_t *len_out)
{
    if (d == NULL || json_out == NULL)
        return HERALD_EINVAL;
    *json_out = NULL;
    bool bad = false;
    json_t *root = json_object(), *pages = json_array();
    if (root == NULL || pages == NULL) {
        json_decref(root);
        json_decref(pages);
        return HERALD_ENOMEM;
    }
    put(root, "version", json_integer(SNAPSHOT_VERSION), &bad);
    for (size_t i = 0; i < d->n && !bad; i++)
        if (json_array_append_new(pages, page_json(&d->pages[i])) != 0)
            bad = true;
    put(root, "pages", pages, &bad);
    if (bad) {
        json_decref(root);
        return HERALD_ENOMEM;
    }
    return dumps(root, json_out, len_out);
}

int snapshot_export(pagemap_t *pm, char **json_out, size_t *len_out)
{
    if (pm == NULL || json_out == NULL)
        return HERALD_EINVAL;
    pagemap_dump_t d;
    int rc = pagemap_dump(pm, &d);
    if (rc != 0)
        return rc;
    rc = snapshot_export_dump(&d, json_out, len_out);
    pagemap_dump_dispose(&d);
    return rc;
}

int snapshot_export_page_spec(pagemap_t *pm, const char *page_key, const pagemap_spec_opts_t *opts,
                              char **json_out, size_t *len_out)
{
    if (pm == NULL || page_key == NULL || json_out == NULL)
        return HERALD_EINVAL;
    *json_out = NULL;
    pagemap_dump_page_t dp;
    memset(&dp, 0, sizeof(dp));
    int rc = pagemap_page_get(pm, page_key, &dp.info, &dp.edges, &dp.nedges);
    if (rc != 0)
        return rc;
    /* a separate lock hold: the entry may have gone in between (then no next pages) */
    rc = pagemap_next_get(pm, page_key, opts, &dp.next, &dp.nnext);
    if (rc == 0 || rc == HERALD_ENOTFOUND)
        rc = dumps(page_json(&dp), json_out, len_out);
    pagemap_page_info_dispose(&dp.info);
    pagemap_edge_infos_free(dp.edges, dp.nedges);
    pagemap_next_infos_free(dp.next, dp.nnext);
    return rc;
}

int snapshot_export_page(pagemap_t *pm, const char *page_key, char **json_out, size_t *len_out)
{
    return snapshot_export_page_spec(pm, page_key, NULL, json_out, len_out);
}

int snapshot_export_list(pagemap_t *pm, size_t offset, size_t limit, const char *filter,
                         char **json_out, size_t *len_out)
{
    if (pm == NULL || json_out == NULL)
        return HERALD_EINVAL;
    *json_out = NULL;
    pagemap_page_info_t *v = NULL;
    size_t n = 0, total = 0;
    int rc = pagemap_list(pm, offset, limit, filter, &v, &n, &total);
    if (rc != 0)
        return rc;
    bool bad = false;
    json_t *root = json_object(), *pages = json_array();
    if (root == NULL || pages == NULL)
        bad = true;
    for (size_t i = 0; i < n && !bad; i++) {
        pagemap_dump_page_t dp = {.info = v[i]};
        json_t *po = page_json(&dp);
        if (po == NULL) {
            bad = true;
            break;
        }
        json_object_del(po, "edges");
        json_object_del(po, "next");
        put(po, "edge_count", json_integer((json_int_t)v[i].nedges), &bad);
        put(po, "next_count", json_integer((json_int_t)v[i].nnext), &bad);
        if (json_array_append_new(pages, po) != 0) /* steals po either way */
            bad = true;
    }
    pagemap_page_infos_free(v, n);
    if (root != NULL && pages != NULL) {
        put(root, "total", json_integer((json_int_t)total), &bad);
        put(root, "offset", json_integer((json_int_t)offset), &bad);
        put(root, "pages", pages, &bad);
        pages = NULL;
    }
    json_decref(pages);
    if (bad) {
        json_decref(root);
        return HERALD_ENOMEM;
    }
    return dumps(root, json_out, len_out);
}

/* ---- in ---------------------------------------------------------------- */

typedef struct vctx {
    char *reason;
    size_t reasonlen;
    int rc;
    int version; /* of the document being read */
} vctx_t;

static bool fail(vctx_t *c, int rc, const char *fmt, ...)
{
    if (c->rc == 0) {
        c->rc = rc;
        if (c->reason && c->reasonlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->reason, c->reasonlen, fmt, ap);
            va_end(ap);
        }
    }
    return false;
}

/* Optional string member: absent or null → NULL (ok); copied into *out. */
static bool get_str(vctx_t *c, json_t *o, const char *k, bool required, char **out, size_t idx)
{
    json_t *v = json_object_get(o, k);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required)
            return fail(c, HERALD_EPARSE, "page %zu: missing \"%s\"", idx, k);
        return true;
    }
    if (!json_is_string(v))
        return fail(c, HERALD_EPARSE, "page %zu: \"%s\" is not a string", idx, k);
    size_t len = json_string_length(v);
    if (len > SNAPSHOT_MAX_STRING || (required && len == 0))
        return fail(c, HERALD_EPARSE, "page %zu: \"%s\" empty or too long", idx, k);
    if (memchr(json_string_value(v), '\0', len) != NULL)
        return fail(c, HERALD_EPARSE, "page %zu: \"%s\" contains NUL", idx, k);
    if ((*out = malloc(len + 1)) == NULL) /* not strdup: malloc-failure tests must reach it */
        return fail(c, HERALD_ENOMEM, "out of memory");
    memcpy(*out, json_string_value(v), len + 1);
    return true;
}

static bool get_num(vctx_t *c, json_t *o, const char *k, double min, double *out, size_t idx)
{
    json_t *v = json_object_get(o, k);
    *out = 0;
    if (v == NULL)
        return true;
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < min)
        return fail(c, HERALD_EPARSE, "page %zu: \"%s\" is not a valid number", idx, k);
    *out = json_number_value(v);
    return true;
}

static bool get_uint(vctx_t *c, json_t *o, const char *k, uint64_t *out, size_t idx)
{
    json_t *v = json_object_get(o, k);
    *out = 0;
    if (v == NULL)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail(c, HERALD_EPARSE, "page %zu: \"%s\" is not a non-negative integer", idx, k);
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static bool get_int(vctx_t *c, json_t *o, const char *k, int64_t lo, int64_t hi, int64_t *out,
                    size_t idx)
{
    json_t *v = json_object_get(o, k);
    *out = 0;
    if (v == NULL)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return fail(c, HERALD_EPARSE, "page %zu: \"%s\" is not an integer in range", idx, k);
    *out = json_integer_value(v);
    return true;
}

static bool get_bool(vctx_t *c, json_t *o, const char *k, bool *out, size_t idx)
{
    json_t *v = json_object_get(o, k);
    *out = false;
    if (v == NULL)
        return true;
    if (!json_is_boolean(v))
        return fail(c, HERALD_EPARSE, "page %zu: \"%s\" is not a boolean", idx, k);
    *out = json_is_true(v);
    return true;
}

static bool get_enum(vctx_t *c, json_t *o, const char *k, const char *const *names, unsigned n,
                     unsigned *out, size_t idx)
{
    json_t *v = json_object_get(o, k);
    *out = 0;
    if (v == NULL || json_is_null(v))
        return true;
    for (unsigned i = 0; json_is_string(v) && i < n; i++) {
        if (strcmp(json_string_value(v), names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    return fail(c, HERALD_EPARSE, "page %zu: bad \"%s\"", idx, k);
}

static bool parse_edge(vctx_t *c, json_t *eo, pagemap_edge_info_t *e, size_t idx)
{
    if (!json_is_object(eo))
        return fail(c, HERALD_EPARSE, "page %zu: an edge is not an object", idx);
    int64_t i64;
    unsigned u;
    double conf;
    if (!get_str(c, eo, "key", true, &e->key, idx) || !get_str(c, eo, "url", false, &e->url, idx) ||
        !get_str(c, eo, "as", false, &e->as, idx) ||
        !get_str(c, eo, "content_type", false, &e->content_type, idx) ||
        !get_str(c, eo, "etag", false, &e->etag, idx) ||
        !get_str(c, eo, "last_modified", false, &e->last_modified, idx) ||
        !get_str(c, eo, "location", false, &e->location, idx))
        return false;
    json_t *kind = json_object_get(eo, "kind");
    e->kind = PAGEMAP_KIND_OTHER;
    if (kind != NULL &&
        (!json_is_string(kind) || pagemap_kind_parse(json_string_value(kind), &e->kind) != 0))
        return fail(c, HERALD_EPARSE, "page %zu: bad \"kind\"", idx);
    if (!get_enum(c, eo, "crossorigin", cors_names, 3, &u, idx))
        return false;
    e->crossorigin = (pagemap_cors_t)u;
    if (!get_enum(c, eo, "state", state_names, 3, &u, idx))
        return false;
    e->state = (pagemap_edge_state_t)u;
    if (!get_int(c, eo, "order", 0, UINT32_MAX, &i64, idx))
        return false;
    e->order = (unsigned)i64;
    json_t *src = json_object_get(eo, "sources");
    if (src != NULL) {
        if (!json_is_array(src) || json_array_size(src) > 16)
            return fail(c, HERALD_EPARSE, "page %zu: bad \"sources\"", idx);
        for (size_t k = 0; k < json_array_size(src); k++) {
            json_t *s = json_array_get(src, k);
            unsigned b = 0;
            while (b < NSOURCES &&
                   !(json_is_string(s) && !strcmp(json_string_value(s), source_names[b])))
                b++;
            if (b == NSOURCES)
                return fail(c, HERALD_EPARSE, "page %zu: unknown source", idx);
            e->sources |= 1u << b;
        }
    }
    json_t *pol = json_object_get(eo, "policy");
    if (pol != NULL) {
        if (!json_is_array(pol) || json_array_size(pol) > CACHEPOLICY_NBITS)
            return fail(c, HERALD_EPARSE, "page %zu: bad \"policy\"", idx);
        for (size_t k = 0; k < json_array_size(pol); k++) {
            json_t *s = json_array_get(pol, k);
            unsigned b = 0;
            while (b < CACHEPOLICY_NBITS &&
                   !(json_is_string(s) && !strcmp(json_string_value(s), cachepolicy_bit_name(b))))
                b++;
            if (b == CACHEPOLICY_NBITS)
                return fail(c, HERALD_EPARSE, "page %zu: unknown policy", idx);
            e->policy |= 1u << b;
        }
    }
    bool cacheable = true;
    int64_t group = 0, streak = 0, absent = 0, fresh = -1;
    if (!get_bool(c, eo, "blocking", &e->blocking, idx) ||
        !get_bool(c, eo, "volatile", &e->volatile_url, idx) ||
        !get_bool(c, eo, "strong", &e->strong, idx) ||
        !get_bool(c, eo, "rejected", &e->rejected, idx) ||
        !get_bool(c, eo, "superseded", &e->superseded, idx) ||
        !get_int(c, eo, "group", 0, UINT32_MAX, &group, idx) ||
        !get_uint(c, eo, "clean_hits", &e->clean_hits, idx) ||
        !get_uint(c, eo, "clean_misses", &e->clean_misses, idx) ||
        !get_int(c, eo, "miss_streak", 0, 1000000, &streak, idx) ||
        !get_int(c, eo, "absent_streak", 0, 1000000, &absent, idx) ||
        !get_int(c, eo, "fresh_ms", -1, INT64_MAX, &fresh, idx) ||
        (c->version == 1 && json_object_get(eo, "cacheable") != NULL &&
         !get_bool(c, eo, "cacheable", &cacheable, idx)) ||
        !get_bool(c, eo, "unpushable", &e->unpushable, idx) ||
        !get_num(c, eo, "hits", 0, &e->hits, idx) ||
        !get_num(c, eo, "visits", 0, &e->visits, idx) ||
        !get_num(c, eo, "confidence", 0, &conf, idx) ||
        !get_uint(c, eo, "hit_visits", &e->hit_visits, idx) ||
        !get_int(c, eo, "first_seen_ms", INT64_MIN, INT64_MAX, &e->first_seen_ms, idx) ||
        !get_int(c, eo, "last_seen_ms", INT64_MIN, INT64_MAX, &e->last_seen_ms, idx) ||
        !get_uint(c, eo, "promised", &e->promised, idx) ||
        !get_uint(c, eo, "completed", &e->completed, idx) ||
        !get_uint(c, eo, "cancelled", &e->cancelled, idx) ||
        !get_uint(c, eo, "hinted", &e->hinted, idx) || !get_uint(c, eo, "size", &e->size, idx) ||
        !get_int(c, eo, "status", 0, 999, &i64, idx))
        return false;
    e->status = (int)i64;
    e->group = (uint32_t)group;
    e->miss_streak = (unsigned)streak;
    e->absent_streak = (unsigned)absent;
    e->fresh_ms = json_object_get(eo, "fresh_ms") != NULL ? fresh : -1;
    if (c->version == 1) {
        /* Version 1 knew one "cacheable" flag and no clean evidence: what was
         * not cacheable is delivered by neither means until a response is
         * seen again, and what discovery named counts as strong. */
        if (!cacheable)
            e->policy |= CACHEPOLICY_NO_STORE;
        e->strong = (e->sources & (PAGEMAP_SRC_HTML | PAGEMAP_SRC_LINK)) != 0;
    }
    if (e->hits > e->visits * (1 + 1e-9) + 1e-9)
        return fail(c, HERALD_EPARSE, "page %zu: edge hits exceed visits", idx);
    return true;
}

static bool parse_next(vctx_t *c, json_t *xo, pagemap_next_info_t *x, double navs, size_t idx)
{
    if (!json_is_object(xo))
        return fail(c, HERALD_EPARSE, "page %zu: a next page is not an object", idx);
    int64_t st, run;
    unsigned u;
    if (!get_str(c, xo, "key", true, &x->key, idx) || !get_str(c, xo, "url", true, &x->url, idx))
        return false;
    const char *sep = strstr(x->url, "://");
    if (sep == NULL || sep == x->url || sep != x->url + strcspn(x->url, ":/?#") ||
        strcspn(sep + 3, "/?#") == 0)
        return fail(c, HERALD_EPARSE, "page %zu: a next page's \"url\" is not absolute", idx);
    if (!get_enum(c, xo, "state", state_names, 3, &u, idx))
        return false;
    x->state = (pagemap_edge_state_t)u;
    if (!get_num(c, xo, "count", 0, &x->count, idx) || !get_uint(c, xo, "navs", &x->navs, idx) ||
        !get_int(c, xo, "first_seen_ms", INT64_MIN, INT64_MAX, &x->first_seen_ms, idx) ||
        !get_int(c, xo, "last_seen_ms", INT64_MIN, INT64_MAX, &x->last_seen_ms, idx) ||
        !get_uint(c, xo, "sent", &x->sent, idx) || !get_uint(c, xo, "used", &x->used, idx) ||
        !get_uint(c, xo, "unused", &x->unused, idx) ||
        !get_uint(c, xo, "unknown", &x->unknown, idx) ||
        !get_num(c, xo, "use_hits", 0, &x->use_hits, idx) ||
        !get_num(c, xo, "use_known", 0, &x->use_known, idx) ||
        !get_uint(c, xo, "use_n", &x->use_n, idx) ||
        !get_int(c, xo, "last_outcome_ms", INT64_MIN, INT64_MAX, &x->last_outcome_ms, idx) ||
        !get_int(c, xo, "status", 0, 999, &st, idx) ||
        !get_int(c, xo, "clean_run", 0, 1000000, &run, idx))
        return false;
    x->status = (int)st;
    x->clean_run = (unsigned)run;
    if (x->count > navs * (1 + 1e-9) + 1e-9)
        return fail(c, HERALD_EPARSE, "page %zu: a next page's count exceeds the page's navs", idx);
    if (x->use_hits > x->use_known * (1 + 1e-9) + 1e-9)
        return fail(c, HERALD_EPARSE, "page %zu: a next page's use_hits exceed use_known", idx);
    json_t *un = json_object_get(xo, "unsafe");
    if (un != NULL) {
        if (!json_is_array(un) || json_array_size(un) > PAGEMAP_UNSAFE_NBITS)
            return fail(c, HERALD_EPARSE, "page %zu: bad \"unsafe\"", idx);
        for (size_t k = 0; k < json_array_size(un); k++) {
            json_t *s = json_array_get(un, k);
            unsigned b = 0;
            while (b < PAGEMAP_UNSAFE_NBITS &&
                   !(json_is_string(s) && !strcmp(json_string_value(s), pagemap_unsafe_name(b))))
                b++;
            if (b == PAGEMAP_UNSAFE_NBITS)
                return fail(c, HERALD_EPARSE, "page %zu: unknown unsafe fact", idx);
            x->unsafe |= 1u << b;
        }
    }
    json_t *cl = json_object_get(xo, "clients");
    if (cl != NULL) {
        if (!json_is_array(cl) || json_array_size(cl) > PAGEMAP_NEXT_MIN_CLIENTS)
            return fail(c, HERALD_EPARSE, "page %zu: bad \"clients\"", idx);
        for (size_t k = 0; k < json_array_size(cl); k++) {
            json_t *h = json_array_get(cl, k);
            if (!json_is_integer(h))
                return fail(c, HERALD_EPARSE, "page %zu: bad \"clients\"", idx);
            x->clients[k] = (uint64_t)json_integer_value(h);
        }
        x->nclients = (unsigned)json_array_size(cl);
    }
    return true;
}

static bool parse_page(vctx_t *c, json_t *po, pagemap_dump_page_t *dp, size_t idx)
{
    pagemap_page_info_t *i = &dp->info;
    if (!json_is_object(po))
        return fail(c, HERALD_EPARSE, "page %zu is not an object", idx);
    int64_t st, cursor, validator;
    if (!get_str(c, po, "key", true, &i->key, idx) ||
        !get_str(c, po, "template_key", false, &i->template_key, idx) ||
        !get_bool(c, po, "template", &i->is_template, idx) ||
        !get_num(c, po, "visits", 0, &i->visits, idx) ||
        !get_uint(c, po, "visits_total", &i->visits_total, idx) ||
        !get_int(c, po, "last_visit_ms", INT64_MIN, INT64_MAX, &i->last_visit_ms, idx) ||
        !get_num(c, po, "think_ms", -INFINITY, &i->think_ms, idx) ||
        !get_uint(c, po, "html_size", &i->html_size, idx) ||
        !get_int(c, po, "status", 0, 999, &st, idx) ||
        !get_uint(c, po, "bytes_pushed", &i->bytes_pushed, idx) ||
        !get_uint(c, po, "hints_sent", &i->hints_sent, idx) ||
        !get_bool(c, po, "followups_seen", &i->followups_seen, idx) ||
        !get_bool(c, po, "set_cookie", &i->set_cookie, idx) ||
        !get_num(c, po, "cold_visits", 0, &i->cold_visits, idx) ||
        !get_num(c, po, "followup_visits", 0, &i->followup_visits, idx) ||
        !get_uint(c, po, "clean_total", &i->clean_total, idx) ||
        !get_uint(c, po, "cold_total", &i->cold_total, idx) ||
        !get_uint(c, po, "plans", &i->plans, idx) ||
        !get_uint(c, po, "explored", &i->explored, idx) ||
        !get_int(c, po, "explore_cursor", INT64_MIN, INT64_MAX, &cursor, idx) ||
        !get_int(c, po, "scan_validator", INT64_MIN, INT64_MAX, &validator, idx))
        return false;
    i->status = (int)st;
    i->explore_cursor = (uint64_t)cursor;
    i->scan_validator = (uint64_t)validator;
    if (json_object_get(po, "think_ms") == NULL)
        i->think_ms = -1;
    if (!get_num(c, po, "navs", 0, &i->navs, idx) ||
        !get_uint(c, po, "navs_total", &i->navs_total, idx))
        return false;
    json_t *next = json_object_get(po, "next");
    if (next != NULL) {
        if (!json_is_array(next) || json_array_size(next) > SNAPSHOT_MAX_EDGES)
            return fail(c, HERALD_EPARSE, "page %zu: bad \"next\"", idx);
        size_t nn = json_array_size(next);
        if (nn > 0 && (dp->next = calloc(nn, sizeof(*dp->next))) == NULL)
            return fail(c, HERALD_ENOMEM, "out of memory");
        for (size_t k = 0; k < nn; k++) {
            dp->nnext = k + 1; /* so dispose frees a half-parsed one */
            if (!parse_next(c, json_array_get(next, k), &dp->next[k], i->navs, idx))
                return false;
        }
        i->nnext = nn;
    }
    json_t *edges = json_object_get(po, "edges");
    if (edges == NULL)
        return true;
    if (!json_is_array(edges))
        return fail(c, HERALD_EPARSE, "page %zu: \"edges\" is not an array", idx);
    size_t n = json_array_size(edges);
    if (n > SNAPSHOT_MAX_EDGES)
        return fail(c, HERALD_EPARSE, "page %zu: too many edges", idx);
    if (n == 0)
        return true;
    if ((dp->edges = calloc(n, sizeof(*dp->edges))) == NULL)
        return fail(c, HERALD_ENOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
        dp->nedges = k + 1; /* so dispose frees a half-parsed edge */
        if (!parse_edge(c, json_array_get(edges, k), &dp->edges[k], idx))
            return false;
    }
    i->nedges = n;
    return true;
}

/* Parse and validate the whole document into *d (caller disposes it in every case). */
static int parse_doc(vctx_t *c, const char *json, size_t len, pagemap_dump_t *d)
{
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL && json_error_code(&err) == json_error_out_of_memory) {
        fail(c, HERALD_ENOMEM, "out of memory");
        return c->rc;
    }
    if (root == NULL) {
        fail(c, HERALD_EPARSE, "invalid JSON at line %d column %d: %s", err.line, err.column,
             err.text);
        return c->rc;
    }
    json_t *ver = json_object_get(root, "version");
    json_t *pages = json_object_get(root, "pages");
    if (!json_is_object(root))
        fail(c, HERALD_EPARSE, "the document is not a JSON object");
    else if (!json_is_integer(ver) || json_integer_value(ver) < 1)
        fail(c, HERALD_EPARSE, "missing or bad \"version\"");
    else if (json_integer_value(ver) > SNAPSHOT_VERSION)
        fail(c, HERALD_EUNSUPPORTED, "version %lld is newer than supported version %d",
             (long long)json_integer_value(ver), SNAPSHOT_VERSION);
    else if (!json_is_array(pages))
        fail(c, HERALD_EPARSE, "missing or bad \"pages\"");
    else if (json_array_size(pages) > SNAPSHOT_MAX_PAGES)
        fail(c, HERALD_EPARSE, "too many pages");
    else if (json_array_size(pages) > 0 &&
             (d->pages = calloc(json_array_size(pages), sizeof(*d->pages))) == NULL)
        fail(c, HERALD_ENOMEM, "out of memory");
    if (c->rc == 0)
        c->version = (int)json_integer_value(ver);
    for (size_t i = 0; c->rc == 0 && i < json_array_size(pages); i++) {
        d->n = i + 1;
        parse_page(c, json_array_get(pages, i), &d->pages[i], i);
    }
    json_decref(root);
    return c->rc;
}

int snapshot_import(pagemap_t *pm, const char *json, size_t len, snapshot_mode_t mode, char *reason,
                    size_t reasonlen)
{
    if (reason && reasonlen)
        reason[0] = '\0';
    if (pm == NULL || (json == NULL && len > 0))
        return HERALD_EINVAL;
    vctx_t c = {reason, reasonlen, 0, 0};
    pagemap_dump_t d = {0};
    int rc = parse_doc(&c, json ? json : "", len, &d);
    if (rc == 0)
        rc = pagemap_restore(
            pm, &d, mode == SNAPSHOT_REPLACE ? PAGEMAP_RESTORE_REPLACE : PAGEMAP_RESTORE_MERGE);
    pagemap_dump_dispose(&d);
    return rc;
}

/* ---- files ------------------------------------------------------------- */

static int fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (dir == NULL)
        return -ENOMEM;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int snapshot_write_file(const char *path, const char *data, size_t len)
{
    if (path == NULL || (data == NULL && len > 0))
        return HERALD_EINVAL;
    static unsigned counter;
    unsigned n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    size_t tlen = strlen(path) + 48;
    char *tmp = malloc(tlen);
    if (tmp == NULL)
        return -ENOMEM;
    snprintf(tmp, tlen, "%s.tmp.%ld.%u", path, (long)getpid(), n);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int rc = -errno;
        free(tmp);
        return rc;
    }
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno != EINTR)
            rc = -errno;
        else if (w > 0)
            off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0)
        unlink(tmp);
    else
        rc = fsync_dir_of(path);
    free(tmp);
    return rc;
}

int snapshot_save_file(pagemap_t *pm, const char *path)
{
    char *json;
    size_t len;
    int rc = snapshot_export(pm, &json, &len);
    if (rc != 0)
        return rc;
    rc = snapshot_write_file(path, json, len);
    free(json);
    return rc;
}

static void set_aside(const char *path, char *reason, size_t reasonlen)
{
    size_t alen = strlen(path) + 40;
    char *aside = malloc(alen);
    if (aside == NULL)
        return;
    snprintf(aside, alen, "%s.corrupt-%lld", path, (long long)time(NULL));
    bool moved = rename(path, aside) == 0;
    if (reason && reasonlen) {
        size_t used = strlen(reason);
        if (used < reasonlen)
            snprintf(reason + used, reasonlen - used,
                     moved ? "; moved to %s" : "; could not move %s", moved ? aside : path);
    }
    free(aside);
}

int snapshot_load_file(pagemap_t *pm, const char *path, char *reason, size_t reasonlen)
{
    if (reason && reasonlen)
        reason[0] = '\0';
    if (pm == NULL || path == NULL)
        return HERALD_EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = errno == ENOENT ? HERALD_ENOTFOUND : -errno;
        if (reason && reasonlen)
            snprintf(reason, reasonlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if ((uint64_t)st.st_size > SNAPSHOT_MAX_FILE) {
        close(fd);
        if (reason && reasonlen)
            snprintf(reason, reasonlen, "%s: %lld bytes is over the %u byte cap", path,
                     (long long)st.st_size, SNAPSHOT_MAX_FILE);
        set_aside(path, reason, reasonlen);
        return HERALD_ETOOBIG;
    }
    size_t len = (size_t)st.st_size;
    char *buf = malloc(len + 1);
    if (buf == NULL) {
        close(fd);
        return HERALD_ENOMEM;
    }
    size_t got = 0;
    int rc = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (rc == 0) {
        rc = snapshot_import(pm, buf, got, SNAPSHOT_REPLACE, reason, reasonlen);
        if (rc == HERALD_EPARSE || rc == HERALD_EUNSUPPORTED)
            set_aside(path, reason, reasonlen);
    }
    free(buf);
    return rc;
}
