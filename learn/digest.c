/*
 * Golomb-Rice coded cache digest (draft-ietf-httpbis-cache-digest-02).
 */
#include "digest.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"

/* First 64 bits of SHA-256(url || etag), big-endian; false on ENOMEM. */
static bool key_hash(const char *url, const char *etag, uint64_t *out)
{
    unsigned char md[SHA256_DIGEST_LENGTH], stackbuf[1024];
    size_t ulen = strlen(url), elen = etag ? strlen(etag) : 0;
    unsigned char *buf = ulen + elen <= sizeof(stackbuf) ? stackbuf : malloc(ulen + elen);
    if (buf == NULL)
        return false;
    memcpy(buf, url, ulen);
    if (elen)
        memcpy(buf + ulen, etag, elen);
    SHA256(buf, ulen + elen, md);
    if (buf != stackbuf)
        free(buf);
    uint64_t h = 0;
    for (int i = 0; i < 8; i++)
        h = (h << 8) | md[i];
    *out = h;
    return true;
}

static uint64_t truncate_hash(uint64_t h, unsigned bits)
{
    return bits == 0 ? 0 : h >> (64 - bits);
}

void digest_builder_init(digest_builder_t *b, unsigned log2p)
{
    memset(b, 0, sizeof(*b));
    b->log2p = log2p < 1 ? 1 : log2p > 31 ? 31 : log2p;
}

static int reserve(digest_builder_t *b, size_t more)
{
    if (b->n + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 16;
    while (cap < b->n + more)
        cap *= 2;
    uint64_t *h = realloc(b->h, cap * sizeof(*h));
    if (h == NULL)
        return HERALD_ENOMEM;
    b->h = h;
    unsigned char *w = realloc(b->w, cap);
    if (w == NULL)
        return HERALD_ENOMEM;
    b->w = w;
    b->cap = cap;
    return 0;
}

int digest_builder_add(digest_builder_t *b, const char *url, const char *etag)
{
    if (b == NULL || url == NULL)
        return HERALD_EINVAL;
    if (reserve(b, 1) != 0 || !key_hash(url, etag, &b->h[b->n]))
        return HERALD_ENOMEM;
    b->w[b->n++] = 64;
    return 0;
}

int digest_builder_add_digest(digest_builder_t *b, const digest_t *d)
{
    if (b == NULL || d == NULL)
        return HERALD_EINVAL;
    unsigned bits = d->log2n + d->log2p;
    if (bits == 0 || bits > 62)
        return HERALD_EINVAL;
    if (reserve(b, d->n) != 0)
        return HERALD_ENOMEM;
    for (size_t i = 0; i < d->n; i++) {
        b->h[b->n] = d->v[i] << (64 - bits);
        b->w[b->n++] = (unsigned char)bits;
    }
    if (d->log2n > b->merged_log2n)
        b->merged_log2n = d->log2n;
    return 0;
}

void digest_builder_dispose(digest_builder_t *b)
{
    if (b == NULL)
        return;
    free(b->h);
    free(b->w);
    b->h = NULL;
    b->w = NULL;
    b->n = b->cap = 0;
    b->merged_log2n = 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct bitw {
    unsigned char *p;
    size_t nbits, cap; /* cap in bytes */
} bitw_t;

static int put_bit(bitw_t *w, unsigned bit)
{
    if (w->nbits / 8 >= w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        unsigned char *p = realloc(w->p, cap);
        if (p == NULL)
            return HERALD_ENOMEM;
        memset(p + w->cap, 0, cap - w->cap);
        w->p = p;
        w->cap = cap;
    }
    if (bit)
        w->p[w->nbits / 8] |= (unsigned char)(0x80u >> (w->nbits % 8));
    w->nbits++;
    return 0;
}

static int put_bits(bitw_t *w, uint64_t v, unsigned n)
{
    for (unsigned i = n; i-- > 0;)
        if (put_bit(w, (unsigned)(v >> i) & 1u) != 0)
            return HERALD_ENOMEM;
    return 0;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int digest_builder_finish(digest_builder_t *b, char **out, size_t *outlen)
{
    if (b == NULL || out == NULL)
        return HERALD_EINVAL;
    *out = NULL;
    if (b->n > (1u << 31))
        return HERALD_ETOOBIG;
    unsigned log2n = b->min_log2n > b->merged_log2n ? b->min_log2n : b->merged_log2n;
    if (log2n > 31)
        log2n = 31;
    while (((size_t)1 << log2n) < b->n)
        log2n++;
    unsigned bits = log2n + b->log2p;
    uint64_t p = (uint64_t)1 << b->log2p;
    uint64_t *v = malloc((b->n ? b->n : 1) * sizeof(*v));
    if (v == NULL)
        return HERALD_ENOMEM;
    size_t nv = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->w[i] >= bits) /* a merged prefix too short for the new N is dropped */
            v[nv++] = truncate_hash(b->h[i], bits);
    qsort(v, nv, sizeof(*v), cmp_u64);
    bitw_t w = {0};
    int rc = put_bits(&w, log2n, 5);
    if (rc == 0)
        rc = put_bits(&w, b->log2p, 5);
    uint64_t c = UINT64_MAX; /* -1: the first D is V itself */
    for (size_t i = 0; i < nv && rc == 0; i++) {
        if (i > 0 && v[i] == c)
            continue;
        uint64_t d = v[i] - c - 1;
        for (uint64_t q = d / p; q > 0 && rc == 0; q--)
            rc = put_bit(&w, 0);
        if (rc == 0)
            rc = put_bit(&w, 1);
        if (rc == 0)
            rc = put_bits(&w, d % p, b->log2p);
        c = v[i];
    }
    free(v);
    size_t nbytes = (w.nbits + 7) / 8;
    char *s = rc == 0 ? malloc(nbytes * 4 / 3 + 4) : NULL;
    if (s == NULL) {
        free(w.p);
        return HERALD_ENOMEM;
    }
    size_t o = 0;
    for (size_t i = 0; i < nbytes; i += 3) {
        uint32_t x = (uint32_t)w.p[i] << 16;
        if (i + 1 < nbytes)
            x |= (uint32_t)w.p[i + 1] << 8;
        if (i + 2 < nbytes)
            x |= w.p[i + 2];
        s[o++] = b64url[(x >> 18) & 63];
        s[o++] = b64url[(x >> 12) & 63];
        if (i + 1 < nbytes)
            s[o++] = b64url[(x >> 6) & 63];
        if (i + 2 < nbytes)
            s[o++] = b64url[x & 63];
    }
    s[o] = '\0';
    free(w.p);
    *out = s;
    if (outlen)
        *outlen = o;
    return 0;
}

/* ---- decoding ---------------------------------------------------------- */

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

typedef struct bitr {
    const unsigned char *p;
    size_t nbits, pos;
} bitr_t;

static int get_bit(bitr_t *r)
{
    if (r->pos >= r->nbits)
        return -1;
    int bit = (r->p[r->pos / 8] >> (7 - r->pos % 8)) & 1;
    r->pos++;
    return bit;
}

static bool get_bits(bitr_t *r, unsigned n, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        int bit = get_bit(r);
        if (bit < 0)
            return false;
        v = (v << 1) | (unsigned)bit;
    }
    *out = v;
    return true;
}

static int parse_fail(digest_t *out, unsigned char *bytes, int rc, const char **reason,
                      const char *why)
{
    free(bytes);
    digest_dispose(out);
    if (reason)
        *reason = why;
    return rc;
}

int digest_parse(const char *value, size_t len, digest_t *out, const char **reason)
{
    if (out == NULL)
        return HERALD_EINVAL;
    memset(out, 0, sizeof(*out));
    if (value == NULL && len > 0)
        return HERALD_EINVAL;
    if (len > DIGEST_MAX_VALUE_LEN)
        return parse_fail(out, NULL, HERALD_ETOOBIG, reason, "digest value too long");
    while (len > 0 && value[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return parse_fail(out, NULL, HERALD_EPARSE, reason, "bad base64url length");
    unsigned char *bytes = malloc(len * 3 / 4 + 3);
    if (bytes == NULL)
        return HERALD_ENOMEM;
    size_t nb = 0;
    uint32_t acc = 0;
    unsigned accbits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64val((unsigned char)value[i]);
        if (v < 0)
            return parse_fail(out, bytes, HERALD_EPARSE, reason, "bad base64url character");
        acc = (acc << 6) | (unsigned)v;
        accbits += 6;
        if (accbits >= 8) {
            accbits -= 8;
            bytes[nb++] = (unsigned char)(acc >> accbits);
            acc &= (1u << accbits) - 1;
        }
    }
    if (acc != 0)
        return parse_fail(out, bytes, HERALD_EPARSE, reason, "non-zero base64url padding bits");
    bitr_t r = {bytes, nb * 8, 0};
    uint64_t log2n, log2p;
    if (!get_bits(&r, 5, &log2n) || !get_bits(&r, 5, &log2p))
        return parse_fail(out, bytes, HERALD_EPARSE, reason, "digest header truncated");
    if (log2n > DIGEST_MAX_LOG2N)
        return parse_fail(out, bytes, HERALD_ETOOBIG, reason, "digest N too large");
    if (log2p == 0 || log2n + log2p > 62)
        return parse_fail(out, bytes, HERALD_EPARSE, reason, "digest P out of range");
    out->log2n = (unsigned)log2n;
    out->log2p = (unsigned)log2p;
    uint64_t limit = (uint64_t)1 << (log2n + log2p), p = (uint64_t)1 << log2p;
    /* Each value takes at least 1 + log2p bits: that bounds the count. */
    size_t maxn = (r.nbits - r.pos) / (1 + log2p) + 1;
    out->v = malloc(maxn * sizeof(*out->v));
    if (out->v == NULL) {
        free(bytes);
        return HERALD_ENOMEM;
    }
    uint64_t c = UINT64_MAX;
    for (;;) {
        size_t start = r.pos;
        uint64_t q = 0;
        int bit;
        while ((bit = get_bit(&r)) == 0) {
            if (++q > limit)
                return parse_fail(out, bytes, HERALD_EPARSE, reason, "digest value out of range");
        }
        if (bit < 0) {
            /* Only zero padding (< 8 bits) may follow the last value. */
            if (r.nbits - start >= 8)
                return parse_fail(out, bytes, HERALD_EPARSE, reason, "digest padding too long");
            break;
        }
        uint64_t rem;
        if (!get_bits(&r, (unsigned)log2p, &rem))
            return parse_fail(out, bytes, HERALD_EPARSE, reason, "digest value truncated");
        uint64_t v = c + 1 + q * p + rem;
        if (v >= limit || (c != UINT64_MAX && v <= c))
            return parse_fail(out, bytes, HERALD_EPARSE, reason, "digest value out of range");
        /* N is the entry count rounded up to a power of two: never fewer. */
        if (out->n >= ((size_t)1 << log2n))
            return parse_fail(out, bytes, HERALD_EPARSE, reason, "more digest entries than N");
        out->v[out->n++] = v;
        c = v;
    }
    free(bytes);
    return 0;
}

bool digest_contains(const digest_t *d, const char *url, const char *etag)
{
    if (d == NULL || url == NULL || d->n == 0)
        return false;
    uint64_t h;
    if (!key_hash(url, etag, &h))
        return false;
    h = truncate_hash(h, d->log2n + d->log2p);
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->v[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->n && d->v[lo] == h;
}

void digest_dispose(digest_t *d)
{
    if (d == NULL)
        return;
    free(d->v);
    d->v = NULL;
    d->n = 0;
}
