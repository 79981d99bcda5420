/*
 * libFuzzer target for the learning model (learn/session, learn/visit,
 * learn/pagemap): the input is a program of events from a few clients, one
 * connection after another (page requests, discovery, follow-ups,
 * responses, deliveries, window expiry, plans, operator pins), run against
 * one small map. After every step and every connection it checks:
 *  - memory stays bounded: pages, learned edges per page and visits per
 *    connection within their caps;
 *  - one client moves a page by at most one visit's weight: across one
 *    connection, however many events, a page entry's visit count and each
 *    surviving edge's clean hit/miss count grow by at most one;
 *  - no edge is planned that no evidence supports: every planned item is
 *    pinned, or strong from discovery, or confirmed by a clean hit.
 * Page requests carry Referers (another page, the page itself, another
 * origin), reloads and prefetches (dormant visits activated by a later
 * Referer), from a few clients; prefetch outcomes go through a tracker.
 * Then also:
 *  - one connection moves an entry's navigations away, and each of its
 *    next pages' counts, by at most one session's weight;
 *  - next pages per entry stay within PAGEMAP_MAX_NEXT learned;
 *  - nothing unsafe, private, denied, banned, self or of another origin is
 *    ever in a rule set, which has at most its maximum of URLs;
 *  - the tracker's outcomes add up (sent = used + unused + unknown +
 *    pending) within its caps.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagemap.h"
#include "session.h"
#include "visit.h"
#include "prefetch.h"
#include "speculation.h"
#include "herald/error.h"

#define MAX_PAGES 4
#define MAX_ASSETS 6
#define MAX_PENDING 64

static const char *const pages[][3] = {
    /* url, page key, template key */
    {"https://e.com/", "e.com/", NULL},
    {"https://e.com/item/1", "e.com/item/1", "e.com/item/*"},
    {"https://e.com/item/2", "e.com/item/2", "e.com/item/*"},
    {"https://e.com/a?x=1", "e.com/a?x=1", NULL},
    {"https://e.com/b", "e.com/b", NULL},
    {"https://e.com/logout", "e.com/logout", NULL},
    {"https://e.com/item/3", "e.com/item/3", "e.com/item/*"},
};
#define NPAGES (sizeof(pages) / sizeof(pages[0]))

static const char *const urls[] = {
    "https://e.com/a.css",
    "https://e.com/b.js",
    "https://e.com/app.js?ver=1",
    "https://e.com/app.js?ver=2",
    "https://e.com/h-320.png",
    "https://e.com/h-640.png",
    "https://e.com/t.js?ts=1700000000001",
    "https://e.com/t.js?ts=1700000000002",
    "https://e.com/f.woff2",
    "https://e.com/chunk.3f2a9c1b.js",
    "https://e.com/chunk.77e01d5a.js",
    "https://cdn.x.com/lib.js",
    "https://e.com/icon.png",
    "https://e.com/imp.css",
};
#define NURLS (sizeof(urls) / sizeof(urls[0]))

typedef struct in {
    const uint8_t *p;
    size_t n;
} in_t;

static unsigned take(in_t *in, unsigned mod)
{
    if (in->n == 0)
        return 0;
    unsigned v = *in->p++;
    in->n--;
    return mod ? v % mod : v;
}

static void need(int rc)
{
    if (rc != 0 && rc != HERALD_ENOTFOUND)
        abort(); /* no allocation failure here: any error is a bug */
}

/* Visits handed over by the session, waiting for their page and holds. */
static visit_t *pending[MAX_PENDING];
static size_t npending;

static void try_commit_all(pagemap_t *pm, int64_t now)
{
    size_t keep = 0;
    for (size_t i = 0; i < npending; i++) {
        visit_t *v = pending[i];
        if (visit_ready(v)) {
            visit_set_state(v, VISIT_COMMITTED);
            need(visit_commit(v, pm, now, false));
            visit_unref(v);
        } else {
            pending[keep++] = v;
        }
    }
    npending = keep;
}

static void collect(session_t *s, pagemap_t *pm, uint64_t t, int64_t now)
{
    visit_t *out[SESSION_MAX_OPEN];
    size_t n;
    while ((n = session_expire(s, t, out, SESSION_MAX_OPEN)) > 0) {
        for (size_t i = 0; i < n; i++) {
            if (npending == MAX_PENDING)
                abort();
            pending[npending++] = out[i];
        }
        if (n < SESSION_MAX_OPEN)
            break;
    }
    try_commit_all(pm, now);
}

/* Per page entry: visits_total and, per edge key, clean hits + misses. */
typedef struct snap {
    uint64_t visits[NPAGES + 1];
    uint64_t evidence[NPAGES + 1][NURLS];
    bool present[NPAGES + 1][NURLS];
    uint64_t navs[NPAGES + 1];          /* navigations away */
    uint64_t nnavs[NPAGES + 1][NPAGES]; /* per next page: sessions that went there */
    double ncount[NPAGES + 1][NPAGES];  /* ... decayed */
    bool npresent[NPAGES + 1][NPAGES];
} snap_t;

static const char *entry_key(size_t i)
{
    return i < NPAGES ? pages[i][1] : "e.com/item/*";
}

static void take_snap(pagemap_t *pm, snap_t *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i <= NPAGES; i++) {
        pagemap_page_info_t info;
        pagemap_edge_info_t *e = NULL;
        size_t n = 0;
        if (pagemap_page_get(pm, entry_key(i), &info, &e, &n) != 0)
            continue;
        s->visits[i] = info.visits_total;
        size_t learned = 0;
        for (size_t k = 0; k < n; k++) {
            learned += e[k].state == PAGEMAP_EDGE_LEARNED;
            for (size_t u = 0; u < NURLS; u++) {
                if (strcmp(e[k].key, urls[u]) == 0) {
                    s->present[i][u] = true;
                    s->evidence[i][u] = e[k].clean_hits + e[k].clean_misses;
                }
            }
        }
        if (learned > MAX_ASSETS)
            abort();
        pagemap_edge_infos_free(e, n);
        pagemap_page_info_dispose(&info);
        s->navs[i] = info.navs_total;
        pagemap_next_info_t *x = NULL;
        if (pagemap_next_get(pm, entry_key(i), NULL, &x, &n) != 0)
            continue;
        learned = 0;
        for (size_t k = 0; k < n; k++) {
            learned += x[k].state == PAGEMAP_EDGE_LEARNED;
            for (size_t j = 0; j < NPAGES; j++) {
                if (strcmp(x[k].key, pages[j][1]) == 0) {
                    s->npresent[i][j] = true;
                    s->nnavs[i][j] = x[k].navs;
                    s->ncount[i][j] = x[k].count;
                }
            }
            if (x[k].count > info.navs * (1 + 1e-9) + 1e-9 || x[k].probability > 1)
                abort();
        }
        if (learned > PAGEMAP_MAX_NEXT)
            abort();
        pagemap_next_infos_free(x, n);
    }
}

static void check_one_visit(const snap_t *before, const snap_t *after)
{
    for (size_t i = 0; i <= NPAGES; i++) {
        if (after->visits[i] > before->visits[i] + 1)
            abort();
        for (size_t u = 0; u < NURLS; u++)
            if (before->present[i][u] && after->present[i][u] &&
                after->evidence[i][u] > before->evidence[i][u] + 1)
                abort();
        if (after->navs[i] > before->navs[i] + 1)
            abort();
        for (size_t j = 0; j < NPAGES; j++) {
            if (!after->npresent[i][j])
                continue;
            uint64_t bn = before->npresent[i][j] ? before->nnavs[i][j] : 0;
            double bc = before->npresent[i][j] ? before->ncount[i][j] : 0;
            if (after->nnavs[i][j] > bn + 1 || after->ncount[i][j] > bc + 1 + 1e-9)
                abort();
        }
    }
}

/* Nothing unsafe, private, denied, banned, self or off-site in a rule set. */
static void check_spec(pagemap_t *pm)
{
    for (size_t i = 0; i < NPAGES; i++) {
        pagemap_spec_opts_t o;
        pagemap_spec_opts_init(&o);
        pagemap_spec_t sp;
        need(pagemap_speculation(pm, pages[i][1], pages[i][2], "e.com", &o, &sp));
        if (sp.n > o.max_urls)
            abort();
        const char *entry = sp.source == PAGEMAP_PLAN_TEMPLATE ? pages[i][2] : pages[i][1];
        pagemap_next_info_t *x = NULL;
        size_t n = 0;
        if (sp.n > 0)
            need(pagemap_next_get(pm, entry, &o, &x, &n));
        for (size_t k = 0; k < sp.n; k++) {
            const pagemap_spec_item_t *it = &sp.items[k];
            if (speculation_denied(it->url, NULL, 0) || strcmp(it->key, pages[i][1]) == 0 ||
                strncmp(it->url, "https://e.com/", 14) != 0)
                abort();
            bool ok = false;
            for (size_t j = 0; j < n; j++) {
                if (strcmp(x[j].key, it->key) != 0)
                    continue;
                ok = x[j].state != PAGEMAP_EDGE_BANNED && x[j].status == 200 && x[j].unsafe == 0 &&
                     (!x[j].private_url || x[j].nclients >= PAGEMAP_NEXT_MIN_CLIENTS) &&
                     (x[j].state == PAGEMAP_EDGE_PINNED || (x[j].navs >= PAGEMAP_NEXT_MIN_NAVS &&
                                                            x[j].probability >= o.min_probability));
            }
            if (!ok)
                abort();
        }
        pagemap_next_infos_free(x, n);
        pagemap_spec_dispose(&sp);
    }
}

static void check_tracker(const prefetch_t *t)
{
    prefetch_stats_t st;
    prefetch_stats(t, &st);
    if (st.sent != st.used + st.unused + st.unknown + st.pending ||
        st.clients > PREFETCH_MAX_CLIENTS || st.pending > st.clients * PREFETCH_PER_CLIENT)
        abort();
}

/* Every planned item is backed by evidence (or an operator's pin). */
static void check_plans(pagemap_t *pm, double explore)
{
    for (size_t i = 0; i < NPAGES; i++) {
        pagemap_plan_opts_t o = {PAGEMAP_DEFAULT_MIN_CONFIDENCE, explore};
        pagemap_plan_t p;
        need(pagemap_plan(pm, pages[i][1], pages[i][2], "e.com", 0, &o, &p));
        pagemap_page_info_t info;
        pagemap_edge_info_t *e = NULL;
        size_t n = 0;
        const char *entry = p.source == PAGEMAP_PLAN_TEMPLATE ? pages[i][2] : pages[i][1];
        if (p.n > 0 && pagemap_page_get(pm, entry, &info, &e, &n) == 0) {
            for (size_t k = 0; k < p.n; k++) {
                bool backed =
                    p.items[k].is_redirect || p.items[k].verdict == PAGEMAP_VERDICT_PINNED;
                for (size_t j = 0; j < n && !backed; j++) {
                    if (strcmp(e[j].key, p.items[k].key) != 0)
                        continue;
                    backed =
                        e[j].state == PAGEMAP_EDGE_PINNED ||
                        (e[j].clean_hits > 0 && e[j].hits > 0) ||
                        (e[j].strong && (e[j].sources & PAGEMAP_SRC_DISCOVERY) && e[j].visits == 0);
                }
                /* a redirect's target may have no edge of its own */
                if (!backed && k > 0 && p.items[k - 1].is_redirect)
                    backed = true;
                if (!backed)
                    abort();
            }
            pagemap_edge_infos_free(e, n);
            pagemap_page_info_dispose(&info);
        }
        if (p.n + p.nheld > MAX_ASSETS + 2)
            abort();
        pagemap_plan_dispose(&p);
    }
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    /* pages holding a pin or a ban are kept over the cap, by design */
    if (st.pages > MAX_PAGES + st.pinned + st.banned + st.next_pinned + st.next_banned)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pagemap_config_t cfg;
    pagemap_config_init(&cfg);
    cfg.max_pages = MAX_PAGES;
    cfg.max_assets_per_page = MAX_ASSETS;
    pagemap_t *pm = NULL;
    need(pagemap_create(&cfg, &pm));
    prefetch_t *tr = NULL;
    need(prefetch_create(pm, &tr));
    in_t in = {data, size};
    uint64_t t = 0;
    int64_t now = 1;
    while (in.n > 0) {
        /* one client connection */
        snap_t before, after;
        take_snap(pm, &before);
        session_t *s = NULL;
        need(session_create(1000, &s));
        static const char *const clients[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3"};
        const char *client = clients[take(&in, 3)];
        visit_t *mine[16];
        size_t nmine = 0;
        bool end = false;
        while (in.n > 0 && !end) {
            unsigned op = take(&in, 16);
            visit_t *v = nmine ? mine[take(&in, (unsigned)nmine)] : NULL;
            const char *u = urls[take(&in, NURLS)];
            t += take(&in, 0) * 10;
            switch (op) {
            case 0: {
                if (nmine == 16)
                    break;
                unsigned pi = take(&in, NPAGES);
                unsigned ri = take(&in, NPAGES + 2);
                const char *ref = ri < NPAGES    ? pages[ri][0]
                                  : ri == NPAGES ? "https://other.com/x"
                                                 : NULL;
                visit_page_t pg = {.url = pages[pi][0],
                                   .page_key = pages[pi][1],
                                   .template_key = pages[pi][2],
                                   .authority = "e.com",
                                   .t_ms = t,
                                   .multiplexed = take(&in, 4) != 0,
                                   .cookie = take(&in, 2),
                                   .client = client,
                                   .referer = ref,
                                   .reload = take(&in, 8) == 0,
                                   .prefetch = take(&in, 4) == 0,
                                   .authorized = take(&in, 16) == 0};
                need(session_open(s, &pg, &mine[nmine]));
                nmine++;
                prefetch_request(tr, client, pages[pi][0], ref, !pg.prefetch, t, now);
                if (pg.prefetch && take(&in, 2))
                    need(prefetch_sent(tr, client, pages[pi][0], ref, t, now));
                break;
            }
            case 1:
                if (v)
                    visit_page_head(v, take(&in, 3) ? 200 : 404, take(&in, 5) != 0, take(&in, 0),
                                    take(&in, 4) == 0);
                break;
            case 2:
            case 3:
                if (v) {
                    unsigned src = (unsigned[]){PAGEMAP_SRC_HTML, PAGEMAP_SRC_CSS,
                                                PAGEMAP_SRC_LINK}[take(&in, 3)];
                    visit_found_t f = {.url = u,
                                       .key = u,
                                       .kind = (pagemap_kind_t)take(&in, PAGEMAP_KIND_COUNT_),
                                       .order = take(&in, 0),
                                       .group = take(&in, 4) == 0 ? 7 : 0,
                                       .strong = take(&in, 2)};
                    need(visit_found(v, &f, src));
                }
                break;
            case 4:
            case 5: {
                unsigned rk = take(&in, 4);
                /* a Referer naming an asset, a page (a prefetched one activates), or none */
                const char *ref = rk == 0 ? NULL : rk == 1 ? pages[take(&in, NPAGES)][0] : u;
                prefetch_request(tr, client, u, ref, false, t, now);
                visit_t *a = session_attribute(s, ref, t);
                if (a) {
                    visit_fetch_t f = {.url = u,
                                       .key = u,
                                       .kind = (pagemap_kind_t)take(&in, PAGEMAP_KIND_COUNT_),
                                       .conditional = take(&in, 8) == 0,
                                       .browser = take(&in, 4) != 0};
                    need(visit_fetch(a, &f));
                    if (take(&in, 4) != 0) {
                        pagemap_asset_meta_t m = {.status = take(&in, 5) ? 200 : 304,
                                                  .size = take(&in, 0),
                                                  .policy = take(&in, 0)};
                        need(visit_fetch_served(a, u, &m));
                    }
                }
                need(session_note_requested(s, u));
                break;
            }
            case 6:
                if (v)
                    need(visit_delivered(v, u, u, (visit_delivery_t)take(&in, 5)));
                break;
            case 7:
                if (v && !visit_page_done(v))
                    visit_page_end(v, take(&in, 4) != 0, take(&in, 0));
                break;
            case 8:
                if (v)
                    visit_scanned(v, take(&in, 2) ? PAGEMAP_SRC_HTML : PAGEMAP_SRC_CSS);
                break;
            case 9:
                collect(s, pm, t, now++);
                break;
            case 10:
                check_plans(pm, take(&in, 3) * 0.25);
                break;
            case 11: {
                pagemap_asset_meta_t m = {.status = take(&in, 4) ? 200 : 301,
                                          .location = "https://e.com/a.css",
                                          .policy = take(&in, 0) | (take(&in, 0) << 8),
                                          .pushed = take(&in, 2)};
                need(pagemap_observe_asset(pm, u, &m));
                break;
            }
            case 12:
                check_spec(pm);
                prefetch_expire(tr, t, now);
                check_tracker(tr);
                break;
            case 13:
                /* a page answered with what makes it unsafe, or a redirect */
                if (v) {
                    static const int st[] = {200, 200, 302, 404, 304};
                    visit_page_head(v, st[take(&in, 5)], take(&in, 6) != 0, take(&in, 0),
                                    take(&in, 4) == 0);
                }
                break;
            default:
                end = op == 15;
                break;
            }
            if (session_visits(s) > 16 + SESSION_MAX_OPEN)
                abort();
            if (npending > MAX_PENDING)
                abort();
        }
        /* the connection is gone: every visit ends, pages end, holds go */
        for (size_t i = 0; i < nmine; i++)
            if (!visit_page_done(mine[i]))
                visit_page_end(mine[i], false, 0);
        collect(s, pm, UINT64_MAX, now++);
        if (npending != 0)
            abort(); /* a visit with no hold and its page done always commits */
        for (size_t i = 0; i < nmine; i++)
            visit_unref(mine[i]);
        session_destroy(s);
        take_snap(pm, &after);
        check_one_visit(&before, &after);
        check_plans(pm, 0);
        check_spec(pm);
        check_tracker(tr);
        /* between connections, sometimes an operator pins or bans */
        if (in.n > 0 && take(&in, 8) == 0)
            need(pagemap_edge_set_state(pm, pages[take(&in, NPAGES)][1], urls[take(&in, NURLS)],
                                        (pagemap_edge_state_t)take(&in, 3)));
        if (in.n > 0 && take(&in, 8) == 0) {
            const char *entry = entry_key(take(&in, NPAGES + 1));
            const char *next = pages[take(&in, NPAGES)][0];
            if (take(&in, 4) == 0)
                need(pagemap_forget_next(pm, entry, next));
            else
                need(pagemap_next_set_state(pm, entry, next, (pagemap_edge_state_t)take(&in, 3)));
            check_spec(pm);
        }
    }
    prefetch_destroy(tr);
    pagemap_destroy(pm);
    return 0;
}
