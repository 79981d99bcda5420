/*
 * libFuzzer target for cachepolicy_http_date() (learn/cachepolicy.c), which
 * reads the Date, Expires and Last-Modified values of origin responses.
 * Input: the header value (NUL-terminated copy, in a buffer of its own so
 * an over-read is caught).
 *
 * Property: the result equals glibc's own reading, strptime("%a, %d %b %Y
 * %H:%M:%S GMT") then timegm(), which is what the direct IMF-fixdate path
 * must never disagree with.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cachepolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int64_t want =
        strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm) != NULL ? (int64_t)timegm(&tm) : -1;
    if (cachepolicy_http_date(s) != want)
        abort();
    free(s);
    return 0;
}
