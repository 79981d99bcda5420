/*
 * URL resolution and normalisation on top of uriparser. uriparser is strict
 * RFC 3986 while documents hold what browsers accept, so references are
 * first cleaned the way the WHATWG URL parser would read them; the output is
 * then a URL uriparser accepts and a browser would send.
 */
#include "url.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uriparser/Uri.h>

#include "herald/error.h"

/* Larger references are not links anyone follows; it also keeps uriparser's int lengths safe. */
#define URL_MAX_LEN (1u << 20)

typedef struct strbuf {
    char *p;
    size_t n;
} strbuf_t;

static bool is_alpha(unsigned char c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
    return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static bool is_tab_or_newline(unsigned char c)
{
    return c == '\t' || c == '\n' || c == '\r';
}

/* Bytes uriparser takes literally anywhere outside the authority:
 * unreserved, gen-delims but '#[]', sub-delims. */
static bool is_uri_char(unsigned char c)
{
    if (is_alpha(c) || is_digit(c))
        return true;
    return c != 0 && strchr("-._~:/?@!$&'()*+,;=", c) != NULL;
}

static bool ascii_ieq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c >= 'A' && c <= 'Z')
            c |= 0x20;
        if (c != (unsigned char)b[i])
            return false;
    }
    return true;
}

/*
 * The scheme of s[0..n) once tabs and newlines are ignored (as the WHATWG
 * parser removes them first), copied lower-case into buf. Returns its length,
 * 0 when there is none. Bounded so a multi-megabyte data: URL costs nothing.
 */
static size_t find_scheme(const char *s, size_t n, char *buf, size_t bufsz)
{
    size_t len = 0, i = 0;
    while (i < n && (unsigned char)s[i] <= 0x20)
        i++;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_tab_or_newline(c))
            continue;
        if (c == ':') {
            buf[len] = '\0';
            return len;
        }
        bool ok =
            len == 0 ? is_alpha(c) : is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
        if (!ok || len + 1 >= bufsz)
            return 0;
        buf[len++] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    }
    return 0;
}

static bool is_special(const char *scheme, size_t len)
{
    return (len == 4 && memcmp(scheme, "http", 4) == 0) ||
           (len == 5 && memcmp(scheme, "https", 5) == 0);
}

/*
 * Browser-style cleaning of ref into a malloc'd string uriparser accepts:
 * see url.h. `special` says whether the URL will be http(s), where '\' is a
 * path separator. The fragment is cut here since nobody sends it.
 * `same_scheme`: ref's scheme is the base's, so "http:x" stays relative.
 */
static int clean(const char *ref, size_t len, bool special, size_t scheme_len, bool same_scheme,
                 strbuf_t *out)
{
    while (len > 0 && (unsigned char)ref[0] <= 0x20) {
        ref++;
        len--;
    }
    while (len > 0 && (unsigned char)ref[len - 1] <= 0x20)
        len--;

    /* Pass 1 in place at the end of the buffer: drop tabs and newlines, cut
     * the fragment, '\\' -> '/'. Pass 2 encodes into the front; the write
     * position never overtakes the read position because the copy sits at
     * offset 2 * len + 2 and grows at most 3x (plus a "./" prefix or the
     * "//" after a scheme, never both). */
    char *o = malloc(len * 3 + 3);
    if (o == NULL)
        return HERALD_ENOMEM;
    char *t = o + 2 * len + 2;
    size_t tn = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)ref[i];
        if (is_tab_or_newline(c))
            continue;
        if (c == '#')
            break;
        t[tn++] = (char)(c == '\\' && special ? '/' : c);
    }

    /* "http:x" on an http page is relative, as in browsers: drop the scheme. */
    if (same_scheme && tn > scheme_len) {
        t += scheme_len + 1;
        tn -= scheme_len + 1;
        scheme_len = 0;
    }

    size_t auth_start = 0, auth_end = 0;
    size_t p = scheme_len ? scheme_len + 1 : 0;
    size_t slashes = 0;
    while (p + slashes < tn && t[p + slashes] == '/')
        slashes++;
    /* WHATWG: in http(s) URLs two or more slashes lead to the host, and so
     * does any run (even none) after a scheme other than the base's:
     * "///h/x", "https:/h/x" and "https:h/x" all mean "https://h/x". */
    bool reslash = special && (slashes > 2 || (scheme_len > 0 && !same_scheme));
    if (slashes >= 2 || reslash) {
        auth_start = p + slashes;
        auth_end = auth_start;
        while (auth_end < tn && t[auth_end] != '/' && t[auth_end] != '?')
            auth_end++;
    }
    /* "1a:b" has no scheme (it starts with a digit) but RFC 3986 forbids ':'
     * in a first relative segment; "./" keeps the browser's meaning. */
    bool dot_prefix = false;
    if (scheme_len == 0 && auth_end == 0) {
        for (size_t i = 0; i < tn && t[i] != '/' && t[i] != '?'; i++)
            if (t[i] == ':') {
                dot_prefix = true;
                break;
            }
    }

    size_t n = 0;
    if (dot_prefix) {
        o[n++] = '.';
        o[n++] = '/';
    }
    for (size_t i = 0; i < tn; i++) {
        if (reslash && i == p) {
            o[n++] = '/';
            o[n++] = '/';
            i += slashes;
            if (i >= tn)
                break;
        }
        unsigned char c = (unsigned char)t[i];
        if (is_uri_char(c) || (i >= auth_start && i < auth_end && (c == '[' || c == ']'))) {
            o[n++] = (char)c;
        } else if (c == '%' && i + 2 < tn && is_hex((unsigned char)t[i + 1]) &&
                   is_hex((unsigned char)t[i + 2])) {
            o[n++] = '%';
        } else {
            static const char hex[] = "0123456789ABCDEF";
            o[n++] = '%';
            o[n++] = hex[c >> 4];
            o[n++] = hex[c & 15];
        }
    }
    o[n] = '\0';
    out->p = o;
    out->n = n;
    return 0;
}

static int map_uri_error(int rc)
{
    return rc == URI_ERROR_MALLOC ? HERALD_ENOMEM : HERALD_EINVAL;
}

static int uri_to_string(const UriUriA *u, strbuf_t *out)
{
    int need = 0;
    int rc = uriToStringCharsRequiredA(u, &need);
    if (rc != URI_SUCCESS)
        return map_uri_error(rc);
    /* Room for the '/' that finish() may insert. */
    char *s = malloc((size_t)need + 2);
    if (s == NULL)
        return HERALD_ENOMEM;
    rc = uriToStringA(s, u, need + 1, NULL);
    if (rc != URI_SUCCESS) {
        free(s);
        return map_uri_error(rc);
    }
    out->p = s;
    out->n = strlen(s);
    return 0;
}

/*
 * What uriparser leaves to us and browsers always do: drop an empty or
 * default port and give an empty path "/". s has one spare byte. Sets
 * *auth_end to where the path starts (the origin's length).
 */
static int finish(strbuf_t *s, size_t *auth_end)
{
    char *p = s->p;
    char *colon = strchr(p, ':');
    if (colon == NULL || colon[1] != '/' || colon[2] != '/')
        return HERALD_EINVAL;
    size_t scheme_len = (size_t)(colon - p);
    size_t a = scheme_len + 3;
    size_t e = a + strcspn(p + a, "/?#");
    if (e == a)
        return HERALD_EINVAL; /* no host */
    /* Host starts after any userinfo; an IPv6 literal has its own colons. */
    size_t h = a;
    for (size_t i = a; i < e; i++)
        if (p[i] == '@')
            h = i + 1;
    size_t i = h;
    if (i < e && p[i] == '[') {
        while (i < e && p[i] != ']')
            i++;
        /* uriparser writes IPv6 in full; browsers send the short form. */
        char full[64], shrt[INET6_ADDRSTRLEN];
        struct in6_addr addr;
        size_t flen = i - h - 1;
        if (i < e && flen < sizeof full) {
            memcpy(full, p + h + 1, flen);
            full[flen] = '\0';
            if (inet_pton(AF_INET6, full, &addr) == 1 &&
                inet_ntop(AF_INET6, &addr, shrt, sizeof shrt) != NULL && strlen(shrt) <= flen) {
                size_t slen = strlen(shrt);
                memcpy(p + h + 1, shrt, slen);
                memmove(p + h + 1 + slen, p + i, s->n - i + 1);
                s->n -= flen - slen;
                e -= flen - slen;
                i -= flen - slen;
            }
        }
    }
    while (i < e && p[i] != ':')
        i++;
    if (i == h)
        return HERALD_EINVAL; /* empty host */
    if (i < e) {
        size_t ps = i + 1;
        while (ps < e - 1 && p[ps] == '0')
            ps++;
        const char *port = p + ps;
        size_t plen = e - ps;
        bool https = scheme_len == 5;
        bool drop = i + 1 == e || (plen == 2 && !https && memcmp(port, "80", 2) == 0) ||
                    (plen == 3 && https && memcmp(port, "443", 3) == 0);
        if (drop) {
            memmove(p + i, p + e, s->n - e + 1);
            s->n -= e - i;
            e = i;
        }
    }
    if (p[e] != '/') {
        memmove(p + e + 1, p + e, s->n - e + 1);
        p[e] = '/';
        s->n++;
    }
    /* uriparser keeps a "/." in front of a path that would start with "//",
     * which only matters without an authority; here there is one, and
     * browsers (and a second resolution) drop it. Found by fuzz/link. */
    while (p[e] == '/' && p[e + 1] == '.' && p[e + 2] == '/' && p[e + 3] == '/') {
        memmove(p + e, p + e + 2, s->n - (e + 2) + 1);
        s->n -= 2;
    }
    *auth_end = e;
    return 0;
}

static bool uri_is_special(const UriUriA *u)
{
    if (u->scheme.first == NULL)
        return false;
    size_t len = (size_t)(u->scheme.afterLast - u->scheme.first);
    return ascii_ieq(u->scheme.first, len, "http") || ascii_ieq(u->scheme.first, len, "https");
}

/*
 * The shared pipeline: clean ref, resolve it against base (NULL: ref must be
 * absolute), normalise the parts in `mask`, finish. On success *out is the
 * URL and *auth_end the length of its origin.
 */
static int build(const char *base, const char *ref, size_t len, unsigned mask, char **out,
                 size_t *auth_end)
{
    char scheme[32];
    size_t scheme_len = find_scheme(ref, len, scheme, sizeof scheme);
    if (scheme_len > 0 && !is_special(scheme, scheme_len))
        return HERALD_EUNSUPPORTED;
    if (len > URL_MAX_LEN)
        return HERALD_EINVAL;

    UriUriA ubase, uref, uabs;
    bool have_base = false, have_ref = false, have_abs = false;
    strbuf_t c = {0}, res = {0};
    int rc;

    if (base != NULL) {
        rc = uriParseSingleUriA(&ubase, base, NULL);
        if (rc != URI_SUCCESS) {
            rc = map_uri_error(rc);
            goto out;
        }
        have_base = true;
        if (ubase.scheme.first == NULL) {
            rc = HERALD_EINVAL;
            goto out;
        }
    }
    bool special = scheme_len > 0 || (have_base && uri_is_special(&ubase));
    bool same_scheme = false;
    if (scheme_len > 0 && have_base) {
        size_t bl = (size_t)(ubase.scheme.afterLast - ubase.scheme.first);
        same_scheme = ascii_ieq(ubase.scheme.first, bl, scheme) && bl == scheme_len;
    }
    rc = clean(ref, len, special, scheme_len, same_scheme, &c);
    if (rc < 0)
        goto out;
    if (c.n == 0) {
        rc = HERALD_EINVAL; /* empty or fragment-only */
        goto out;
    }
    rc = uriParseSingleUriExA(&uref, c.p, c.p + c.n, NULL);
    if (rc != URI_SUCCESS) {
        rc = map_uri_error(rc);
        goto out;
    }
    have_ref = true;
    if (have_base) {
        rc = uriAddBaseUriExA(&uabs, &uref, &ubase, URI_RESOLVE_STRICTLY);
        if (rc != URI_SUCCESS) {
            rc = map_uri_error(rc);
            goto out;
        }
        have_abs = true;
    } else if (uref.scheme.first == NULL) {
        rc = HERALD_EINVAL;
        goto out;
    }
    UriUriA *u = have_abs ? &uabs : &uref;
    if (!uri_is_special(u)) {
        rc = HERALD_EUNSUPPORTED;
        goto out;
    }
    /* No authority (a base like "http:/x"): serialising would let a path
     * "//h" pass for a host. */
    if (u->hostText.first == NULL) {
        rc = HERALD_EINVAL;
        goto out;
    }
    rc = uriNormalizeSyntaxExA(u, mask);
    if (rc != URI_SUCCESS) {
        rc = map_uri_error(rc);
        goto out;
    }
    rc = uri_to_string(u, &res);
    if (rc < 0)
        goto out;
    rc = finish(&res, auth_end);
    if (rc < 0)
        goto out;
    *out = res.p;
    res.p = NULL;
out:
    free(res.p);
    free(c.p);
    if (have_abs)
        uriFreeUriMembersA(&uabs);
    if (have_ref)
        uriFreeUriMembersA(&uref);
    if (have_base)
        uriFreeUriMembersA(&ubase);
    return rc;
}

int url_resolve(const char *base, const char *ref, size_t ref_len, char **out)
{
    size_t auth_end;
    *out = NULL;
    if (base == NULL)
        return HERALD_EINVAL;
    /* Browsers lower-case scheme and host but send the path as written. */
    return build(base, ref, ref_len, URI_NORMALIZE_SCHEME | URI_NORMALIZE_HOST, out, &auth_end);
}

/* Path and query bytes that normalising and cleaning leave alone. */
static bool plain_byte(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '/';
}

/*
 * The URLs a proxy sees on every request ("http://host[:port]/path?q" built
 * from :scheme, :authority and :path) are usually keys already. Spotting
 * that takes one pass, against uriparser's parse, normalise and serialise
 * with its allocations; anything unusual (upper case, percent signs, dot
 * segments, a default or odd port, userinfo, IPv6, a fragment) takes the
 * full path. url_fuzz checks both paths agree on every input.
 */
bool url_is_key(const char *url)
{
    size_t n = 0;
    if (strncmp(url, "http://", 7) == 0)
        n = 7;
    else if (strncmp(url, "https://", 8) == 0)
        n = 8;
    else
        return false;
    size_t h = n;
    bool letter = false;
    for (; (url[n] >= 'a' && url[n] <= 'z') || (url[n] >= '0' && url[n] <= '9') || url[n] == '-' ||
           url[n] == '.';
         n++)
        letter |= url[n] >= 'a' && url[n] <= 'z';
    if (n == h || n - h > 253 || url[h] == '.' || url[n - 1] == '.' || url[h] == '-')
        return false;
    if (!letter) {
        /* a numeric host passes only in canonical dotted-quad form (the
         * slow path rewrites "127.1", "010.0.0.1" and friends) */
        int parts = 0;
        for (size_t i = h; i < n; parts++) {
            size_t d = i;
            unsigned v = 0;
            for (; i < n && url[i] != '.'; i++) {
                if (url[i] < '0' || url[i] > '9' || i - d == 3)
                    return false;
                v = v * 10 + (unsigned)(url[i] - '0');
            }
            if (i == d || v > 255 || (url[d] == '0' && i - d > 1))
                return false;
            i += i < n; /* the dot */
        }
        if (parts != 4)
            return false;
    }
    if (url[n] == ':') {
        size_t p = ++n;
        while (url[n] >= '0' && url[n] <= '9')
            n++;
        size_t plen = n - p;
        unsigned long port = 0;
        for (size_t i = p; i < n && i - p < 6; i++)
            port = port * 10 + (unsigned long)(url[i] - '0');
        if (plen == 0 || plen > 5 || url[p] == '0' || port > 65535 ||
            (plen == 2 && memcmp(url + p, "80", 2) == 0) ||
            (plen == 3 && memcmp(url + p, "443", 3) == 0))
            return false; /* default ports are dropped: the slow path decides which */
    }
    if (url[n] != '/')
        return false;
    for (; url[n] != '\0' && url[n] != '?'; n++) {
        if (!plain_byte((unsigned char)url[n]))
            return false;
        if (url[n] == '.' && url[n - 1] == '/')
            return false; /* maybe a dot segment */
    }
    for (; url[n] != '\0'; n++)
        if (!plain_byte((unsigned char)url[n]) && url[n] != '?' && url[n] != '=' && url[n] != '&')
            return false;
    return true;
}

int url_normalize_slow(const char *url, char **out)
{
    size_t auth_end;
    *out = NULL;
    /* The query is left alone: servers may treat its bytes as significant. */
    unsigned mask =
        URI_NORMALIZE_SCHEME | URI_NORMALIZE_USER_INFO | URI_NORMALIZE_HOST | URI_NORMALIZE_PATH;
    return build(NULL, url, strlen(url), mask, out, &auth_end);
}

int url_normalize(const char *url, char **out)
{
    *out = NULL;
    if (!url_is_key(url))
        return url_normalize_slow(url, out);
    *out = strdup(url);
    return *out != NULL ? 0 : HERALD_ENOMEM;
}

int url_origin(const char *url, char **out)
{
    size_t auth_end;
    *out = NULL;
    int rc =
        build(NULL, url, strlen(url), URI_NORMALIZE_SCHEME | URI_NORMALIZE_HOST, out, &auth_end);
    if (rc < 0)
        return rc;
    char *o = *out;
    o[auth_end] = '\0';
    /* Userinfo is no part of an origin. */
    char *host = strstr(o, "://") + 3;
    char *at = strrchr(host, '@');
    if (at != NULL)
        memmove(host, at + 1, strlen(at + 1) + 1);
    return 0;
}

bool url_same_origin(const char *a, const char *b)
{
    char *oa = NULL, *ob = NULL;
    bool same = url_origin(a, &oa) == 0 && url_origin(b, &ob) == 0 && strcmp(oa, ob) == 0;
    free(oa);
    free(ob);
    return same;
}
