#include <stdlib.h>
#include <string.h>

#include "css.h"
#include "herald/error.h"
#include "testutil.h"

static const char *BASE = "https://ex.com/css/site.css";

/* The references found, one per line: "kind url [media=...] [format=...]". */
typedef struct found {
    char text[4096];
    size_t n;
    int stop_after; /* return 42 from the callback after this many refs; 0: never */
    int count;
} found_t;

static int collect(void *arg, const css_ref_t *ref)
{
    found_t *f = arg;
    static const char *kinds[] = {"import", "font", "image"};
    int w = snprintf(f->text + f->n, sizeof f->text - f->n, "%s%s %s%s%s%s%s", f->n ? "\n" : "",
                     kinds[ref->kind], ref->url, ref->media ? " media=" : "",
                     ref->media ? ref->media : "", ref->format ? " format=" : "",
                     ref->format ? ref->format : "");
    if (w > 0 && (size_t)w < sizeof f->text - f->n)
        f->n += (size_t)w;
    f->count++;
    return f->stop_after && f->count >= f->stop_after ? 42 : 0;
}

/* Scan css (from a guarded page, so over-reads crash) and compare the refs. */
static void scan_is(const char *css, const char *want)
{
    found_t f = {.n = 0};
    testutil_guard_t g;
    size_t len = strlen(css);
    const char *p = testutil_guard(&g, css, len);
    CHECK(p != NULL);
    if (p == NULL)
        return;
    CHECK_INTEQ(css_scan(p, len, BASE, collect, &f), 0);
    CHECK_STREQ(f.text, want);
    if (strcmp(f.text, want) != 0)
        fprintf(stderr, "  css was: %s\n", css);
    testutil_guard_free(&g);
}

static void test_urls(void)
{
    scan_is("a{background:url(a.png)}", "image https://ex.com/css/a.png");
    scan_is("a{background:URL(up.png)}", "image https://ex.com/css/up.png");
    scan_is("a{b:url( \"q.png\" )}", "image https://ex.com/css/q.png");
    scan_is("a{b:url('s.png')}", "image https://ex.com/css/s.png");
    scan_is("a{b:url(  sp.png  )}", "image https://ex.com/css/sp.png");
    scan_is(
        "a{b:url(/abs.png) url(//cdn.ex/c.png) url(../up.png)}",
        "image https://ex.com/abs.png\nimage https://cdn.ex/c.png\nimage https://ex.com/up.png");
    /* Comments are not recognised inside an unquoted url token (§4.3.6). */
    scan_is("a{b:url(/*c*/x.png)}", "image https://ex.com/*c*/x.png");
    scan_is("a{b:/*url(no.png)*/url(yes.png)}", "image https://ex.com/css/yes.png");
    scan_is("a{b:url(\"it\\\"s.png\")}", "image https://ex.com/css/it%22s.png");
    scan_is("a{b:url('it\\'s.png')}", "image https://ex.com/css/it's.png");
    /* Escapes: hex with its whitespace, in urls and in the function name. */
    scan_is("a{b:url(\\61 .png)}", "image https://ex.com/css/a.png");
    scan_is("a{b:\\75 rl(esc.png)}", "image https://ex.com/css/esc.png");
    scan_is("a{b:url(\\(paren\\).png)}", "image https://ex.com/css/(paren).png");
    scan_is("a{b:url(\"line\\\ncont.png\")}", "image https://ex.com/css/linecont.png");
    scan_is("a{b:url(\\0 .png)}", "image https://ex.com/css/%EF%BF%BD.png");
    /* Bad urls are skipped and scanning recovers after the ')'. */
    scan_is("a{b:url(a\"b) x url(ok.png)}", "image https://ex.com/css/ok.png");
    scan_is("a{b:url(a b) url(ok2.png)}", "image https://ex.com/css/ok2.png");
    scan_is("a{b:url(a(b) url(ok3.png)}", "image https://ex.com/css/ok3.png");
    scan_is("a{b:url(a\\) b) url(ok4.png)}", "image https://ex.com/css/ok4.png");
    /* Not urls: dimension units, other functions, data:, fragments, empty. */
    scan_is("a{b:1url(no.png) c:xurl(no.png)}", "");
    scan_is("a{b:url(data:image/png;base64,AA==) url(#f) url() url('')}", "");
    scan_is("a{b:\"url(no.png)\"}", "");
    scan_is("a{b:url(javascript:x)}", "");
}

static void test_image_set(void)
{
    scan_is("a{b:image-set(\"i1.png\" 1x, url(i2.png) 2x)}",
            "image https://ex.com/css/i1.png\nimage https://ex.com/css/i2.png");
    scan_is("a{b:-webkit-image-set(\"w.png\" 1x, 'w2.png' 2x)}",
            "image https://ex.com/css/w.png\nimage https://ex.com/css/w2.png");
    scan_is("a{b:image-set(linear-gradient(red, blue) 1x, \"g.png\" type(\"image/png\"))}",
            "image https://ex.com/css/g.png");
}

static void test_import(void)
{
    scan_is("@import \"x.css\" screen and (min-width: 1px);",
            "import https://ex.com/css/x.css media=screen and (min-width: 1px)");
    scan_is("@import url(y.css);", "import https://ex.com/css/y.css");
    scan_is("@import url( \"z.css\" ) print ;", "import https://ex.com/css/z.css media=print");
    scan_is("@IMPORT 'u.css'", "import https://ex.com/css/u.css");
    scan_is("@charset \"utf-8\"; @layer base; @import 'l.css' layer(base);",
            "import https://ex.com/css/l.css media=layer(base)");
    /* After a rule, @import is ignored (and so is an @import with a block). */
    scan_is("a{} @import \"no.css\"; b{c:url(i.png)}", "image https://ex.com/css/i.png");
    scan_is("@import \"no.css\" { }", "");
    scan_is("@import foo \"no.css\";", "");
    scan_is("@media screen { @import \"no.css\"; }", "");
    /* @namespace names a namespace, not a resource. */
    scan_is("@namespace svg url(http://www.w3.org/2000/svg); a{b:url(n.png)}",
            "image https://ex.com/css/n.png");
    scan_is("<!-- @import 'cdo.css'; -->", "import https://ex.com/css/cdo.css");
    scan_is("@namespace x; @import 'late.css';", "");
}

static void test_font_face(void)
{
    scan_is("@font-face{font-family:x;src:url(a.woff2) format(\"woff2\"), url(a.woff) "
            "format(woff);} b{background:url(bg.png)}",
            "font https://ex.com/css/a.woff2 format=woff2\n"
            "font https://ex.com/css/a.woff format=woff\nimage https://ex.com/css/bg.png");
    scan_is("@font-face{src:local(x), url(\"f.ttf\")}", "font https://ex.com/css/f.ttf");
    scan_is("@font-face { SRC : url(f.otf) tech(variations) format(opentype) }",
            "font https://ex.com/css/f.otf format=opentype");
    scan_is("@media screen{@font-face{src:url(f.ttf)} a{b:url(m.png)}}",
            "font https://ex.com/css/f.ttf\nimage https://ex.com/css/m.png");
    /* src outside @font-face, and other descriptors, are not fonts. */
    scan_is("a{src:url(s.png)} @font-face{x-src:url(o.png)}",
            "image https://ex.com/css/s.png\nimage https://ex.com/css/o.png");
    /* A '}' inside parentheses does not close the block (§5.4.8). */
    scan_is("@font-face{src:url(a.ttf) format(\"}\"); } c{d:url(e.png)}",
            "font https://ex.com/css/a.ttf format=}\nimage https://ex.com/css/e.png");
}

static void test_malformed(void)
{
    scan_is("a{b:\"unterminated", "");
    scan_is("a{b:url(eof.png", "image https://ex.com/css/eof.png");
    scan_is("a{b:url(\"eofstr.png", "image https://ex.com/css/eofstr.png");
    scan_is("a{b:\"bad\n; c:url(after.png)}", "image https://ex.com/css/after.png");
    scan_is("a{b:\"bad\nstring\"; c:url(in-string.png)}", ""); /* the 2nd quote opens a string */
    scan_is("/* unterminated comment url(no.png)", "");
    scan_is("a{b:url(x.png)\\", "image https://ex.com/css/x.png");
    scan_is("}}}))]]a{b:url(x.png)}", "image https://ex.com/css/x.png");
    scan_is("@", "");
    scan_is("\\", "");
    scan_is("url(", "");
    scan_is("-", "");
    scan_is("a{b:url(x.png)}}}}{{{url(y.png)",
            "image https://ex.com/css/x.png\nimage https://ex.com/css/y.png");
}

/* Deep nesting is counted, not recursed into. */
static void test_deep(void)
{
    size_t n = 100000;
    char *css = malloc(n * 2 + 64);
    CHECK(css != NULL);
    if (css == NULL)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        css[k++] = i % 2 ? '(' : '{';
    k += (size_t)sprintf(css + k, "url(deep.png)");
    css[k] = '\0';
    found_t f = {.n = 0};
    CHECK_INTEQ(css_scan(css, k, BASE, collect, &f), 0);
    CHECK_STREQ(f.text, "image https://ex.com/css/deep.png");
    free(css);
}

static void test_stop(void)
{
    found_t f = {.n = 0, .stop_after = 1};
    const char *css = "a{b:url(1.png) url(2.png)}";
    CHECK_INTEQ(css_scan(css, strlen(css), BASE, collect, &f), 42);
    CHECK_INTEQ(f.count, 1);
    f = (found_t){.n = 0, .stop_after = 1};
    css = "@import 'a.css'";
    CHECK_INTEQ(css_scan(css, strlen(css), BASE, collect, &f), 42);
    CHECK_INTEQ(css_scan("", 0, BASE, collect, &f), 0);
}

int main(void)
{
    test_urls();
    test_image_set();
    test_import();
    test_font_face();
    test_malformed();
    test_deep();
    test_stop();
    return TESTUTIL_SUMMARY();
}
