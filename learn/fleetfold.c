/*
 * Folding shared evidence (fleetfold.h): the per-instance sequence record
 * (a sorted array: a fleet has tens of instances, not millions) and the
 * application of a decoded batch through the map's own commit code.
 */
#include "fleetfold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"

typedef struct entry {
    char id[FLEETLOG_MAX_INSTANCE + 1];
    uint64_t seq;
    int64_t seen;
} entry_t;

struct fleetfold {
    char self[FLEETLOG_MAX_INSTANCE + 1];
    size_t max;
    int64_t expire;
    entry_t *v; /* sorted by id */
    size_t n, cap;
};

int fleetfold_create(const char *self, size_t max_instances, int64_t expire_ms, fleetfold_t **out)
{
    if (out == NULL)
        return HERALD_EINVAL;
    *out = NULL;
    if (!fleetlog_instance_valid(self) || max_instances < 1 || expire_ms < 1)
        return HERALD_EINVAL;
    fleetfold_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return HERALD_ENOMEM;
    memcpy(f->self, self, strlen(self) + 1);
    f->max = max_instances;
    f->expire = expire_ms;
    *out = f;
    return 0;
}

void fleetfold_destroy(fleetfold_t *f)
{
    if (f == NULL)
        return;
    free(f->v);
    free(f);
}

/* Index of id, or of where it would go (*found false). */
static size_t locate(const fleetfold_t *f, const char *id, bool *found)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->v[mid].id, id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

uint64_t fleetfold_seq(const fleetfold_t *f, const char *instance)
{
    if (f == NULL || instance == NULL)
        return 0;
    bool found;
    size_t i = locate(f, instance, &found);
    return found ? f->v[i].seq : 0;
}

fleetfold_check_t fleetfold_check(const fleetfold_t *f, const char *instance, uint64_t seq)
{
    if (f != NULL && instance != NULL && strcmp(instance, f->self) == 0)
        return FLEETFOLD_OWN;
    return seq > fleetfold_seq(f, instance) ? FLEETFOLD_NEW : FLEETFOLD_DUPLICATE;
}

static void remove_at(fleetfold_t *f, size_t i)
{
    memmove(&f->v[i], &f->v[i + 1], (f->n - i - 1) * sizeof(*f->v));
    f->n--;
}

int fleetfold_note(fleetfold_t *f, const char *instance, uint64_t seq, int64_t now_ms)
{
    if (f == NULL || !fleetlog_instance_valid(instance) || seq == 0)
        return HERALD_EINVAL;
    if (strcmp(instance, f->self) == 0)
        return 0;
    bool found;
    size_t i = locate(f, instance, &found);
    if (found) {
        if (seq > f->v[i].seq)
            f->v[i].seq = seq;
        if (now_ms > f->v[i].seen)
            f->v[i].seen = now_ms;
        return 0;
    }
    if (f->n == f->cap && f->n < f->max) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        if (cap > f->max)
            cap = f->max;
        entry_t *nv = realloc(f->v, cap * sizeof(*nv));
        if (nv == NULL)
            return HERALD_ENOMEM;
        f->v = nv;
        f->cap = cap;
    }
    if (f->n == f->max) {
        size_t old = 0;
        for (size_t k = 1; k < f->n; k++)
            if (f->v[k].seen < f->v[old].seen)
                old = k;
        remove_at(f, old);
        if (old < i)
            i--;
    }
    memmove(&f->v[i + 1], &f->v[i], (f->n - i) * sizeof(*f->v));
    memset(&f->v[i], 0, sizeof(f->v[i]));
    memcpy(f->v[i].id, instance, strlen(instance) + 1);
    f->v[i].seq = seq;
    f->v[i].seen = now_ms;
    f->n++;
    return 0;
}

bool fleetfold_accept(fleetfold_t *f, const char *instance, uint64_t seq, int64_t now_ms, int *rc)
{
    int r = 0;
    bool ok = false;
    if (f == NULL || !fleetlog_instance_valid(instance) || seq == 0)
        r = HERALD_EINVAL;
    else if (fleetfold_check(f, instance, seq) == FLEETFOLD_NEW)
        ok = (r = fleetfold_note(f, instance, seq, now_ms)) == 0;
    if (rc)
        *rc = r;
    return ok;
}

void fleetfold_expire(fleetfold_t *f, int64_t now_ms)
{
    if (f == NULL)
        return;
    size_t k = 0;
    for (size_t i = 0; i < f->n; i++)
        if (now_ms - f->v[i].seen < f->expire)
            f->v[k++] = f->v[i];
    f->n = k;
}

size_t fleetfold_count(const fleetfold_t *f)
{
    return f ? f->n : 0;
}

int fleetfold_entries(const fleetfold_t *f, fleetfold_entry_t **out, size_t *n)
{
    if (f == NULL || out == NULL || n == NULL)
        return HERALD_EINVAL;
    *out = NULL;
    *n = 0;
    if (f->n == 0)
        return 0;
    fleetfold_entry_t *v = malloc(f->n * sizeof(*v));
    if (v == NULL)
        return HERALD_ENOMEM;
    for (size_t i = 0; i < f->n; i++) {
        memcpy(v[i].instance, f->v[i].id, sizeof(v[i].instance));
        v[i].seq = f->v[i].seq;
    }
    *out = v;
    *n = f->n;
    return 0;
}

static int apply_visit(pagemap_t *pm, fleetmark_t *marks, const fleetlog_rec_t *r, unsigned flags,
                       fleetfold_result_t *res)
{
    pagemap_visit_t v = r->visit;
    if (flags & FLEETFOLD_VETO_PAGE) {
        res->vetoed++;
        return 0;
    }
    if (flags & FLEETFOLD_VETO_TEMPLATE)
        v.template_key = NULL;
    if (!v.supplement && marks != NULL && r->client != 0) {
        bool page, tpl;
        fleetmark_take_visit(marks, r->client, v.page_key, v.template_key, v.now_ms, true, &page,
                             &tpl);
        if (!page) {
            res->vetoed++;
            return 0;
        }
        if (!tpl)
            v.template_key = NULL;
    }
    int rc = pagemap_commit_visit(pm, &v);
    if (rc == 0)
        res->visits++;
    return rc;
}

static int apply_rec(pagemap_t *pm, fleetmark_t *marks, const fleetlog_rec_t *r, unsigned flags,
                     fleetfold_result_t *res)
{
    int rc = 0;
    if (r->type == FLEETLOG_REC_VISIT) {
        rc = apply_visit(pm, marks, r, flags, res);
    } else if (r->type == FLEETLOG_REC_ASSET) {
        rc = pagemap_observe_asset(pm, r->asset_key, &r->meta);
        if (rc == 0)
            res->assets++;
        else if (rc == HERALD_ENOTFOUND)
            res->unknown_assets++;
    } else if (r->type == FLEETLOG_REC_EXPLORE) {
        rc = pagemap_explore_add(pm, &r->explore);
        if (rc == 0)
            res->explores++;
    }
    return rc;
}

int fleetfold_apply_flags(fleetfold_t *f, pagemap_t *pm, fleetmark_t *marks,
                          const fleetlog_batch_t *b, const uint8_t *flags, int64_t now_ms,
                          fleetfold_result_t *res)
{
    fleetfold_result_t local;
    if (res == NULL)
        res = &local;
    memset(res, 0, sizeof(*res));
    if (f == NULL || pm == NULL || b == NULL)
        return HERALD_EINVAL;
    res->check = fleetfold_check(f, b->instance, b->seq);
    if (res->check != FLEETFOLD_NEW)
        return 0;
    int rc = fleetfold_note(f, b->instance, b->seq, now_ms);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < b->n && rc != HERALD_ENOMEM; i++)
        rc = apply_rec(pm, marks, &b->recs[i], flags ? flags[i] : 0, res);
    return rc == HERALD_ENOMEM ? rc : 0;
}

int fleetfold_apply(fleetfold_t *f, pagemap_t *pm, fleetmark_t *marks, const fleetlog_batch_t *b,
                    int64_t now_ms, fleetfold_result_t *res)
{
    return fleetfold_apply_flags(f, pm, marks, b, NULL, now_ms, res);
}

int fleetfold_apply_range(pagemap_t *pm, fleetmark_t *marks, const fleetlog_batch_t *b,
                          uint8_t *flags, size_t from, size_t to, bool pending_only,
                          fleetfold_result_t *res)
{
    fleetfold_result_t local;
    if (res == NULL)
        res = &local;
    if (pm == NULL || b == NULL || (pending_only && flags == NULL && b->n > 0))
        return HERALD_EINVAL;
    if (to > b->n)
        to = b->n;
    for (size_t i = from; i < to; i++) {
        if (pending_only && !(flags[i] & FLEETFOLD_PENDING))
            continue;
        if (apply_rec(pm, marks, &b->recs[i], flags ? flags[i] : 0, res) == HERALD_ENOMEM)
            return HERALD_ENOMEM;
        if (pending_only)
            flags[i] &= (uint8_t)~FLEETFOLD_PENDING;
    }
    return 0;
}

int fleetfold_apply_own(pagemap_t *pm, fleetmark_t *marks, const fleetlog_batch_t *b,
                        uint8_t *flags, fleetfold_result_t *res)
{
    fleetfold_result_t local;
    if (res == NULL)
        res = &local;
    memset(res, 0, sizeof(*res));
    res->check = FLEETFOLD_OWN;
    return fleetfold_apply_range(pm, marks, b, flags, 0, b ? b->n : 0, true, res);
}

static int verdict_fail(char *reason, size_t reasonlen, const char *why, int rc)
{
    if (reason != NULL && reasonlen > 0)
        snprintf(reason, reasonlen, "%s", why);
    return rc;
}

int fleetfold_verdicts_decode(const char *data, size_t len, size_t n, unsigned bit, uint8_t *flags,
                              char *reason, size_t reasonlen)
{
    if (reason != NULL && reasonlen > 0)
        reason[0] = '\0';
    if (flags == NULL && n > 0)
        return HERALD_EINVAL;
    if (len > FLEETFOLD_MAX_VERDICTS_BYTES)
        return verdict_fail(reason, reasonlen, "verdict list too long", HERALD_ETOOBIG);
    if (len == 0)
        return 0;
    if (data == NULL)
        return HERALD_EINVAL;
    /* check everything before changing flags */
    for (int pass = 0; pass < 2; pass++) {
        size_t i = 0, next = 0;
        while (i < len) {
            size_t v = 0, digits = 0;
            for (; i < len && data[i] >= '0' && data[i] <= '9'; i++, digits++) {
                if (digits == 6)
                    return verdict_fail(reason, reasonlen, "record number too long", HERALD_EPARSE);
                v = v * 10 + (size_t)(data[i] - '0');
            }
            if (digits == 0)
                return verdict_fail(reason, reasonlen, "expected a record number", HERALD_EPARSE);
            if (digits > 1 && data[i - digits] == '0')
                return verdict_fail(reason, reasonlen, "leading zero", HERALD_EPARSE);
            if (v >= n)
                return verdict_fail(reason, reasonlen, "record number out of range", HERALD_EPARSE);
            if (v < next)
                return verdict_fail(reason, reasonlen, "record numbers not increasing",
                                    HERALD_EPARSE);
            next = v + 1;
            if (pass == 1)
                flags[v] |= (uint8_t)bit;
            if (i < len) {
                if (data[i] != ',' || i + 1 == len)
                    return verdict_fail(reason, reasonlen, "expected a comma between numbers",
                                        HERALD_EPARSE);
                i++;
            }
        }
    }
    return 0;
}
