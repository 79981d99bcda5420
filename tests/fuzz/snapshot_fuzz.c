/*
 * libFuzzer target for learn/snapshot.c: import a document into a small map;
 * a failed import leaves the map empty; what imports exports, and the export
 * imports back to the same document.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"
#include "herald/error.h"

static pagemap_t *small_map(void)
{
    pagemap_config_t cfg;
    pagemap_config_init(&cfg);
    cfg.max_pages = 16;
    cfg.max_assets_per_page = 8;
    pagemap_t *pm = NULL;
    if (pagemap_create(&cfg, &pm) != 0)
        abort();
    return pm;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pagemap_t *pm = small_map();
    char reason[128];
    int rc = snapshot_import(pm, (const char *)data, size, SNAPSHOT_MERGE, reason, sizeof(reason));
    if (rc != 0) {
        pagemap_stats_t st;
        pagemap_stats(pm, &st);
        if (st.pages != 0 || (rc != HERALD_ENOMEM && reason[0] == '\0'))
            abort();
        pagemap_destroy(pm);
        return 0;
    }
    char *a = NULL, *b = NULL;
    if (snapshot_export(pm, &a, NULL) != 0)
        abort();
    pagemap_t *pm2 = small_map();
    if (snapshot_import(pm2, a, strlen(a), SNAPSHOT_REPLACE, reason, sizeof(reason)) != 0)
        abort();
    if (snapshot_export(pm2, &b, NULL) != 0 || strcmp(a, b) != 0)
        abort();
    pagemap_plan_t p;
    pagemap_plan_opts_t o = {.min_confidence = 0.5};
    if (pagemap_plan(pm2, "e.com/", "e.com/*", "e.com", 0, &o, &p) != 0)
        abort();
    pagemap_plan_dispose(&p);
    free(a);
    free(b);
    pagemap_destroy(pm);
    pagemap_destroy(pm2);
    return 0;
}
