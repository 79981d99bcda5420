/* query.c: parameters of application/x-www-form-urlencoded query
 * strings (WHATWG URL, "urlencoded parsing": '&' separates, '+' is a space,
 * %XX decodes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "testutil.h"

static void check_get(const char *q, const char *name, const char *want, int line)
{
    char *v = query_get(q, name);
    if (!((v == NULL && want == NULL) || (v != NULL && want != NULL && strcmp(v, want) == 0)))
        fprintf(stderr, "line %d: %s in %s: got %s, want %s\n", line, name, q ? q : "(null)",
                v ? v : "(null)", want ? want : "(null)");
    CHECK_STREQ(v, want);
    free(v);
}
#define CHECK_GET(q, name, want) check_get((q), (name), (want), __LINE__)

static void test_get(void)
{
    const char *q = "page=127.0.0.1%3A8080%2F&asset=http%3a%2f%2fa%2Fx.js&q=a+b&flag&empty=";
    CHECK_GET(q, "page", "127.0.0.1:8080/");
    CHECK_GET(q, "asset", "http://a/x.js"); /* lower-case hex too */
    CHECK_GET(q, "q", "a b");
    CHECK_GET(q, "flag", "");
    CHECK_GET(q, "empty", "");
    CHECK_GET(q, "pag", NULL); /* a prefix of a name is not the name */
    CHECK_GET(q, "pages", NULL);
    CHECK_GET(q, "missing", NULL);
    CHECK_GET(NULL, "page", NULL);
    CHECK_GET("", "page", NULL);
    CHECK_GET("a=1&a=2", "a", "1"); /* the first wins */
    CHECK_GET("&&a=1&", "a", "1");
    /* a '%' without two hex digits stays as it is */
    CHECK_GET("a=%", "a", "%");
    CHECK_GET("a=%4", "a", "%4");
    CHECK_GET("a=%4g", "a", "%4g");
    CHECK_GET("a=100%25", "a", "100%");
    CHECK_GET("a=%41", "a", "A"); /* at the very end */
    CHECK_GET("a=x=y", "a", "x=y");
}

static void test_size(void)
{
    size_t n = 7;
    CHECK(query_size("offset=12&limit=3", "offset", 0, &n) && n == 12);
    CHECK(query_size("offset=12&limit=3", "limit", 100, &n) && n == 3);
    CHECK(query_size("offset=12", "limit", 100, &n) && n == 100);
    CHECK(query_size("limit=", "limit", 100, &n) && n == 100);
    CHECK(!query_size("limit=-1", "limit", 100, &n));
    CHECK(!query_size("limit=+1", "limit", 100, &n));
    CHECK(!query_size("limit=%20-1", "limit", 100, &n)); /* " -1" */
    CHECK(!query_size("limit=+5", "limit", 100, &n));    /* "+" is a space: " 5" */
    CHECK(!query_size("limit=1x", "limit", 100, &n));
    CHECK(!query_size("limit=99999999999999999999999", "limit", 100, &n));
    CHECK(query_size("limit=18446744073709551615", "limit", 100, &n) && n == SIZE_MAX);
}

int main(void)
{
    test_get();
    test_size();
    return TESTUTIL_SUMMARY();
}
