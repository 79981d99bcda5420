#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "decode.h"
#include "herald/error.h"
#include "testutil.h"

/* brotliCompressSync (Node's zlib) of BR_TEXT, made once; only the decoder is linked. */
static const char BR_TEXT[] =
    "<html><head><link rel=stylesheet href=/s.css></head><body>brotli body</body></html>";
static const unsigned char BR_DATA[] = {
    0x1b, 0x52, 0x00, 0xe8, 0x8d, 0xd4, 0x61, 0xad, 0xb5, 0x31, 0x72, 0x1b, 0xdb, 0x47, 0x7d, 0xc3,
    0x27, 0x08, 0x42, 0x25, 0xc8, 0x0b, 0x1d, 0x38, 0xe4, 0x80, 0xbd, 0xed, 0x22, 0x11, 0x46, 0x2d,
    0xa0, 0x3c, 0x65, 0xeb, 0x62, 0x94, 0x6c, 0x68, 0xda, 0xe3, 0x79, 0x9c, 0x21, 0xfe, 0x3c, 0x12,
    0x6a, 0x23, 0x32, 0x64, 0xf6, 0x7d, 0xbe, 0xc0, 0x08, 0xf9, 0x76, 0x03, 0x43, 0x00};
/* 10 MiB of 'a', brotli-compressed to 27 bytes: a bomb. */
static const unsigned char BR_BOMB[] = {0xcb, 0xff, 0xff, 0x3f, 0xf8, 0x25, 0xc2, 0xe2, 0xb1,
                                        0x40, 0x20, 0xf7, 0xfe, 0x2f, 0xff, 0xff, 0x3f, 0xf0,
                                        0x4b, 0x00, 0xc4, 0x61, 0x11, 0x80, 0xee, 0xfd, 0x07};

enum wrap { WRAP_GZIP, WRAP_ZLIB, WRAP_RAW };

/* Compress with zlib in the given wrapping; *out is malloc'd. */
static size_t compress_with(enum wrap w, const void *in, size_t len, unsigned char **out)
{
    z_stream z = {0};
    int bits = w == WRAP_GZIP ? 31 : w == WRAP_ZLIB ? 15 : -15;
    if (deflateInit2(&z, 9, Z_DEFLATED, bits, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    size_t cap = deflateBound(&z, (uLong)len) + 64;
    *out = malloc(cap);
    if (*out == NULL)
        return 0;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = *out;
    z.avail_out = (uInt)cap;
    int r = deflate(&z, Z_FINISH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    return r == Z_STREAM_END ? n : 0;
}

/* Decode in chunks of `step` bytes from a guarded copy; check the text and the result. */
static void decode_is(const char *enc, const void *data, size_t len, size_t step, int want_rc,
                      const char *want)
{
    decode_t *d = NULL;
    CHECK_INTEQ(decode_create(enc, 1 << 20, &d), 0);
    if (d == NULL)
        return;
    testutil_guard_t g;
    const char *p = testutil_guard(&g, data, len);
    CHECK(p != NULL);
    int rc = 0;
    for (size_t off = 0; p != NULL && off < len && rc == 0; off += step)
        rc = decode_feed(d, p + off, len - off < step ? len - off : step);
    if (rc == 0)
        rc = decode_finish(d);
    CHECK_INTEQ(rc, want_rc);
    size_t n = 0;
    const char *out = decode_data(d, &n);
    if (want != NULL) {
        CHECK_INTEQ(n, strlen(want));
        CHECK(n == strlen(want) && memcmp(out, want, n) == 0);
        CHECK(out[n] == '\0');
    }
    if (want_rc != 0)
        CHECK(decode_reason(d) != NULL);
    testutil_guard_free(&g);
    decode_destroy(d);
}

static void test_round_trips(void)
{
    static const char text[] = "<!doctype html><html><head><link rel=stylesheet href=/a.css>"
                               "<script src=/app.js></script></head><body>hello hello hello"
                               "</body></html>";
    size_t tl = strlen(text);
    for (int w = WRAP_GZIP; w <= WRAP_RAW; w++) {
        unsigned char *c = NULL;
        size_t n = compress_with((enum wrap)w, text, tl, &c);
        CHECK(n > 0);
        const char *enc = w == WRAP_GZIP ? "gzip" : "deflate";
        for (size_t step = 1; step <= n; step = step * 3 + 1)
            decode_is(enc, c, n, step, 0, text);
        if (w == WRAP_GZIP)
            decode_is(" X-GZip ", c, n, n, 0, text);
        /* Truncated anywhere: an error, never a crash. */
        decode_is(enc, c, n - 1, n, HERALD_ETRUNCATED, NULL);
        decode_is(enc, c, 1, 1, HERALD_ETRUNCATED, NULL);
        /* Trailing bytes after the stream end are ignored. */
        unsigned char *t = malloc(n + 3);
        CHECK(t != NULL);
        if (t != NULL) {
            memcpy(t, c, n);
            memcpy(t + n, "xyz", 3);
            decode_is(enc, t, n + 3, 5, 0, text);
            free(t);
        }
        free(c);
    }
    for (size_t step = 1; step <= sizeof BR_DATA; step *= 2)
        decode_is("br", BR_DATA, sizeof BR_DATA, step, 0, BR_TEXT);
    decode_is("br", BR_DATA, sizeof BR_DATA - 1, 7, HERALD_ETRUNCATED, NULL);
    decode_is("identity", "plain", 5, 2, 0, "plain");
    decode_is(NULL, "plain", 5, 5, 0, "plain");
    decode_is("", "", 0, 1, 0, "");
}

static void test_corrupt(void)
{
    static const char text[] = "some text some text some text";
    unsigned char *c = NULL;
    size_t n = compress_with(WRAP_GZIP, text, strlen(text), &c);
    CHECK(n > 12);
    if (n > 12) {
        c[0] ^= 0xff; /* bad magic */
        decode_is("gzip", c, n, n, HERALD_EPARSE, NULL);
        c[0] ^= 0xff;
        c[n - 5] ^= 0x55; /* bad CRC/length trailer */
        decode_is("gzip", c, n, n, HERALD_EPARSE, NULL);
    }
    free(c);
    decode_is("gzip", "not gzip at all", 15, 4, HERALD_EPARSE, NULL);
    decode_is("br", "\xff\xff\xff\xff\xff\xff", 6, 6, HERALD_EPARSE, NULL);
    decode_is("deflate", "\xff\xff\xff\xff", 4, 1, HERALD_EPARSE, NULL);
}

static void test_bombs(void)
{
    size_t big = 10u << 20;
    char *zeros = calloc(1, big);
    CHECK(zeros != NULL);
    if (zeros == NULL)
        return;
    unsigned char *c = NULL;
    size_t n = compress_with(WRAP_GZIP, zeros, big, &c);
    free(zeros);
    CHECK(n > 0 && n < 64 * 1024);
    decode_t *d = NULL;
    CHECK_INTEQ(decode_create("gzip", 1 << 20, &d), 0);
    if (d != NULL) {
        CHECK_INTEQ(decode_feed(d, c, n), HERALD_ETOOBIG);
        CHECK(decode_total(d) <= 1 << 20);
        CHECK_INTEQ(decode_feed(d, c, n), HERALD_ETOOBIG); /* sticky */
        CHECK_INTEQ(decode_finish(d), HERALD_ETOOBIG);
        CHECK_STREQ(decode_reason(d), "decoded body larger than the cap");
        decode_destroy(d);
    }
    /* The same bomb compressed twice, as "gzip, gzip". */
    unsigned char *cc = NULL;
    size_t nn = compress_with(WRAP_GZIP, c, n, &cc);
    CHECK_INTEQ(decode_create("gzip, gzip", 1 << 20, &d), 0);
    if (d != NULL) {
        CHECK_INTEQ(decode_feed(d, cc, nn), HERALD_ETOOBIG);
        decode_destroy(d);
    }
    free(cc);
    free(c);
    CHECK_INTEQ(decode_create("br", 4096, &d), 0);
    if (d != NULL) {
        CHECK_INTEQ(decode_feed(d, BR_BOMB, sizeof BR_BOMB), HERALD_ETOOBIG);
        decode_destroy(d);
    }
    /* Under a big enough cap the same input decodes in full. */
    CHECK_INTEQ(decode_create("br", 10u << 20, &d), 0);
    if (d != NULL) {
        CHECK_INTEQ(decode_feed(d, BR_BOMB, sizeof BR_BOMB), 0);
        CHECK_INTEQ(decode_finish(d), 0);
        CHECK_INTEQ(decode_total(d), 10u << 20);
        decode_destroy(d);
    }
}

static void test_stacked_and_api(void)
{
    /* "br, gzip": brotli first, then gzip; undone in reverse. */
    unsigned char *c = NULL;
    size_t n = compress_with(WRAP_GZIP, BR_DATA, sizeof BR_DATA, &c);
    decode_is("br, gzip", c, n, 3, 0, BR_TEXT);
    decode_is("br,identity ,gzip", c, n, 100, 0, BR_TEXT);
    free(c);

    decode_t *d = NULL;
    CHECK_INTEQ(decode_create("compress", 100, &d), HERALD_EUNSUPPORTED);
    CHECK_INTEQ(decode_create("zstd", 100, &d), HERALD_EUNSUPPORTED);
    CHECK_INTEQ(decode_create("gzip, gzip, gzip, gzip, gzip", 100, &d), HERALD_EUNSUPPORTED);
    CHECK(d == NULL);

    /* Consuming keeps memory to what is unread while the cap counts everything. */
    CHECK_INTEQ(decode_create(NULL, 10, &d), 0);
    if (d != NULL) {
        size_t len;
        CHECK_INTEQ(decode_feed(d, "abcdef", 6), 0);
        decode_consume(d, 4);
        CHECK_STREQ(decode_data(d, &len), "ef");
        CHECK_INTEQ(len, 2);
        CHECK_INTEQ(decode_feed(d, "ghij", 4), 0);
        CHECK_STREQ(decode_data(d, &len), "efghij");
        decode_consume(d, 100);
        CHECK_STREQ(decode_data(d, &len), "");
        CHECK_INTEQ(decode_feed(d, "k", 1), HERALD_ETOOBIG);
        decode_destroy(d);
    }
    decode_destroy(NULL);
}

int main(void)
{
    test_round_trips();
    test_corrupt();
    test_bombs();
    test_stacked_and_api();
    return TESTUTIL_SUMMARY();
}
