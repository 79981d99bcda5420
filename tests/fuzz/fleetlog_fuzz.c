/*
 * libFuzzer target for learn/fleetlog's decoder (batches read from Redis,
 * written by any instance or by anyone with access to it): garbage is
 * rejected with a reason and leaves nothing behind; what decodes encodes
 * again to a canonical text that decodes and encodes to the same bytes;
 * and a decoded batch folds into a small map without breaking its caps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleetfold.h"
#include "fleetlog.h"
#include "herald/error.h"

static char *encode_held(const fleetlog_batch_t *b, size_t *len, fleetlog_batch_t *held);

/* Encode a decoded batch again; NULL when a record does not fit a batch
 * alone. The builder's held copy of the records, encoded once more, must
 * give the same bytes: it is what the instance applies in place of
 * decoding its own batch. */
static char *encode(const fleetlog_batch_t *b, size_t *len)
{
    fleetlog_batch_t held;
    char *s = encode_held(b, len, &held);
    if (s == NULL)
        return NULL;
    size_t hlen = 0;
    char *h = encode_held(&held, &hlen, NULL);
    if (h == NULL || hlen != *len || memcmp(h, s, hlen) != 0)
        abort();
    free(h);
    fleetlog_batch_dispose(&held);
    return s;
}

static char *encode_held(const fleetlog_batch_t *b, size_t *len, fleetlog_batch_t *held)
{
    fleetlog_builder_t *w = NULL;
    if (fleetlog_builder_create(b->instance, b->seq, &w) != 0)
        abort();
    for (size_t i = 0; i < b->n; i++) {
        const fleetlog_rec_t *r = &b->recs[i];
        int rc = r->type == FLEETLOG_REC_VISIT ? fleetlog_builder_add_visit(w, &r->visit, r->client)
                 : r->type == FLEETLOG_REC_EXPLORE
                     ? fleetlog_builder_add_explore(w, &r->explore)
                     : fleetlog_builder_add_asset(w, r->asset_key, &r->meta);
        if (rc == HERALD_ETOOBIG) { /* one huge record: the decoder takes it, no writer makes it */
            fleetlog_builder_destroy(w);
            return NULL;
        }
        if (rc != 0)
            abort(); /* everything the decoder accepts, the builder takes */
    }
    char *s = NULL;
    if (fleetlog_builder_finish_held(w, b->t_ms, &s, len, NULL, held) != 0)
        abort();
    fleetlog_builder_destroy(w);
    return s;
}

static size_t not_assets(const fleetlog_batch_t *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->recs[i].type != FLEETLOG_REC_ASSET;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fleetlog_batch_t b;
    char reason[160];
    int rc = fleetlog_decode((const char *)data, size, &b, reason, sizeof(reason));
    if (rc != 0) {
        if (b.recs != NULL || b.n != 0 || b.arena != NULL || reason[0] == '\0')
            abort();
        return 0;
    }
    size_t l1 = 0, l2 = 0;
    char *s1 = encode(&b, &l1);
    if (s1 != NULL) {
        fleetlog_batch_t b2;
        /* an asset record that repeats the batch's last one of that asset
         * is not written again: only asset records may drop out */
        if (fleetlog_decode(s1, l1, &b2, reason, sizeof(reason)) != 0 ||
            not_assets(&b2) != not_assets(&b) || b2.n > b.n || b2.seq != b.seq ||
            strcmp(b2.instance, b.instance) != 0)
            abort();
        char *s2 = encode(&b2, &l2);
        if (s2 == NULL || l1 != l2 || memcmp(s1, s2, l1) != 0)
            abort();
        free(s2);
        fleetlog_batch_dispose(&b2);
        free(s1);
    }
    /* fold it twice into a small map: the second time counts nothing */
    pagemap_config_t cfg;
    pagemap_config_init(&cfg);
    cfg.max_pages = 8;
    cfg.max_assets_per_page = 4;
    pagemap_t *pm = NULL;
    fleetfold_t *f = NULL;
    fleetmark_t *m = NULL;
    if (pagemap_create(&cfg, &pm) != 0 || fleetfold_create("fuzz-self", 4, 1000, &f) != 0 ||
        fleetmark_create(16, 1000, &m) != 0)
        abort();
    fleetfold_result_t r1, r2;
    if (fleetfold_apply(f, pm, m, &b, 0, &r1) != 0 || fleetfold_apply(f, pm, m, &b, 0, &r2) != 0)
        abort();
    if (r2.check != FLEETFOLD_DUPLICATE || r2.visits != 0 || r1.visits + r1.vetoed > b.n)
        abort();
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    if (st.pages > cfg.max_pages)
        abort();
    pagemap_destroy(pm);
    fleetfold_destroy(f);
    fleetmark_destroy(m);
    fleetlog_batch_dispose(&b);
    return 0;
}
