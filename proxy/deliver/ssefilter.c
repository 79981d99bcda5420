/* The SSE push comment filter: see ssefilter.h. */
#include "ssefilter.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

enum { MARKER_LEN = sizeof(SSEFILTER_MARKER) - 1 };

void ssefilter_init(ssefilter_t *f)
{
    memset(f, 0, sizeof(*f));
}

void ssefilter_dispose(ssefilter_t *f)
{
    free(f->carry);
    free(f->buf);
    memset(f, 0, sizeof(*f));
}

/* Whether p[0..n) could be the start of a push comment line. */
static bool marker_prefix(const uint8_t *p, size_t n)
{
    return memcmp(p, SSEFILTER_MARKER, n < MARKER_LEN ? n : MARKER_LEN) == 0;
}

static void comment(const uint8_t *p, size_t n, ssefilter_push_cb cb, void *ctx)
{
    /* A lone CR also ends an event-stream line: the path stops there (the
     * rest of such a line is dropped with the comment). */
    const uint8_t *cr = memchr(p, '\r', n);
    if (cr != NULL)
        n = (size_t)(cr - p);
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' '))
        n--;
    cb(ctx, (const char *)p, n);
}

const uint8_t *ssefilter_run(ssefilter_t *f, const uint8_t *data, size_t len, ssefilter_push_cb cb,
                             void *ctx, size_t *out_len)
{
    /* Work in place on held bytes + data: the output never outgrows it. */
    size_t n = f->carry_len + len;
    if (n > f->cap || f->buf == NULL) { /* never NULL: callers memcpy from it */
        f->cap = n > 128 ? n * 2 : 256;
        f->buf = xrealloc(f->buf, f->cap);
    }
    uint8_t *buf = f->buf;
    if (f->carry_len > 0)
        memcpy(buf, f->carry, f->carry_len);
    if (len > 0)
        memcpy(buf + f->carry_len, data, len); /* data is the caller's: copied */
    f->carry_len = 0;
    size_t r = 0, w = 0;
    if (f->midline) { /* the rest of a line already partly forwarded */
        uint8_t *nl = memchr(buf, '\n', n);
        r = w = nl ? (size_t)(nl - buf) + 1 : n;
        f->midline = nl == NULL;
    }
    while (r < n) {
        uint8_t *nl = memchr(buf + r, '\n', n - r);
        if (nl == NULL) {
            size_t rest = n - r;
            if (marker_prefix(buf + r, rest) && rest <= SSEFILTER_CARRY_MAX) {
                f->carry = xrealloc(f->carry, rest);
                memcpy(f->carry, buf + r, rest);
                f->carry_len = rest;
            } else {
                memmove(buf + w, buf + r, rest);
                w += rest;
                f->midline = true;
            }
            break;
        }
        size_t l = (size_t)(nl - (buf + r)) + 1;
        if (l >= MARKER_LEN && memcmp(buf + r, SSEFILTER_MARKER, MARKER_LEN) == 0) {
            comment(buf + r + MARKER_LEN, l - MARKER_LEN, cb, ctx);
        } else {
            memmove(buf + w, buf + r, l);
            w += l;
        }
        r += l;
    }
    *out_len = w;
    return buf;
}
