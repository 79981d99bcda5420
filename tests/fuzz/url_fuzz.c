/* libFuzzer target for parser/url.c: resolve, normalise (fast and slow paths agree) and origin on
 * arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

static const char *BASE = "https://ex.com/dir/page.html?q=1";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = NULL;
    if (url_resolve(BASE, (const char *)data, size, &out) == 0) {
        /* A resolved URL is an absolute http(s) URL: it normalises, and
         * normalising is idempotent. */
        char *n1 = NULL, *n2 = NULL;
        if (url_normalize(out, &n1) != 0)
            abort();
        if (url_normalize(n1, &n2) != 0 || strcmp(n1, n2) != 0)
            abort();
        free(n1);
        free(n2);
        (void)url_same_origin(out, BASE);
    }
    free(out);

    /* The input as a base or an absolute URL (NUL-terminated copy). */
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    out = NULL;
    (void)url_resolve(s, "x/../y?z", 8, &out);
    free(out);
    /* The shortcut for URLs that are keys already agrees with the full path. */
    out = NULL;
    char *slow = NULL;
    int rc = url_normalize(s, &out), rs = url_normalize_slow(s, &slow);
    if (rc != rs || (rc == 0 && strcmp(out, slow) != 0))
        abort();
    free(out);
    free(slow);
    out = NULL;
    (void)url_origin(s, &out);
    free(out);
    free(s);
    return 0;
}
