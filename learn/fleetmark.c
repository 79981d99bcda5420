/*
 * Client marks (fleetmark.h): the hashes, and a fixed-size cache that is a
 * ring in insertion order (the oldest goes first when full) indexed by an
 * open-addressing table with backward-shift deletion.
 */
#include "fleetmark.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"

/* SHA-256 through one digest object fetched once: OpenSSL 3's SHA256()
 * looks the algorithm up again on every call. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void sha256(const void *data, size_t len, unsigned char *md)
{
    pthread_once(&sha256_once, sha256_fetch);
    if (sha256_md == NULL || EVP_Digest(data, len, md, NULL, sha256_md, NULL) != 1)
        SHA256(data, len, md); /* no provider object: the one-shot call */
}

typedef struct mark {
    uint64_t client, key;
    int64_t until;   /* any mark: counted or seen */
    int64_t counted; /* a counted mark, INT64_MIN none */
} mark_t;

struct fleetmark {
    int64_t window;
    mark_t *ring;
    size_t cap, head, n;
    uint32_t *slots; /* ring index + 1; 0 = empty */
    size_t mask;     /* slots - 1 */
};

static uint64_t first64(const unsigned char *md)
{
    uint64_t h = 0;
    for (int i = 0; i < 8; i++)
        h = h << 8 | md[i];
    return h ? h : 1;
}

static uint64_t client_hash(const char *addr, const void *salt, size_t saltlen);

/* A visit's client is hashed more than once (its commit and its
 * supplement, with other visits' commits in between): each thread
 * remembers the addresses it hashed last (direct-mapped). */
#define CLIENTMEMO_SLOTS 16
#define CLIENTMEMO_LEN 64
typedef struct clientmemo {
    uint64_t hash;
    size_t saltlen;
    char addr[CLIENTMEMO_LEN]; /* "" = empty */
    unsigned char salt[CLIENTMEMO_LEN];
} clientmemo_t;
static _Thread_local clientmemo_t clientmemo[CLIENTMEMO_SLOTS];

uint64_t fleetmark_client_hash(const char *addr, const void *salt, size_t saltlen)
{
    if (addr == NULL || addr[0] == '\0')
        return 0;
    size_t len = strlen(addr);
    unsigned slot = 0;
    for (size_t i = 0; i < len; i++)
        slot = slot * 31 + (unsigned char)addr[i];
    clientmemo_t *m = &clientmemo[slot % CLIENTMEMO_SLOTS];
    bool fits = len < CLIENTMEMO_LEN && saltlen <= CLIENTMEMO_LEN && (salt != NULL || saltlen == 0);
    if (fits && m->addr[0] != '\0' && m->saltlen == saltlen && strcmp(m->addr, addr) == 0 &&
        (saltlen == 0 || memcmp(m->salt, salt, saltlen) == 0))
        return m->hash;
    uint64_t h = client_hash(addr, salt, saltlen);
    if (fits) {
        memcpy(m->addr, addr, len + 1);
        if (saltlen > 0)
            memcpy(m->salt, salt, saltlen);
        m->saltlen = saltlen;
        m->hash = h;
    }
    return h;
}

static uint64_t client_hash(const char *addr, const void *salt, size_t saltlen)
{
    char tmp[64];
    const char *a = addr;
    size_t len = strlen(addr);
    if (addr[0] == '[' && len >= 2 && addr[len - 1] == ']' && len - 2 < sizeof(tmp)) {
        memcpy(tmp, addr + 1, len - 2);
        tmp[len - 2] = '\0';
        a = tmp;
    }
    /* What identifies the client: a tag byte, then the network's bytes. */
    unsigned char net[17];
    const unsigned char *id = net;
    size_t idlen;
    unsigned char v6[16];
    if (inet_pton(AF_INET, a, net + 1) == 1) {
        net[0] = 4;
        idlen = 5;
    } else if (inet_pton(AF_INET6, a, v6) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(v6, mapped, 12) == 0) {
            net[0] = 4;
            memcpy(net + 1, v6 + 12, 4);
            idlen = 5;
        } else {
            net[0] = 6;
            memcpy(net + 1, v6, 8); /* the /64 */
            idlen = 9;
        }
    } else {
        id = (const unsigned char *)addr;
        idlen = len;
    }
    /* SHA-256(salt, tag, id); a salt or id too long for the buffer is hashed first. */
    unsigned char buf[SHA256_DIGEST_LENGTH + 1 + 256], md[SHA256_DIGEST_LENGTH];
    size_t n = 0;
    if (salt != NULL && saltlen > SHA256_DIGEST_LENGTH) {
        sha256(salt, saltlen, buf);
        n = SHA256_DIGEST_LENGTH;
    } else if (salt != NULL && saltlen > 0) {
        memcpy(buf, salt, saltlen);
        n = saltlen;
    }
    buf[n++] = id == net ? 'n' : 's'; /* a string never hashes like a network */
    if (idlen > 256) {
        sha256(id, idlen, buf + n);
        n += SHA256_DIGEST_LENGTH;
    } else {
        memcpy(buf + n, id, idlen);
        n += idlen;
    }
    sha256(buf, n, md);
    return first64(md);
}

/* A visit's page and template keys are hashed when it is held, for its
 * mark keys and when its batch is applied: each thread remembers the
 * hashes of the keys it hashed last (direct-mapped, short keys only). */
#define KEYMEMO_SLOTS 64
#define KEYMEMO_LEN 120
typedef struct keymemo {
    uint64_t hash;
    size_t len; /* 0: empty */
    char key[KEYMEMO_LEN];
} keymemo_t;
static _Thread_local keymemo_t keymemo[KEYMEMO_SLOTS];

uint64_t fleetmark_key_hash(const char *key)
{
    if (key == NULL)
        key = "";
    size_t len = strlen(key);
    keymemo_t *e = NULL;
    if (len > 0 && len <= KEYMEMO_LEN) {
        uint32_t h = 2166136261u; /* FNV-1a picks the slot */
        for (size_t i = 0; i < len; i++)
            h = (h ^ (unsigned char)key[i]) * 16777619u;
        e = &keymemo[h % KEYMEMO_SLOTS];
        if (e->len == len && memcmp(e->key, key, len) == 0)
            return e->hash;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    sha256(key, len, md);
    uint64_t v = first64(md);
    if (e != NULL) {
        memcpy(e->key, key, len);
        e->len = len;
        e->hash = v;
    }
    return v;
}

int fleetmark_create(size_t cap, int64_t window_ms, fleetmark_t **out)
{
    if (out == NULL)
        return HERALD_EINVAL;
    *out = NULL;
    if (cap < 1 || cap > (1u << 30) || window_ms < 1)
        return HERALD_EINVAL;
    size_t nslots = 2;
    while (nslots < cap * 2)
        nslots *= 2;
    fleetmark_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return HERALD_ENOMEM;
    m->ring = malloc(cap * sizeof(*m->ring));
    m->slots = calloc(nslots, sizeof(*m->slots));
    if (m->ring == NULL || m->slots == NULL) {
        fleetmark_destroy(m);
        return HERALD_ENOMEM;
    }
    m->window = window_ms;
    m->cap = cap;
    m->mask = nslots - 1;
    *out = m;
    return 0;
}

void fleetmark_destroy(fleetmark_t *m)
{
    if (m == NULL)
        return;
    free(m->ring);
    free(m->slots);
    free(m);
}

int64_t fleetmark_window(const fleetmark_t *m)
{
    return m ? m->window : 0;
}

size_t fleetmark_count(const fleetmark_t *m)
{
    return m ? m->n : 0;
}

static size_t home(const fleetmark_t *m, uint64_t client, uint64_t key)
{
    uint64_t h = client ^ (key * 0x9e3779b97f4a7c15ull);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (size_t)h & m->mask;
}

/* The slot holding (client, key), or SIZE_MAX. */
static size_t find(const fleetmark_t *m, uint64_t client, uint64_t key)
{
    for (size_t i = home(m, client, key); m->slots[i] != 0; i = (i + 1) & m->mask) {
        const mark_t *e = &m->ring[m->slots[i] - 1];
        if (e->client == client && e->key == key)
            return i;
    }
    return SIZE_MAX;
}

static void slot_delete(fleetmark_t *m, size_t i)
{
    m->slots[i] = 0;
    for (size_t j = (i + 1) & m->mask; m->slots[j] != 0; j = (j + 1) & m->mask) {
        const mark_t *e = &m->ring[m->slots[j] - 1];
        size_t h = home(m, e->client, e->key);
        if (((j - h) & m->mask) >= ((j - i) & m->mask)) {
            m->slots[i] = m->slots[j];
            m->slots[j] = 0;
            i = j;
        }
    }
}

/* Record a mark until `until`; `counted` marks count for folds too. */
static void put(fleetmark_t *m, uint64_t client, uint64_t key, int64_t until, bool counted)
{
    size_t s = find(m, client, key);
    if (s != SIZE_MAX) {
        mark_t *e = &m->ring[m->slots[s] - 1];
        if (until > e->until)
            e->until = until;
        if (counted && until > e->counted)
            e->counted = until;
        return;
    }
    if (m->n == m->cap) {
        const mark_t *old = &m->ring[m->head];
        slot_delete(m, find(m, old->client, old->key));
        m->head = (m->head + 1) % m->cap;
        m->n--;
    }
    size_t at = (m->head + m->n) % m->cap;
    m->ring[at] = (mark_t){client, key, until, counted ? until : INT64_MIN};
    size_t i = home(m, client, key);
    while (m->slots[i] != 0)
        i = (i + 1) & m->mask;
    m->slots[i] = (uint32_t)at + 1;
    m->n++;
}

static bool allows(const fleetmark_t *m, uint64_t client, uint64_t key, int64_t now, bool folded)
{
    size_t s = find(m, client, key);
    if (s == SIZE_MAX)
        return true;
    const mark_t *e = &m->ring[m->slots[s] - 1];
    return (folded ? e->counted : e->until) <= now;
}

bool fleetmark_allows(const fleetmark_t *m, uint64_t client, const char *key, int64_t now_ms)
{
    if (m == NULL || client == 0 || key == NULL)
        return true;
    return allows(m, client, fleetmark_key_hash(key), now_ms, false);
}

static int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static bool take_as(fleetmark_t *m, uint64_t client, const char *key, int64_t now_ms, bool folded,
                    bool counted)
{
    if (m == NULL || client == 0 || key == NULL)
        return true;
    uint64_t k = fleetmark_key_hash(key);
    if (!allows(m, client, k, now_ms, folded))
        return false;
    put(m, client, k, add_sat(now_ms, m->window), counted);
    return true;
}

static bool take(fleetmark_t *m, uint64_t client, const char *key, int64_t now_ms, bool folded)
{
    return take_as(m, client, key, now_ms, folded, true);
}

bool fleetmark_take(fleetmark_t *m, uint64_t client, const char *key, int64_t now_ms)
{
    return take(m, client, key, now_ms, false);
}

void fleetmark_take_visit(fleetmark_t *m, uint64_t client, const char *page_key,
                          const char *template_key, int64_t now_ms, bool folded, bool *page,
                          bool *tpl)
{
    bool p = take(m, client, page_key, now_ms, folded);
    bool t = p && template_key != NULL && (page_key == NULL || strcmp(template_key, page_key)) &&
             take(m, client, template_key, now_ms, folded);
    if (page)
        *page = p;
    if (tpl)
        *tpl = t;
}

void fleetmark_hold_visit(fleetmark_t *m, uint64_t client, const char *page_key,
                          const char *template_key, int64_t now_ms, bool *page, bool *tpl)
{
    bool p = take_as(m, client, page_key, now_ms, false, false);
    bool t = p && template_key != NULL && (page_key == NULL || strcmp(template_key, page_key)) &&
             take_as(m, client, template_key, now_ms, false, false);
    if (page)
        *page = p;
    if (tpl)
        *tpl = t;
}

void fleetmark_note(fleetmark_t *m, uint64_t client, const char *key, int64_t until_ms)
{
    if (m == NULL || client == 0 || key == NULL)
        return;
    put(m, client, fleetmark_key_hash(key), until_ms, false);
}

bool fleetmark_redis_reply(fleetmark_t *m, uint64_t client, const char *key, int64_t now_ms,
                           long long reply)
{
    if (reply < 0)
        return fleetmark_take(m, client, key, now_ms);
    if (m == NULL || client == 0 || key == NULL)
        return reply == 0;
    if (reply == 0) {
        put(m, client, fleetmark_key_hash(key), add_sat(now_ms, m->window), true);
        return true;
    }
    fleetmark_note(m, client, key, add_sat(now_ms, reply > INT64_MAX / 2 ? INT64_MAX / 2 : reply));
    return false;
}
