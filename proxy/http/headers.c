/*
 * Header lists and the client <-> origin header mapping (RFC 9110 §7.6.1
 * hop-by-hop fields, RFC 9113 §8.2.3 cookie crumbs, RFC 7230 §5.7 Via).
 */
#include "headers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"

/* ---- lists ---- */

static void grow(headers_t *h, mempool_t *mp)
{
    size_t cap = h->cap == 0 ? 16 : h->cap * 2;
    header_t *v = mempool_alloc(mp, cap * sizeof(*v));
    if (h->n > 0)
        memcpy(v, h->v, h->n * sizeof(*v));
    /* the old array stays in the pool until the exchange goes: no free */
    h->v = v;
    h->cap = cap;
}

void headers_add_ref(headers_t *h, mempool_t *mp, const char *name, size_t name_len,
                     const char *value, size_t value_len)
{
    if (h->n == h->cap)
        grow(h, mp);
    h->v[h->n++] =
        (header_t){.name = name, .name_len = name_len, .value = value, .value_len = value_len};
}

void headers_add(headers_t *h, mempool_t *mp, const char *name, size_t name_len, const char *value,
                 size_t value_len)
{
    /* one pool allocation holds both strings */
    char *n = mempool_alloc(mp, name_len + 1 + value_len + 1), *v = n + name_len + 1;
    if (name_len > 0)
        memcpy(n, name, name_len);
    n[name_len] = '\0';
    if (value_len > 0)
        memcpy(v, value, value_len);
    v[value_len] = '\0';
    headers_add_ref(h, mp, n, name_len, v, value_len);
}

const header_t *headers_find_n(const headers_t *h, const char *name, size_t nl)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].name_len == nl && strncasecmp(h->v[i].name, name, nl) == 0)
            return &h->v[i];
    return NULL;
}

/* ---- byte buffer ---- */

void headers_buf_init(headers_buf_t *b)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->heap = false;
}

void headers_buf_init_on(headers_buf_t *b, char *mem, size_t cap)
{
    b->p = mem;
    b->p[0] = '\0';
    b->len = 0;
    b->cap = cap;
    b->heap = false;
}

void headers_buf_dispose(headers_buf_t *b)
{
    if (b->heap)
        free(b->p);
    headers_buf_init(b);
}

void headers_buf_append(headers_buf_t *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        if (b->heap) {
            b->p = alloc_grow(b->p, &b->cap, b->len + n + 1, 1024);
        } else {
            char *q = alloc_grow(NULL, &b->cap, b->len + n + 1, 1024); /* off the caller's memory */
            if (b->len > 0)
                memcpy(q, b->p, b->len);
            b->p = q;
            b->heap = true;
        }
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

size_t headers_u64_digits(uint64_t v, char *out)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* The fast path of headers_buf_append, inlined: the head is built from
 * dozens of short pieces, most of them literals whose copy folds to a few
 * moves. */
static inline void buf_put(headers_buf_t *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        headers_buf_append(b, p, n);
        return;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static inline void buf_str(headers_buf_t *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static void buf_field(headers_buf_t *b, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    size_t n = name_len + 2 + value_len + 2;
    if (b->len + n + 1 > b->cap) {
        headers_buf_append(b, name, name_len);
        headers_buf_append(b, ": ", 2);
        headers_buf_append(b, value, value_len);
        headers_buf_append(b, "\r\n", 2);
        return;
    }
    char *d = b->p + b->len;
    memcpy(d, name, name_len);
    d += name_len;
    *d++ = ':';
    *d++ = ' ';
    if (value_len > 0)
        memcpy(d, value, value_len);
    d += value_len;
    *d++ = '\r';
    *d++ = '\n';
    *d = '\0';
    b->len += n;
}

/* ---- tokens ---- */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Calls fn for each element of a comma-separated list, OWS trimmed, empty
 * elements skipped (RFC 9110 §5.6.1). Stops when fn returns true.
 */
static bool each_token(const char *v, size_t n, bool (*fn)(const char *t, size_t tn, void *arg),
                       void *arg)
{
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (start < end && is_ows(v[start]))
            start++;
        while (end > start && is_ows(v[end - 1]))
            end--;
        if (end > start && fn(v + start, end - start, arg))
            return true;
        i++; /* skip ',' */
    }
    return false;
}

static bool token_is(const char *t, size_t tn, void *arg)
{
    return headers_name_eq(t, tn, arg);
}

bool headers_has_token(const char *value, size_t value_len, const char *token)
{
    return each_token(value, value_len, token_is, (void *)token);
}

typedef struct counted {
    const char *p;
    size_t n;
} counted_t;

static bool token_is_counted(const char *t, size_t tn, void *arg)
{
    const counted_t *want = arg;
    return tn == want->n && strncasecmp(t, want->p, tn) == 0;
}

/* Is `name` listed in any Connection header of `h`? Any length: RFC 9110
 * §7.6.1 has every field Connection names removed, however long its name. */
static bool named_by_connection(const headers_t *h, const char *name, size_t name_len)
{
    counted_t want = {name, name_len};
    for (size_t i = 0; i < h->n; i++) {
        const header_t *f = &h->v[i];
        if (headers_name_eq(f->name, f->name_len, "connection") &&
            each_token(f->value, f->value_len, token_is_counted, &want))
            return true;
    }
    return false;
}

enum { CONN_TOKENS_MAX = 8 };

/* The options all Connection fields of a header list name, collected once:
 * each other field is then checked against them by length first, not by
 * scanning the whole list again. */
typedef struct conn_tokens {
    counted_t v[CONN_TOKENS_MAX];
    size_t n;
    bool many; /* more than CONN_TOKENS_MAX: ask named_by_connection() */
} conn_tokens_t;

static bool token_collect(const char *t, size_t tn, void *arg)
{
    conn_tokens_t *ct = arg;
    if (ct->n == CONN_TOKENS_MAX) {
        ct->many = true;
        return true; /* stop */
    }
    ct->v[ct->n++] = (counted_t){t, tn};
    return false;
}

static void conn_tokens_find(conn_tokens_t *ct, const headers_t *h)
{
    ct->n = 0;
    ct->many = false;
    for (size_t i = 0; i < h->n && !ct->many; i++) {
        const header_t *f = &h->v[i];
        if (headers_name_eq(f->name, f->name_len, "connection"))
            each_token(f->value, f->value_len, token_collect, ct);
    }
}

/* Does any Connection field of h (whose tokens are ct) name `name`? */
static bool conn_tokens_name(const conn_tokens_t *ct, const headers_t *h, const char *name,
                             size_t name_len)
{
    if (ct->many)
        return named_by_connection(h, name, name_len);
    for (size_t i = 0; i < ct->n; i++)
        if (ct->v[i].n == name_len && strncasecmp(ct->v[i].p, name, name_len) == 0)
            return true;
    return false;
}

/* ---- cookies ---- */

const char *headers_cookie_value(const char *value, size_t value_len, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *p = value, *end = value + value_len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ';'))
            p++;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        if ((size_t)(stop - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
            *len = (size_t)(stop - p) - nl - 1;
            return p + nl + 1;
        }
        p = stop;
    }
    return NULL;
}

/* ---- request head for the origin ---- */

/* Appends all values of `name` in `h` to b, joined with `sep`. Returns how many. */
static size_t join_values(const headers_t *h, const char *name, const char *sep, headers_buf_t *b)
{
    size_t count = 0;
    for (size_t i = 0; i < h->n; i++) {
        const header_t *f = &h->v[i];
        if (!headers_name_eq(f->name, f->name_len, name))
            continue;
        if (count++ > 0)
            buf_str(b, sep);
        buf_put(b, f->value, f->value_len);
    }
    return count;
}

static bool nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static bool method_expects_body(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

void headers_build_request(const headers_request_t *in, headers_buf_t *out)
{
    const headers_t *h = in->headers;
    /* Connection may name more fields to drop; most requests carry none */
    conn_tokens_t ct;
    conn_tokens_find(&ct, h);

    buf_str(out, in->method);
    buf_put(out, " ", 1);
    buf_str(out, nonempty(in->path) ? in->path : "/");
    buf_str(out, " HTTP/1.1\r\n");

    const char *host = nonempty(in->host_override) ? in->host_override
                       : nonempty(in->authority)   ? in->authority
                                                   : in->origin_hostport;
    buf_str(out, "Host: ");
    buf_str(out, host != NULL ? host : "");
    buf_str(out, "\r\n");

    bool te_trailers = false;
    for (size_t i = 0; i < h->n; i++) {
        const header_t *f = &h->v[i];
        const char *n = f->name;
        size_t nl = f->name_len;
        if (headers_name_eq(n, nl, "te")) {
            /* TE: only "trailers" may pass (RFC 9113 §8.2.2 / 9110 §10.1.4) */
            if (headers_has_token(f->value, f->value_len, "trailers"))
                te_trailers = true;
            continue;
        }
        if (headers_hop_by_hop(n, nl) || headers_name_eq(n, nl, "host") ||
            headers_name_eq(n, nl, "content-length") || headers_name_eq(n, nl, "cookie") ||
            headers_name_eq(n, nl, "x-forwarded-for") ||
            headers_name_eq(n, nl, "x-forwarded-proto") || headers_name_eq(n, nl, "via") ||
            (ct.n > 0 && conn_tokens_name(&ct, h, n, nl)))
            continue;
        buf_field(out, n, nl, f->value, f->value_len);
    }
    if (te_trailers && !conn_tokens_name(&ct, h, "te", 2))
        buf_str(out, "TE: trailers\r\n");

    /* h2 may split cookies into crumbs; an HTTP/1.1 origin wants one line. */
    if (headers_find(h, "cookie") != NULL && !conn_tokens_name(&ct, h, "cookie", 6)) {
        buf_str(out, "Cookie: ");
        join_values(h, "cookie", "; ", out);
        buf_str(out, "\r\n");
    }

    buf_str(out, "X-Forwarded-For: ");
    if (in->trust_forwarded && join_values(h, "x-forwarded-for", ", ", out) > 0)
        buf_str(out, ", ");
    buf_str(out, in->client_addr != NULL ? in->client_addr : "");
    buf_str(out, "\r\n");

    /* Proto names one scheme: a trusted front's value wins, never a list. */
    const header_t *xfp = in->trust_forwarded ? headers_find(h, "x-forwarded-proto") : NULL;
    if (xfp != NULL)
        buf_field(out, "X-Forwarded-Proto", 17, xfp->value, xfp->value_len);
    else {
        buf_str(out, "X-Forwarded-Proto: ");
        buf_str(out, nonempty(in->scheme) ? in->scheme : "http");
        buf_str(out, "\r\n");
    }

    buf_str(out, "Via: ");
    if (join_values(h, "via", ", ", out) > 0)
        buf_str(out, ", ");
    buf_str(out, in->via_proto != NULL ? in->via_proto : "1.1");
    buf_str(out, " herald\r\n");

    if (in->websocket) {
        buf_str(out, "Connection: upgrade\r\nUpgrade: websocket\r\n");
    }
    if (in->content_length >= 0) {
        char num[20];
        size_t k = headers_u64_digits((uint64_t)in->content_length, num);
        buf_field(out, "Content-Length", 14, num, k);
    } else if (in->has_body) {
        buf_str(out, "Transfer-Encoding: chunked\r\n");
    } else if (method_expects_body(in->method)) {
        /* an empty POST (h2 END_STREAM on HEADERS): some origins want 411 otherwise */
        buf_str(out, "Content-Length: 0\r\n");
    }
    buf_str(out, "\r\n");
}

/* ---- response headers for the client ---- */

void headers_filter_response(const headers_t *in, headers_t *out, mempool_t *mp,
                             const char *origin_proto, bool upgrade)
{
    char via_mem[128];
    headers_buf_t via;
    headers_buf_init_on(&via, via_mem, sizeof(via_mem));
    conn_tokens_t ct;
    conn_tokens_find(&ct, in);

    for (size_t i = 0; i < in->n; i++) {
        const header_t *f = &in->v[i];
        const char *n = f->name;
        size_t nl = f->name_len;
        if (headers_name_eq(n, nl, "via")) {
            if (via.len > 0)
                buf_str(&via, ", ");
            buf_put(&via, f->value, f->value_len);
            continue;
        }
        if (upgrade && headers_name_eq(n, nl, "upgrade")) {
            headers_add_ref(out, mp, n, nl, f->value, f->value_len);
            continue;
        }
        if (headers_hop_by_hop(n, nl) || (ct.n > 0 && conn_tokens_name(&ct, in, n, nl)))
            continue;
        headers_add_ref(out, mp, n, nl, f->value, f->value_len);
    }
    if (upgrade)
        headers_add_ref(out, mp, "Connection", 10, "upgrade", 7);

    if (via.len > 0)
        buf_str(&via, ", ");
    buf_str(&via, origin_proto != NULL ? origin_proto : "1.1");
    buf_str(&via, " herald");
    headers_add(out, mp, "Via", 3, via.p, via.len);
    headers_buf_dispose(&via);
}
