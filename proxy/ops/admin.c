/*
 * The admin listener: accept, parse one request with llhttp, route it,
 * answer and close. See admin.h.
 */
#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "pagemap.h"
#include "snapshot.h"
#include "herald/error.h"
#include "link.h"
#include "query.h"
#include "admin_timeline.h"
#include "alloc.h"
#include "list.h"
#include "delivery.h"
#include "log.h"
#include "metrics.h"
#include "pace.h"
#include "state.h"
#include "sharedmap.h"
#include "speculate.h"

enum {
    ADMIN_MAX_URL = 16384,
    ADMIN_MAX_HEADER = 8192,
    ADMIN_PROBE_TIMEOUT_MS = 2000,
    ADMIN_READ_TIMEOUT_MS = 30000, /* the whole request, head and body */
};

typedef struct admin_conn admin_conn_t;

struct admin {
    uv_loop_t *loop;
    uv_tcp_t listener; /* data = this */
    const config_t *cfg;
    char token[256];
    metrics_gauges_fn gauges; /* the workers' own counters, summed by their owner */
    void *gauges_arg;
    int nworkers;
    pagemap_t *pm;
    sharedmap_t *shared; /* NULL without --shared-map */
    state_t *st;
    list_t conns; /* admin_conn_t.link */
    bool closing;
    bool listener_closed;
};

/* Every counter, the workers' gauges included. */
static void collect(admin_t *a, metrics_snapshot_t *s)
{
    metrics_gauges_t g;
    bool have = a->gauges != NULL;
    if (have)
        a->gauges(a->gauges_arg, &g);
    metrics_collect(have ? &g : NULL, a->pm, s);
}

/** A connection moves READING -> (PROBING) -> WRITING -> CLOSING, never back. */
typedef enum admin_conn_state {
    ADMIN_CONN_READING,
    ADMIN_CONN_PROBING, /* /healthz: waiting for the origin connect check */
    ADMIN_CONN_WRITING,
    ADMIN_CONN_CLOSING,
} admin_conn_state_t;

struct admin_conn {
    uv_tcp_t handle;  /* data = this */
    uv_timer_t timer; /* data = this; ADMIN_READ_TIMEOUT_MS while READING */
    int open_handles; /* freed when both are closed */
    list_t link;
    admin_t *admin;
    admin_conn_state_t state;
    llhttp_t parser;
    /* the request, accumulated from llhttp spans (copied: spans point into
     * the read buffer, valid only during llhttp_execute) */
    char url[ADMIN_MAX_URL];
    size_t url_len;
    char hname[64];
    size_t hname_len;
    bool in_auth; /* the current header is Authorization */
    char auth[ADMIN_MAX_HEADER];
    size_t auth_len;
    char *body; /* malloc'd */
    size_t body_len, body_cap;
    bool too_big;
    bool complete;
    /* the response: head and body, owned until write_done */
    char *out_head;
    char *out_body;
    size_t out_body_len;
    uv_write_t wreq;
};

static void conn_set_state(admin_conn_t *c, admin_conn_state_t s)
{
    /* Legal: forward only; CLOSING from anywhere. */
    if (!(s == ADMIN_CONN_CLOSING || s > c->state))
        abort();
    c->state = s;
}

static void on_conn_closed(uv_handle_t *h)
{
    admin_conn_t *c = h->data;
    admin_t *a = c->admin;
    if (--c->open_handles > 0)
        return;
    list_remove(&c->link);
    free(c->body);
    free(c->out_head);
    free(c->out_body);
    free(c);
    if (a->closing && a->listener_closed && a->conns.next == &a->conns)
        free(a);
}

static void conn_close(admin_conn_t *c)
{
    if (c->state == ADMIN_CONN_CLOSING)
        return;
    conn_set_state(c, ADMIN_CONN_CLOSING);
    uv_close((uv_handle_t *)&c->handle, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void write_done(uv_write_t *req, int status)
{
    (void)status;
    conn_close(req->data);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    }
    return "Unknown";
}

/* Send status + body and close. `body` (malloc'd, may be NULL) is taken over. */
static void respond(admin_conn_t *c, int status, const char *ctype, char *body, size_t len,
                    const char *extra_headers)
{
    if (c->state == ADMIN_CONN_CLOSING || c->state == ADMIN_CONN_WRITING) {
        free(body);
        return;
    }
    conn_set_state(c, ADMIN_CONN_WRITING);
    uv_read_stop((uv_stream_t *)&c->handle);
    uv_timer_stop(&c->timer);
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                     status, reason_phrase(status), ctype, len,
                     extra_headers != NULL ? extra_headers : "");
    c->out_head = xstrdup(head);
    c->out_body = body;
    c->out_body_len = len;
    uv_buf_t bufs[2] = {uv_buf_init(c->out_head, (unsigned)n),
                        uv_buf_init(body != NULL ? body : "", (unsigned)len)};
    if (llhttp_get_method(&c->parser) == HTTP_HEAD)
        len = 0; /* the head announces the body's length; HEAD sends none */
    c->wreq.data = c;
    /* out_head/out_body stay alive (owned by c) until write_done. */
    if (uv_write(&c->wreq, (uv_stream_t *)&c->handle, bufs, len > 0 ? 2 : 1, write_done) != 0)
        conn_close(c);
}

static void respond_json(admin_conn_t *c, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s == NULL)
        abort();
    size_t len = strlen(s);
    s[len] = '\0';
    /* json_dumps output is malloc'd; one trailing newline for curl users. */
    char *b = xrealloc(s, len + 2);
    b[len] = '\n';
    b[len + 1] = '\0';
    respond(c, status, "application/json", b, len + 1, NULL);
}

static void respond_error(admin_conn_t *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void respond_error(admin_conn_t *c, int status, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    respond_json(c, status, json_pack("{s:s, s:i}", "error", msg, "status", status));
}

/* The malloc'd JSON of a snapshot_export* call, with a newline. */
static void respond_json_text(admin_conn_t *c, int status, char *json, size_t len)
{
    char *b = xrealloc(json, len + 2);
    b[len] = '\n';
    b[len + 1] = '\0';
    respond(c, status, "application/json", b, len + 1, NULL);
}

/* ---- handlers ---------------------------------------------------------- */

static void handle_maps(admin_conn_t *c, const char *q)
{
    size_t offset, limit;
    if (!query_size(q, "offset", 0, &offset) || !query_size(q, "limit", 100, &limit)) {
        respond_error(c, 400, "offset and limit take whole numbers");
        return;
    }
    if (limit > 10000)
        limit = 10000;
    char *filter = query_get(q, "q");
    char *json = NULL;
    size_t len = 0;
    int rc = snapshot_export_list(c->admin->pm, offset, limit, filter, &json, &len);
    free(filter);
    if (rc != 0) {
        respond_error(c, 500, "%s", herald_strerror(rc));
        return;
    }
    respond_json_text(c, 200, json, len);
}

/* The page's current plan as `Link:` header lines (text/plain). */
static void handle_page_links(admin_conn_t *c, const char *page)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    pagemap_plan_t plan = {0};
    /* no exploration: looking at a plan must not count as a visit */
    pagemap_plan_opts_t o = {.min_confidence = c->admin->cfg->min_confidence, .explore = 0};
    int rc = pagemap_plan(c->admin->pm, page, NULL, NULL,
                          (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, &o, &plan);
    if (rc != 0) {
        respond_error(c, 500, "%s", herald_strerror(rc));
        return;
    }
    size_t cap = 256, len = 0;
    char *out = xmalloc(cap);
    out[0] = '\0';
    for (size_t i = 0; i < plan.n + plan.npreconnect; i++) {
        link_t l;
        if (i < plan.n) {
            if (!delivery_plan_link(&plan.items[i], &l))
                continue;
        } else {
            l = link_preconnect(plan.preconnect[i - plan.n], ASSET_CORS_NONE);
        }
        char *v = NULL;
        if (link_format(&l, NULL, &v) != 0)
            continue;
        size_t need = len + strlen(v) + 16;
        if (need > cap) {
            cap = need * 2;
            out = xrealloc(out, cap);
        }
        len += (size_t)snprintf(out + len, cap - len, "Link: %s\n", v);
        free(v);
    }
    pagemap_plan_dispose(&plan);
    respond(c, 200, "text/plain; charset=utf-8", out, len, NULL);
}

static void handle_page_get(admin_conn_t *c, const char *q)
{
    char *page = query_get(q, "page");
    char *format = query_get(q, "format");
    if (page == NULL || page[0] == '\0') {
        respond_error(c, 400, "missing ?page=KEY");
    } else if (format != NULL && strcmp(format, "link") == 0) {
        pagemap_page_info_t info;
        if (pagemap_page_get(c->admin->pm, page, &info, NULL, NULL) != 0) {
            respond_error(c, 404, "no such page: %s", page);
        } else {
            pagemap_page_info_dispose(&info);
            handle_page_links(c, page);
        }
    } else if (format != NULL && strcmp(format, "json") != 0) {
        respond_error(c, 400, "format takes json or link");
    } else {
        char *json = NULL;
        size_t len = 0;
        pagemap_spec_opts_t o;
        const char *deny[SPECULATION_MAX_DENY];
        char *buf = NULL;
        speculation_spec_opts(c->admin->cfg, &o, deny, &buf);
        int rc = snapshot_export_page_spec(c->admin->pm, page, &o, &json, &len);
        free(buf);
        if (rc == HERALD_ENOTFOUND)
            respond_error(c, 404, "no such page: %s", page);
        else if (rc != 0)
            respond_error(c, 500, "%s", herald_strerror(rc));
        else
            respond_json_text(c, 200, json, len);
    }
    free(page);
    free(format);
}

static const char *state_name(pagemap_edge_state_t s)
{
    return s == PAGEMAP_EDGE_PINNED ? "pinned" : s == PAGEMAP_EDGE_BANNED ? "banned" : "learned";
}

/* pin, ban or unpin a next page (?page=KEY&next=URL) */
static void handle_set_next(admin_conn_t *c, const char *page, const char *next,
                            pagemap_edge_state_t s)
{
    int rc = pagemap_next_set_state(c->admin->pm, page, next, s);
    if (rc == HERALD_ENOTFOUND) {
        respond_error(c, 404, "no such next page: %s -> %s", page, next);
    } else if (rc != 0) {
        respond_error(c, rc == HERALD_EINVAL ? 400 : 500, "%s", herald_strerror(rc));
    } else {
        state_mark_dirty(c->admin->st);
        LOG_INFO("admin: %s next page %s -> %s", state_name(s), page, next);
        respond_json(c, 200,
                     json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "page", page, "next", next, "state",
                               state_name(s)));
    }
}

static void handle_set_state(admin_conn_t *c, const char *q, pagemap_edge_state_t s)
{
    char *page = query_get(q, "page");
    char *next = query_get(q, "next");
    if (page != NULL && page[0] != '\0' && next != NULL && next[0] != '\0') {
        handle_set_next(c, page, next, s);
        free(page);
        free(next);
        return;
    }
    free(next);
    char *asset = query_get(q, "asset");
    if (page == NULL || page[0] == '\0' || asset == NULL || asset[0] == '\0') {
        respond_error(c, 400, "needs ?page=KEY&asset=URL");
    } else {
        int rc = pagemap_edge_set_state(c->admin->pm, page, asset, s);
        if (rc == HERALD_ENOTFOUND) {
            respond_error(c, 404, "no such edge: %s -> %s", page, asset);
        } else if (rc != 0) {
            respond_error(c, rc == HERALD_EINVAL ? 400 : 500, "%s", herald_strerror(rc));
        } else {
            state_mark_dirty(c->admin->st);
            sharedmap_steer(c->admin->shared,
                            s == PAGEMAP_EDGE_PINNED   ? FLEETSTEER_PIN
                            : s == PAGEMAP_EDGE_BANNED ? FLEETSTEER_BAN
                                                       : FLEETSTEER_LEARNED,
                            page, asset);
            LOG_INFO("admin: %s %s -> %s", state_name(s), page, asset);
            respond_json(c, 200,
                         json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "page", page, "asset", asset,
                                   "state", state_name(s)));
        }
    }
    free(page);
    free(asset);
}

static void handle_forget(admin_conn_t *c, const char *q)
{
    char *page = query_get(q, "page");
    char *next = query_get(q, "next");
    if (page != NULL && page[0] != '\0' && next != NULL && next[0] != '\0') {
        int rc = pagemap_forget_next(c->admin->pm, page, next);
        if (rc == HERALD_ENOTFOUND) {
            respond_error(c, 404, "no such next page: %s -> %s", page, next);
        } else if (rc != 0) {
            respond_error(c, rc == HERALD_EINVAL ? 400 : 500, "%s", herald_strerror(rc));
        } else {
            state_mark_dirty(c->admin->st);
            LOG_INFO("admin: forget next page %s -> %s", page, next);
            respond_json(c, 200,
                         json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "forgot", "next", "page", page,
                                   "next", next));
        }
        free(page);
        free(next);
        return;
    }
    free(next);
    char *asset = query_get(q, "asset");
    if (page == NULL || page[0] == '\0') {
        respond_error(c, 400, "needs ?page=KEY[&asset=URL]");
    } else {
        int rc = asset != NULL ? pagemap_forget_edge(c->admin->pm, page, asset)
                               : pagemap_forget_page(c->admin->pm, page);
        if (rc == HERALD_ENOTFOUND) {
            respond_error(c, 404, "no such %s: %s%s%s", asset != NULL ? "edge" : "page", page,
                          asset != NULL ? " -> " : "", asset != NULL ? asset : "");
        } else if (rc != 0) {
            respond_error(c, 500, "%s", herald_strerror(rc));
        } else {
            if (asset == NULL)
                timeline_store_forget(page);
            state_mark_dirty(c->admin->st);
            sharedmap_steer(c->admin->shared,
                            asset != NULL ? FLEETSTEER_FORGET_EDGE : FLEETSTEER_FORGET_PAGE, page,
                            asset);
            LOG_INFO("admin: forget %s%s%s", page, asset != NULL ? " -> " : "",
                     asset != NULL ? asset : "");
            json_t *j = json_pack("{s:b, s:s, s:s}", "ok", 1, "forgot", asset ? "edge" : "page",
                                  "page", page);
            if (asset != NULL)
                json_object_set_new(j, "asset", json_string(asset));
            respond_json(c, 200, j);
        }
    }
    free(page);
    free(asset);
}

/* The page's last delivered visit (deliver/timeline.h). */
static void handle_timeline(admin_conn_t *c, const char *q)
{
    char *page = query_get(q, "page");
    timeline_t t;
    if (page == NULL || page[0] == '\0') {
        respond_error(c, 400, "missing ?page=KEY");
    } else if (timeline_store_get(page, &t) != 0) {
        respond_error(c, 404, "no delivered visit of %s", page);
    } else {
        respond_json(c, 200, admin_timeline_json(&t));
        timeline_dispose(&t);
    }
    free(page);
}

static void handle_export(admin_conn_t *c)
{
    char *json = NULL;
    size_t len = 0;
    int rc = snapshot_export(c->admin->pm, &json, &len);
    if (rc != 0) {
        respond_error(c, 500, "%s", herald_strerror(rc));
        return;
    }
    respond_json_text(c, 200, json, len);
}

static void handle_import(admin_conn_t *c, const char *q)
{
    char *mode = query_get(q, "mode");
    snapshot_mode_t m = SNAPSHOT_MERGE;
    if (mode != NULL && strcmp(mode, "replace") == 0) {
        m = SNAPSHOT_REPLACE;
    } else if (mode != NULL && strcmp(mode, "merge") != 0) {
        respond_error(c, 400, "mode takes merge or replace, not '%s'", mode);
        free(mode);
        return;
    }
    char reason[256] = "";
    int rc = snapshot_import(c->admin->pm, c->body != NULL ? c->body : "", c->body_len, m, reason,
                             sizeof(reason));
    if (rc == HERALD_EPARSE || rc == HERALD_EUNSUPPORTED) {
        respond_error(c, 400, "%s", reason[0] ? reason : herald_strerror(rc));
    } else if (rc != 0) {
        respond_error(c, 500, "%s", herald_strerror(rc));
    } else {
        state_mark_dirty(c->admin->st);
        pagemap_stats_t ps;
        pagemap_stats(c->admin->pm, &ps);
        LOG_INFO("admin: import (%s) of %zu bytes: map now has %zu pages",
                 m == SNAPSHOT_REPLACE ? "replace" : "merge", c->body_len, ps.pages);
        respond_json(c, 200,
                     json_pack("{s:b, s:s, s:I, s:I}", "ok", 1, "mode",
                               m == SNAPSHOT_REPLACE ? "replace" : "merge", "pages",
                               (json_int_t)ps.pages, "edges", (json_int_t)ps.edges));
    }
    free(mode);
}

/* Networks listed in /stats at most (the most recently measured). */
enum { ADMIN_PACE_NETWORKS = 100 };

/* The path estimates: the memory of client networks, PINGs and pacing, rates in bits/s. */
static json_t *pace_json(const pace_stats_t *p)
{
    json_t *starts = json_object();
    for (int i = 0; i < PACE_SRC_COUNT; i++)
        json_object_set_new(starts, pace_source_name((pace_source_t)i),
                            json_integer((json_int_t)p->starts[i]));
    netmem_entry_t *v = xcalloc(ADMIN_PACE_NETWORKS, sizeof(*v));
    size_t n = pace_networks(v, ADMIN_PACE_NETWORKS);
    json_t *known = json_array();
    for (size_t i = 0; i < n; i++) {
        char net[64];
        netmem_key_format(&v[i].key, net, sizeof(net));
        json_array_append_new(known,
                              json_pack("{s:s, s:f, s:f, s:i, s:f}", "network", net, "rate_bits_s",
                                        v[i].est.rate * 8, "rtt_ms", v[i].est.rtt_ms, "samples",
                                        (int)v[i].est.n, "age_s", v[i].est.age_s));
    }
    free(v);
    json_t *j = json_pack(
        "{s:I, s:{s:f, s:f, s:f}, s:{s:f, s:f, s:i}, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
        "networks", (json_int_t)p->mem.networks, "network_rate_bits_s", "p10", p->mem.p10 * 8,
        "p50", p->mem.p50 * 8, "p90", p->mem.p90 * 8, "population", "rate_bits_s",
        p->mem.population.rate * 8, "rtt_ms", p->mem.population.rtt_ms, "connections",
        (int)p->mem.population.n, "pings", (json_int_t)p->pings, "acks", (json_int_t)p->acks,
        "samples", (json_int_t)p->samples, "notes", (json_int_t)p->commits, "holds",
        (json_int_t)p->holds, "evicted", (json_int_t)p->mem.evicted, "expired",
        (json_int_t)p->mem.expired, "starts", starts, "known", known);
    if (j == NULL)
        abort();
    return j;
}

static void handle_stats(admin_conn_t *c)
{
    admin_t *a = c->admin;
    metrics_snapshot_t s;
    collect(a, &s);
    json_t *req = json_object();
    static const char *const protos[METRICS_PROTOS] = {"HTTP/1.0", "HTTP/1.1", "HTTP/2"};
    static const char *const classes[METRICS_STATUS_CLASSES] = {"none", "1xx", "2xx",
                                                                "3xx",  "4xx", "5xx"};
    for (int p = 0; p < METRICS_PROTOS; p++) {
        json_t *o = json_object();
        for (int k = 0; k < METRICS_STATUS_CLASSES; k++)
            json_object_set_new(o, classes[k], json_integer((json_int_t)s.requests[p][k]));
        json_object_set_new(req, protos[p], o);
    }
    json_t *j = json_pack(
        "{s:f, s:i, s:I, s:o, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:I, s:I, s:I, s:f, s:f, s:I}, "
        "s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
        "uptime_s", s.uptime_s, "workers", a->nworkers, "active_connections",
        (json_int_t)s.active_connections, "requests", req, "requests_total",
        (json_int_t)s.requests_total, "origin", "connects", (json_int_t)s.origin_connects, "reuses",
        (json_int_t)s.origin_reuses, "retries", (json_int_t)s.origin_retries, "errors",
        (json_int_t)s.origin_errors, "timeouts", (json_int_t)s.origin_timeouts, "open",
        (json_int_t)s.origin_open, "idle", (json_int_t)s.origin_idle, "queued",
        (json_int_t)s.origin_queued, "max", (json_int_t)s.origin_max, "queue_max",
        (json_int_t)s.origin_queue_max, "in_use", (json_int_t)s.origin_in_use, "queue_full",
        (json_int_t)s.origin_queue_full, "queue_timeouts", (json_int_t)s.origin_queue_timeouts,
        "waited", (json_int_t)s.origin_waited, "wait_s_total", s.origin_wait_s_total, "wait_s_max",
        s.origin_wait_s_max, "handoffs", (json_int_t)s.origin_handoffs, "delivery", "promised",
        (json_int_t)s.promised, "completed", (json_int_t)s.completed, "cancelled",
        (json_int_t)s.cancelled, "pushed_bytes", (json_int_t)s.pushed_bytes, "hints_sent",
        (json_int_t)s.hints_sent, "hinted_links", (json_int_t)s.hinted_links, "skipped",
        (json_int_t)s.skipped, "digest_hits", (json_int_t)s.digest_hits, "map", "pages",
        (json_int_t)s.pages, "templates", (json_int_t)s.templates, "edges", (json_int_t)s.edges,
        "pinned", (json_int_t)s.pinned, "banned", (json_int_t)s.banned, "assets",
        (json_int_t)s.assets, "visits_committed", (json_int_t)s.visits_committed);
    if (j == NULL)
        abort();
    json_object_set_new(j, "learning",
                        json_pack("{s:I}", "visits_open", (json_int_t)s.visits_open));
    json_object_set_new(j, "pace", pace_json(&s.pace));
    json_t *shared = sharedmap_stats_json(a->shared);
    if (shared != NULL)
        json_object_set_new(j, "shared_map", shared);
    const speculation_stats_t *sp = &s.spec;
    json_object_set_new(j, "speculation",
                        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "mode",
                                  a->cfg->speculation, "headers", (json_int_t)sp->headers,
                                  "origin_headers", (json_int_t)sp->origin_own, "rule_sets",
                                  (json_int_t)sp->rule_sets, "rule_urls", (json_int_t)sp->rule_urls,
                                  "prefetches", (json_int_t)sp->sent, "used", (json_int_t)sp->used,
                                  "unused", (json_int_t)sp->unused, "unknown",
                                  (json_int_t)sp->unknown, "limited", (json_int_t)sp->limited));
    if (a->st != NULL) {
        state_stats_t ss;
        state_get_stats(a->st, &ss);
        json_object_set_new(
            j, "state",
            json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:f, s:b}", "file", a->cfg->state_file,
                      "loaded", ss.loaded, "saves", (json_int_t)ss.saves, "save_errors",
                      (json_int_t)ss.save_errors, "last_save_ms", (json_int_t)ss.last_save_ms,
                      "last_save_bytes", (json_int_t)ss.last_save_bytes, "last_save_s",
                      ss.last_save_s, "saving", ss.saving));
    }
    respond_json(c, 200, j);
}

static void handle_metrics(admin_conn_t *c)
{
    metrics_snapshot_t s;
    collect(c->admin, &s);
    char *text = sharedmap_metrics_append(c->admin->shared, metrics_render_prometheus(&s));
    respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text), NULL);
}

/* /healthz: one TCP connect to the origin per request, bounded by a timer. */
typedef struct admin_probe {
    uv_tcp_t tcp;       /* data = this */
    uv_connect_t req;   /* data = this */
    uv_timer_t timer;   /* data = this */
    admin_conn_t *conn; /* NULL once answered */
    int open_handles;
} admin_probe_t;

static void probe_handle_closed(uv_handle_t *h)
{
    admin_probe_t *p = h->data;
    if (--p->open_handles == 0)
        free(p);
}

static void probe_finish(admin_probe_t *p, int status)
{
    if (p->conn == NULL)
        return;
    admin_conn_t *c = p->conn;
    p->conn = NULL;
    const config_t *cfg = c->admin->cfg;
    char origin[300];
    snprintf(origin, sizeof(origin), "http://%s:%u", cfg->origin_host, cfg->origin_port);
    if (status == 0 && sharedmap_degraded(c->admin->shared)) /* still serving: from the local map */
        respond_json(c, 200,
                     json_pack("{s:s, s:s, s:s}", "status", "degraded", "origin", origin,
                               "shared_map", "Redis unreachable"));
    else if (status == 0)
        respond_json(c, 200, json_pack("{s:s, s:s}", "status", "ok", "origin", origin));
    else
        respond_json(c, 503,
                     json_pack("{s:s, s:s, s:s}", "status", "origin unreachable", "origin", origin,
                               "error",
                               status == UV_ETIMEDOUT ? "connect timed out" : uv_strerror(status)));
    uv_close((uv_handle_t *)&p->tcp, probe_handle_closed);
    uv_close((uv_handle_t *)&p->timer, probe_handle_closed);
}

static void probe_connected(uv_connect_t *req, int status)
{
    probe_finish(req->data, status);
}

static void probe_timeout(uv_timer_t *t)
{
    probe_finish(t->data, UV_ETIMEDOUT);
}

static void handle_healthz(admin_conn_t *c)
{
    admin_probe_t *p = xcalloc(1, sizeof(*p));
    p->conn = c;
    uv_tcp_init(c->admin->loop, &p->tcp);
    uv_timer_init(c->admin->loop, &p->timer);
    p->tcp.data = p->req.data = p->timer.data = p;
    p->open_handles = 2;
    conn_set_state(c, ADMIN_CONN_PROBING);
    uv_timer_stop(&c->timer); /* the probe has its own timeout */
    int rc = uv_tcp_connect(&p->req, &p->tcp, (const struct sockaddr *)&c->admin->cfg->origin_addr,
                            probe_connected);
    if (rc != 0) { /* probe_connected never runs */
        probe_finish(p, rc);
        return;
    }
    uv_timer_start(&p->timer, probe_timeout, ADMIN_PROBE_TIMEOUT_MS, 0);
}

/* Constant time in the token's content: compare SHA-256 digests. */
static bool token_ok(const admin_t *a, const admin_conn_t *c)
{
    static const char prefix[] = "Bearer ";
    if (c->auth_len < sizeof(prefix) - 1 || strncasecmp(c->auth, prefix, sizeof(prefix) - 1) != 0)
        return false;
    const char *given = c->auth + sizeof(prefix) - 1;
    unsigned char h1[SHA256_DIGEST_LENGTH], h2[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)given, c->auth_len - (sizeof(prefix) - 1), h1);
    SHA256((const unsigned char *)a->token, strlen(a->token), h2);
    return CRYPTO_memcmp(h1, h2, sizeof(h1)) == 0;
}

static void route(admin_conn_t *c)
{
    admin_t *a = c->admin;
    char *q = strchr(c->url, '?');
    if (q != NULL)
        *q++ = '\0';
    const char *path = c->url;
    int method = llhttp_get_method(&c->parser);
    bool get = method == HTTP_GET || method == HTTP_HEAD;
    bool post = method == HTTP_POST;

    if (strcmp(path, "/") == 0 && get) {
        /* static code, no data: served without the token (see admin.h) */
        respond(c, 200, "text/html; charset=utf-8", xstrdup(admin_page_html),
                strlen(admin_page_html),
                "Content-Security-Policy: default-src 'self' "
                "'unsafe-inline'\r\n");
        return;
    }
    if (a->token[0] != '\0' && !token_ok(a, c)) {
        static const char body[] = "{\"error\":\"missing or wrong bearer token\",\"status\":401}\n";
        respond(c, 401, "application/json", xstrdup(body), sizeof(body) - 1,
                "WWW-Authenticate: Bearer realm=\"herald admin\"\r\n");
        return;
    }
    if (c->too_big) {
        respond_error(c, 413, "request body larger than %u bytes", ADMIN_MAX_BODY);
        return;
    }
    if (strcmp(path, "/maps") == 0 && get)
        handle_maps(c, q);
    else if (strcmp(path, "/maps/page") == 0 && get)
        handle_page_get(c, q);
    else if (strcmp(path, "/maps/timeline") == 0 && get)
        handle_timeline(c, q);
    else if (strcmp(path, "/maps/timeline") == 0)
        respond_error(c, 405, "method %s not allowed on %s", llhttp_method_name(method), path);
    else if (strcmp(path, "/maps/page") == 0 && method == HTTP_DELETE)
        handle_forget(c, q);
    else if (strcmp(path, "/maps/pin") == 0 && post)
        handle_set_state(c, q, PAGEMAP_EDGE_PINNED);
    else if (strcmp(path, "/maps/ban") == 0 && post)
        handle_set_state(c, q, PAGEMAP_EDGE_BANNED);
    else if (strcmp(path, "/maps/unpin") == 0 && post)
        handle_set_state(c, q, PAGEMAP_EDGE_LEARNED);
    else if (strcmp(path, "/export") == 0 && get)
        handle_export(c);
    else if (strcmp(path, "/import") == 0 && post)
        handle_import(c, q);
    else if (strcmp(path, "/stats") == 0 && get)
        handle_stats(c);
    else if (strcmp(path, "/metrics") == 0 && get)
        handle_metrics(c);
    else if (strcmp(path, "/healthz") == 0 && get)
        handle_healthz(c);
    else if (strcmp(path, "/") == 0 || strcmp(path, "/maps") == 0 ||
             strcmp(path, "/maps/page") == 0 || strcmp(path, "/maps/pin") == 0 ||
             strcmp(path, "/maps/ban") == 0 || strcmp(path, "/maps/unpin") == 0 ||
             strcmp(path, "/export") == 0 || strcmp(path, "/import") == 0 ||
             strcmp(path, "/stats") == 0 || strcmp(path, "/metrics") == 0 ||
             strcmp(path, "/healthz") == 0)
        respond_error(c, 405, "method %s not allowed on %s", llhttp_method_name(method), path);
    else
        respond_error(c, 404, "no such endpoint: %s", path);
}

/* ---- llhttp callbacks: spans point into the read buffer (copy them) ---- */

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    admin_conn_t *c = p->data;
    if (c->url_len + len >= sizeof(c->url))
        return -1;
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    admin_conn_t *c = p->data;
    if (c->hname_len + len < sizeof(c->hname)) {
        memcpy(c->hname + c->hname_len, at, len);
        c->hname_len += len;
    } else {
        c->hname_len = sizeof(c->hname) - 1; /* too long to be Authorization */
    }
    c->hname[c->hname_len] = '\0';
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    admin_conn_t *c = p->data;
    c->in_auth = strcasecmp(c->hname, "authorization") == 0;
    if (c->in_auth)
        c->auth_len = 0;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    admin_conn_t *c = p->data;
    if (!c->in_auth)
        return 0;
    if (c->auth_len + len >= sizeof(c->auth))
        return -1;
    memcpy(c->auth + c->auth_len, at, len);
    c->auth_len += len;
    c->auth[c->auth_len] = '\0';
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    admin_conn_t *c = p->data;
    c->hname_len = 0;
    c->in_auth = false;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    admin_conn_t *c = p->data;
    /* A declared length over the cap is refused before any body arrives. */
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > ADMIN_MAX_BODY) {
        c->too_big = true;
        c->complete = true;
        return HPE_PAUSED;
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    admin_conn_t *c = p->data;
    if (c->too_big)
        return 0;
    if (c->body_len + len > ADMIN_MAX_BODY) {
        c->too_big = true;
        c->complete = true;
        return HPE_PAUSED;
    }
    if (c->body_len + len + 1 > c->body_cap) {
        c->body_cap = (c->body_len + len + 1) * 2;
        if (c->body_cap > ADMIN_MAX_BODY + 1)
            c->body_cap = ADMIN_MAX_BODY + 1;
        c->body = xrealloc(c->body, c->body_cap);
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    c->body[c->body_len] = '\0';
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    admin_conn_t *c = p->data;
    c->complete = true;
    return HPE_PAUSED; /* one request per connection */
}

static const llhttp_settings_t parser_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = xmalloc(65536);
    buf->len = 65536;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    /* We own buf->base (alloc_cb); nread == 0 is not EOF. */
    admin_conn_t *c = s->data;
    if (nread < 0) {
        free(buf->base);
        conn_close(c);
        return;
    }
    if (nread == 0 || c->state != ADMIN_CONN_READING) {
        free(buf->base);
        return;
    }
    llhttp_errno_t err = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    free(buf->base);
    if (err == HPE_PAUSED && c->complete) {
        route(c);
    } else if (err != HPE_OK && err != HPE_PAUSED) {
        bool url_long = c->url_len + 1 >= sizeof(c->url);
        respond_error(c, url_long ? 414 : 400, "bad request: %s",
                      llhttp_get_error_reason(&c->parser));
    }
}

static void on_read_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    admin_t *a = server->data;
    if (status < 0 || a->closing)
        return;
    admin_conn_t *c = xcalloc(1, sizeof(*c));
    c->admin = a;
    uv_tcp_init(a->loop, &c->handle);
    uv_timer_init(a->loop, &c->timer);
    c->handle.data = c->timer.data = c;
    c->open_handles = 2;
    list_insert(&a->conns, &c->link);
    if (uv_accept(server, (uv_stream_t *)&c->handle) != 0) {
        conn_close(c);
        return;
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c;
    uv_timer_start(&c->timer, on_read_timeout, ADMIN_READ_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->handle, alloc_cb, read_cb);
}

/* ---- setup ---------------------------------------------------------------- */

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return false;
}

int admin_resolve_token(const config_t *cfg, char *out, size_t cap, char *err, size_t errlen)
{
    out[0] = '\0';
    if (cfg->admin_token[0] != '\0') {
        snprintf(out, cap, "%s", cfg->admin_token);
    } else if (cfg->admin_token_file[0] != '\0') {
        FILE *f = fopen(cfg->admin_token_file, "r");
        if (f == NULL) {
            snprintf(err, errlen, "cannot read --admin-token-file %s: %s", cfg->admin_token_file,
                     strerror(errno));
            return HERALD_EINVAL;
        }
        if (fgets(out, (int)cap, f) == NULL)
            out[0] = '\0';
        fclose(f);
        out[strcspn(out, "\r\n")] = '\0';
        if (out[0] == '\0') {
            snprintf(err, errlen, "--admin-token-file %s is empty", cfg->admin_token_file);
            return HERALD_EINVAL;
        }
    }
    if (cfg->admin[0] == '\0')
        return 0;
    struct sockaddr_storage ss;
    if (config_parse_hostport(cfg->admin, &ss) != 0) {
        snprintf(err, errlen, "--admin takes ADDR:PORT (IPv6 as [::1]:PORT), not '%s'", cfg->admin);
        return HERALD_EINVAL;
    }
    if (!is_loopback(&ss) && out[0] == '\0') {
        snprintf(err, errlen,
                 "--admin=%s is not a loopback address: refusing to serve the admin API "
                 "without --admin-token or --admin-token-file",
                 cfg->admin);
        return HERALD_EINVAL;
    }
    return 0;
}

int admin_start(uv_loop_t *loop, const config_t *cfg, const char *token, int nworkers,
                metrics_gauges_fn gauges, void *gauges_arg, pagemap_t *pm, sharedmap_t *shared,
                state_t *st, admin_t **out)
{
    struct sockaddr_storage ss;
    if (config_parse_hostport(cfg->admin, &ss) != 0)
        return UV_EINVAL;
    admin_t *a = xcalloc(1, sizeof(*a));
    a->loop = loop;
    a->cfg = cfg;
    snprintf(a->token, sizeof(a->token), "%s", token);
    a->gauges = gauges;
    a->gauges_arg = gauges_arg;
    a->nworkers = nworkers;
    a->pm = pm;
    a->shared = shared;
    a->st = st;
    list_init(&a->conns);
    uv_tcp_init(loop, &a->listener);
    a->listener.data = a;
    int rc = uv_tcp_bind(&a->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->listener, 64, on_connection);
    if (rc != 0) {
        a->closing = true;
        uv_close((uv_handle_t *)&a->listener, NULL);
        /* freed after the loop ran the close: the caller exits anyway */
        return rc;
    }
    *out = a;
    return 0;
}

void admin_set_token(admin_t *a, const char *token)
{
    if (a != NULL)
        snprintf(a->token, sizeof(a->token), "%s", token);
}

static void on_listener_closed(uv_handle_t *h)
{
    admin_t *a = h->data;
    a->listener_closed = true;
    if (a->conns.next == &a->conns)
        free(a);
}

void admin_close(admin_t *a)
{
    if (a == NULL || a->closing)
        return;
    a->closing = true;
    for (list_t *l = a->conns.next, *next; l != &a->conns; l = next) {
        next = l->next;
        admin_conn_t *c = (admin_conn_t *)((char *)l - offsetof(admin_conn_t, link));
        if (c->state == ADMIN_CONN_READING)
            conn_close(c);
    }
    uv_close((uv_handle_t *)&a->listener, on_listener_closed);
}
