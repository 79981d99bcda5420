/* Pending prefetches per client and their outcomes (see prefetch.h). */
#include "prefetch.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "template.h"
#include "herald/error.h"

#define NBUCKETS 256 /* power of two */

/* One pending prefetch; its four strings live in one allocation. */
typedef struct rec {
    char *url;      /* B's normalised URL: what requests name */
    char *next_key; /* B's page key */
    char *from_key; /* A's page key, NULL none */
    char *from_template;
    uint64_t t;
} rec_t;

typedef struct client {
    struct client *next; /* bucket chain */
    uint64_t id;
    uint64_t last; /* last activity */
    rec_t recs[PREFETCH_PER_CLIENT];
    unsigned n;
} client_t;

struct prefetch {
    pagemap_t *pm;
    client_t *b[NBUCKETS];
    size_t nclients, pending;
    uint64_t sent, used, unused, unknown;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

int prefetch_create(pagemap_t *pm, prefetch_t **out)
{
    if (out == NULL)
        return HERALD_EINVAL;
    prefetch_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return HERALD_ENOMEM;
    t->pm = pm;
    *out = t;
    return 0;
}

static void client_free(client_t *c)
{
    for (unsigned i = 0; i < c->n; i++)
        free(c->recs[i].url);
    free(c);
}

void prefetch_destroy(prefetch_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < NBUCKETS; i++) {
        for (client_t *c = t->b[i], *next; c; c = next) {
            next = c->next;
            client_free(c);
        }
    }
    free(t);
}

static client_t *client_find(const prefetch_t *t, uint64_t id)
{
    for (client_t *c = t->b[id & (NBUCKETS - 1)]; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

static void client_unlink(prefetch_t *t, client_t *c)
{
    client_t **pp = &t->b[c->id & (NBUCKETS - 1)];
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    t->nclients--;
}

/* Count outcome ev of rec i of c, report it to the map, and remove the record. */
static void settle(prefetch_t *t, client_t *c, unsigned i, pagemap_prefetch_event_t ev,
                   int64_t wall_ms)
{
    rec_t *r = &c->recs[i];
    if (ev == PAGEMAP_PREFETCH_USED)
        t->used++;
    else if (ev == PAGEMAP_PREFETCH_UNUSED)
        t->unused++;
    else
        t->unknown++;
    if (t->pm != NULL && r->from_key != NULL)
        (void)pagemap_note_prefetch(t->pm, r->from_key, r->from_template, r->next_key, ev,
                                    wall_ms); /* ENOTFOUND: the edge is gone, nothing to count */
    free(r->url);
    c->recs[i] = c->recs[--c->n];
    t->pending--;
}

/* Settle c's prefetches whose lifetime is over; free c (and return true) when none is left. */
static bool client_expire(prefetch_t *t, client_t *c, uint64_t now, int64_t wall_ms)
{
    for (unsigned i = c->n; i-- > 0;)
        if (now >= c->recs[i].t + PREFETCH_LIFETIME_MS)
            settle(t, c, i, PAGEMAP_PREFETCH_UNKNOWN, wall_ms);
    if (c->n > 0)
        return false;
    client_unlink(t, c);
    client_free(c);
    return true;
}

static void client_give_up(prefetch_t *t, client_t *c, int64_t wall_ms)
{
    while (c->n > 0)
        settle(t, c, c->n - 1, PAGEMAP_PREFETCH_UNKNOWN, wall_ms);
    client_unlink(t, c);
    client_free(c);
}

/* The least recently active client (for the cap). */
static client_t *oldest_client(const prefetch_t *t)
{
    client_t *o = NULL;
    for (size_t i = 0; i < NBUCKETS; i++)
        for (client_t *c = t->b[i]; c; c = c->next)
            if (o == NULL || c->last < o->last)
                o = c;
    return o;
}

/* A record's strings in one allocation (ENOMEM: false, r untouched). */
static int rec_make(rec_t *r, const char *url, const char *next_key, const char *from_key,
                    const char *from_template, uint64_t now)
{
    size_t lu = strlen(url) + 1, ln = strlen(next_key) + 1;
    size_t lf = from_key ? strlen(from_key) + 1 : 0;
    size_t lt = from_template ? strlen(from_template) + 1 : 0;
    char *buf = malloc(lu + ln + lf + lt);
    if (buf == NULL)
        return HERALD_ENOMEM;
    r->url = memcpy(buf, url, lu);
    r->next_key = memcpy(buf + lu, next_key, ln);
    r->from_key = from_key ? memcpy(buf + lu + ln, from_key, lf) : NULL;
    r->from_template = from_template ? memcpy(buf + lu + ln + lf, from_template, lt) : NULL;
    r->t = now;
    return 0;
}

int prefetch_sent(prefetch_t *t, const char *client, const char *url_key, const char *referer_key,
                  uint64_t now, int64_t wall_ms)
{
    if (t == NULL || client == NULL || *client == '\0' || url_key == NULL)
        return HERALD_EINVAL;
    char *next_key = NULL, *from = NULL, *ftmpl = NULL;
    int rc = template_url_page_key(url_key, &next_key);
    if (rc == 0 && referer_key != NULL && template_same_origin(referer_key, url_key)) {
        rc = template_url_page_key(referer_key, &from);
        if (rc == 0)
            rc = template_key(from, &ftmpl);
        if (rc == HERALD_EINVAL)
            rc = 0; /* an unusable Referer: counted here only */
        if (ftmpl != NULL && from != NULL && strcmp(ftmpl, from) == 0) {
            free(ftmpl);
            ftmpl = NULL;
        }
    }
    uint64_t id = hash(client);
    client_t *c = rc == 0 ? client_find(t, id) : NULL;
    bool created = false;
    if (rc == 0 && c == NULL) {
        if (t->nclients >= PREFETCH_MAX_CLIENTS)
            client_give_up(t, oldest_client(t), wall_ms);
        if ((c = calloc(1, sizeof(*c))) == NULL) {
            rc = HERALD_ENOMEM;
        } else {
            c->id = id;
            c->next = t->b[id & (NBUCKETS - 1)];
            t->b[id & (NBUCKETS - 1)] = c;
            t->nclients++;
            created = true;
        }
    }
    rec_t r;
    if (rc == 0 && (rc = rec_make(&r, url_key, next_key, from, ftmpl, now)) != 0 && created) {
        client_unlink(t, c);
        client_free(c);
    }
    if (rc == 0) {
        c->last = now;
        unsigned oldest = 0;
        for (unsigned i = c->n; i-- > 0;) {
            if (strcmp(c->recs[i].url, url_key) == 0) /* prefetched again: the old one is moot */
                settle(t, c, i, PAGEMAP_PREFETCH_UNKNOWN, wall_ms);
        }
        if (c->n == PREFETCH_PER_CLIENT) {
            for (unsigned i = 1; i < c->n; i++)
                if (c->recs[i].t < c->recs[oldest].t)
                    oldest = i;
            settle(t, c, oldest, PAGEMAP_PREFETCH_UNKNOWN, wall_ms);
        }
        c->recs[c->n++] = r;
        t->pending++;
        t->sent++;
        if (t->pm != NULL && r.from_key != NULL)
            (void)pagemap_note_prefetch(t->pm, r.from_key, r.from_template, r.next_key,
                                        PAGEMAP_PREFETCH_SENT, wall_ms);
    }
    free(next_key);
    free(from);
    free(ftmpl);
    return rc;
}

void prefetch_request(prefetch_t *t, const char *client, const char *url_key,
                      const char *referer_key, bool navigation, uint64_t now, int64_t wall_ms)
{
    if (t == NULL || client == NULL || t->nclients == 0)
        return;
    client_t *c = client_find(t, hash(client));
    if (c == NULL || client_expire(t, c, now, wall_ms))
        return;
    c->last = now;
    /* a navigation to B first: the browser did not use its prefetch of B */
    for (unsigned i = c->n; navigation && url_key != NULL && i-- > 0;)
        if (strcmp(c->recs[i].url, url_key) == 0)
            settle(t, c, i, PAGEMAP_PREFETCH_UNUSED, wall_ms);
    /* a request made from B: the visitor is on B, which came from the prefetch */
    for (unsigned i = c->n; referer_key != NULL && i-- > 0;)
        if (strcmp(c->recs[i].url, referer_key) == 0)
            settle(t, c, i, PAGEMAP_PREFETCH_USED, wall_ms);
    if (c->n == 0) {
        client_unlink(t, c);
        client_free(c);
    }
}

void prefetch_expire(prefetch_t *t, uint64_t now, int64_t wall_ms)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < NBUCKETS; i++) {
        for (client_t *c = t->b[i], *next; c; c = next) {
            next = c->next;
            client_expire(t, c, now, wall_ms);
        }
    }
}

uint64_t prefetch_next_due(const prefetch_t *t)
{
    uint64_t due = UINT64_MAX;
    for (size_t i = 0; t != NULL && i < NBUCKETS; i++)
        for (const client_t *c = t->b[i]; c; c = c->next)
            for (unsigned k = 0; k < c->n; k++)
                if (c->recs[k].t + PREFETCH_LIFETIME_MS < due)
                    due = c->recs[k].t + PREFETCH_LIFETIME_MS;
    return due;
}

size_t prefetch_pending(const prefetch_t *t, const char *client)
{
    if (t == NULL || client == NULL)
        return 0;
    const client_t *c = client_find(t, hash(client));
    return c ? c->n : 0;
}

void prefetch_stats(const prefetch_t *t, prefetch_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (t == NULL)
        return;
    out->sent = t->sent;
    out->used = t->used;
    out->unused = t->unused;
    out->unknown = t->unknown;
    out->pending = t->pending;
    out->clients = t->nclients;
}
