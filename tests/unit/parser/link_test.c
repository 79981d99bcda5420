#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "link.h"
#include "testutil.h"

static const char *BASE = "https://ex.com/dir/page.html";

/* Parse from a guarded page so an over-read crashes. */
static int parse(const char *v, link_list_t *l, const char **reason)
{
    testutil_guard_t g;
    size_t len = strlen(v);
    const char *p = testutil_guard(&g, v, len);
    if (p == NULL)
        return -1;
    int rc = link_parse(p, len, BASE, l, reason);
    testutil_guard_free(&g);
    return rc;
}

static void test_real_servers(void)
{
    link_list_t l = {0};
    const char *why = NULL;
    CHECK_INTEQ(parse("</style.css>; rel=preload; as=style, </app.js>; rel=preload; as=script; "
                      "nopush",
                      &l, &why),
                0);
    CHECK_INTEQ(l.n, 2);
    if (l.n == 2) {
        CHECK_STREQ(l.v[0].url, "https://ex.com/style.css");
        CHECK_INTEQ(l.v[0].rel, LINK_REL_PRELOAD);
        CHECK_STREQ(l.v[0].as, "style");
        CHECK(!l.v[0].nopush);
        CHECK_STREQ(l.v[1].url, "https://ex.com/app.js");
        CHECK_STREQ(l.v[1].as, "script");
        CHECK(l.v[1].nopush);
        CHECK_INTEQ(l.v[1].crossorigin, ASSET_CORS_NONE);
    }
    /* A second header line appends. */
    CHECK_INTEQ(parse("<https://fonts.example>; rel=preconnect; crossorigin", &l, &why), 0);
    CHECK_INTEQ(l.n, 3);
    if (l.n == 3) {
        CHECK_STREQ(l.v[2].url, "https://fonts.example/");
        CHECK_INTEQ(l.v[2].rel, LINK_REL_PRECONNECT);
        CHECK_INTEQ(l.v[2].crossorigin, ASSET_CORS_ANONYMOUS);
    }
    link_list_dispose(&l);
    CHECK(l.n == 0 && l.v == NULL);

    CHECK_INTEQ(parse("<font.woff2>;rel=\"preload\";as=\"font\";type=\"font/woff2\";"
                      "crossorigin=use-credentials, <m.js>; rel=modulepreload, "
                      "<//cdn.ex>; rel=dns-prefetch; REL=stylesheet",
                      &l, &why),
                0);
    CHECK_INTEQ(l.n, 3);
    if (l.n == 3) {
        CHECK_STREQ(l.v[0].url, "https://ex.com/dir/font.woff2");
        CHECK_STREQ(l.v[0].type, "font/woff2");
        CHECK_INTEQ(l.v[0].crossorigin, ASSET_CORS_CREDENTIALS);
        CHECK_INTEQ(l.v[1].rel, LINK_REL_MODULEPRELOAD);
        CHECK_INTEQ(l.v[2].rel, LINK_REL_DNS_PREFETCH); /* first rel wins */
        CHECK_STREQ(l.v[2].url, "https://cdn.ex/");
    }
    link_list_dispose(&l);

    /* Sloppy but unambiguous forms seen in the wild. */
    CHECK_INTEQ(
        parse(" , </a.css>;rel=preload;as=Style;type=text/css;, ,</b.css> ; rel=x;;", &l, &why), 0);
    CHECK_INTEQ(l.n, 2);
    if (l.n == 2) {
        CHECK_STREQ(l.v[0].as, "style");
        CHECK_STREQ(l.v[0].type, "text/css");
        CHECK_INTEQ(l.v[1].rel, LINK_REL_OTHER);
    }
    link_list_dispose(&l);
}

/* RFC 8288 §3.5 examples. */
static void test_rfc_examples(void)
{
    link_list_t l = {0};
    const char *why = NULL;
    CHECK_INTEQ(parse("<http://example.com/TheBook/chapter2>; rel=\"previous\"; "
                      "title=\"previous chapter\"",
                      &l, &why),
                0);
    CHECK_INTEQ(l.n, 1);
    CHECK_INTEQ(l.n ? l.v[0].rel : 0, LINK_REL_OTHER);
    link_list_dispose(&l);

    CHECK_INTEQ(parse("</>; rel=\"http://example.net/foo\"", &l, &why), 0);
    CHECK_STREQ(l.n ? l.v[0].url : NULL, "https://ex.com/");
    link_list_dispose(&l);

    CHECK_INTEQ(parse("</terms>; rel=\"copyright\"; anchor=\"#foo\"", &l, &why), 0);
    CHECK_STREQ(l.n ? l.v[0].anchor : NULL, "#foo");
    link_list_dispose(&l);

    CHECK_INTEQ(parse("</TheBook/chapter2>; rel=\"previous\"; title*=UTF-8'de'letztes%20Kapitel, "
                      "</TheBook/chapter4>; rel=\"next\"; title*=UTF-8'de'n%c3%a4chstes%20Kapitel",
                      &l, &why),
                0);
    CHECK_INTEQ(l.n, 2);
    link_list_dispose(&l);

    CHECK_INTEQ(
        parse("<http://example.org/>; rel=\"start http://example.net/relation/other\"", &l, &why),
        0);
    CHECK_INTEQ(l.n ? l.v[0].rel : 0, LINK_REL_OTHER);
    link_list_dispose(&l);

    CHECK_INTEQ(parse("<x>; rel=\"preload  stylesheet\"; title=\"a \\\"q\\\" \\\\ b\"", &l, &why),
                0);
    CHECK_INTEQ(l.n ? l.v[0].rel : 0, LINK_REL_PRELOAD | LINK_REL_STYLESHEET);
    link_list_dispose(&l);

    /* Non-http(s) targets are skipped, not errors. */
    CHECK_INTEQ(parse("<mailto:a@b.c>; rel=author, <data:,x>; rel=preload, <#f>; rel=x", &l, &why),
                0);
    CHECK_INTEQ(l.n, 0);
    link_list_dispose(&l);
}

static void parse_fails(const char *v, const char *want_reason)
{
    link_list_t l = {0};
    const char *why = NULL;
    CHECK_INTEQ(parse("</keep.css>; rel=preload", &l, &why), 0);
    CHECK_INTEQ(parse(v, &l, &why), HERALD_EPARSE);
    CHECK_STREQ(why, want_reason);
    CHECK_INTEQ(l.n, 1); /* the earlier header's links stay, this one's are gone */
    link_list_dispose(&l);
}

static void test_malformed(void)
{
    parse_fails("</a.css", "unterminated '<' (missing '>')");
    parse_fails("<", "unterminated '<' (missing '>')");
    parse_fails("</a.css>; rel=preload, </b.css", "unterminated '<' (missing '>')");
    parse_fails("/a.css; rel=preload", "expected '<'");
    parse_fails("</a.css> rel=preload", "expected ';' or ',' after link target or parameter");
    parse_fails("</a.css>; rel=\"preload", "unterminated quoted string");
    parse_fails("</a.css>; rel=\"preload\\", "unterminated quoted string");
    parse_fails("</a.css>; =preload", "bad parameter name");
    parse_fails("</a.css>; rel=", "bad parameter value");
    parse_fails("</a.css>; rel=;", "bad parameter value");
    parse_fails("</a.css>; title=\"a\rb\"", "control character in quoted string");
    parse_fails("</a.css>; rel=\"x\"y", "expected ';' or ',' after link target or parameter");

    link_list_t l = {0};
    CHECK_INTEQ(link_parse("", 0, BASE, &l, NULL), 0);
    CHECK_INTEQ(link_parse("<", 1, BASE, &l, NULL), HERALD_EPARSE); /* reason may be NULL */
    CHECK_INTEQ(l.n, 0);
    link_list_dispose(&l);
}

static void format_is(link_t link, const char *page, int rc, const char *want)
{
    char *out = NULL;
    CHECK_INTEQ(link_format(&link, page, &out), rc);
    CHECK_STREQ(out, want);
    free(out);
}

static void test_format(void)
{
    const char *page = "https://ex.com/dir/page.html";
    format_is(link_preload("https://ex.com/s.css", "style", ASSET_CORS_NONE, NULL, false), page, 0,
              "</s.css>; rel=preload; as=style");
    format_is(link_preload("https://EX.com:443/s.css?v=1", "style", ASSET_CORS_NONE, NULL, true),
              page, 0, "</s.css?v=1>; rel=preload; as=style; nopush");
    format_is(link_preload("https://ex.com", "fetch", ASSET_CORS_NONE, NULL, false), page, 0,
              "</>; rel=preload; as=fetch");
    format_is(
        link_preload("https://cdn.ex/f.woff2", "font", ASSET_CORS_ANONYMOUS, "font/woff2", false),
        page, 0,
        "<https://cdn.ex/f.woff2>; rel=preload; as=font; crossorigin; type=\"font/woff2\"");
    format_is(link_preload("http://ex.com/a.js", "script", ASSET_CORS_CREDENTIALS, NULL, false),
              page, 0, "<http://ex.com/a.js>; rel=preload; as=script; crossorigin=use-credentials");
    format_is(link_preload("https://ex.com/a.js", "script", ASSET_CORS_NONE, NULL, false), NULL, 0,
              "<https://ex.com/a.js>; rel=preload; as=script");
    format_is(link_preload("https://u@ex.com/a.js", "script", ASSET_CORS_NONE, NULL, false), page,
              0, "<https://u@ex.com/a.js>; rel=preload; as=script");
    format_is(link_preconnect("https://fonts.example", ASSET_CORS_ANONYMOUS), page, 0,
              "<https://fonts.example>; rel=preconnect; crossorigin");
    format_is(link_preconnect("https://ex.com", ASSET_CORS_NONE), page, 0,
              "<https://ex.com>; rel=preconnect");
    link_t l = link_preload("https://ex.com/x", NULL, ASSET_CORS_NONE, NULL, false);
    l.rel = LINK_REL_PRELOAD | LINK_REL_STYLESHEET | LINK_REL_OTHER;
    l.media = (char *)"(max-width: 600px)";
    format_is(l, page, 0, "</x>; rel=\"preload stylesheet\"; media=\"(max-width: 600px)\"");
    l.type = (char *)"a\"b\\c";
    l.media = NULL;
    format_is(l, page, 0, "</x>; rel=\"preload stylesheet\"; type=\"a\\\"b\\\\c\"");

    /* Header injection and nonsense are refused. */
    format_is(link_preload("https://ex.com/a\r\nX: y", "style", 0, NULL, false), page,
              HERALD_EINVAL, NULL);
    format_is(link_preload("https://ex.com/a>", "style", 0, NULL, false), page, HERALD_EINVAL,
              NULL);
    format_is(link_preload("https://ex.com/a", "st\nyle", 0, NULL, false), page, HERALD_EINVAL,
              NULL);
    format_is(link_preload("/relative", "style", 0, NULL, false), page, HERALD_EINVAL, NULL);
    format_is(link_preload(NULL, "style", 0, NULL, false), page, HERALD_EINVAL, NULL);
    l = link_preload("https://ex.com/a", NULL, 0, NULL, false);
    l.rel = LINK_REL_OTHER;
    format_is(l, page, HERALD_EINVAL, NULL);

    link_t two[] = {link_preload("https://ex.com/s.css", "style", 0, NULL, false),
                    link_preconnect("https://cdn.ex", 0)};
    char *out = NULL;
    CHECK_INTEQ(link_format_list(two, 2, page, &out), 0);
    CHECK_STREQ(out, "</s.css>; rel=preload; as=style, <https://cdn.ex>; rel=preconnect");
    free(out);
    CHECK_INTEQ(link_format_list(two, 0, page, &out), HERALD_EINVAL);
    CHECK(out == NULL);
}

/* What we format, we parse back the same. */
static void test_round_trip(void)
{
    link_t in =
        link_preload("https://ex.com/f.woff2", "font", ASSET_CORS_ANONYMOUS, "font/woff2", true);
    char *out = NULL;
    CHECK_INTEQ(link_format(&in, BASE, &out), 0);
    link_list_t l = {0};
    CHECK_INTEQ(link_parse(out, strlen(out), BASE, &l, NULL), 0);
    CHECK_INTEQ(l.n, 1);
    if (l.n == 1) {
        CHECK_STREQ(l.v[0].url, in.url);
        CHECK_INTEQ(l.v[0].rel, in.rel);
        CHECK_STREQ(l.v[0].as, in.as);
        CHECK_STREQ(l.v[0].type, in.type);
        CHECK_INTEQ(l.v[0].crossorigin, in.crossorigin);
        CHECK(l.v[0].nopush);
    }
    link_list_dispose(&l);
    free(out);

    /* Found by fuzz/link: a same-origin path starting "//" must not be
     * written path-absolute, or it reads back as //host/... */
    link_t dbl =
        link_preload("https://ex.com//evil.example/x.css", "style", ASSET_CORS_NONE, NULL, false);
    out = NULL;
    CHECK_INTEQ(link_format(&dbl, BASE, &out), 0);
    l = (link_list_t){0};
    CHECK_INTEQ(link_parse(out, strlen(out), BASE, &l, NULL), 0);
    CHECK_INTEQ(l.n, 1);
    if (l.n == 1)
        CHECK_STREQ(l.v[0].url, "https://ex.com//evil.example/x.css");
    link_list_dispose(&l);
    free(out);
}

int main(void)
{
    test_real_servers();
    test_rfc_examples();
    test_malformed();
    test_format();
    test_round_trip();
    return TESTUTIL_SUMMARY();
}
