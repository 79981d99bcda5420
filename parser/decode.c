/*
 * Streaming content decoding (zlib for gzip/deflate, libbrotlidec for br).
 * Stacked codings run as a chain of stages, each passing bounded chunks to
 * the next, so memory stays at one chunk per stage plus the capped output.
 */
#include "decode.h"

#include <brotli/decode.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "herald/error.h"

#define DECODE_MAX_STAGES 4
#define DECODE_CHUNK 8192
/* zlib counts in uInt; larger inputs are fed in slices. */
#define DECODE_ZLIB_SLICE (1u << 30)

typedef enum coding { CODING_GZIP, CODING_DEFLATE, CODING_BR } coding_t;

typedef struct stage {
    coding_t coding;
    bool started; /* the decompressor is set up (deflate waits to sniff 2 bytes) */
    bool done;    /* the compressed stream ended; later bytes are ignored */
    z_stream z;
    BrotliDecoderState *br;
    unsigned char hold[2];
    size_t nhold;
} stage_t;

struct decode {
    stage_t st[DECODE_MAX_STAGES]; /* st[0] sees the body first */
    int nst;
    char *buf;
    size_t off, n, cap; /* unconsumed bytes are buf[off..n) */
    size_t total, max;
    int err;
    const char *reason;
};

static int fail(decode_t *d, int err, const char *reason)
{
    d->err = err;
    d->reason = reason;
    return err;
}

static bool token_is(const char *s, size_t n, const char *want)
{
    size_t wn = strlen(want);
    if (n != wn)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c | 0x20);
        if (c != want[i])
            return false;
    }
    return true;
}

int decode_create(const char *content_encoding, size_t max_out, decode_t **out)
{
    coding_t list[DECODE_MAX_STAGES];
    int n = 0;
    const char *s = content_encoding ? content_encoding : "";
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        const char *e = s;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        size_t len = (size_t)(t - s);
        if (len > 0 && !token_is(s, len, "identity")) {
            coding_t c;
            if (token_is(s, len, "gzip") || token_is(s, len, "x-gzip"))
                c = CODING_GZIP;
            else if (token_is(s, len, "deflate"))
                c = CODING_DEFLATE;
            else if (token_is(s, len, "br"))
                c = CODING_BR;
            else
                return HERALD_EUNSUPPORTED;
            if (n == DECODE_MAX_STAGES)
                return HERALD_EUNSUPPORTED;
            list[n++] = c;
        }
        s = e;
    }

    decode_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return HERALD_ENOMEM;
    d->max = max_out;
    d->cap = 1;
    d->buf = malloc(1);
    if (d->buf == NULL) {
        free(d);
        return HERALD_ENOMEM;
    }
    d->buf[0] = '\0';
    /* The last coding applied is the first one undone. */
    for (int i = 0; i < n; i++) {
        stage_t *st = &d->st[i];
        st->coding = list[n - 1 - i];
        if (st->coding == CODING_BR) {
            st->br = BrotliDecoderCreateInstance(NULL, NULL, NULL);
            if (st->br == NULL) {
                d->nst = i;
                decode_destroy(d);
                return HERALD_ENOMEM;
            }
            st->started = true;
        }
    }
    d->nst = n;
    *out = d;
    return 0;
}

/* The end of the chain: append to the caller-visible buffer, within the cap. */
static int sink(decode_t *d, const unsigned char *in, size_t len)
{
    if (len > d->max - d->total)
        return fail(d, HERALD_ETOOBIG, "decoded body larger than the cap");
    d->total += len;
    if (d->off > 0 && d->cap - d->n <= len) {
        memmove(d->buf, d->buf + d->off, d->n - d->off);
        d->n -= d->off;
        d->off = 0;
    }
    if (d->cap - d->n <= len) {
        size_t cap = d->cap < 4096 ? 4096 : d->cap;
        while (cap - d->n <= len) {
            if (cap > SIZE_MAX / 2)
                return fail(d, HERALD_ENOMEM, "out of memory");
            cap *= 2;
        }
        char *b = realloc(d->buf, cap);
        if (b == NULL)
            return fail(d, HERALD_ENOMEM, "out of memory");
        d->buf = b;
        d->cap = cap;
    }
    memcpy(d->buf + d->n, in, len);
    d->n += len;
    d->buf[d->n] = '\0';
    return 0;
}

static int run(decode_t *d, int i, const unsigned char *in, size_t len);

/*
 * Start a zlib stage. For deflate, the first two bytes tell a zlib header
 * (CM 8, window <= 32K, FCHECK) from raw deflate, which some servers send.
 */
static int zlib_start(decode_t *d, stage_t *st)
{
    int bits = 15 + 16;
    if (st->coding == CODING_DEFLATE) {
        unsigned b0 = st->hold[0], b1 = st->hold[1];
        bool zlib = (b0 & 0x0f) == 8 && (b0 >> 4) <= 7 && ((b0 << 8) | b1) % 31 == 0;
        bits = zlib ? 15 : -15;
    }
    memset(&st->z, 0, sizeof st->z);
    int r = inflateInit2(&st->z, bits);
    if (r != Z_OK)
        return fail(d, r == Z_MEM_ERROR ? HERALD_ENOMEM : HERALD_EINTERNAL, "cannot start zlib");
    st->started = true;
    return 0;
}

static int zlib_run(decode_t *d, int i, const unsigned char *in, size_t len)
{
    stage_t *st = &d->st[i];
    unsigned char out[DECODE_CHUNK];
    while (len > 0 && !st->done) {
        uInt slice = len > DECODE_ZLIB_SLICE ? DECODE_ZLIB_SLICE : (uInt)len;
        st->z.next_in = (Bytef *)(uintptr_t)in;
        st->z.avail_in = slice;
        do {
            st->z.next_out = out;
            st->z.avail_out = sizeof out;
            int r = inflate(&st->z, Z_NO_FLUSH);
            if (r == Z_DATA_ERROR || r == Z_NEED_DICT || r == Z_STREAM_ERROR)
                return fail(d, HERALD_EPARSE,
                            st->coding == CODING_GZIP ? "corrupt gzip data"
                                                      : "corrupt deflate data");
            if (r == Z_MEM_ERROR)
                return fail(d, HERALD_ENOMEM, "out of memory");
            size_t produced = sizeof out - st->z.avail_out;
            if (produced > 0) {
                int rc = run(d, i + 1, out, produced);
                if (rc < 0)
                    return rc;
            }
            if (r == Z_STREAM_END)
                st->done = true;
            if (r == Z_BUF_ERROR)
                break; /* no progress possible: needs more input */
        } while (!st->done && (st->z.avail_in > 0 || st->z.avail_out == 0));
        in += slice;
        len -= slice;
    }
    return 0;
}

static int br_run(decode_t *d, int i, const unsigned char *in, size_t len)
{
    stage_t *st = &d->st[i];
    unsigned char out[DECODE_CHUNK];
    size_t avail_in = len;
    const uint8_t *next_in = in;
    while (!st->done) {
        size_t avail_out = sizeof out;
        uint8_t *next_out = out;
        BrotliDecoderResult r =
            BrotliDecoderDecompressStream(st->br, &avail_in, &next_in, &avail_out, &next_out, NULL);
        size_t produced = sizeof out - avail_out;
        if (produced > 0) {
            int rc = run(d, i + 1, out, produced);
            if (rc < 0)
                return rc;
        }
        if (r == BROTLI_DECODER_RESULT_SUCCESS) {
            st->done = true;
        } else if (r == BROTLI_DECODER_RESULT_ERROR) {
            int code = BrotliDecoderGetErrorCode(st->br);
            /* -21..-30 are BROTLI_DECODER_ERROR_ALLOC_* */
            if (code <= -21 && code >= -30)
                return fail(d, HERALD_ENOMEM, "out of memory");
            return fail(d, HERALD_EPARSE, "corrupt brotli data");
        } else if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) {
            break;
        }
    }
    return 0;
}

static int run(decode_t *d, int i, const unsigned char *in, size_t len)
{
    if (i == d->nst)
        return sink(d, in, len);
    stage_t *st = &d->st[i];
    if (st->done || len == 0)
        return 0;
    if (st->coding == CODING_BR)
        return br_run(d, i, in, len);
    if (!st->started) {
        size_t need = st->coding == CODING_DEFLATE ? 2 - st->nhold : 0;
        size_t take = need < len ? need : len;
        memcpy(st->hold + st->nhold, in, take);
        st->nhold += take;
        in += take;
        len -= take;
        if (st->coding == CODING_DEFLATE && st->nhold < 2)
            return 0;
        int rc = zlib_start(d, st);
        if (rc < 0)
            return rc;
        if (st->nhold > 0 && (rc = zlib_run(d, i, st->hold, st->nhold)) < 0)
            return rc;
    }
    return zlib_run(d, i, in, len);
}

int decode_feed(decode_t *d, const void *in, size_t len)
{
    if (d->err)
        return d->err;
    return run(d, 0, in, len);
}

int decode_finish(decode_t *d)
{
    if (d->err)
        return d->err;
    for (int i = 0; i < d->nst; i++)
        if (!d->st[i].done) {
            d->reason = "compressed stream ended early";
            return HERALD_ETRUNCATED;
        }
    return 0;
}

const char *decode_data(const decode_t *d, size_t *len)
{
    *len = d->n - d->off;
    return d->buf + d->off;
}

void decode_consume(decode_t *d, size_t n)
{
    size_t have = d->n - d->off;
    d->off += n < have ? n : have;
    if (d->off == d->n) {
        d->off = d->n = 0;
        d->buf[0] = '\0';
    }
}

size_t decode_total(const decode_t *d)
{
    return d->total;
}

const char *decode_reason(const decode_t *d)
{
    return d->reason;
}

void decode_destroy(decode_t *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i < d->nst; i++) {
        stage_t *st = &d->st[i];
        if (st->br != NULL)
            BrotliDecoderDestroyInstance(st->br);
        else if (st->started)
            inflateEnd(&st->z);
    }
    free(d->buf);
    free(d);
}
