/*
 * libFuzzer target for learn/fleetfold's verdict lists (fields x and y of
 * a log entry in Redis, which anyone with access to it can write): the
 * first byte picks the batch's record count, the rest is the list. A
 * rejected list leaves the flags untouched and says why; an accepted one
 * sets only the asked bit, only below the count, and encodes back to the
 * same bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetfold.h"
#include "herald/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t n = data[0];
    uint8_t *flags = calloc(n + 1, 1);
    if (flags == NULL)
        abort();
    char reason[120];
    int rc = fleetfold_verdicts_decode((const char *)data + 1, size - 1, n, FLEETFOLD_VETO_PAGE,
                                       flags, reason, sizeof(reason));
    if (rc != 0) {
        if (reason[0] == '\0' || (rc != HERALD_EPARSE && rc != HERALD_ETOOBIG))
            abort();
        for (size_t i = 0; i <= n; i++)
            if (flags[i] != 0)
                abort();
        free(flags);
        return 0;
    }
    if (flags[n] != 0)
        abort();
    char *again = malloc(size + 1);
    if (again == NULL)
        abort();
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (flags[i] & ~FLEETFOLD_VETO_PAGE)
            abort();
        if (flags[i])
            len += (size_t)snprintf(again + len, size + 1 - len, "%s%zu", len ? "," : "", i);
    }
    if (len != size - 1 || memcmp(again, data + 1, len) != 0)
        abort();
    free(again);
    free(flags);
    return 0;
}
