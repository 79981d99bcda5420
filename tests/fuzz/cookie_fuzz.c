/*
 * libFuzzer target for the Cookie header parser of proxy/http/headers.c
 * (headers_cookie_value, which learning_cookie_value uses to find the cache
 * digest cookie in a request). Input: one byte giving the cookie name's
 * length, the name, then the Cookie header value.
 *
 * Properties, against a reference reading of RFC 6265 §4.2.1 ("; "-joined
 * name=value pairs, spaces and stray ';' between pairs tolerated): the
 * result is the value of the first pair with that name, lies inside the
 * input, and holds no ';'.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"

/* Reference: the first pair "name=..." after any run of ' ' and ';'. */
static const char *ref(const char *v, size_t n, const char *name, size_t *len)
{
    size_t nl = strlen(name), i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == ';'))
            i++;
        size_t j = i;
        while (j < n && v[j] != ';')
            j++;
        if (j - i >= nl + 1 && memcmp(v + i, name, nl) == 0 && v[i + nl] == '=') {
            *len = j - i - nl - 1;
            return v + i + nl + 1;
        }
        i = j;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t nl = data[0] % 24;
    if (size - 1 < nl)
        return 0;
    char name[24];
    memcpy(name, data + 1, nl);
    name[nl] = '\0';
    /* a configured cookie name: a token (no NUL, '=', ';', space) */
    if (strlen(name) != nl || strpbrk(name, "=; ") != NULL)
        return 0;
    size_t n = size - 1 - nl;
    /* the value in a buffer of its own, so an over-read is caught */
    char *v = malloc(n ? n : 1);
    if (v == NULL)
        return 0;
    memcpy(v, data + 1 + nl, n);
    size_t len = 0, rlen = 0;
    const char *got = headers_cookie_value(v, n, name, &len);
    const char *want = ref(v, n, name, &rlen);
    if (got != want || (got != NULL && len != rlen))
        abort();
    if (got != NULL && (got < v || got + len > v + n || memchr(got, ';', len) != NULL))
        abort();
    free(v);
    return 0;
}
