/*
 * Per-worker request counters and their Prometheus rendering; see metrics.h
 * for who writes and who reads what.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "pagemap.h"
#include "alloc.h"
#include "budget.h"
#include "delivery.h"
#include "exchange.h"
#include "learning.h"
#include "upstream.h"

static const double latency_bounds[METRICS_LATENCY_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                               0.25,  0.5,   1,    2.5,   5,    10};

/* One slot per worker, written only by that worker's thread; aligned so two
 * workers never share a cache line. */
typedef struct metrics_slot {
    _Alignas(64) _Atomic uint64_t requests[METRICS_PROTOS][METRICS_STATUS_CLASSES];
    _Atomic uint64_t latency[METRICS_LATENCY_BUCKETS + 1]; /* not cumulative here */
    _Atomic uint64_t latency_sum_us;
} metrics_slot_t;

static metrics_slot_t slots[METRICS_MAX_WORKERS];
static uint64_t start_ns;

void metrics_init(void)
{
    start_ns = uv_hrtime();
}

double metrics_latency_bound(int i)
{
    return latency_bounds[i];
}

/* Only the slot's own worker writes it (readers just load): a plain
 * load and store, without the locked read-modify-write of a fetch_add. */
static void bump(_Atomic uint64_t *v, uint64_t n)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

void metrics_note_request(const exchange_t *ex)
{
    if (ex->ctx == NULL || ex->ctx->id < 0 || ex->ctx->id >= METRICS_MAX_WORKERS)
        return;
    metrics_slot_t *s = &slots[ex->ctx->id];
    int cls = ex->status >= 100 && ex->status <= 599 ? ex->status / 100 : 0;
    int proto = (int)ex->proto < METRICS_PROTOS ? (int)ex->proto : 0;
    bump(&s->requests[proto][cls], 1);
    uint64_t now = uv_hrtime();
    double secs = ex->t_start != 0 && now > ex->t_start ? (double)(now - ex->t_start) / 1e9 : 0;
    int b = 0;
    while (b < METRICS_LATENCY_BUCKETS && secs > latency_bounds[b])
        b++;
    bump(&s->latency[b], 1);
    bump(&s->latency_sum_us, (uint64_t)(secs * 1e6));
}

void metrics_collect(const metrics_gauges_t *g, pagemap_t *pm, metrics_snapshot_t *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t lat[METRICS_LATENCY_BUCKETS + 1] = {0}, sum_us = 0;
    for (int w = 0; w < METRICS_MAX_WORKERS; w++) {
        metrics_slot_t *s = &slots[w];
        for (int p = 0; p < METRICS_PROTOS; p++)
            for (int c = 0; c < METRICS_STATUS_CLASSES; c++) {
                uint64_t v = atomic_load_explicit(&s->requests[p][c], memory_order_relaxed);
                out->requests[p][c] += v;
                out->requests_total += v;
            }
        for (int b = 0; b <= METRICS_LATENCY_BUCKETS; b++)
            lat[b] += atomic_load_explicit(&s->latency[b], memory_order_relaxed);
        sum_us += atomic_load_explicit(&s->latency_sum_us, memory_order_relaxed);
    }
    uint64_t cum = 0;
    for (int b = 0; b <= METRICS_LATENCY_BUCKETS; b++) {
        cum += lat[b];
        out->latency_buckets[b] = cum;
    }
    out->latency_sum_s = (double)sum_us / 1e6;
    if (g != NULL) {
        out->active_connections = g->active_connections;
        out->origin_connects = g->origin.connects;
        out->origin_reuses = g->origin.reuses;
        out->origin_retries = g->origin.retries;
        out->origin_errors = g->origin.errors;
        out->origin_timeouts = g->origin.timeouts;
        out->origin_open = g->origin.open;
        out->origin_idle = g->origin.idle;
    }
    if (g != NULL && g->have_budget) {
        const budget_stats_t *bs = &g->budget;
        out->origin_max = bs->max;
        out->origin_queue_max = bs->queue_max;
        out->origin_in_use = bs->in_use;
        out->origin_queued = bs->queued;
        out->origin_queue_full = bs->queue_full;
        out->origin_queue_timeouts = bs->queue_timeouts;
        out->origin_waited = bs->waited;
        out->origin_handoffs = bs->handoffs;
        out->origin_wait_s_total = (double)bs->wait_ns_total / 1e9;
        out->origin_wait_s_max = (double)bs->wait_ns_max / 1e9;
    }
    speculation_stats_get(&out->spec);
    delivery_stats_t ds;
    delivery_stats_get(&ds);
    out->promised = ds.promised;
    out->completed = ds.completed;
    out->cancelled = ds.cancelled;
    out->pushed_bytes = ds.pushed_bytes;
    out->hints_sent = ds.hints_sent;
    out->hinted_links = ds.hinted_links;
    out->skipped = ds.skipped;
    out->digest_hits = ds.digest_hits;
    pace_stats_get(&out->pace);
    if (pm != NULL) {
        pagemap_stats_t ps;
        pagemap_stats(pm, &ps);
        out->pages = ps.pages;
        out->templates = ps.templates;
        out->edges = ps.edges;
        out->pinned = ps.pinned;
        out->banned = ps.banned;
        out->assets = ps.assets;
        out->visits_committed = ps.visits_committed;
    }
    out->visits_open = learning_visits_open();
    out->visits_opened = learning_visits_opened();
    out->not_pages = learning_not_pages();
    out->uptime_s = (double)(uv_hrtime() - start_ns) / 1e9;
}

/* A growing string; aborts on out of memory like the rest of proxy/. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
        b->p = xrealloc(b->p, b->cap);
    }
}

static void counter(sbuf_t *b, const char *name, const char *help, uint64_t v)
{
    sb_printf(b, "# HELP herald_%s %s\n# TYPE herald_%s counter\nherald_%s %llu\n", name, help,
              name, name, (unsigned long long)v);
}

static void render_speculation(sbuf_t *b, const speculation_stats_t *sp)
{
    counter(b, "speculation_headers_total",
            "Speculation-Rules headers herald added to page responses.", sp->headers);
    counter(b, "speculation_origin_headers_total",
            "Page responses whose origin sent its own Speculation-Rules (left alone).",
            sp->origin_own);
    counter(b, "speculation_rule_sets_total", "Rule sets herald answered.", sp->rule_sets);
    counter(b, "speculation_rule_urls_total", "URLs in the rule sets answered.", sp->rule_urls);
    counter(b, "speculation_prefetches_total", "Browser prefetches of pages served 2xx.", sp->sent);
    counter(b, "speculation_prefetches_used_total",
            "Prefetched pages the client then used (follow-ups or a navigation onward).", sp->used);
    counter(b, "speculation_prefetches_unused_total",
            "Prefetched pages the client navigated to again (the prefetch was not used).",
            sp->unused);
    counter(b, "speculation_prefetches_unknown_total",
            "Prefetches with no signal within the prefetch lifetime.", sp->unknown);
    counter(b, "speculation_prefetches_limited_total",
            "Prefetches answered 503 because the client's prefetch budget was spent.", sp->limited);
}

static void gauge(sbuf_t *b, const char *name, const char *help, uint64_t v)
{
    sb_printf(b, "# HELP herald_%s %s\n# TYPE herald_%s gauge\nherald_%s %llu\n", name, help, name,
              name, (unsigned long long)v);
}

static void gauge_f(sbuf_t *b, const char *name, const char *help, double v)
{
    sb_printf(b, "# HELP herald_%s %s\n# TYPE herald_%s gauge\nherald_%s %.6g\n", name, help, name,
              name, v);
}

static void render_pace(sbuf_t *b, const pace_stats_t *p)
{
    gauge(b, "pace_networks",
          "Client networks (IPv4 /24, IPv6 /48) with a recent path estimate in memory.",
          p->mem.networks);
    sb_printf(b, "# HELP herald_pace_network_rate_bytes_per_second Spread of the client networks' "
                 "delivery rate estimates (quantiles over networks).\n"
                 "# TYPE herald_pace_network_rate_bytes_per_second gauge\n");
    const double q[3] = {p->mem.p10, p->mem.p50, p->mem.p90};
    const char *const qn[3] = {"0.1", "0.5", "0.9"};
    for (int i = 0; i < 3; i++)
        sb_printf(b, "herald_pace_network_rate_bytes_per_second{quantile=\"%s\"} %.6g\n", qn[i],
                  q[i]);
    gauge_f(b, "pace_population_rate_bytes_per_second",
            "Median delivery rate of recent connections of every network (a network never seen "
            "starts from it); 0 when none.",
            p->mem.population.rate);
    gauge_f(b, "pace_population_rtt_seconds",
            "Median round-trip time of recent connections of every network; 0 when none.",
            p->mem.population.rtt_ms > 0 ? p->mem.population.rtt_ms / 1000 : 0);
    gauge(b, "pace_population_connections", "Recent connections the population estimate rests on.",
          p->mem.population.n);
    counter(b, "pace_pings_total", "PINGs sent behind data to time the path.", p->pings);
    counter(b, "pace_ping_acks_total", "ACKs of those PINGs.", p->acks);
    counter(b, "pace_rate_samples_total",
            "Delivery rate samples from PING ACKs timed over a busy bottleneck.", p->samples);
    counter(b, "pace_network_notes_total",
            "Connection measurements written to the memory of client networks.", p->commits);
    counter(b, "pace_networks_evicted_total",
            "Client networks dropped because the memory was full.", p->mem.evicted);
    counter(b, "pace_networks_expired_total",
            "Client networks dropped because their estimates were too old.", p->mem.expired);
    counter(b, "pace_holds_total", "Times a push was held back to keep the HTML's queue short.",
            p->holds);
    sb_printf(b, "# HELP herald_pace_starts_total Pages whose pushes started from each kind of "
                 "rate estimate.\n# TYPE herald_pace_starts_total counter\n");
    for (int i = 0; i < PACE_SRC_COUNT; i++)
        sb_printf(b, "herald_pace_starts_total{source=\"%s\"} %llu\n",
                  pace_source_name((pace_source_t)i), (unsigned long long)p->starts[i]);
}

char *metrics_render_prometheus(const metrics_snapshot_t *s)
{
    static const char *const protos[METRICS_PROTOS] = {"HTTP/1.0", "HTTP/1.1", "HTTP/2"};
    static const char *const classes[METRICS_STATUS_CLASSES] = {"none", "1xx", "2xx",
                                                                "3xx",  "4xx", "5xx"};
    sbuf_t b = {.p = xmalloc(4096), .len = 0, .cap = 4096};
    sb_printf(&b, "# HELP herald_requests_total Client requests finished, by status class and "
                  "protocol.\n# TYPE herald_requests_total counter\n");
    for (int p = 0; p < METRICS_PROTOS; p++)
        for (int c = 0; c < METRICS_STATUS_CLASSES; c++)
            sb_printf(&b, "herald_requests_total{protocol=\"%s\",status=\"%s\"} %llu\n", protos[p],
                      classes[c], (unsigned long long)s->requests[p][c]);
    sb_printf(&b, "# HELP herald_request_duration_seconds Request head received to response "
                  "finished.\n# TYPE herald_request_duration_seconds histogram\n");
    for (int i = 0; i < METRICS_LATENCY_BUCKETS; i++)
        sb_printf(&b, "herald_request_duration_seconds_bucket{le=\"%g\"} %llu\n", latency_bounds[i],
                  (unsigned long long)s->latency_buckets[i]);
    sb_printf(&b, "herald_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
              (unsigned long long)s->latency_buckets[METRICS_LATENCY_BUCKETS]);
    sb_printf(&b, "herald_request_duration_seconds_sum %.6f\n", s->latency_sum_s);
    sb_printf(&b, "herald_request_duration_seconds_count %llu\n",
              (unsigned long long)s->latency_buckets[METRICS_LATENCY_BUCKETS]);
    counter(&b, "origin_errors_total", "Origin connections that failed (502).", s->origin_errors);
    counter(&b, "origin_timeouts_total", "Origin responses that timed out (504).",
            s->origin_timeouts);
    counter(&b, "origin_connects_total", "Origin connections opened.", s->origin_connects);
    counter(&b, "origin_reuses_total", "Requests sent on a reused pooled origin connection.",
            s->origin_reuses);
    counter(&b, "origin_retries_total", "Requests retried once on a fresh origin connection.",
            s->origin_retries);
    gauge(&b, "origin_connections_open", "Origin connections open now.", s->origin_open);
    gauge(&b, "origin_connections_idle", "Pooled idle origin connections now.", s->origin_idle);
    gauge(&b, "origin_connections_max",
          "Origin connections allowed at once, all workers together (--origin-max-connections).",
          s->origin_max);
    gauge(&b, "origin_queue_length", "Requests waiting for an origin connection now.",
          s->origin_queued);
    gauge(&b, "origin_queue_max",
          "Requests that may wait for an origin connection (--origin-queue).", s->origin_queue_max);
    counter(&b, "origin_queue_rejected_total",
            "Requests answered 503 because the origin queue was full.", s->origin_queue_full);
    counter(&b, "origin_queue_timeouts_total",
            "Requests answered 504 because origin-timeout ran out while they waited.",
            s->origin_queue_timeouts);
    sb_printf(&b,
              "# HELP herald_origin_queue_wait_seconds Time requests that waited for an origin "
              "connection spent waiting.\n# TYPE herald_origin_queue_wait_seconds summary\n"
              "herald_origin_queue_wait_seconds_sum %.6f\nherald_origin_queue_wait_seconds_count "
              "%llu\n",
              s->origin_wait_s_total, (unsigned long long)s->origin_waited);
    counter(&b, "origin_handoffs_total",
            "Origin connections (or budget units) handed from one worker to another.",
            s->origin_handoffs);
    gauge(&b, "active_connections", "Client connections open now.", s->active_connections);
    counter(&b, "pushes_promised_total", "PUSH_PROMISEs sent.", s->promised);
    counter(&b, "pushes_completed_total", "Pushed streams sent completely.", s->completed);
    counter(&b, "pushes_cancelled_total", "Pushed streams the client reset.", s->cancelled);
    counter(&b, "pushed_bytes_total", "Body bytes of completed pushes.", s->pushed_bytes);
    counter(&b, "hints_sent_total", "103 Early Hints responses sent.", s->hints_sent);
    counter(&b, "hinted_links_total", "Preload links in the 103s sent.", s->hinted_links);
    counter(&b, "digest_hits_total", "Plan items skipped because the cache digest had them.",
            s->digest_hits);
    counter(&b, "plan_skipped_total", "Plan items skipped because the client had them.",
            s->skipped);
    gauge(&b, "learned_pages", "Entries in the learned map (templates included).", s->pages);
    gauge(&b, "learned_templates", "Template entries in the learned map.", s->templates);
    gauge(&b, "learned_edges", "Page to asset edges in the learned map (all states).", s->edges);
    gauge(&b, "learned_edges_pinned", "Pinned edges.", s->pinned);
    gauge(&b, "learned_edges_banned", "Banned edges.", s->banned);
    counter(&b, "visits_committed_total", "Page visits committed to the learned map.",
            s->visits_committed);
    gauge(&b, "learning_visits_open", "Visits opened and not yet committed.", s->visits_open);
    counter(&b, "visits_opened_total", "Page visits opened.", s->visits_opened);
    counter(&b, "requests_not_page_total",
            "Requests that opened no visit: their URL answered with something other than HTML.",
            s->not_pages);
    render_speculation(&b, &s->spec);
    render_pace(&b, &s->pace);
    sb_printf(&b,
              "# HELP herald_uptime_seconds Seconds since start.\n"
              "# TYPE herald_uptime_seconds gauge\nherald_uptime_seconds %.3f\n",
              s->uptime_s);
    return b.p;
}

static void on_complete(void *data, const exchange_t *ex)
{
    metrics_note_request(ex);
}

static const exchange_observer_t metrics_observer = {
    .name = "metrics",
    .on_complete = on_complete,
};

void metrics_attach(exchange_ctx_t *x)
{
    exchange_ctx_observe(x, &metrics_observer, NULL);
}
