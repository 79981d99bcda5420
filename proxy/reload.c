/*
 * SIGHUP (config reload) and SIGUSR1 (log reopen); see reload.h.
 */
#include "reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "alloc.h"
#include "log.h"
#include "options.h"
#include "tls.h"
#include "worker.h"

static void on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    reload_t *r = s->data;
    config_t *nc = xmalloc(sizeof(*nc));
    /* config_load prints its error (file:line) to stderr itself. */
    if (config_load(nc, r->argc, r->argv) != 0) {
        LOG_ERROR("SIGHUP: the configuration is invalid (see above): nothing reloaded");
        free(nc);
        return;
    }
    config_t *applied = xmalloc(sizeof(*applied));
    *applied = *r->cfg;
    config_apply_reload(applied, nc);

    char token[256], err[512];
    if (admin_resolve_token(applied, token, sizeof(token), err, sizeof(err)) != 0) {
        LOG_ERROR("SIGHUP: %s: nothing reloaded", err);
        free(nc);
        free(applied);
        return;
    }
    SSL_CTX *ctx = NULL;
    bool any_tls = false;
    for (size_t i = 0; i < applied->nlisten; i++)
        any_tls |= applied->listen[i].tls;
    if (any_tls) {
        ctx = tls_ctx_create(applied->tls_cert, applied->tls_key, err, sizeof(err));
        if (ctx == NULL) {
            LOG_ERROR("SIGHUP: TLS: %s: nothing reloaded", err);
            free(nc);
            free(applied);
            return;
        }
        r->ctxs = xrealloc(r->ctxs, (r->nctxs + 1) * sizeof(*r->ctxs));
        r->ctxs[r->nctxs++] = ctx;
    }

    char reloaded[1024], restart[512];
    config_diff(r->cfg, nc, reloaded, sizeof(reloaded), restart, sizeof(restart));
    if (strcmp(applied->access_log, r->cfg->access_log) != 0) {
        int rc = log_access_open(applied->access_log);
        if (rc != 0)
            LOG_ERROR("SIGHUP: cannot open access log %s: %s", applied->access_log,
                      uv_strerror(rc));
    }
    for (int i = 0; i < r->nworkers; i++)
        worker_reload(&r->workers[i], applied, ctx);
    *r->cfg = *applied;
    admin_set_token(r->admin, token);
    LOG_INFO("SIGHUP: reloaded %s: changed: %s%s",
             r->cfg->config_file[0] ? r->cfg->config_file : "flags",
             reloaded[0] ? reloaded : "nothing",
             ctx != NULL ? "; TLS certificate and key re-read" : "");
    if (restart[0] != '\0')
        LOG_WARN("SIGHUP: changed but need a restart (not applied): %s", restart);
    /* last, so the summary is logged at the level in force when HUP came */
    log_set_level(r->cfg->log_level);
    free(nc);
    free(applied);
}

static void on_sigusr1(uv_signal_t *s, int signum)
{
    (void)signum;
    reload_t *r = s->data;
    if (r->cfg->access_log[0] == '\0') {
        LOG_INFO("SIGUSR1: no access log to reopen");
        return;
    }
    int rc = log_access_open(r->cfg->access_log);
    if (rc != 0)
        LOG_ERROR("SIGUSR1: cannot reopen access log %s: %s", r->cfg->access_log, uv_strerror(rc));
    else
        LOG_INFO("SIGUSR1: access log %s reopened", r->cfg->access_log);
}

void reload_init(reload_t *r, uv_loop_t *loop, config_t *cfg, int argc, char **argv,
                 worker_t *workers, int nworkers, admin_t *admin)
{
    memset(r, 0, sizeof(*r));
    r->cfg = cfg;
    r->argc = argc;
    r->argv = argv;
    r->workers = workers;
    r->nworkers = nworkers;
    r->admin = admin;
    uv_signal_init(loop, &r->sighup);
    uv_signal_init(loop, &r->sigusr1);
    r->sighup.data = r->sigusr1.data = r;
    uv_signal_start(&r->sighup, on_sighup, SIGHUP);
    uv_signal_start(&r->sigusr1, on_sigusr1, SIGUSR1);
}

void reload_stop(reload_t *r)
{
    if (!uv_is_closing((uv_handle_t *)&r->sighup)) {
        uv_close((uv_handle_t *)&r->sighup, NULL);
        uv_close((uv_handle_t *)&r->sigusr1, NULL);
    }
}

void reload_dispose(reload_t *r)
{
    for (size_t i = 0; i < r->nctxs; i++)
        tls_ctx_free(r->ctxs[i]);
    free(r->ctxs);
    r->ctxs = NULL;
    r->nctxs = 0;
}
