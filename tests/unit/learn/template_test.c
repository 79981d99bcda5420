/* learn/template: page keys, template keys, volatile URLs. */
#include "template.h"

#include <stdlib.h>

#include "herald/error.h"
#include "testutil.h"

static void check_template(const char *in, const char *want)
{
    char *out = NULL;
    CHECK_INTEQ(template_key(in, &out), 0);
    CHECK_STREQ(out, want);
    free(out);
}

static void test_page_key(void)
{
    char *k = NULL;
    CHECK_INTEQ(template_page_key("example.com", "/item/123?x=1", &k), 0);
    CHECK_STREQ(k, "example.com/item/123?x=1");
    free(k);
    CHECK_INTEQ(template_page_key("example.com:8443", "a", &k), 0);
    CHECK_STREQ(k, "example.com:8443/a");
    free(k);
    CHECK_INTEQ(template_page_key("", "/", &k), HERALD_EINVAL);
    CHECK_INTEQ(template_page_key(NULL, "/", &k), HERALD_EINVAL);
}

static void test_template_key(void)
{
    check_template("example.com/item/123", "example.com/item/*");
    check_template("example.com/product/8f14e45f-ceea-467a-9af4-2b4c8d1e2f3a/reviews",
                   "example.com/product/*/reviews");
    check_template("example.com/css/v2/site.css", "example.com/css/v2/site.css");
    check_template("example.com/", "example.com/");
    check_template("example.com", "example.com");
    check_template("example.com/about", "example.com/about");
    check_template("example.com/u/a1b2c3d4/x", "example.com/u/*/x");
    check_template("example.com/c/deadbeef12/x", "example.com/c/*/x");
    check_template("example.com/html5/v2/api", "example.com/html5/v2/api");
    check_template("example.com/p/item-12345", "example.com/p/*");
    check_template("example.com/p/123.html", "example.com/p/*.html");
    check_template("example.com/2024/06/post", "example.com/*/*/post");
    /* query: names and order kept, volatile values generalised */
    check_template("example.com/s?q=shoes&page=2", "example.com/s?q=shoes&page=2");
    check_template("example.com/s?id=1234567&q=x", "example.com/s?id=*&q=x");
    check_template("example.com/s?sess=0123456789abcdef&flag", "example.com/s?sess=*&flag");
    check_template("example.com/s?t=QWxhZGRpbjpvcGVuIHNlc2FtZQ2", "example.com/s?t=*");
    check_template("example.com/item/7?", "example.com/item/*?");
    check_template("example.com/item/7#frag", "example.com/item/*");
}

static void test_predicates(void)
{
    CHECK(template_segment_is_id("123", 3));
    CHECK(template_segment_is_id("8f14e45f-ceea-467a-9af4-2b4c8d1e2f3a", 36));
    CHECK(!template_segment_is_id("v2", 2));
    CHECK(!template_segment_is_id("css", 3));
    CHECK(!template_segment_is_id("deadbeef", 8)); /* hex word without a digit */
    CHECK(!template_segment_is_id("", 0));
    CHECK(template_value_is_volatile("123456", 6));
    CHECK(!template_value_is_volatile("12345", 5));
    CHECK(!template_value_is_volatile("red", 3));
}

static void test_volatile_url(void)
{
    CHECK(template_is_volatile_url("https://e.com/a.js?t=1700000000123"));
    CHECK(template_is_volatile_url("https://e.com/a.js?_=1700000000"));
    CHECK(template_is_volatile_url("https://e.com/a.js?nonce=0123456789abcdef01"));
    CHECK(template_is_volatile_url("https://e.com/a.js?r=8f14e45f-ceea-467a-9af4-2b4c8d1e2f3a"));
    CHECK(template_is_volatile_url("https://e.com/img/8f14e45f-ceea-467a-9af4-2b4c8d1e2f3a.png"));
    CHECK(!template_is_volatile_url("https://e.com/a.js?v=3"));
    CHECK(!template_is_volatile_url("https://e.com/a.js?v=20240601"));
    CHECK(!template_is_volatile_url("https://e.com/app.8f14e45fceea.js"));
    CHECK(!template_is_volatile_url("https://e.com/css/site.css"));
    CHECK(!template_is_volatile_url(NULL));
}

static void test_versions(void)
{
    /* one query value */
    CHECK(template_is_version_of("https://e.com/app.js?ver=6.1", "https://e.com/app.js?ver=6.2"));
    CHECK(template_is_version_of("https://e.com/a.css?v=1&m=2", "https://e.com/a.css?v=9&m=2"));
    CHECK(!template_is_version_of("https://e.com/a.css?v=1&m=2", "https://e.com/a.css?v=9&m=3"));
    CHECK(!template_is_version_of("https://e.com/app.js?ver=6.1", "https://e.com/app.js?lang=fr"));
    CHECK(!template_is_version_of("https://e.com/app.js?ver=6.1", "https://e.com/app.js"));
    CHECK(!template_is_version_of("https://e.com/a.js?v=1", "https://e.com/b.js?v=2"));
    /* one hashed token of one path segment */
    CHECK(template_is_version_of("https://e.com/js/app.3f2a9c1b.js",
                                 "https://e.com/js/app.77e01d5a.js"));
    CHECK(template_is_version_of("https://e.com/static/3f2a9c1b/app.js",
                                 "https://e.com/static/9e0d71aa/app.js"));
    CHECK(template_is_version_of("https://e.com/main-a1b2c3d4e5.css",
                                 "https://e.com/main-f6e5d4c3b2.css"));
    CHECK(!template_is_version_of("https://e.com/js/app.3f2a9c1b.js",
                                  "https://e.com/js/vendor.3f2a9c1b.js"));
    CHECK(!template_is_version_of("https://e.com/img/cat.png", "https://e.com/img/dog.png"));
    CHECK(!template_is_version_of("https://e.com/img/1.png", "https://e.com/img/2.png"));
    CHECK(
        !template_is_version_of("https://e.com/a/3f2a9c1b/x.js", "https://e.com/b/77e01d5a/x.js"));
    CHECK(!template_is_version_of("https://e.com/js/app.3f2a9c1b.js",
                                  "https://e.com/js/app.3f2a9c1b.min.js"));
    /* other origins, same URL, NULL */
    CHECK(!template_is_version_of("https://e.com/a.js?v=1", "https://f.com/a.js?v=2"));
    CHECK(template_is_version_of("https://E.com/a.js?v=1", "https://e.com/a.js?v=2"));
    CHECK(!template_is_version_of("https://e.com/a.js?v=1", "https://e.com/a.js?v=1"));
    CHECK(!template_is_version_of(NULL, "https://e.com/a.js"));
    CHECK(!template_is_version_of("a.js?v=1", "a.js?v=2"));
}

/* A URL's page key is what the proxy builds from its authority and path. */
static void test_url_page_key(void)
{
    const char *cases[][2] = {
        {"https://e.com/a?x=1", "e.com/a?x=1"}, {"https://e.com", "e.com/"},
        {"https://e.com?q=1", "e.com/?q=1"},    {"https://E.com:8443/p#frag", "E.com:8443/p"},
        {"http://e.com/#f", "e.com/"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *k = NULL;
        CHECK_INTEQ(template_url_page_key(cases[i][0], &k), 0);
        CHECK_STREQ(k, cases[i][1]);
        free(k);
    }
    char *k = NULL;
    CHECK_INTEQ(template_url_page_key("/relative", &k), HERALD_EINVAL);
    CHECK_INTEQ(template_url_page_key("https:///nohost", &k), HERALD_EINVAL);
    CHECK_INTEQ(template_url_page_key("://e.com/", &k), HERALD_EINVAL);
    CHECK_INTEQ(template_url_page_key(NULL, &k), HERALD_EINVAL);
    CHECK(template_same_origin("https://e.com/a", "HTTPS://E.COM/b?x"));
    CHECK(template_same_origin("https://e.com", "https://e.com/"));
    CHECK(!template_same_origin("https://e.com/a", "http://e.com/a"));
    CHECK(!template_same_origin("https://e.com/a", "https://e.com:8443/a"));
    CHECK(!template_same_origin("https://e.com/a", "https://e.co/a"));
    CHECK(!template_same_origin("/a", "https://e.com/a"));
    CHECK(!template_same_origin(NULL, "https://e.com/a"));
}

int main(void)
{
    test_url_page_key();
    test_versions();
    test_page_key();
    test_template_key();
    test_predicates();
    test_volatile_url();
    return TESTUTIL_SUMMARY();
}
