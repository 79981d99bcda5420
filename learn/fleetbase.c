/*
 * The base map (fleetbase.h): a dump cut into snapshot documents, and the
 * header that says which evidence they hold.
 */
#include "fleetbase.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetjson.h"
#include "snapshot.h"
#include "herald/error.h"

void fleetbase_chunks_dispose(fleetbase_chunks_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i]);
    free(c->v);
    free(c->len);
    memset(c, 0, sizeof(*c));
}

static int push_chunk(fleetbase_chunks_t *c, size_t *cap, char *s, size_t len)
{
    if (c->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        char **v = realloc(c->v, ncap * sizeof(*v));
        if (v == NULL)
            return HERALD_ENOMEM;
        c->v = v;
        size_t *l = realloc(c->len, ncap * sizeof(*l));
        if (l == NULL)
            return HERALD_ENOMEM;
        c->len = l;
        *cap = ncap;
    }
    c->v[c->n] = s;
    c->len[c->n++] = len;
    return 0;
}

int fleetbase_encode(const pagemap_dump_t *d, size_t target, fleetbase_chunks_t *out)
{
    if (out == NULL)
        return HERALD_EINVAL;
    memset(out, 0, sizeof(*out));
    if (d == NULL || (d->n > 0 && d->pages == NULL))
        return HERALD_EINVAL;
    if (target == 0)
        target = FLEETBASE_CHUNK_BYTES;
    if (target > FLEETBASE_MAX_CHUNK_BYTES)
        target = FLEETBASE_MAX_CHUNK_BYTES;
    /* From the least recently used end: loading the chunks in order leaves the
     * map in the writer's LRU order (and a smaller map evicts the oldest). */
    size_t cap = 0, left = d->n,
           k = 16; /* pages per try: halved when too big, doubled when small */
    int rc = 0;
    while (left > 0 && rc == 0) {
        size_t kk = left < k ? left : k;
        pagemap_dump_t sub = {.pages = d->pages + (left - kk), .n = kk}; /* a view, borrowed */
        char *s = NULL;
        size_t len = 0;
        if ((rc = snapshot_export_dump(&sub, &s, &len)) != 0)
            break;
        if (len > target && kk > 1) {
            free(s);
            k = kk / 2;
            continue;
        }
        if (len > FLEETBASE_MAX_CHUNK_BYTES) { /* one page alone */
            free(s);
            out->skipped++;
            left--;
            continue;
        }
        if (out->n == FLEETBASE_MAX_CHUNKS) {
            free(s);
            rc = HERALD_ETOOBIG;
            break;
        }
        if ((rc = push_chunk(out, &cap, s, len)) != 0) {
            free(s);
            break;
        }
        left -= kk;
        if (len < target / 2 && k < 4096)
            k *= 2;
    }
    if (rc != 0)
        fleetbase_chunks_dispose(out);
    return rc;
}

int fleetbase_load_chunk(pagemap_t *pm, const char *data, size_t len, char *reason,
                         size_t reasonlen)
{
    if (len > FLEETBASE_MAX_CHUNK_BYTES) {
        if (reason && reasonlen)
            snprintf(reason, reasonlen, "chunk of %zu bytes (at most %u)", len,
                     FLEETBASE_MAX_CHUNK_BYTES);
        return HERALD_ETOOBIG;
    }
    return snapshot_import(pm, data, len, SNAPSHOT_MERGE, reason, reasonlen);
}

/* ---- header ------------------------------------------------------------- */

static bool log_id_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= FLEETBASE_MAX_LOG_ID || !((s[n] >= '0' && s[n] <= '9') || s[n] == '-'))
            return false;
    return true;
}

int fleetbase_header_encode(const fleetfold_t *f, const char *self, uint64_t own_seq,
                            const char *gen, int64_t t_ms, size_t chunks, const char *log_id,
                            char **out, size_t *outlen)
{
    if (out == NULL)
        return HERALD_EINVAL;
    *out = NULL;
    if (log_id == NULL)
        log_id = "";
    if (f == NULL || !fleetlog_instance_valid(self) || !fleetlog_instance_valid(gen) || t_ms < 0 ||
        t_ms > FLEETLOG_MAX_INT || chunks > FLEETBASE_MAX_CHUNKS ||
        own_seq > (uint64_t)FLEETLOG_MAX_INT || !log_id_ok(log_id))
        return HERALD_EINVAL;
    fleetfold_entry_t *e = NULL;
    size_t n = 0;
    int rc = fleetfold_entries(f, &e, &n);
    if (rc != 0)
        return rc;
    if (n + 1 > FLEETBASE_MAX_SEQS) {
        free(e);
        return HERALD_EINVAL;
    }
    json_t *o = json_object(), *seqs = json_array();
    bool bad = o == NULL || seqs == NULL;
    for (size_t i = 0; !bad && i <= n; i++) {
        const char *id = i < n ? e[i].instance : self;
        uint64_t seq = i < n ? e[i].seq : own_seq;
        if (i == n && seq == 0)
            break;
        bad = json_array_append_new(seqs, json_pack("[sI]", id, (json_int_t)seq)) != 0;
    }
    free(e);
    bad = bad || json_object_set_new(o, "v", json_integer(FLEETBASE_VERSION)) != 0;
    bad = bad || json_object_set_new(o, "inst", json_string(self)) != 0;
    bad = bad || json_object_set_new(o, "gen", json_string(gen)) != 0;
    bad = bad || json_object_set_new(o, "t", json_integer(t_ms)) != 0;
    bad = bad || json_object_set_new(o, "chunks", json_integer((json_int_t)chunks)) != 0;
    bad = bad || json_object_set_new(o, "log", json_string(log_id)) != 0;
    if (!bad) {
        bad = json_object_set_new(o, "seqs", seqs) != 0;
        seqs = NULL;
    }
    json_decref(seqs);
    char *s = bad ? NULL : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        return HERALD_ENOMEM;
    *out = s;
    if (outlen)
        *outlen = strlen(s);
    return 0;
}

/* A string member that passes ok() and fits cap bytes (NUL included), copied into buf. */
static bool get_id(json_t *o, const char *k, bool (*ok)(const char *), char *buf, size_t cap)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v) || json_string_length(v) >= cap ||
        strlen(json_string_value(v)) != json_string_length(v) || !ok(json_string_value(v)))
        return false;
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return true;
}

static bool int_in(json_t *v, json_int_t lo, json_int_t hi)
{
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

static const char *const header_members[] = {"v", "inst", "gen", "t", "chunks", "log", "seqs"};

static int header(json_t *o, fleetbase_header_t *h, char *reason, size_t reasonlen)
{
    if (!get_id(o, "inst", fleetlog_instance_valid, h->instance, sizeof(h->instance)) ||
        !get_id(o, "gen", fleetlog_instance_valid, h->gen, sizeof(h->gen)) ||
        !get_id(o, "log", log_id_ok, h->log_id, sizeof(h->log_id)))
        return fleetjson_reason(reason, reasonlen, HERALD_EPARSE,
                                "bad \"inst\", \"gen\" or \"log\"");
    json_t *t = json_object_get(o, "t"), *chunks = json_object_get(o, "chunks");
    if (!int_in(t, 0, FLEETLOG_MAX_INT) || !int_in(chunks, 0, FLEETBASE_MAX_CHUNKS))
        return fleetjson_reason(reason, reasonlen, HERALD_EPARSE, "bad \"t\" or \"chunks\"");
    h->t_ms = json_integer_value(t);
    h->chunks = (size_t)json_integer_value(chunks);
    json_t *seqs = json_object_get(o, "seqs");
    if (!json_is_array(seqs))
        return fleetjson_reason(reason, reasonlen, HERALD_EPARSE, "\"seqs\" is not an array");
    size_t n = json_array_size(seqs);
    if (n > FLEETBASE_MAX_SEQS)
        return fleetjson_reason(reason, reasonlen, HERALD_ETOOBIG, "%zu instances (at most %d)", n,
                                FLEETBASE_MAX_SEQS);
    h->seqs = malloc((n ? n : 1) * sizeof(*h->seqs));
    if (h->seqs == NULL)
        return fleetjson_reason(reason, reasonlen, HERALD_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(seqs, i);
        json_t *id = json_array_get(p, 0), *seq = json_array_get(p, 1);
        if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_string(id) ||
            json_string_length(id) > FLEETLOG_MAX_INSTANCE ||
            strlen(json_string_value(id)) != json_string_length(id) ||
            !fleetlog_instance_valid(json_string_value(id)) || !int_in(seq, 1, FLEETLOG_MAX_INT))
            return fleetjson_reason(reason, reasonlen, HERALD_EPARSE,
                                    "seqs %zu: not [instance, seq]", i);
        memcpy(h->seqs[i].instance, json_string_value(id), json_string_length(id) + 1);
        h->seqs[i].seq = (uint64_t)json_integer_value(seq);
        h->nseqs = i + 1;
    }
    return 0;
}

int fleetbase_header_decode(const char *data, size_t len, fleetbase_header_t *out, char *reason,
                            size_t reasonlen)
{
    if (out == NULL)
        return HERALD_EINVAL;
    memset(out, 0, sizeof(*out));
    json_t *o = NULL;
    int rc =
        fleetjson_open(data, len, FLEETBASE_MAX_HEADER_BYTES, FLEETBASE_VERSION, header_members,
                       sizeof(header_members) / sizeof(header_members[0]), &o, reason, reasonlen);
    if (rc != 0)
        return rc;
    rc = header(o, out, reason, reasonlen);
    json_decref(o);
    if (rc != 0)
        fleetbase_header_dispose(out);
    return rc;
}

void fleetbase_header_dispose(fleetbase_header_t *h)
{
    if (h == NULL)
        return;
    free(h->seqs);
    memset(h, 0, sizeof(*h));
}

int fleetbase_header_seed(const fleetbase_header_t *h, fleetfold_t *f, int64_t now_ms)
{
    if (h == NULL || f == NULL)
        return HERALD_EINVAL;
    for (size_t i = 0; i < h->nseqs; i++) {
        int rc = fleetfold_note(f, h->seqs[i].instance, h->seqs[i].seq, now_ms);
        if (rc != 0)
            return rc;
    }
    return 0;
}
