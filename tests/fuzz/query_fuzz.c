/*
 * libFuzzer target for proxy/http/query.c, which reads the query strings
 * of admin requests (?page=...&asset=...). Input: a parameter name, a NUL,
 * the query string (the name is also looked up among the admin API's own).
 *
 * Properties: a found value decodes to no more bytes than it had raw; a
 * value decodes the same wherever it stands in the query; a count parses
 * only from decimal digits.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

static void check_name(const char *q, const char *name)
{
    char *v = query_get(q, name);
    if (v != NULL) {
        if (strlen(v) > strlen(q))
            abort();
        /* the same parameter first in a query of its own decodes the same */
        const char *p = q;
        size_t nl = strlen(name);
        for (;;) {
            if (strncmp(p, name, nl) == 0 && (p[nl] == '=' || p[nl] == '&' || p[nl] == '\0'))
                break;
            p = strchr(p, '&');
            if (p == NULL)
                abort(); /* found by query_get but not here */
            p++;
        }
        size_t plen = strcspn(p, "&");
        char *alone = strndup(p, plen);
        char *w = alone != NULL ? query_get(alone, name) : NULL;
        if (alone != NULL && (w == NULL || strcmp(v, w) != 0))
            abort();
        free(w);
        free(alone);
    }
    size_t n = 0;
    if (query_size(q, name, 7, &n) && v != NULL && v[0] != '\0' &&
        v[strspn(v, "0123456789")] != '\0')
        abort();
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    if (nul == NULL || nul - data > 64)
        return 0;
    char name[65];
    memcpy(name, data, (size_t)(nul - data));
    name[nul - data] = '\0';
    size_t qn = size - (size_t)(nul - data) - 1;
    char *q = malloc(qn + 1);
    if (q == NULL)
        return 0;
    memcpy(q, nul + 1, qn);
    q[qn] = '\0';
    static const char *const names[] = {"page", "asset", "q", "format", "mode", "offset", "limit"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        check_name(q, names[i]);
    if (name[0] != '\0' && strchr(name, '&') == NULL && strchr(name, '=') == NULL)
        check_name(q, name);
    free(q);
    return 0;
}
