/*
 * Steering messages (fleetsteer.h): a strict JSON codec, their application
 * to the map, and the resync of pins and bans against the fleet's set.
 */
#include "fleetsteer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetjson.h"
#include "herald/error.h"

static const char *const op_names[FLEETSTEER_OP_COUNT_] = {"pin", "ban", "learned", "forget-edge",
                                                           "forget-page"};

const char *fleetsteer_op_name(fleetsteer_op_t op)
{
    return (unsigned)op < FLEETSTEER_OP_COUNT_ ? op_names[op] : "?";
}

int fleetsteer_op_parse(const char *name, fleetsteer_op_t *out)
{
    for (unsigned i = 0; name != NULL && i < FLEETSTEER_OP_COUNT_; i++) {
        if (strcmp(name, op_names[i]) == 0) {
            *out = (fleetsteer_op_t)i;
            return 0;
        }
    }
    return HERALD_EINVAL;
}

bool fleetsteer_op_is_state(fleetsteer_op_t op)
{
    return op == FLEETSTEER_PIN || op == FLEETSTEER_BAN;
}

/* A key a message may carry: non-empty, UTF-8, bounded, no control characters. */
static bool key_ok(const char *s)
{
    if (s == NULL || s[0] == '\0' || !fleetlog_string_valid(s))
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static bool msg_ok(const fleetsteer_msg_t *m)
{
    return m != NULL && (unsigned)m->op < FLEETSTEER_OP_COUNT_ &&
           fleetlog_instance_valid(m->instance) && m->seq >= 1 &&
           m->seq <= (uint64_t)FLEETLOG_MAX_INT && m->t_ms >= 0 && m->t_ms <= FLEETLOG_MAX_INT &&
           key_ok(m->page_key) &&
           (m->op == FLEETSTEER_FORGET_PAGE ? m->asset_key == NULL : key_ok(m->asset_key));
}

int fleetsteer_encode(const fleetsteer_msg_t *m, char **out, size_t *outlen)
{
    if (out == NULL)
        return HERALD_EINVAL;
    *out = NULL;
    if (!msg_ok(m))
        return HERALD_EINVAL;
    json_t *o = json_object();
    bool bad = o == NULL;
    bad = bad || json_object_set_new(o, "v", json_integer(FLEETSTEER_VERSION)) != 0;
    bad = bad || json_object_set_new(o, "op", json_string(op_names[m->op])) != 0;
    bad = bad || json_object_set_new(o, "inst", json_string(m->instance)) != 0;
    bad = bad || json_object_set_new(o, "seq", json_integer((json_int_t)m->seq)) != 0;
    bad = bad || json_object_set_new(o, "t", json_integer(m->t_ms)) != 0;
    bad = bad || json_object_set_new(o, "page", json_string(m->page_key)) != 0;
    if (m->asset_key != NULL)
        bad = bad || json_object_set_new(o, "asset", json_string(m->asset_key)) != 0;
    char *s = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (s == NULL)
        return HERALD_ENOMEM;
    *out = s;
    if (outlen)
        *outlen = strlen(s);
    return 0;
}

/* A copy through malloc (allocation-failure tests reach it). */
static char *dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    return c ? memcpy(c, s, n) : NULL;
}

static const char *const members[] = {"v", "op", "inst", "seq", "t", "page", "asset"};

static int decode(json_t *o, fleetsteer_msg_t *m, char *reason, size_t reasonlen)
{
    json_t *op = json_object_get(o, "op"), *inst = json_object_get(o, "inst");
    json_t *seq = json_object_get(o, "seq"), *t = json_object_get(o, "t");
    json_t *page = json_object_get(o, "page"), *asset = json_object_get(o, "asset");
    if (!json_is_string(op) || fleetsteer_op_parse(json_string_value(op), &m->op) != 0)
        return fleetjson_reason(reason, reasonlen, HERALD_EPARSE, "bad \"op\"");
    if (!json_is_string(inst) || strlen(json_string_value(inst)) != json_string_length(inst) ||
        !fleetlog_instance_valid(json_string_value(inst)))
        return fleetjson_reason(reason, reasonlen, HERALD_EPARSE, "bad \"inst\"");
    if (!json_is_integer(seq) || json_integer_value(seq) < 1 ||
        json_integer_value(seq) > FLEETLOG_MAX_INT || !json_is_integer(t) ||
        json_integer_value(t) < 0 || json_integer_value(t) > FLEETLOG_MAX_INT)
        return fleetjson_reason(reason, reasonlen, HERALD_EPARSE, "bad \"seq\" or \"t\"");
    if (!json_is_string(page) || strlen(json_string_value(page)) != json_string_length(page) ||
        !key_ok(json_string_value(page)))
        return fleetjson_reason(reason, reasonlen, HERALD_EPARSE, "bad \"page\"");
    if (m->op == FLEETSTEER_FORGET_PAGE
            ? asset != NULL
            : (!json_is_string(asset) ||
               strlen(json_string_value(asset)) != json_string_length(asset) ||
               !key_ok(json_string_value(asset))))
        return fleetjson_reason(reason, reasonlen, HERALD_EPARSE, "bad \"asset\" for \"%s\"",
                                op_names[m->op]);
    memcpy(m->instance, json_string_value(inst), json_string_length(inst) + 1);
    m->seq = (uint64_t)json_integer_value(seq);
    m->t_ms = json_integer_value(t);
    m->page_key = dup(json_string_value(page));
    m->asset_key = asset ? dup(json_string_value(asset)) : NULL;
    if (m->page_key == NULL || (asset != NULL && m->asset_key == NULL))
        return fleetjson_reason(reason, reasonlen, HERALD_ENOMEM, "out of memory");
    return 0;
}

int fleetsteer_decode(const char *data, size_t len, fleetsteer_msg_t *out, char *reason,
                      size_t reasonlen)
{
    if (out == NULL)
        return HERALD_EINVAL;
    memset(out, 0, sizeof(*out));
    json_t *o = NULL;
    int rc = fleetjson_open(data, len, FLEETSTEER_MAX_BYTES, FLEETSTEER_VERSION, members,
                            sizeof(members) / sizeof(members[0]), &o, reason, reasonlen);
    if (rc != 0)
        return rc;
    rc = decode(o, out, reason, reasonlen);
    json_decref(o);
    if (rc != 0)
        fleetsteer_msg_dispose(out);
    return rc;
}

void fleetsteer_msg_dispose(fleetsteer_msg_t *m)
{
    if (m == NULL)
        return;
    free(m->page_key);
    free(m->asset_key);
    memset(m, 0, sizeof(*m));
}

void fleetsteer_msgs_free(fleetsteer_msg_t *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        fleetsteer_msg_dispose(&v[i]);
    free(v);
}

int fleetsteer_apply(pagemap_t *pm, const fleetsteer_msg_t *m)
{
    if (pm == NULL || m == NULL || m->page_key == NULL ||
        (m->op != FLEETSTEER_FORGET_PAGE && m->asset_key == NULL))
        return HERALD_EINVAL;
    int rc;
    switch (m->op) {
    case FLEETSTEER_PIN:
        rc = pagemap_edge_set_state(pm, m->page_key, m->asset_key, PAGEMAP_EDGE_PINNED);
        break;
    case FLEETSTEER_BAN:
        rc = pagemap_edge_set_state(pm, m->page_key, m->asset_key, PAGEMAP_EDGE_BANNED);
        break;
    case FLEETSTEER_LEARNED:
        rc = pagemap_edge_set_state(pm, m->page_key, m->asset_key, PAGEMAP_EDGE_LEARNED);
        break;
    case FLEETSTEER_FORGET_EDGE:
        rc = pagemap_forget_edge(pm, m->page_key, m->asset_key);
        break;
    case FLEETSTEER_FORGET_PAGE:
        rc = pagemap_forget_page(pm, m->page_key);
        break;
    default:
        return HERALD_EINVAL;
    }
    return rc == HERALD_ENOTFOUND ? 0 : rc;
}

int fleetsteer_field(const fleetsteer_msg_t *m, char **out, size_t *outlen)
{
    if (out == NULL)
        return HERALD_EINVAL;
    *out = NULL;
    if (m == NULL || m->op == FLEETSTEER_FORGET_PAGE || !key_ok(m->page_key) ||
        !key_ok(m->asset_key))
        return HERALD_EINVAL;
    size_t a = strlen(m->page_key), b = strlen(m->asset_key);
    char *s = malloc(a + b + 2);
    if (s == NULL)
        return HERALD_ENOMEM;
    memcpy(s, m->page_key, a);
    s[a] = '\n';
    memcpy(s + a + 1, m->asset_key, b + 1);
    *out = s;
    if (outlen)
        *outlen = a + b + 1;
    return 0;
}

/* ---- resync ------------------------------------------------------------- */

/* A pinned or banned edge: (page, asset) -> state. */
typedef struct held {
    const char *page, *asset;
    pagemap_edge_state_t state;
    bool in_set;
} held_t;

static int cmp_held(const void *a, const void *b)
{
    const held_t *x = a, *y = b;
    int c = strcmp(x->page, y->page);
    return c ? c : strcmp(x->asset, y->asset);
}

/* The map's pinned and banned edges, sorted; pointers into *d. */
static int held_edges(pagemap_t *pm, pagemap_dump_t *d, held_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int rc = pagemap_dump(pm, d);
    if (rc != 0)
        return rc;
    size_t cnt = 0;
    for (size_t i = 0; i < d->n; i++)
        for (size_t k = 0; k < d->pages[i].nedges; k++)
            cnt += d->pages[i].edges[k].state != PAGEMAP_EDGE_LEARNED;
    held_t *h = malloc((cnt ? cnt : 1) * sizeof(*h));
    if (h == NULL) {
        pagemap_dump_dispose(d);
        return HERALD_ENOMEM;
    }
    size_t j = 0;
    for (size_t i = 0; i < d->n; i++)
        for (size_t k = 0; k < d->pages[i].nedges; k++) {
            const pagemap_edge_info_t *e = &d->pages[i].edges[k];
            if (e->state != PAGEMAP_EDGE_LEARNED)
                h[j++] = (held_t){d->pages[i].info.key, e->key, e->state, false};
        }
    qsort(h, j, sizeof(*h), cmp_held);
    *out = h;
    *n = j;
    return 0;
}

int fleetsteer_sync(pagemap_t *pm, const fleetsteer_msg_t *set, size_t n, size_t *changed)
{
    if (changed)
        *changed = 0;
    if (pm == NULL || (set == NULL && n > 0))
        return HERALD_EINVAL;
    pagemap_dump_t d;
    held_t *h;
    size_t nh, ch = 0;
    int rc = held_edges(pm, &d, &h, &nh);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const fleetsteer_msg_t *m = &set[i];
        if (!fleetsteer_op_is_state(m->op) || m->page_key == NULL || m->asset_key == NULL)
            continue;
        pagemap_edge_state_t want =
            m->op == FLEETSTEER_PIN ? PAGEMAP_EDGE_PINNED : PAGEMAP_EDGE_BANNED;
        held_t key = {m->page_key, m->asset_key, want, false};
        held_t *f = nh ? bsearch(&key, h, nh, sizeof(*h), cmp_held) : NULL;
        if (f != NULL)
            f->in_set = true;
        if (f != NULL && f->state == want)
            continue;
        rc = pagemap_edge_set_state(pm, m->page_key, m->asset_key, want);
        ch += rc == 0;
    }
    for (size_t i = 0; i < nh && rc == 0; i++) {
        if (h[i].in_set)
            continue;
        rc = pagemap_edge_set_state(pm, h[i].page, h[i].asset, PAGEMAP_EDGE_LEARNED);
        if (rc == HERALD_ENOTFOUND)
            rc = 0; /* gone since the dump */
        else
            ch += rc == 0;
    }
    free(h);
    pagemap_dump_dispose(&d);
    if (changed)
        *changed = ch;
    return rc;
}

int fleetsteer_collect(pagemap_t *pm, const char *instance, uint64_t first_seq, int64_t t_ms,
                       fleetsteer_msg_t **out, size_t *n)
{
    if (out == NULL || n == NULL)
        return HERALD_EINVAL;
    *out = NULL;
    *n = 0;
    if (pm == NULL || !fleetlog_instance_valid(instance) || first_seq < 1 || t_ms < 0)
        return HERALD_EINVAL;
    pagemap_dump_t d;
    held_t *h;
    size_t nh;
    int rc = held_edges(pm, &d, &h, &nh);
    if (rc != 0)
        return rc;
    fleetsteer_msg_t *v = calloc(nh ? nh : 1, sizeof(*v));
    size_t k = 0;
    if (v == NULL)
        rc = HERALD_ENOMEM;
    for (size_t i = 0; i < nh && rc == 0; i++) {
        if (!key_ok(h[i].page) || !key_ok(h[i].asset))
            continue;
        fleetsteer_msg_t *m = &v[k];
        m->op = h[i].state == PAGEMAP_EDGE_PINNED ? FLEETSTEER_PIN : FLEETSTEER_BAN;
        memcpy(m->instance, instance, strlen(instance) + 1);
        m->seq = first_seq + k;
        m->t_ms = t_ms;
        m->page_key = dup(h[i].page);
        m->asset_key = dup(h[i].asset);
        k++;
        if (m->page_key == NULL || m->asset_key == NULL)
            rc = HERALD_ENOMEM;
    }
    free(h);
    pagemap_dump_dispose(&d);
    if (rc != 0) {
        fleetsteer_msgs_free(v, k);
        return rc;
    }
    if (k == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = k;
    return 0;
}

int fleetsteer_published_split(const char *data, size_t len, char *id, const char **msg,
                               size_t *msglen, char *reason, size_t reasonlen)
{
    if (reason != NULL && reasonlen > 0)
        reason[0] = '\0';
    const char *sp =
        data != NULL ? memchr(data, ' ', len < FLEETSTEER_MAX_ID + 1 ? len : FLEETSTEER_MAX_ID + 1)
                     : NULL;
    size_t n = sp != NULL ? (size_t)(sp - data) : 0;
    size_t dash = 0, ndash = 0;
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '-') {
            dash = i;
            ndash++;
        } else if (data[i] < '0' || data[i] > '9') {
            ndash = 2;
            break;
        }
    }
    if (sp == NULL || ndash != 1 || dash == 0 || dash + 1 == n) {
        if (reason != NULL && reasonlen > 0)
            snprintf(reason, reasonlen, "not \"<stream id> <message>\"");
        return HERALD_EPARSE;
    }
    memcpy(id, data, n);
    id[n] = '\0';
    *msg = sp + 1;
    *msglen = len - n - 1;
    return 0;
}
