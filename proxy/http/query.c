/*
 * Query strings; see query.h.
 */
#include "query.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into a malloc'd string ('+' is a space, as in forms). */
static char *pct_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (s[i] == '+') {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

char *query_get(const char *q, const char *name)
{
    size_t nlen = strlen(name);
    while (q != NULL && *q != '\0') {
        const char *amp = strchr(q, '&');
        size_t plen = amp != NULL ? (size_t)(amp - q) : strlen(q);
        if (plen >= nlen && strncmp(q, name, nlen) == 0 && (plen == nlen || q[nlen] == '='))
            return plen == nlen ? xstrdup("") : pct_decode(q + nlen + 1, plen - nlen - 1);
        q = amp != NULL ? amp + 1 : NULL;
    }
    return NULL;
}

bool query_size(const char *q, const char *name, size_t def, size_t *out)
{
    char *v = query_get(q, name);
    if (v == NULL || v[0] == '\0') {
        free(v);
        *out = def;
        return true;
    }
    /* digits only: strtoull alone would take " -1" as a huge count */
    bool ok = v[strspn(v, "0123456789")] == '\0';
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    ok = ok && *end == '\0' && errno == 0;
    free(v);
    *out = (size_t)n;
    return ok;
}
