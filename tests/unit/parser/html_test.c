/*
 * html.c and charset.c: what a DPR-1 browser at 1280x800 fetches, the
 * ignore rules, encodings, and hostile markup within coarse time bounds.
 */
#include "asset.h"
#include "charset.h"
#include "herald/error.h"
#include "html.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define BASE "http://ex.com/dir/page.html"

static asset_list_t scan_n(const char *html, size_t len, const char *charset)
{
    asset_list_t l = {0};
    html_scanner_t *s = html_scanner_create(BASE, charset, 0);
    CHECK(s != NULL);
    /* Feed in small pieces: the scanner must not care where chunks end. */
    for (size_t i = 0; i < len; i += 7)
        CHECK(html_scanner_feed(s, html + i, len - i < 7 ? len - i : 7) == 0);
    CHECK(html_scanner_finish(s, &l) == 0);
    CHECK(html_scanner_finish(s, &l) == HERALD_EINVAL);
    html_scanner_destroy(s);
    return l;
}

static asset_list_t scan(const char *html)
{
    return scan_n(html, strlen(html), NULL);
}

static const asset_t *find(const asset_list_t *l, const char *url)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].url, url) == 0)
            return &l->v[i];
    return NULL;
}

static const asset_t *picked(const asset_list_t *l, const char *url)
{
    const asset_t *a = find(l, url);
    return a && a->pick ? a : NULL;
}

static void test_kinds_and_blocking(void)
{
    asset_list_t l = scan("<!doctype html><HTML><HEAD>"
                          "<LINK REL='Stylesheet' HREF='a.css'>"
                          "<link rel=stylesheet href=p.css media=print>"
                          "<link rel=stylesheet href=w.css media='(min-width: 800px)'>"
                          "<link rel=stylesheet href=n.css media='(max-width: 600px)'>"
                          "<script src=s.js></script><script src=as.js async></script>"
                          "<script src=de.js defer></script><script type=module src=m.js></script>"
                          "<script src=old.js nomodule></script>"
                          "<link rel=modulepreload href=mp.js>"
                          "<link rel=preload as=font href=f.woff2>"
                          "<link rel=preload as=nonsense href=bad.bin>"
                          "<link rel='shortcut icon' href=/i.png><link rel=manifest href=/m.json>"
                          "<link rel=preconnect href='https://CDN.example.com:443/x'>"
                          "</head><body><link rel=stylesheet href=body.css>"
                          "<script src=body.js></script></body>");
    const asset_t *a;
    CHECK((a = picked(&l, "http://ex.com/dir/a.css")) && a->kind == ASSET_STYLE && a->blocking &&
          a->order == 0 && strcmp(a->as, "style") == 0);
    CHECK((a = picked(&l, "http://ex.com/dir/p.css")) && !a->blocking && a->media);
    CHECK((a = picked(&l, "http://ex.com/dir/w.css")) && a->blocking);
    CHECK((a = picked(&l, "http://ex.com/dir/n.css")) && !a->blocking);
    CHECK((a = picked(&l, "http://ex.com/dir/s.js")) && a->kind == ASSET_SCRIPT && a->blocking);
    CHECK((a = picked(&l, "http://ex.com/dir/as.js")) && !a->blocking && a->async);
    CHECK((a = picked(&l, "http://ex.com/dir/de.js")) && !a->blocking && a->defer);
    CHECK((a = picked(&l, "http://ex.com/dir/m.js")) && a->kind == ASSET_MODULE && !a->blocking &&
          a->crossorigin == ASSET_CORS_ANONYMOUS);
    CHECK((a = find(&l, "http://ex.com/dir/old.js")) && !a->pick && a->nomodule);
    CHECK((a = picked(&l, "http://ex.com/dir/mp.js")) && a->kind == ASSET_MODULE &&
          strcmp(a->as, "script") == 0);
    CHECK((a = picked(&l, "http://ex.com/dir/f.woff2")) && a->kind == ASSET_FONT &&
          a->crossorigin == ASSET_CORS_ANONYMOUS);
    CHECK(!find(&l, "http://ex.com/dir/bad.bin"));
    CHECK((a = picked(&l, "http://ex.com/i.png")) && a->kind == ASSET_ICON);
    CHECK((a = picked(&l, "http://ex.com/m.json")) && a->kind == ASSET_MANIFEST);
    CHECK((a = find(&l, "https://cdn.example.com")) && a->kind == ASSET_PRECONNECT);
    CHECK((a = picked(&l, "http://ex.com/dir/body.css")) && !a->blocking);
    CHECK((a = picked(&l, "http://ex.com/dir/body.js")) && !a->blocking);
    for (size_t i = 0; i < l.n; i++)
        CHECK(l.v[i].order == i);
    asset_list_dispose(&l);
}

static void test_crossorigin(void)
{
    asset_list_t l = scan("<script src=a.js crossorigin></script>"
                          "<script src=b.js crossorigin=USE-CREDENTIALS></script>"
                          "<script src=c.js crossorigin=weird></script>"
                          "<script src=d.js></script>"
                          "<script type=module src=e.js crossorigin=use-credentials></script>");
    CHECK(find(&l, "http://ex.com/dir/a.js")->crossorigin == ASSET_CORS_ANONYMOUS);
    CHECK(find(&l, "http://ex.com/dir/b.js")->crossorigin == ASSET_CORS_CREDENTIALS);
    CHECK(find(&l, "http://ex.com/dir/c.js")->crossorigin == ASSET_CORS_ANONYMOUS);
    CHECK(find(&l, "http://ex.com/dir/d.js")->crossorigin == ASSET_CORS_NONE);
    CHECK(find(&l, "http://ex.com/dir/e.js")->crossorigin == ASSET_CORS_CREDENTIALS);
    asset_list_dispose(&l);
}

static void test_ignored(void)
{
    asset_list_t l = scan("<head><link rel='alternate stylesheet' href=alt.css>"
                          "<link rel=stylesheet href=dis.css disabled>"
                          "<link rel=stylesheet href=less.css type=text/less>"
                          "<script type=text/template src=t.js></script>"
                          "<script type=importmap src=im.json></script>"
                          "<noscript><link rel=stylesheet href=ns.css></noscript></head><body>"
                          "<a href=link.html>x</a><img src='data:image/png;base64,AA'>"
                          "<img src='javascript:alert(1)'><img src='#frag'><img src=''>"
                          "<img src='blob:http://ex.com/x'><img src='about:blank'>"
                          "<template><img src=tpl.png><template><img src=tpl2.png></template>"
                          "</template><noscript><img src=ns.png></noscript>"
                          "<video><source src=v.mp4></video><img src=ok.png></body>");
    CHECK(l.n == 1);
    CHECK(l.n >= 1 && strcmp(l.v[0].url, "http://ex.com/dir/ok.png") == 0);
    asset_list_dispose(&l);
}

/* An inline <script type=speculationrules> is noted (the page asks for its own prefetches). */
static void test_speculation_rules(void)
{
    asset_list_t l = scan("<body><script type=speculationrules>{\"prefetch\": []}</script>"
                          "<img src=ok.png></body>");
    CHECK(l.speculation_rules);
    CHECK(l.n == 1);
    asset_list_dispose(&l);
    CHECK(!l.speculation_rules);
    l = scan("<script type=' SpeculationRules '>{}</script>");
    CHECK(l.speculation_rules);
    asset_list_dispose(&l);
    l = scan("<script type=module>{}</script><script src=a.js></script>");
    CHECK(!l.speculation_rules);
    asset_list_dispose(&l);
}

static void test_srcset(void)
{
    asset_list_t l =
        scan("<img src=a.png srcset='a1.png 1x, a2.png 2x'>"
             "<img src=b.png srcset='b2.png 2x, b15.png 1.5x'>"
             "<img src=c.png srcset='c400.png 400w, c800.png 800w, c1600.png 1600w'>"
             "<img srcset='d400.png 400w, d800.png 800w' sizes='(max-width: 600px) 100vw, 400px'>"
             "<img srcset='e320.png 320w, e700.png 700w' sizes='(min-width: 1000px) 40em, 100vw'>"
             "<img srcset='f,1.png 1x, f2.png 2x'>"
             "<img srcset='g05.png 0.5x, g08.png 0.8x'>"
             "<img srcset='h.png 2x, bad.png 1q'>");
    /* x: 1x wins; src is not picked when srcset has a 1x. */
    CHECK(picked(&l, "http://ex.com/dir/a1.png") && !picked(&l, "http://ex.com/dir/a.png") &&
          !picked(&l, "http://ex.com/dir/a2.png"));
    /* src counts as 1x when srcset has none, and wins over 1.5x and 2x. */
    CHECK(picked(&l, "http://ex.com/dir/b.png") && !picked(&l, "http://ex.com/dir/b15.png"));
    /* w without sizes: 100vw = 1280 px, so 1600w (1.25x) is the first >= 1. */
    CHECK(picked(&l, "http://ex.com/dir/c1600.png") && !picked(&l, "http://ex.com/dir/c.png") &&
          !picked(&l, "http://ex.com/dir/c800.png"));
    /* sizes: the media condition fails, 400px slot: 400w is exactly 1x. */
    CHECK(picked(&l, "http://ex.com/dir/d400.png") && !picked(&l, "http://ex.com/dir/d800.png"));
    /* 40em = 640 px: 700w (1.09x) wins over 320w (0.5x). */
    CHECK(picked(&l, "http://ex.com/dir/e700.png") && !picked(&l, "http://ex.com/dir/e320.png"));
    /* URLs may hold commas. */
    CHECK(picked(&l, "http://ex.com/dir/f,1.png"));
    /* Nothing reaches 1x: the densest. */
    CHECK(picked(&l, "http://ex.com/dir/g08.png") && !picked(&l, "http://ex.com/dir/g05.png"));
    /* An invalid descriptor drops its candidate only. */
    CHECK(picked(&l, "http://ex.com/dir/h.png") && !find(&l, "http://ex.com/dir/bad.png"));
    asset_list_dispose(&l);
}

static void test_picture(void)
{
    asset_list_t l =
        scan("<picture><source srcset=p.heic type=image/heic><source srcset=p.jxl type=image/jxl>"
             "<source srcset=p.avif type=image/avif><source srcset=p.webp type=image/webp>"
             "<img src=p.jpg></picture>"
             "<picture><source srcset=q.png media=print>"
             "<source srcset='q-s.png' media='(max-width: 700px)'><img src=q.jpg>"
             "</picture>"
             "<picture><source srcset='r-l.png 1x, r-l2.png 2x' media='(min-width: 1024px)'>"
             "<img src=r.jpg></picture>");
    CHECK(picked(&l, "http://ex.com/dir/p.jxl")); /* Chromium 145+ decodes JPEG XL */
    CHECK(!picked(&l, "http://ex.com/dir/p.avif"));
    CHECK(!picked(&l, "http://ex.com/dir/p.webp") && find(&l, "http://ex.com/dir/p.webp"));
    CHECK(!picked(&l, "http://ex.com/dir/p.jpg") && find(&l, "http://ex.com/dir/p.jpg"));
    CHECK(!picked(&l, "http://ex.com/dir/q.png") && !picked(&l, "http://ex.com/dir/q-s.png"));
    CHECK(picked(&l, "http://ex.com/dir/q.jpg"));
    CHECK(picked(&l, "http://ex.com/dir/r-l.png") && !picked(&l, "http://ex.com/dir/r.jpg"));
    asset_list_dispose(&l);
}

static void test_base_dedupe_css_order(void)
{
    asset_list_t l = scan("<head><link rel=stylesheet href=early.css>"
                          "<base href='http://cdn.ex.com/root/'><base href='/ignored/'>"
                          "<style>@import 'imp.css'; body{background:url(bg.png)}"
                          "@font-face{font-family:x;src:url(f.woff2)}</style></head>"
                          "<body><img src=x.png><div style='background:url(inl.png)'></div>"
                          "<img src=x.png><img src=y.png><video poster=v.jpg></video>"
                          "<input type=IMAGE src=btn.png><input src=no.png>"
                          "<link rel=apple-touch-icon href=touch.png></body>");
    const asset_t *a;
    CHECK((a = find(&l, "http://cdn.ex.com/root/early.css")) && a->order == 0);
    CHECK((a = find(&l, "http://cdn.ex.com/root/x.png")) && a->order == 1);
    CHECK((a = find(&l, "http://cdn.ex.com/root/y.png")) && a->order == 2);
    CHECK((a = find(&l, "http://cdn.ex.com/root/v.jpg")) && a->order == 3);
    CHECK((a = find(&l, "http://cdn.ex.com/root/btn.png")) && a->order == 4);
    CHECK(!find(&l, "http://cdn.ex.com/root/no.png"));
    CHECK(!find(&l, "http://cdn.ex.com/root/touch.png")->pick);
    /* CSS-found assets follow the elements, in the order their CSS appears. */
    CHECK((a = find(&l, "http://cdn.ex.com/root/imp.css")) && a->order == 6 &&
          a->kind == ASSET_STYLE && a->blocking);
    CHECK((a = find(&l, "http://cdn.ex.com/root/bg.png")) && a->order == 7);
    CHECK((a = find(&l, "http://cdn.ex.com/root/f.woff2")) && a->order == 8 &&
          a->kind == ASSET_FONT && a->crossorigin == ASSET_CORS_ANONYMOUS);
    CHECK((a = find(&l, "http://cdn.ex.com/root/inl.png")) && a->order == 9);
    CHECK(l.n == 10);
    asset_list_dispose(&l);
}

static void test_charset(void)
{
    char name[CHARSET_NAME_MAX];
    size_t bom;
    CHECK(charset_sniff("\xEF\xBB\xBF<meta charset=latin1>", 25, "koi8-r", name, &bom) ==
              CHARSET_FROM_BOM &&
          strcmp(name, "UTF-8") == 0 && bom == 3);
    CHECK(charset_sniff("<meta charset=latin1>", 21, "utf-8", name, &bom) ==
              CHARSET_FROM_TRANSPORT &&
          strcmp(name, "UTF-8") == 0);
    CHECK(charset_sniff("<!-- <meta charset=koi8-r> --><meta http-equiv=content-type "
                        "content='text/html; charset=ISO-8859-1'>",
                        99, NULL, name, &bom) == CHARSET_FROM_META &&
          strcmp(name, "windows-1252") == 0);
    CHECK(charset_sniff("<meta content='charset=koi8-r'>", 31, "nonsense-label", name, &bom) ==
              CHARSET_FROM_DEFAULT &&
          strcmp(name, "UTF-8") == 0);
    CHECK(charset_sniff("caf\xE9 au lait", 13, NULL, name, &bom) == CHARSET_FROM_DEFAULT &&
          strcmp(name, "windows-1252") == 0);
    CHECK(charset_canonical(" UTF-8//TRANSLIT", 16, name) == HERALD_EUNSUPPORTED);

    /* Latin-1 page: the path is percent-encoded as UTF-8. */
    const char latin1[] = "<meta charset=iso-8859-1><img src='caf\xE9.png'>";
    asset_list_t l = scan_n(latin1, sizeof(latin1) - 1, NULL);
    CHECK(find(&l, "http://ex.com/dir/caf%C3%A9.png"));
    asset_list_dispose(&l);
    /* ... and the query in the document's encoding. */
    const char latin1_query[] =
        "<meta charset=windows-1252><img src='q.png?\xE9&amp;x=&#937;#\xE9'>";
    l = scan_n(latin1_query, sizeof(latin1_query) - 1, NULL);
    CHECK(find(&l, "http://ex.com/dir/q.png?%E9&x=%26%23937%3B"));
    asset_list_dispose(&l);
    const char utf8_query[] = "<img src='q.png?\xC3\xA9&amp;x=&#937;'>";
    l = scan_n(utf8_query, sizeof(utf8_query) - 1, "utf-8");
    CHECK(find(&l, "http://ex.com/dir/q.png?%C3%A9&x=%CE%A9"));
    asset_list_dispose(&l);
    /* The transport charset wins over meta. */
    const char meta_wrong[] = "<meta charset=utf-8><img src='\xE9t\xE9.png'>";
    l = scan_n(meta_wrong, sizeof(meta_wrong) - 1, "windows-1252");
    CHECK(find(&l, "http://ex.com/dir/%C3%A9t%C3%A9.png"));
    asset_list_dispose(&l);
    /* UTF-16LE with BOM. */
    const char *ascii = "<img src='\xC3\xA9.png'>"; /* é in UTF-8, converted below */
    char u16[64];
    size_t n = 0;
    u16[n++] = (char)0xFF;
    u16[n++] = (char)0xFE;
    for (const char *p = ascii; *p; p++) {
        if ((unsigned char)*p == 0xC3) {
            u16[n++] = (char)0xE9;
            u16[n++] = 0;
            p++;
            continue;
        }
        u16[n++] = *p;
        u16[n++] = 0;
    }
    l = scan_n(u16, n, NULL);
    CHECK(find(&l, "http://ex.com/dir/%C3%A9.png"));
    asset_list_dispose(&l);
    /* UTF-8 BOM + UTF-8. */
    const char u8[] = "\xEF\xBB\xBF<img src='\xC3\xA9.png'>";
    l = scan_n(u8, sizeof(u8) - 1, "windows-1252");
    CHECK(find(&l, "http://ex.com/dir/%C3%A9.png"));
    asset_list_dispose(&l);
}

static void test_cap(void)
{
    html_scanner_t *s = html_scanner_create(BASE, NULL, 64);
    const char *head = "<img src=a.png>";
    char pad[100];
    memset(pad, ' ', sizeof(pad));
    CHECK(html_scanner_feed(s, head, strlen(head)) == 0);
    CHECK(!html_scanner_full(s));
    CHECK(html_scanner_feed(s, pad, sizeof(pad)) == 0);
    CHECK(html_scanner_full(s));
    CHECK(html_scanner_feed(s, "<img src=b.png>", 15) == 0);
    asset_list_t l = {0};
    CHECK(html_scanner_finish(s, &l) == 0);
    CHECK(l.n == 1 && strcmp(l.v[0].url, "http://ex.com/dir/a.png") == 0);
    CHECK(strcmp(html_scanner_charset(s), "UTF-8") == 0);
    asset_list_dispose(&l);
    html_scanner_destroy(s);
    CHECK(html_scanner_create(NULL, NULL, 0) == NULL);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Hostile markup: each 256 KiB input must stay far below a second; the
 * bound here is coarse (5 s) so only a hang or a blow-up trips it. An asset
 * after the hostile part must still be found. */
static void hostile(const char *name, const char *unit, const char *prefix)
{
    size_t cap = HTML_SCANNER_DEFAULT_CAP, ul = strlen(unit), pl = strlen(prefix);
    const char *tail = "<img src=/tail.png>";
    size_t tl = strlen(tail);
    char *doc = malloc(cap);
    memcpy(doc, prefix, pl);
    size_t n = pl;
    while (n + ul + tl <= cap) {
        memcpy(doc + n, unit, ul);
        n += ul;
    }
    memcpy(doc + n, tail, tl);
    n += tl;
    double t0 = now();
    asset_list_t l = scan_n(doc, n, NULL);
    double dt = now() - t0;
    fprintf(stderr, "hostile %-10s %.3f s\n", name, dt);
    CHECK(dt < 5.0);
    CHECK(find(&l, "http://ex.com/tail.png") != NULL);
    asset_list_dispose(&l);
    free(doc);
}

static void test_hostile(void)
{
    hostile("div", "<div>", "");
    hostile("table", "<table><tr><td>", "");
    hostile("abi", "<a><b><i>", "");
    hostile("misnest", "<a><b></a></b>", "");
    hostile("svg", "<g>", "<svg>");
    hostile("selfclose", "<div/>", "");
    char prefix[8192] = "<div>";
    for (int i = 0; i < 300; i++)
        snprintf(prefix + strlen(prefix), sizeof(prefix) - strlen(prefix), "<b class=c%d>", i);
    strcat(prefix, "</div>");
    hostile("reconstr", "<div>x</div>", prefix);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr, "max rss %ld KiB\n", ru.ru_maxrss);
    CHECK(ru.ru_maxrss < 400 * 1024); /* coarse: sanitizer builds use more */

    /* Ordinary pages are not touched by the pre-pass. */
    char page[] = "<ul><li>a<li>b</ul><table><tr><td>1<td>2<tr><td>3</table><p>x<p>y"
                  "<select><option>a<option>b</select><dl><dt>a<dd>b</dl>";
    CHECK(html_defuse(page, strlen(page), 3, 8) == 0);
    char deep[] = "<div><div><div><div><img src=x>";
    CHECK(html_defuse(deep, strlen(deep), 3, 8) == 1 && strstr(deep, "<img src=x>"));
}

/* The proxy runs finish() on a thread pool: scanners on different documents
 * share nothing, so concurrent runs give the same answers as one. */
static const char concurrent_doc[] =
    "<meta charset=latin1><link rel=stylesheet href=a.css><style>@import 'b.css';</style>"
    "<img srcset='x1.png 1x, x2.png 2x'><picture><source srcset=p.webp type=image/webp>"
    "<img src=p.jpg></picture><img src='q.png?\xE9'>";

static void *concurrent_run(void *arg)
{
    size_t *n_out = arg;
    for (int i = 0; i < 200; i++) {
        asset_list_t l = scan_n(concurrent_doc, sizeof(concurrent_doc) - 1, NULL);
        if (i == 0)
            *n_out = l.n;
        else if (*n_out != l.n || !find(&l, "http://ex.com/dir/q.png?%E9"))
            *n_out = (size_t)-1;
        asset_list_dispose(&l);
    }
    return NULL;
}

static void test_concurrent(void)
{
    pthread_t t[4];
    size_t n[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, concurrent_run, &n[i]) == 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(n[i] == 7);
    }
}

int main(void)
{
    test_kinds_and_blocking();
    test_crossorigin();
    test_ignored();
    test_speculation_rules();
    test_srcset();
    test_picture();
    test_base_dedupe_css_order();
    test_charset();
    test_cap();
    test_concurrent();
    test_hostile();
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
