/* libFuzzer target for learn/digest.c: decode a cookie value; what decodes is well formed. */
#include <stdint.h>
#include <stdlib.h>

#include "digest.h"
#include "herald/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    digest_t d;
    const char *why = NULL;
    int rc = digest_parse((const char *)data, size, &d, &why);
    if (rc != 0) {
        if (why == NULL && rc != HERALD_ENOMEM)
            abort();
        if (d.v != NULL || d.n != 0)
            abort();
        return 0;
    }
    uint64_t limit = (uint64_t)1 << (d.log2n + d.log2p);
    for (size_t i = 0; i < d.n; i++)
        if (d.v[i] >= limit || (i > 0 && d.v[i] <= d.v[i - 1]))
            abort();
    (void)digest_contains(&d, "https://example.com/a.css", "\"x\"");
    digest_dispose(&d);
    return 0;
}
