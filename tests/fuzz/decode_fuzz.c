/*
 * libFuzzer target for parser/decode.c. The first byte picks the coding and
 * the chunk size, so split feeding is exercised; the rest is the body.
 */
#include <stdint.h>
#include <stdlib.h>

#include "decode.h"
#include "herald/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *codings[] = {"gzip",     "deflate",       "br",          "identity",
                                    "br, gzip", "gzip, deflate", "deflate, br", "gzip, gzip"};
    if (size < 1)
        return 0;
    const char *enc = codings[data[0] & 7];
    size_t step = (size_t)(data[0] >> 3) * 7 + 1;
    data++;
    size--;
    decode_t *d = NULL;
    if (decode_create(enc, 1 << 20, &d) != 0)
        return 0;
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0; off += step)
        rc = decode_feed(d, data + off, size - off < step ? size - off : step);
    if (rc == 0)
        rc = decode_finish(d);
    size_t len;
    const char *out = decode_data(d, &len);
    if (out[len] != '\0' || decode_total(d) > (1 << 20))
        abort();
    if (rc != 0 && decode_reason(d) == NULL)
        abort();
    decode_destroy(d);
    return 0;
}
