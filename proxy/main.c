/*
 * herald: parse options, set up TLS and logs, start the workers, and wait
 * for SIGTERM/SIGINT to drain them. The main thread runs only a small loop
 * for signals; all traffic is on the workers' loops.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "admin.h"
#include "alloc.h"
#include "budget.h"
#include "options.h"
#include "log.h"
#include "metrics.h"
#include "reload.h"
#include "state.h"
#include "tls.h"
#include "worker.h"
#include "pagemap.h"
#include "config.h"
#include "sharedmap.h"
#include "herald/error.h"

typedef struct herald_main {
    uv_loop_t *loop;
    uv_signal_t sigterm, sigint;
    worker_t *workers;
    int nworkers;
    worker_set_t set; /* workers and nworkers, for the admin's gauges */
    int signals_seen;
    admin_t *admin;  /* NULL without --admin */
    state_t *state;  /* NULL without --state */
    reload_t reload; /* SIGHUP, SIGUSR1 */
} herald_main_t;

static void on_stop_signal(uv_signal_t *s, int signum)
{
    herald_main_t *m = s->data;
    if (++m->signals_seen > 1) {
        LOG_WARN("second signal %d: exiting without waiting for the drain", signum);
        exit(1);
    }
    /* main's own config: the workers' copies change on their threads (SIGHUP) */
    LOG_INFO("signal %d: draining (up to %gs)", signum, m->reload.cfg->drain_timeout);
    /* The admin listener goes first: it reads worker-owned counters. */
    admin_close(m->admin);
    m->admin = NULL;
    state_stop(m->state);
    reload_stop(&m->reload);
    for (int i = 0; i < m->nworkers; i++)
        worker_request_stop(&m->workers[i]);
    /* Keep watching for a second signal, but let the loop end once workers are done. */
    uv_unref((uv_handle_t *)&m->sigterm);
    uv_unref((uv_handle_t *)&m->sigint);
}

/* Every client and origin connection is a descriptor: take the whole hard
 * limit (the soft one is often 1024), and say what it is. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        LOG_WARN("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return;
    }
    rlim_t want = rl.rlim_max;
    if (want == RLIM_INFINITY) {
        /* the kernel refuses more than fs.nr_open */
        want = 1024 * 1024;
        FILE *f = fopen("/proc/sys/fs/nr_open", "r");
        unsigned long long n;
        if (f != NULL) {
            if (fscanf(f, "%llu", &n) == 1)
                want = (rlim_t)n;
            fclose(f);
        }
    }
    if (rl.rlim_cur < want) {
        struct rlimit up = {.rlim_cur = want, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = want;
        else
            LOG_WARN("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)want,
                     strerror(errno));
    }
    LOG_INFO("open files limit %llu", (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
    static config_t cfg;
    int rc = config_load(&cfg, argc, argv);
    if (rc == 1)
        return 0;
    if (rc != 0)
        return 2;
    log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    metrics_init();
    char admin_token[256], admin_err[512];
    rc = admin_resolve_token(&cfg, admin_token, sizeof(admin_token), admin_err, sizeof(admin_err));
    if (rc != 0) {
        fprintf(stderr, "herald: %s\n", admin_err);
        return 2;
    }
    if (sharedmap_check(&cfg, admin_err, sizeof(admin_err)) != 0) {
        fprintf(stderr, "herald: %s\n", admin_err);
        return 2;
    }

    if (cfg.access_log[0] != '\0' && (rc = log_access_open(cfg.access_log)) != 0) {
        LOG_ERROR("cannot open access log %s: %s", cfg.access_log, uv_strerror(rc));
        return 1;
    }

    SSL_CTX *ssl_ctx = NULL;
    for (size_t i = 0; i < cfg.nlisten; i++) {
        if (cfg.listen[i].tls && ssl_ctx == NULL) {
            char err[512];
            ssl_ctx = tls_ctx_create(cfg.tls_cert, cfg.tls_key, err, sizeof(err));
            if (ssl_ctx == NULL) {
                LOG_ERROR("TLS: %s", err);
                return 1;
            }
        }
    }

    /* One learned map shared by every worker (it locks itself); it outlives
     * the workers: destroyed after they are joined. */
    pagemap_config_t pmc;
    pagemap_config_init(&pmc);
    pmc.max_pages = cfg.max_pages;
    pmc.max_assets_per_page = cfg.max_assets_per_page;
    pagemap_t *learn = NULL;
    if ((rc = pagemap_create(&pmc, &learn)) != 0) {
        LOG_ERROR("learned map: %s", herald_strerror(rc));
        return 1;
    }

    herald_main_t m = {.loop = uv_default_loop(), .nworkers = cfg.workers};
    /* SIGTERM and SIGINT are caught before the state loads and the first
     * listener opens: one sent as soon as a port answers drains rather than
     * kills. libuv holds it until the loop runs, when all below is set up. */
    uv_signal_init(m.loop, &m.sigterm);
    uv_signal_init(m.loop, &m.sigint);
    m.sigterm.data = m.sigint.data = &m;
    uv_signal_start(&m.sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&m.sigint, on_stop_signal, SIGINT);
    /* Loaded before the workers start, so the first visit is planned from it. */
    if (cfg.state_file[0] != '\0')
        state_start(m.loop, learn, cfg.state_file, cfg.state_interval, &m.state);
    /* The fleet's shared map, loaded on top of the state file, also before the workers start. */
    sharedmap_t *shared = NULL;
    char shared_err[512];
    if (sharedmap_start(&cfg, learn, &shared, shared_err, sizeof(shared_err)) != 0) {
        LOG_ERROR("%s", shared_err); /* the options passed sharedmap_check: not expected */
        state_save_sync_and_free(m.state);
        pagemap_destroy(learn);
        return 1;
    }
    /* One origin budget for every worker's pool; it outlives the workers. */
    budget_t *budget = budget_create(cfg.origin_max_connections, cfg.origin_queue, cfg.workers);
    m.workers = xcalloc((size_t)cfg.workers, sizeof(worker_t));
    for (int i = 0; i < cfg.workers; i++) {
        rc = worker_start(&m.workers[i], i, &cfg, ssl_ctx, learn, shared, budget);
        if (rc != 0) {
            LOG_ERROR("worker %d failed to start: %s", i, uv_strerror(rc));
            for (int j = 0; j < i; j++)
                worker_request_stop(&m.workers[j]);
            for (int j = 0; j < i; j++)
                worker_join(&m.workers[j]);
            return 1;
        }
    }
    for (size_t i = 0; i < cfg.nlisten; i++)
        LOG_INFO("listening on %s (%s)", cfg.listen[i].text,
                 cfg.listen[i].tls   ? "TLS: h2, http/1.1"
                 : cfg.listen[i].h2c ? "cleartext: h2c only"
                                     : "cleartext: h2c, http/1.1");
    LOG_INFO("origin http://%s:%u, %d worker(s), at most %u origin connections and %u waiting "
             "requests",
             cfg.origin_host, cfg.origin_port, cfg.workers, cfg.origin_max_connections,
             cfg.origin_queue);

    if (cfg.admin[0] != '\0') {
        m.set = (worker_set_t){.v = m.workers, .n = m.nworkers};
        rc = admin_start(m.loop, &cfg, admin_token, m.nworkers, worker_gauges, &m.set, learn,
                         shared, m.state, &m.admin);
        if (rc != 0) {
            LOG_ERROR("cannot listen on --admin=%s: %s", cfg.admin, uv_strerror(rc));
            for (int i = 0; i < m.nworkers; i++)
                worker_request_stop(&m.workers[i]);
            for (int i = 0; i < m.nworkers; i++)
                worker_join(&m.workers[i]);
            return 1;
        }
        LOG_INFO("admin on http://%s/%s", cfg.admin,
                 admin_token[0] ? " (bearer token required)" : "");
    }
    reload_init(&m.reload, m.loop, &cfg, argc, argv, m.workers, m.nworkers, m.admin);
    uv_run(m.loop, UV_RUN_DEFAULT);

    for (int i = 0; i < m.nworkers; i++)
        worker_join(&m.workers[i]);
    uv_close((uv_handle_t *)&m.sigterm, NULL);
    uv_close((uv_handle_t *)&m.sigint, NULL);
    uv_run(m.loop, UV_RUN_DEFAULT);
    uv_loop_close(m.loop);
    sharedmap_stop(shared);            /* the workers are joined: their last evidence is queued */
    state_save_sync_and_free(m.state); /* the workers are joined: the map is final */
    reload_dispose(&m.reload);
    free(m.workers);
    budget_destroy(budget);
    pagemap_destroy(learn);
    if (ssl_ctx != NULL)
        tls_ctx_free(ssl_ctx);
    LOG_INFO("stopped");
    return 0;
}
