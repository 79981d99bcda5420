/*
 * Per-client-network path estimates: see netmem.h.
 *
 * Networks live in one array allocated at creation: a hash index (chains of
 * array indices) finds them, and a list ordered by last update (newest at
 * the head) gives both the eviction victim and the expiry sweep, since the
 * network updated longest ago is the first to expire.
 */
#include "learn/netmem.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"

enum {
    DEFAULT_MAX_NETWORKS = 4096,
    DEFAULT_PER_NETWORK = 4,
    DEFAULT_POPULATION = 64,
    ADDR_TEXT_MAX = 64, /* longer text is no address */
};
#define DEFAULT_TTL_S 600.0

typedef struct sample {
    double rate, rtt_ms, t;
    uint64_t conn;
} sample_t;

typedef struct net {
    netmem_key_t key;
    sample_t s[NETMEM_MAX_PER_NETWORK];
    unsigned n, next; /* samples held; the ring slot the next new one takes */
    double updated;
    int32_t hnext;       /* hash chain; -1 ends it */
    int32_t prev, next_; /* update order, newest first; -1 ends it */
} net_t;

struct netmem {
    netmem_opts_t o;
    net_t *nets;
    int32_t *buckets;
    size_t nbuckets;           /* a power of two */
    int32_t head, tail, free_; /* free_: chain of unused nets through hnext */
    size_t count;
    sample_t pop[NETMEM_MAX_POPULATION];
    unsigned npop, popnext;
    uint64_t notes, evicted, expired;
};

/* ---- keys ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static void key_from_v4(const uint8_t a[4], netmem_key_t *out)
{
    memset(out, 0, sizeof(*out));
    out->family = 4;
    memcpy(out->addr, a, 3); /* /24 */
}

int netmem_key_parse(const char *s, size_t len, netmem_key_t *out)
{
    while (len > 0 && is_space(s[0]))
        s++, len--;
    while (len > 0 && is_space(s[len - 1]))
        len--;
    char text[ADDR_TEXT_MAX];
    const char *a = s;
    size_t alen = len;
    bool six = false;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return HERALD_EINVAL;
        size_t rest = len - (size_t)(close + 1 - s);
        if (rest > 0 && !(close[1] == ':' && all_digits(close + 2, rest - 1)))
            return HERALD_EINVAL;
        a = s + 1;
        alen = (size_t)(close - a);
        six = true;
    } else {
        const char *colon = memchr(s, ':', len);
        if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)) == NULL) {
            /* one colon: a.b.c.d:port */
            if (!all_digits(colon + 1, len - (size_t)(colon + 1 - s)))
                return HERALD_EINVAL;
            alen = (size_t)(colon - s);
        } else {
            six = colon != NULL;
        }
    }
    if (six) {
        const char *zone = memchr(a, '%', alen); /* fe80::1%eth0 */
        if (zone != NULL)
            alen = (size_t)(zone - a);
    }
    if (alen == 0 || alen >= sizeof(text))
        return HERALD_EINVAL;
    memcpy(text, a, alen);
    text[alen] = '\0';
    uint8_t b[16];
    if (!six) {
        if (inet_pton(AF_INET, text, b) != 1)
            return HERALD_EINVAL;
        key_from_v4(b, out);
        return 0;
    }
    if (inet_pton(AF_INET6, text, b) != 1)
        return HERALD_EINVAL;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(b, mapped, sizeof(mapped)) == 0) {
        key_from_v4(b + 12, out);
        return 0;
    }
    memset(out, 0, sizeof(*out));
    out->family = 6;
    memcpy(out->addr, b, 6); /* /48 */
    return 0;
}

int netmem_key_forwarded(const char *value, size_t len, netmem_key_t *out)
{
    size_t start = len;
    while (start > 0 && value[start - 1] != ',')
        start--;
    return netmem_key_parse(value + start, len - start, out);
}

size_t netmem_key_format(const netmem_key_t *k, char *buf, size_t cap)
{
    char text[INET6_ADDRSTRLEN];
    const char *suffix = "/24";
    if (k->family == 4) {
        inet_ntop(AF_INET, k->addr, text, sizeof(text));
    } else {
        inet_ntop(AF_INET6, k->addr, text, sizeof(text));
        suffix = "/48";
    }
    size_t n = strlen(text) + strlen(suffix);
    if (cap == 0)
        return n;
    size_t tl = strlen(text);
    size_t w = tl < cap - 1 ? tl : cap - 1;
    memcpy(buf, text, w);
    size_t sl = strlen(suffix);
    size_t w2 = sl < cap - 1 - w ? sl : cap - 1 - w;
    memcpy(buf + w, suffix, w2);
    buf[w + w2] = '\0';
    return n;
}

static uint32_t key_hash(const netmem_key_t *k)
{
    uint32_t h = 2166136261u ^ k->family;
    h *= 16777619u;
    for (size_t i = 0; i < sizeof(k->addr); i++) {
        h ^= k->addr[i];
        h *= 16777619u;
    }
    return h;
}

static bool key_eq(const netmem_key_t *a, const netmem_key_t *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* ---- lifecycle ---- */

netmem_t *netmem_create(const netmem_opts_t *opts)
{
    netmem_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    if (opts != NULL)
        m->o = *opts;
    if (m->o.max_networks == 0)
        m->o.max_networks = DEFAULT_MAX_NETWORKS;
    if (m->o.per_network == 0)
        m->o.per_network = DEFAULT_PER_NETWORK;
    if (m->o.per_network > NETMEM_MAX_PER_NETWORK)
        m->o.per_network = NETMEM_MAX_PER_NETWORK;
    if (m->o.population == 0)
        m->o.population = DEFAULT_POPULATION;
    if (m->o.population > NETMEM_MAX_POPULATION)
        m->o.population = NETMEM_MAX_POPULATION;
    if (!(m->o.ttl_s > 0))
        m->o.ttl_s = DEFAULT_TTL_S;
    if (m->o.max_networks > INT32_MAX / 4)
        m->o.max_networks = INT32_MAX / 4;
    m->nbuckets = 16;
    while (m->nbuckets < m->o.max_networks * 2)
        m->nbuckets *= 2;
    m->nets = calloc(m->o.max_networks, sizeof(*m->nets));
    m->buckets = malloc(m->nbuckets * sizeof(*m->buckets));
    if (m->nets == NULL || m->buckets == NULL) {
        netmem_destroy(m);
        return NULL;
    }
    for (size_t i = 0; i < m->nbuckets; i++)
        m->buckets[i] = -1;
    m->head = m->tail = -1;
    m->free_ = -1;
    for (size_t i = m->o.max_networks; i-- > 0;) {
        m->nets[i].hnext = m->free_;
        m->free_ = (int32_t)i;
    }
    return m;
}

void netmem_destroy(netmem_t *m)
{
    if (m == NULL)
        return;
    free(m->nets);
    free(m->buckets);
    free(m);
}

/* ---- the index and the update order ---- */

static int32_t find(const netmem_t *m, const netmem_key_t *k)
{
    for (int32_t i = m->buckets[key_hash(k) & (m->nbuckets - 1)]; i >= 0; i = m->nets[i].hnext)
        if (key_eq(&m->nets[i].key, k))
            return i;
    return -1;
}

static void order_unlink(netmem_t *m, int32_t i)
{
    net_t *e = &m->nets[i];
    if (e->prev >= 0)
        m->nets[e->prev].next_ = e->next_;
    else
        m->head = e->next_;
    if (e->next_ >= 0)
        m->nets[e->next_].prev = e->prev;
    else
        m->tail = e->prev;
    e->prev = e->next_ = -1;
}

static void order_push_head(netmem_t *m, int32_t i)
{
    net_t *e = &m->nets[i];
    e->prev = -1;
    e->next_ = m->head;
    if (m->head >= 0)
        m->nets[m->head].prev = i;
    m->head = i;
    if (m->tail < 0)
        m->tail = i;
}

static void drop(netmem_t *m, int32_t i)
{
    int32_t *pp = &m->buckets[key_hash(&m->nets[i].key) & (m->nbuckets - 1)];
    while (*pp != i)
        pp = &m->nets[*pp].hnext;
    *pp = m->nets[i].hnext;
    order_unlink(m, i);
    m->nets[i].hnext = m->free_;
    m->free_ = i;
    m->count--;
}

static bool fresh(const netmem_t *m, double t, double now)
{
    return t + m->o.ttl_s >= now;
}

/* Forget networks whose newest sample has expired: they sit at the tail. */
static void sweep(netmem_t *m, double now)
{
    while (m->tail >= 0 && !fresh(m, m->nets[m->tail].updated, now)) {
        drop(m, m->tail);
        m->expired++;
    }
}

/* ---- estimates ---- */

static void sort(double *v, unsigned n)
{
    for (unsigned i = 1; i < n; i++) {
        double x = v[i];
        unsigned j = i;
        for (; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

static double median(double *v, unsigned n)
{
    sort(v, n);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The median of the fresh samples among s[0..n). */
static bool estimate(const netmem_t *m, const sample_t *s, unsigned n, double now,
                     netmem_est_t *out)
{
    double rates[NETMEM_MAX_POPULATION], rtts[NETMEM_MAX_POPULATION];
    unsigned nr = 0, nt = 0;
    double newest = -INFINITY;
    for (unsigned i = 0; i < n; i++) {
        if (!fresh(m, s[i].t, now))
            continue;
        rates[nr++] = s[i].rate;
        if (s[i].rtt_ms >= 0)
            rtts[nt++] = s[i].rtt_ms;
        if (s[i].t > newest)
            newest = s[i].t;
    }
    if (nr == 0)
        return false;
    out->rate = median(rates, nr);
    out->rtt_ms = nt > 0 ? median(rtts, nt) : -1;
    out->n = nr;
    out->age_s = now - newest;
    return true;
}

/* Put a sample into a ring of `cap`: over the same connection's, else the oldest slot. */
static void ring_put(sample_t *ring, unsigned *n, unsigned *next, unsigned cap, const sample_t *s)
{
    for (unsigned i = 0; i < *n; i++) {
        if (ring[i].conn == s->conn) {
            ring[i] = *s;
            return;
        }
    }
    ring[*next] = *s;
    *next = (*next + 1) % cap;
    if (*n < cap)
        (*n)++;
}

int netmem_note(netmem_t *m, const netmem_key_t *k, uint64_t conn_id, double rate, double rtt_ms,
                double now)
{
    if (!(rate > 0) || !isfinite(rate) || (k->family != 4 && k->family != 6))
        return HERALD_EINVAL;
    sweep(m, now);
    int32_t i = find(m, k);
    if (i < 0) {
        if (m->free_ < 0) {
            drop(m, m->tail); /* full: the network updated longest ago goes */
            m->evicted++;
        }
        i = m->free_;
        m->free_ = m->nets[i].hnext;
        net_t *e = &m->nets[i];
        memset(e, 0, sizeof(*e));
        e->key = *k;
        uint32_t b = key_hash(k) & (m->nbuckets - 1);
        e->hnext = m->buckets[b];
        m->buckets[b] = i;
        e->prev = e->next_ = -1;
        m->count++;
    } else {
        order_unlink(m, i);
    }
    net_t *e = &m->nets[i];
    sample_t s = {
        .rate = rate, .rtt_ms = isfinite(rtt_ms) ? rtt_ms : -1, .t = now, .conn = conn_id};
    ring_put(e->s, &e->n, &e->next, (unsigned)m->o.per_network, &s);
    e->updated = now;
    order_push_head(m, i);
    ring_put(m->pop, &m->npop, &m->popnext, (unsigned)m->o.population, &s);
    m->notes++;
    return 0;
}

bool netmem_get(netmem_t *m, const netmem_key_t *k, double now, netmem_est_t *out)
{
    int32_t i = find(m, k);
    if (i < 0)
        return false;
    if (!fresh(m, m->nets[i].updated, now)) {
        drop(m, i);
        m->expired++;
        return false;
    }
    return estimate(m, m->nets[i].s, m->nets[i].n, now, out);
}

bool netmem_population(const netmem_t *m, double now, netmem_est_t *out)
{
    return estimate(m, m->pop, m->npop, now, out);
}

static double quantile(const double *sorted, size_t n, double q)
{
    return sorted[(size_t)(q * (double)(n - 1) + 0.5)];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void netmem_stats(netmem_t *m, double now, netmem_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    sweep(m, now);
    out->notes = m->notes;
    out->evicted = m->evicted;
    out->expired = m->expired;
    if (!netmem_population(m, now, &out->population))
        memset(&out->population, 0, sizeof(out->population));
    double *v = m->count > 0 ? malloc(m->count * sizeof(*v)) : NULL;
    size_t n = 0;
    for (int32_t i = m->head; i >= 0; i = m->nets[i].next_) {
        netmem_est_t e;
        if (!estimate(m, m->nets[i].s, m->nets[i].n, now, &e))
            continue;
        out->networks++;
        if (v != NULL)
            v[n++] = e.rate;
    }
    if (n > 0) {
        qsort(v, n, sizeof(*v), cmp_double);
        out->p10 = quantile(v, n, 0.1);
        out->p50 = quantile(v, n, 0.5);
        out->p90 = quantile(v, n, 0.9);
    }
    free(v);
}

size_t netmem_list(netmem_t *m, double now, netmem_entry_t *out, size_t cap)
{
    sweep(m, now);
    size_t n = 0;
    for (int32_t i = m->head; i >= 0 && n < cap; i = m->nets[i].next_) {
        if (!estimate(m, m->nets[i].s, m->nets[i].n, now, &out[n].est))
            continue;
        out[n].key = m->nets[i].key;
        n++;
    }
    return n;
}
