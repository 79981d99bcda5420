/*
 * libFuzzer target for proxy/http/headers.c: the Connection/token helpers and the
 * hop-by-hop mapping both ways. Input: one flag byte, then "name:value"
 * lines; lines a frontend would refuse (a name that is not an RFC 9110
 * token, a value with CR, LF, NUL or other controls) are left out, as llhttp
 * and nghttp2 refuse them before herald sees a header.
 *
 * Properties (RFC 9110 §7.6.1): no hop-by-hop field and no field that a
 * Connection header names reaches the origin or the client, except what
 * herald writes itself (Host, TE: trailers, Cookie, X-Forwarded-*, Via,
 * framing); headers_has_token agrees with a plain reference split; every
 * head ends with exactly one blank line.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "headers.h"

static bool tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool value_ok(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* Reference: is t (tn bytes) an element of the comma list v, OWS trimmed? */
static bool ref_has_token(const char *v, size_t n, const char *t, size_t tn)
{
    size_t i = 0;
    while (i <= n) {
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (s < e && (v[s] == ' ' || v[s] == '\t'))
            s++;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tn && tn > 0 && strncasecmp(v + s, t, tn) == 0)
            return true;
        i++;
    }
    return false;
}

static bool named(const headers_t *h, const char *name, size_t nl)
{
    for (size_t i = 0; i < h->n; i++)
        if (headers_name_eq(h->v[i].name, h->v[i].name_len, "connection") &&
            ref_has_token(h->v[i].value, h->v[i].value_len, name, nl))
            return true;
    return false;
}

static bool in_input(const headers_t *h, const char *name, size_t nl)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].name_len == nl && strncasecmp(h->v[i].name, name, nl) == 0)
            return true;
    return false;
}

static bool is(const char *n, size_t nl, const char *want)
{
    return nl == strlen(want) && strncasecmp(n, want, nl) == 0;
}

static void check_request(const headers_t *h, const headers_request_t *in)
{
    headers_buf_t b;
    headers_buf_init(&b);
    headers_build_request(in, &b);
    if (b.len < 4 || memcmp(b.p + b.len - 4, "\r\n\r\n", 4) != 0)
        abort();
    const char *p = memchr(b.p, '\n', b.len);
    if (p == NULL)
        abort();
    p++;
    const char *end = b.p + b.len - 2; /* the blank line */
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL || eol == p || eol[-1] != '\r')
            abort();
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL)
            abort();
        size_t nl = (size_t)(colon - p);
        if (is(p, nl, "host") || is(p, nl, "x-forwarded-for") || is(p, nl, "x-forwarded-proto") ||
            is(p, nl, "via") || is(p, nl, "content-length")) {
            /* herald's own */
        } else if (is(p, nl, "transfer-encoding")) {
            if (!in->has_body || in->content_length >= 0)
                abort();
        } else if (is(p, nl, "te")) {
            if (!(eol - colon == 11 && memcmp(colon, ": trailers", 10) == 0) || named(h, "te", 2))
                abort();
        } else if (is(p, nl, "cookie")) {
            if (named(h, "cookie", 6))
                abort();
        } else {
            if (headers_hop_by_hop(p, nl) || named(h, p, nl) || !in_input(h, p, nl))
                abort();
        }
        p = eol + 1;
    }
    headers_buf_dispose(&b);
}

static void check_response(const headers_t *h, mempool_t *mp, bool upgrade)
{
    headers_t out = {0};
    headers_filter_response(h, &out, mp, "1.1", upgrade);
    size_t vias = 0;
    for (size_t i = 0; i < out.n; i++) {
        const header_t *f = &out.v[i];
        if (is(f->name, f->name_len, "via")) {
            vias++;
            if (f->value_len < 7 || memcmp(f->value + f->value_len - 7, " herald", 7) != 0)
                abort();
            continue;
        }
        if (upgrade && (is(f->name, f->name_len, "upgrade") ||
                        (is(f->name, f->name_len, "connection") && f->value_len == 7 &&
                         memcmp(f->value, "upgrade", 7) == 0)))
            continue;
        if (headers_hop_by_hop(f->name, f->name_len) || named(h, f->name, f->name_len))
            abort();
    }
    if (vias != 1)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t flags = data[0];
    const char *s = (const char *)data + 1, *end = (const char *)data + size;
    mempool_t mp;
    mempool_init(&mp);
    headers_t h = {0};
    while (s < end) {
        const char *eol = memchr(s, '\n', (size_t)(end - s));
        if (eol == NULL)
            eol = end;
        const char *colon = memchr(s, ':', (size_t)(eol - s));
        if (colon != NULL && colon > s) {
            bool ok = true;
            for (const char *c = s; c < colon && ok; c++)
                ok = tchar((unsigned char)*c);
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            if (ok && value_ok(v, (size_t)(eol - v)))
                headers_add(&h, &mp, s, (size_t)(colon - s), v, (size_t)(eol - v));
        }
        s = eol + 1;
    }
    /* the token helper against the reference, for every name in every value */
    for (size_t i = 0; i < h.n; i++)
        for (size_t j = 0; j < h.n; j++) {
            const header_t *t = &h.v[j];
            if (headers_has_token(h.v[i].value, h.v[i].value_len, t->name) !=
                ref_has_token(h.v[i].value, h.v[i].value_len, t->name, t->name_len))
                abort();
        }
    headers_request_t in = {
        .method = (flags & 1) ? "POST" : "GET",
        .path = "/p",
        .authority = (flags & 2) ? "a.example" : NULL,
        .scheme = "http",
        .headers = &h,
        .client_addr = "192.0.2.1",
        .via_proto = "2",
        .has_body = (flags & 4) != 0,
        .content_length = (flags & 8) ? 12 : -1,
        .origin_hostport = "127.0.0.1:1",
        .trust_forwarded = (flags & 16) != 0,
    };
    check_request(&h, &in);
    check_response(&h, &mp, (flags & 32) != 0);
    mempool_dispose(&mp);
    return 0;
}
