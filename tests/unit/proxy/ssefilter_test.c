/*
 * ssefilter.c: ": herald-push PATH" comment lines are removed and reported
 * wherever the chunk boundaries fall; every other byte passes unchanged and
 * in order.
 */
#include "ssefilter.h"

#include <stdio.h>
#include <string.h>

#include "testutil.h"

typedef struct seen {
    char out[1024];
    size_t outlen;
    char pushes[256];
} seen_t;

static void on_push(void *ctx, const char *path, size_t len)
{
    seen_t *s = ctx;
    strncat(s->pushes, path, len);
    strcat(s->pushes, "|");
}

/* Feed `in` cut into chunks at positions cut1 and cut2 (cut1 <= cut2). */
static void feed(const char *in, size_t cut1, size_t cut2, seen_t *s)
{
    ssefilter_t f;
    ssefilter_init(&f);
    memset(s, 0, sizeof(*s));
    size_t n = strlen(in), cuts[] = {0, cut1, cut2, n};
    for (int i = 0; i < 3; i++) {
        size_t outlen;
        const uint8_t *o = ssefilter_run(&f, (const uint8_t *)in + cuts[i], cuts[i + 1] - cuts[i],
                                         on_push, s, &outlen);
        memcpy(s->out + s->outlen, o, outlen);
        s->outlen += outlen;
    }
    s->out[s->outlen] = '\0';
    ssefilter_dispose(&f);
}

int main(void)
{
    const char *in = "id: 0\nevent: tick\ndata: a\n\n"
                     ": herald-push /css/item.css\r\n"
                     ": a plain comment\n"
                     "data: : herald-push /not-at-line-start\n\n"
                     ": herald-push /js/app.js\n"
                     "id: 1\ndata: b\n\n";
    const char *want = "id: 0\nevent: tick\ndata: a\n\n"
                       ": a plain comment\n"
                       "data: : herald-push /not-at-line-start\n\n"
                       "id: 1\ndata: b\n\n";
    size_t n = strlen(in);
    int bad = 0;
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            seen_t s;
            feed(in, a, b, &s);
            if (strcmp(s.out, want) != 0 || strcmp(s.pushes, "/css/item.css|/js/app.js|") != 0) {
                if (bad++ < 3)
                    fprintf(stderr, "cuts %zu %zu: out %s pushes %s\n", a, b, s.out, s.pushes);
            }
        }
    }
    CHECK(bad == 0);

    /* A partial comment held back at the end of the stream is dropped, not forwarded. */
    seen_t s;
    feed("data: x\n\n: herald-pu", 3, 12, &s);
    CHECK_STREQ(s.out, "data: x\n\n");
    CHECK_STREQ(s.pushes, "");
    return TESTUTIL_SUMMARY();
}
