/*
 * libFuzzer target for the other fleet messages read from Redis: the first
 * byte picks the decoder, the rest is its input.
 *  0: a steering message (learn/fleetsteer): rejected with a reason, or
 *     encoded again to a text that decodes to the same message, applied
 *     to a small map and resynced from.
 *  1: a base header (learn/fleetbase): rejected with a reason, or its
 *     fields within their caps and seeding a fold record.
 *  'P' (before the above): a message published on the steer channel: split
 *     into its stream id (checked) and the message, which goes to 0.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleetbase.h"
#include "fleetsteer.h"
#include "herald/error.h"

static void steer(const char *data, size_t size)
{
    fleetsteer_msg_t m;
    char reason[128];
    int rc = fleetsteer_decode(data, size, &m, reason, sizeof(reason));
    if (rc != 0) {
        if (m.page_key != NULL || reason[0] == '\0')
            abort();
        return;
    }
    char *s = NULL;
    size_t len = 0;
    if (fleetsteer_encode(&m, &s, &len) != 0)
        abort();
    fleetsteer_msg_t m2;
    if (fleetsteer_decode(s, len, &m2, reason, sizeof(reason)) != 0 || m2.op != m.op ||
        m2.seq != m.seq || m2.t_ms != m.t_ms || strcmp(m2.instance, m.instance) != 0 ||
        strcmp(m2.page_key, m.page_key) != 0 ||
        (m.asset_key ? m2.asset_key == NULL || strcmp(m.asset_key, m2.asset_key) != 0
                     : m2.asset_key != NULL))
        abort();
    pagemap_t *pm = NULL;
    if (pagemap_create(NULL, &pm) != 0 || fleetsteer_apply(pm, &m) != 0 ||
        fleetsteer_sync(pm, &m, 1, NULL) != 0)
        abort();
    pagemap_stats_t st;
    pagemap_stats(pm, &st);
    if (st.pinned + st.banned != (fleetsteer_op_is_state(m.op) ? 1u : 0u))
        abort();
    pagemap_destroy(pm);
    fleetsteer_msg_dispose(&m2);
    fleetsteer_msg_dispose(&m);
    free(s);
}

static void header(const char *data, size_t size)
{
    fleetbase_header_t h;
    char reason[128];
    int rc = fleetbase_header_decode(data, size, &h, reason, sizeof(reason));
    if (rc != 0) {
        if (h.seqs != NULL || reason[0] == '\0')
            abort();
        return;
    }
    if (h.chunks > FLEETBASE_MAX_CHUNKS || h.nseqs > FLEETBASE_MAX_SEQS ||
        !fleetlog_instance_valid(h.instance) || !fleetlog_instance_valid(h.gen))
        abort();
    fleetfold_t *f = NULL;
    if (fleetfold_create("fuzz-self", 8, 1000, &f) != 0 || fleetbase_header_seed(&h, f, 0) != 0)
        abort();
    for (size_t i = 0; i < h.nseqs; i++)
        if (strcmp(h.seqs[i].instance, "fuzz-self") != 0 &&
            fleetfold_check(f, h.seqs[i].instance, h.seqs[i].seq) == FLEETFOLD_NEW &&
            fleetfold_count(f) < 8)
            abort(); /* what the header names is not folded again */
    fleetfold_destroy(f);
    fleetbase_header_dispose(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] == 'P') {
        char id[FLEETSTEER_MAX_ID + 1], reason[128];
        const char *msg = NULL;
        size_t mlen = 0;
        if (fleetsteer_published_split((const char *)data + 1, size - 1, id, &msg, &mlen, reason,
                                       sizeof(reason)) != 0) {
            if (reason[0] == '\0')
                abort();
            return 0;
        }
        size_t idlen = strlen(id);
        if (idlen == 0 || idlen > FLEETSTEER_MAX_ID || memcmp(id, data + 1, idlen) != 0 ||
            msg != (const char *)data + 2 + idlen || mlen != size - 2 - idlen)
            abort();
        steer(msg, mlen);
        return 0;
    }
    if (data[0] % 2 == 0)
        steer((const char *)data + 1, size - 1);
    else
        header((const char *)data + 1, size - 1);
    return 0;
}
