/*
 * Out-of-memory paths of url, css, link and decode: linked with
 * -Wl,--wrap=malloc,realloc,calloc so the k-th allocation made by herald's
 * own objects fails, for every k until the operation succeeds. Each failing
 * run must return HERALD_ENOMEM and leak nothing (ASan's leak check at exit).
 * Allocations inside shared libraries (uriparser, zlib, brotli) are not
 * wrapped; their failures map to the same code by construction.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "css.h"
#include "decode.h"
#include "herald/error.h"
#include "link.h"
#include "url.h"
#include "nomem.h"
#include "testutil.h"

static int op_url(void)
{
    char *a = NULL, *b = NULL, *c = NULL;
    const char *ref = " a b/../c\xc3\xa9.png?x#f";
    int rc = url_resolve("https://ex.com/d/p.html", ref, strlen(ref), &a);
    if (rc == 0)
        rc = url_normalize(a, &b);
    if (rc == 0)
        rc = url_origin(b, &c);
    free(a);
    free(b);
    free(c);
    return rc;
}

static int ignore_ref(void *arg, const css_ref_t *ref)
{
    (void)arg;
    (void)ref;
    return 0;
}

static int op_css(void)
{
    static const char css[] = "@import url(\"a.css\") screen;"
                              "@font-face{src:url(f.woff2) format(\"woff2\"), url(\\66.ttf)}"
                              "a{b:url(\\61 .png) image-set('i.png' 1x)}";
    return css_scan(css, sizeof css - 1, "https://ex.com/css/s.css", ignore_ref, NULL);
}

static int op_link(void)
{
    static const char v[] = "</a.css>; rel=preload; as=style; title=\"x\\\"y\", "
                            "<f.woff2>; rel=\"preload\"; as=font; type=\"font/woff2\"; "
                            "crossorigin; media=\"screen\"; anchor=\"#a\", </m.js>; rel=x";
    link_list_t l = {0};
    int rc = link_parse(v, sizeof v - 1, "https://ex.com/", &l, NULL);
    char *out = NULL;
    if (rc == 0)
        rc = link_format_list(l.v, l.n < 2 ? l.n : 2, "https://ex.com/", &out);
    free(out);
    link_list_dispose(&l);
    return rc;
}

static unsigned char zdata[512]; /* zlib-wrapped, as "deflate" may be */
static size_t zdata_len;

static int op_decode(void)
{
    decode_t *d = NULL;
    int rc = decode_create("deflate", 1 << 20, &d);
    if (rc < 0)
        return rc;
    rc = decode_feed(d, zdata, zdata_len);
    if (rc == 0)
        rc = decode_finish(d);
    decode_destroy(d);
    return rc;
}

int main(void)
{
    static char text[6000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + (i * 7) % 26);
    uLongf len = sizeof zdata;
    CHECK(compress2(zdata, &len, (const Bytef *)text, sizeof text, 9) == Z_OK);
    zdata_len = len;

    nomem_exhaust("url", op_url, 10000);
    nomem_exhaust("css", op_css, 10000);
    nomem_exhaust("link", op_link, 10000);
    nomem_exhaust("decode", op_decode, 10000);
    return TESTUTIL_SUMMARY();
}
