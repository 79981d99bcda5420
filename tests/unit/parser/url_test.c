#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "url.h"
#include "testutil.h"

static const char *BASE = "http://ex.com/a/b/page.html?q=1";

/* Resolve ref against base; expect rc and, on success, the URL. */
static void resolve_is(const char *base, const char *ref, int rc, const char *want)
{
    char *out = (char *)"unset";
    int got = url_resolve(base, ref, strlen(ref), &out);
    CHECK_INTEQ(got, rc);
    if (got == 0)
        CHECK_STREQ(out, want);
    else
        CHECK(out == NULL);
    if (got != rc || (got == 0 && want != NULL && strcmp(out, want) != 0))
        fprintf(stderr, "  ref was \"%s\"\n", ref);
    free(got == 0 ? out : NULL);
}

static void normalize_is(const char *url, int rc, const char *want)
{
    char *out = NULL;
    CHECK_INTEQ(url_normalize(url, &out), rc);
    CHECK_STREQ(out, want);
    free(out);
}

static void test_resolve(void)
{
    resolve_is(BASE, "x.png", 0, "http://ex.com/a/b/x.png");
    resolve_is(BASE, "/x.png", 0, "http://ex.com/x.png");
    resolve_is(BASE, "../../x", 0, "http://ex.com/x");
    resolve_is(BASE, "../../../../x", 0, "http://ex.com/x"); /* above root */
    resolve_is(BASE, "//cdn.example/x.js", 0, "http://cdn.example/x.js");
    resolve_is("https://ex.com/", "//cdn.example/x.js", 0, "https://cdn.example/x.js");
    resolve_is(BASE, "?v=2", 0, "http://ex.com/a/b/page.html?v=2");
    resolve_is(BASE, "x.png#frag", 0, "http://ex.com/a/b/x.png");
    resolve_is(BASE, "https://Other.EXAMPLE:443/y", 0, "https://other.example/y");
    resolve_is(BASE, "http://h:8080", 0, "http://h:8080/");
    resolve_is(BASE, "HTTP://Ex.com:80/p", 0, "http://ex.com/p");
    resolve_is(BASE, "http:x.png", 0, "http://ex.com/a/b/x.png"); /* same scheme: relative */
    resolve_is(BASE, "http:/x.png", 0, "http://ex.com/x.png");
    resolve_is(BASE, "https:cdn.ex/x", 0, "https://cdn.ex/x"); /* other scheme: host follows */
    resolve_is(BASE, "https:/\\//cdn.ex/x", 0, "https://cdn.ex/x");
    resolve_is(BASE, "http:///h2/x", 0, "http://h2/x");
    resolve_is(BASE, "HTTP:/ &(/..//Eple", 0, "http://ex.com//Eple"); /* fuzz find */
    resolve_is(BASE, "1a:b", 0, "http://ex.com/a/b/1a:b");
    resolve_is(BASE, "./a/./b/../c", 0, "http://ex.com/a/b/a/c");
    /* fuzz/link find: no "/." kept in front of a "//" path when a host exists,
     * so resolving the result again gives the same URL */
    resolve_is(BASE, "../..////c", 0, "http://ex.com////c");
    resolve_is("http://ex.com////c", "http://ex.com////c", 0, "http://ex.com////c");
}

static void test_cleaning(void)
{
    resolve_is(BASE, "  \t x.png \n ", 0, "http://ex.com/a/b/x.png");
    resolve_is(BASE, "\x01\x1fx.png\x7f", 0, "http://ex.com/a/b/x.png%7F");
    resolve_is(BASE, "im\tg/\nx\r.png", 0, "http://ex.com/a/b/img/x.png");
    resolve_is(BASE, "a\\b\\c.png", 0, "http://ex.com/a/b/a/b/c.png");
    resolve_is(BASE, "\\\\cdn.example\\x", 0, "http://cdn.example/x");
    resolve_is(BASE, "my file.png", 0, "http://ex.com/a/b/my%20file.png");
    resolve_is(BASE, "caf\xc3\xa9.png", 0, "http://ex.com/a/b/caf%C3%A9.png");
    resolve_is(BASE, "a\"<>^`{|}.png", 0, "http://ex.com/a/b/a%22%3C%3E%5E%60%7B%7C%7D.png");
    resolve_is(BASE, "100%.png", 0, "http://ex.com/a/b/100%25.png");
    resolve_is(BASE, "%41%zz", 0, "http://ex.com/a/b/%41%25zz");
    resolve_is(BASE, "[x].png", 0, "http://ex.com/a/b/%5Bx%5D.png");
    resolve_is(BASE, "http://[::1]:8080/x", 0, "http://[::1]:8080/x");
}

static void test_rejects(void)
{
    resolve_is(BASE, "", HERALD_EINVAL, NULL);
    resolve_is(BASE, "   ", HERALD_EINVAL, NULL);
    resolve_is(BASE, "#frag", HERALD_EINVAL, NULL);
    resolve_is(BASE, "data:image/png;base64,AAAA", HERALD_EUNSUPPORTED, NULL);
    resolve_is(BASE, "javascript:alert(1)", HERALD_EUNSUPPORTED, NULL);
    resolve_is(BASE, "java\tscript:alert(1)", HERALD_EUNSUPPORTED, NULL);
    resolve_is(BASE, " JavaScript:x", HERALD_EUNSUPPORTED, NULL);
    resolve_is(BASE, "blob:http://ex.com/uuid", HERALD_EUNSUPPORTED, NULL);
    resolve_is(BASE, "about:blank", HERALD_EUNSUPPORTED, NULL);
    resolve_is(BASE, "mailto:a@b.c", HERALD_EUNSUPPORTED, NULL);
    resolve_is(BASE, "ftp://ex.com/x", HERALD_EUNSUPPORTED, NULL);
    resolve_is(BASE, "http://h:port/", HERALD_EINVAL, NULL);
    resolve_is(BASE, "https:", HERALD_EINVAL, NULL);
    resolve_is(BASE, "https:///", HERALD_EINVAL, NULL);
    resolve_is("not a url", "x", HERALD_EINVAL, NULL);
    resolve_is("/relative/base", "x", HERALD_EINVAL, NULL);
    resolve_is("ftp://ex.com/", "x", HERALD_EUNSUPPORTED, NULL);
}

static void test_normalize(void)
{
    normalize_is("HTTP://Example.COM:80/a/./b/../c%7e?x", 0, "http://example.com/a/c~?x");
    normalize_is("HTTP://Example.COM:80/a/./b/../c%7e?x#frag", 0, "http://example.com/a/c~?x");
    normalize_is("https://EX.com:443", 0, "https://ex.com/");
    normalize_is("https://ex.com:8443/%2f%41%7E?%7e", 0, "https://ex.com:8443/%2FA~?%7e");
    normalize_is("http://ex.com:/x", 0, "http://ex.com/x");
    normalize_is("http://ex.com/../../x", 0, "http://ex.com/x");
    normalize_is("/relative", HERALD_EINVAL, NULL);
    normalize_is("data:text/plain,x", HERALD_EUNSUPPORTED, NULL);
    normalize_is("", HERALD_EINVAL, NULL);
    normalize_is("http:/x/../y", 0, "http://x/y");
    normalize_is("http://[::1]/", 0, "http://[::1]/");
    normalize_is("http://[2001:DB8:0:0:1:0:0:1]:80/", 0, "http://[2001:db8::1:0:0:1]/");
}

/* The shortcut for URLs that are keys already against the full path, on
 * every combination of scheme, host, port, path and query pieces chosen to
 * sit on either side of the shortcut's rules. */
static void test_normalize_shortcut(void)
{
    static const char *const scheme[] = {"http://", "https://", "HTTP://", "ftp://"};
    static const char *const host[] = {"ex.com",
                                       "Ex.com",
                                       "127.0.0.1",
                                       "127.1",
                                       "010.0.0.1",
                                       "1.2.3.4.5",
                                       "a-b.c",
                                       "-a.com",
                                       "a..b",
                                       "a.",
                                       "[::1]",
                                       "u@ex.com",
                                       "",
                                       "xn--bcher-kva.de",
                                       "1-2.3.4.5",
                                       "0.0.0.0",
                                       "255.255.255.255",
                                       "256.1.1.1",
                                       "1.2.3.0400",
                                       "1.2.3"};
    static const char *const port[] = {"",      ":80",    ":443",   ":8080", ":",
                                       ":0080", ":65535", ":65536", ":99999"};
    static const char *const path[] = {"",       "/",      "/a/b.css",  "/a/./b",  "/a/../b",
                                       "/.well", "/a.b/c", "/%7e",      "/~x_y-z", "//a",
                                       "/a b",   "/a\\b",  "/\xc3\xa9", "/a;b",    "/a:b@c"};
    static const char *const query[] = {"",       "?",  "?a=1&b=2", "?a=%7e",   "?a b",
                                        "?a/b?c", "#f", "?x#f",     "?\xc3\xa9"};
    char url[256];
    size_t n = 0, keys = 0;
    for (size_t a = 0; a < sizeof scheme / sizeof *scheme; a++)
        for (size_t b = 0; b < sizeof host / sizeof *host; b++)
            for (size_t c = 0; c < sizeof port / sizeof *port; c++)
                for (size_t d = 0; d < sizeof path / sizeof *path; d++)
                    for (size_t e = 0; e < sizeof query / sizeof *query; e++) {
                        snprintf(url, sizeof url, "%s%s%s%s%s", scheme[a], host[b], port[c],
                                 path[d], query[e]);
                        char *fast = NULL, *slow = NULL;
                        int rf = url_normalize(url, &fast), rs = url_normalize_slow(url, &slow);
                        CHECK_INTEQ(rf, rs);
                        CHECK_STREQ(fast, slow);
                        if (url_is_key(url)) {
                            CHECK_STREQ(slow, url);
                            keys++;
                        }
                        if (rf != rs || (fast && slow && strcmp(fast, slow) != 0))
                            fprintf(stderr, "  url was \"%s\"\n", url);
                        free(fast);
                        free(slow);
                        n++;
                    }
    CHECK(n > 20000);
    CHECK(keys >= 400); /* the shortcut is taken, not only skipped */
}

static void test_origin(void)
{
    char *o = NULL;
    CHECK_INTEQ(url_origin("HTTPS://A.example:443/x?y#z", &o), 0);
    CHECK_STREQ(o, "https://a.example");
    free(o);
    CHECK_INTEQ(url_origin("http://a.example:8080/x", &o), 0);
    CHECK_STREQ(o, "http://a.example:8080");
    free(o);
    CHECK_INTEQ(url_origin("http://u:p@a.example/", &o), 0);
    CHECK_STREQ(o, "http://a.example");
    free(o);
    CHECK_INTEQ(url_origin("mailto:x@y", &o), HERALD_EUNSUPPORTED);
    CHECK(o == NULL);

    CHECK(url_same_origin("http://a.com/x", "HTTP://A.COM:80/y?z"));
    CHECK(url_same_origin("http://u@a.com/x", "http://a.com/"));
    CHECK(!url_same_origin("http://a.com/x", "https://a.com/x"));
    CHECK(!url_same_origin("http://a.com/x", "http://a.com:8080/x"));
    CHECK(!url_same_origin("http://a.com/x", "http://b.com/x"));
    CHECK(!url_same_origin("http://a.com/x", "not a url"));
}

/* Inputs that end right before an unreadable page: an over-read crashes. */
static void test_guarded(void)
{
    static const char *refs[] = {"x.png", "%4", "%", "a\\", "  ", "#", "//h", "h:", "caf\xc3"};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        testutil_guard_t g;
        size_t len = strlen(refs[i]);
        const char *p = testutil_guard(&g, refs[i], len);
        CHECK(p != NULL);
        if (p == NULL)
            continue;
        char *out = NULL;
        int rc = url_resolve(BASE, p, len, &out);
        CHECK(rc == 0 || rc == HERALD_EINVAL || rc == HERALD_EUNSUPPORTED);
        free(out);
        testutil_guard_free(&g);
    }
}

int main(void)
{
    test_resolve();
    test_cleaning();
    test_rejects();
    test_normalize();
    test_normalize_shortcut();
    test_origin();
    test_guarded();
    return TESTUTIL_SUMMARY();
}
