/*
 * Page and template keys: string surgery over already-normalised keys.
 */
#include "template.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/error.h"

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf_t;

static int sb_put(sbuf_t *b, const char *s, size_t len)
{
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + len + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return HERALD_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
    return 0;
}

int template_page_key(const char *authority, const char *pathquery, char **out)
{
    if (authority == NULL || *authority == '\0' || out == NULL)
        return HERALD_EINVAL;
    if (pathquery == NULL)
        pathquery = "";
    sbuf_t b = {0};
    int rc = sb_put(&b, authority, strlen(authority));
    if (rc == 0 && pathquery[0] != '/')
        rc = sb_put(&b, "/", 1);
    if (rc == 0)
        rc = sb_put(&b, pathquery, strlen(pathquery));
    if (rc != 0) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    return 0;
}

int template_url_page_key(const char *url, char **out)
{
    if (url == NULL || out == NULL)
        return HERALD_EINVAL;
    const char *p = strstr(url, "://");
    if (p == NULL || p == url || p != url + strcspn(url, ":/?#"))
        return HERALD_EINVAL;
    p += 3;
    size_t alen = strcspn(p, "/?#");
    if (alen == 0)
        return HERALD_EINVAL;
    const char *rest = p + alen;
    size_t rlen = strcspn(rest, "#");
    /* authority, '/', path and query, NUL */
    char *k = malloc(alen + rlen + 2);
    if (k == NULL)
        return HERALD_ENOMEM;
    memcpy(k, p, alen);
    size_t n = alen;
    if (rlen == 0 || rest[0] != '/')
        k[n++] = '/';
    memcpy(k + n, rest, rlen);
    k[n + rlen] = '\0';
    *out = k;
    return 0;
}

bool template_same_origin(const char *a, const char *b)
{
    const char *pa = a ? strstr(a, "://") : NULL, *pb = b ? strstr(b, "://") : NULL;
    if (pa == NULL || pb == NULL)
        return false;
    size_t la = (size_t)(pa - a) + 3 + strcspn(pa + 3, "/?#");
    size_t lb = (size_t)(pb - b) + 3 + strcspn(pb + 3, "/?#");
    return la == lb && strncasecmp(a, b, la) == 0;
}

static bool all_digits(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static size_t count_digits(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += isdigit((unsigned char)s[i]) != 0;
    return n;
}

static bool all_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return len > 0;
}

static bool is_uuid(const char *s, size_t len)
{
    if (len != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

/* A UUID anywhere inside s[0..len), e.g. "img-<uuid>.png". */
static bool contains_uuid(const char *s, size_t len)
{
    for (size_t i = 0; i + 36 <= len; i++)
        if (is_uuid(s + i, 36))
            return true;
    return false;
}

static bool is_hexid(const char *s, size_t len, size_t min)
{
    return len >= min && all_hex(s, len) && count_digits(s, len) > 0;
}

static bool is_b64ish(const char *s, size_t len, size_t min)
{
    if (len < min)
        return false;
    size_t digits = 0, alpha = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isdigit(c))
            digits++;
        else if (isalpha(c))
            alpha++;
        else if (!strchr("+/_%=-", c))
            return false;
    }
    return digits > 0 && alpha > 0;
}

bool template_segment_is_id(const char *seg, size_t len)
{
    if (seg == NULL || len == 0)
        return false;
    if (all_digits(seg, len) || is_hexid(seg, len, 8) || is_uuid(seg, len))
        return true;
    size_t digits = 0, alpha = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)seg[i];
        if (isdigit(c))
            digits++;
        else if (isalpha(c))
            alpha++;
        else if (c != '-' && c != '_')
            return false;
    }
    return alpha > 0 && digits >= 4;
}

bool template_value_is_volatile(const char *v, size_t len)
{
    if (v == NULL || len == 0)
        return false;
    if (all_digits(v, len))
        return len >= 6;
    return is_hexid(v, len, 12) || is_uuid(v, len) || is_b64ish(v, len, 16);
}

/* Append one path segment, generalised when it is an id (or "<id>.<ext>"). */
static int put_segment(sbuf_t *b, const char *s, size_t len)
{
    if (template_segment_is_id(s, len))
        return sb_put(b, "*", 1);
    const char *dot = memchr(s, '.', len);
    if (dot != NULL && dot > s) {
        size_t stem = (size_t)(dot - s), ext = len - stem - 1;
        bool alpha_ext = ext >= 1 && ext <= 5;
        for (size_t i = 0; alpha_ext && i < ext; i++)
            alpha_ext = isalpha((unsigned char)dot[1 + i]) != 0;
        if (alpha_ext && template_segment_is_id(s, stem)) {
            int rc = sb_put(b, "*", 1);
            return rc ? rc : sb_put(b, dot, ext + 1);
        }
    }
    return sb_put(b, s, len);
}

int template_key(const char *page_key, char **out)
{
    if (page_key == NULL || out == NULL)
        return HERALD_EINVAL;
    sbuf_t b = {0};
    int rc = 0;
    size_t total = strcspn(page_key, "#");
    size_t pathend = strcspn(page_key, "?#");
    const char *slash = memchr(page_key, '/', pathend);
    size_t auth = slash ? (size_t)(slash - page_key) : pathend;
    rc = sb_put(&b, page_key, auth);
    /* Path: segments between '/'. */
    size_t i = auth;
    while (rc == 0 && i < pathend) {
        rc = sb_put(&b, "/", 1); /* page_key[i] == '/' */
        i++;
        size_t j = i;
        while (j < pathend && page_key[j] != '/')
            j++;
        if (rc == 0)
            rc = put_segment(&b, page_key + i, j - i);
        i = j;
    }
    /* Query: name=value pairs separated by '&', names and order kept. */
    if (rc == 0 && pathend < total) {
        rc = sb_put(&b, "?", 1);
        i = pathend + 1;
        bool first = true;
        while (rc == 0 && i <= total) {
            size_t j = i;
            while (j < total && page_key[j] != '&')
                j++;
            if (!first)
                rc = sb_put(&b, "&", 1);
            first = false;
            const char *eq = memchr(page_key + i, '=', j - i);
            if (rc == 0 && eq != NULL) {
                size_t name = (size_t)(eq - (page_key + i));
                size_t vlen = j - i - name - 1;
                rc = sb_put(&b, page_key + i, name + 1);
                if (rc == 0)
                    rc = template_value_is_volatile(eq + 1, vlen) ? sb_put(&b, "*", 1)
                                                                  : sb_put(&b, eq + 1, vlen);
            } else if (rc == 0) {
                rc = sb_put(&b, page_key + i, j - i);
            }
            i = j + 1;
        }
    }
    if (rc == 0 && b.p == NULL)
        rc = sb_put(&b, "", 0);
    if (rc != 0) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    return 0;
}

static bool value_is_per_visit(const char *v, size_t len)
{
    if (len == 0)
        return false;
    if (all_digits(v, len))
        return len >= 9;
    return is_hexid(v, len, 16) || contains_uuid(v, len) || is_b64ish(v, len, 20);
}

bool template_is_volatile_url(const char *url)
{
    if (url == NULL)
        return false;
    size_t total = strcspn(url, "#");
    size_t pathend = strcspn(url, "?#");
    if (contains_uuid(url, pathend))
        return true;
    if (pathend >= total)
        return false;
    size_t i = pathend + 1;
    while (i < total) {
        size_t j = i;
        while (j < total && url[j] != '&')
            j++;
        const char *eq = memchr(url + i, '=', j - i);
        const char *v = eq ? eq + 1 : url + i;
        if (value_is_per_visit(v, (size_t)(url + j - v)))
            return true;
        i = j + 1;
    }
    return false;
}

/* ---- versions of one asset ---- */

/* A token that reads as a content hash or a build stamp (template_is_version_of). */
static bool is_hash_token(const char *s, size_t len)
{
    if (len < 6 || count_digits(s, len) == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]))
            return false;
    return all_hex(s, len) || len >= 8;
}

static bool is_token_sep(char c)
{
    return c == '.' || c == '-' || c == '_' || c == '~';
}

/* Two path segments that differ in exactly one token, hashed on both sides. */
static bool segment_versions(const char *a, size_t al, const char *b, size_t bl)
{
    size_t i = 0, j = 0;
    int diffs = 0;
    while (i <= al && j <= bl) {
        size_t ti = i, tj = j;
        while (ti < al && !is_token_sep(a[ti]))
            ti++;
        while (tj < bl && !is_token_sep(b[tj]))
            tj++;
        if (ti - i != tj - j || memcmp(a + i, b + j, ti - i) != 0) {
            if (++diffs > 1 || !is_hash_token(a + i, ti - i) || !is_hash_token(b + j, tj - j))
                return false;
        }
        bool enda = ti == al, endb = tj == bl;
        if (enda != endb)
            return false; /* a different number of tokens */
        if (enda)
            break;
        if (a[ti] != b[tj])
            return false; /* a different separator */
        i = ti + 1;
        j = tj + 1;
    }
    return diffs == 1;
}

/* Queries with the same parameter names in order and exactly one value differing. */
static bool query_versions(const char *a, size_t al, const char *b, size_t bl)
{
    size_t i = 0, j = 0;
    int diffs = 0;
    for (;;) {
        size_t ei = i, ej = j;
        while (ei < al && a[ei] != '&')
            ei++;
        while (ej < bl && b[ej] != '&')
            ej++;
        const char *eqa = memchr(a + i, '=', ei - i), *eqb = memchr(b + j, '=', ej - j);
        size_t na = eqa ? (size_t)(eqa - (a + i)) : ei - i;
        size_t nb = eqb ? (size_t)(eqb - (b + j)) : ej - j;
        if (na != nb || memcmp(a + i, b + j, na) != 0)
            return false; /* names differ: another resource, not another version */
        if (ei - i != ej - j || memcmp(a + i, b + j, ei - i) != 0)
            diffs++;
        if ((ei == al) != (ej == bl))
            return false;
        if (ei == al)
            break;
        i = ei + 1;
        j = ej + 1;
    }
    return diffs == 1;
}

bool template_is_version_of(const char *a, const char *b)
{
    if (a == NULL || b == NULL || strcmp(a, b) == 0)
        return false;
    const char *pa = strstr(a, "://"), *pb = strstr(b, "://");
    if (pa == NULL || pb == NULL)
        return false;
    pa += 3;
    pb += 3;
    size_t oa = (size_t)(pa - a) + strcspn(pa, "/?#"), ob = (size_t)(pb - b) + strcspn(pb, "/?#");
    if (oa != ob || strncasecmp(a, b, oa) != 0)
        return false;
    a += oa;
    b += ob;
    size_t la = strcspn(a, "?#"), lb = strcspn(b, "?#");
    const char *qa = a[la] == '?' ? a + la + 1 : NULL, *qb = b[lb] == '?' ? b + lb + 1 : NULL;
    size_t qla = qa ? strcspn(qa, "#") : 0, qlb = qb ? strcspn(qb, "#") : 0;
    bool same_query =
        (qa == NULL) == (qb == NULL) && qla == qlb && (qa == NULL || memcmp(qa, qb, qla) == 0);
    if (la == lb && memcmp(a, b, la) == 0)
        return qa != NULL && qb != NULL && query_versions(qa, qla, qb, qlb);
    if (!same_query)
        return false;
    /* Paths differ: segment by segment, exactly one may differ. */
    size_t i = 0, j = 0;
    int diffs = 0;
    for (;;) {
        size_t ei = i, ej = j;
        while (ei < la && a[ei] != '/')
            ei++;
        while (ej < lb && b[ej] != '/')
            ej++;
        if (ei - i != ej - j || memcmp(a + i, b + j, ei - i) != 0) {
            if (++diffs > 1 || !segment_versions(a + i, ei - i, b + j, ej - j))
                return false;
        }
        if ((ei == la) != (ej == lb))
            return false;
        if (ei == la)
            break;
        i = ei + 1;
        j = ej + 1;
    }
    return diffs == 1;
}
