/* learn/cachepolicy: header facts, and what they allow for a push and a hint. */
#include "learn/cachepolicy.h"

#include "tests/unit/testutil.h"

static void test_parse(void)
{
    CHECK_INTEQ(cachepolicy_parse_cache_control(NULL), 0);
    CHECK_INTEQ(cachepolicy_parse_cache_control("public, max-age=3600"), 0);
    CHECK_INTEQ(cachepolicy_parse_cache_control("max-age=0, no-store"), CACHEPOLICY_NO_STORE);
    CHECK_INTEQ(cachepolicy_parse_cache_control("Private"), CACHEPOLICY_PRIVATE);
    CHECK_INTEQ(cachepolicy_parse_cache_control("no-cache, private=\"set-cookie, x\""),
                CACHEPOLICY_NO_CACHE | CACHEPOLICY_PRIVATE);
    /* a quoted value that names directives is not one */
    CHECK_INTEQ(cachepolicy_parse_cache_control("max-age=60, foo=\"no-store, x\""), 0);
    CHECK_INTEQ(cachepolicy_parse_cache_control("no-storex, xno-cache"), 0);
    CHECK_INTEQ(cachepolicy_parse_vary(NULL), 0);
    CHECK_INTEQ(cachepolicy_parse_vary("Accept-Encoding"), CACHEPOLICY_VARY_ENCODING);
    CHECK_INTEQ(cachepolicy_parse_vary("accept-encoding, Cookie"),
                CACHEPOLICY_VARY_ENCODING | CACHEPOLICY_VARY_COOKIE);
    CHECK_INTEQ(cachepolicy_parse_vary("User-Agent,Accept-Language"),
                CACHEPOLICY_VARY_UA | CACHEPOLICY_VARY_LANGUAGE);
    CHECK_INTEQ(cachepolicy_parse_vary("*"), CACHEPOLICY_VARY_OTHER);
    CHECK_INTEQ(cachepolicy_parse_vary("Origin"), CACHEPOLICY_VARY_OTHER);
    CHECK_INTEQ(cachepolicy_parse_vary(" , "), 0);
}

static void test_rules(void)
{
    const char *why = "unset";
    CHECK(cachepolicy_pushable(0, &why) && why == NULL);
    /* Vary on what a PUSH_PROMISE copies from the page's request is fine */
    CHECK(cachepolicy_pushable(CACHEPOLICY_VARY_COOKIE | CACHEPOLICY_VARY_ENCODING |
                                   CACHEPOLICY_VARY_LANGUAGE | CACHEPOLICY_VARY_UA,
                               NULL));
    CHECK(!cachepolicy_pushable(CACHEPOLICY_VARY_OTHER, &why) && why != NULL);
    CHECK(!cachepolicy_pushable(CACHEPOLICY_SET_COOKIE, NULL));
    CHECK(!cachepolicy_pushable(CACHEPOLICY_PRIVATE, NULL));
    CHECK(!cachepolicy_pushable(CACHEPOLICY_NO_CACHE, NULL));
    CHECK(!cachepolicy_pushable(CACHEPOLICY_NO_STORE, NULL));
    /* hints: the browser fetches with its own cookies */
    CHECK_INTEQ(cachepolicy_hintable(CACHEPOLICY_SET_COOKIE | CACHEPOLICY_PRIVATE, NULL),
                CACHEPOLICY_HINT_YES);
    CHECK_INTEQ(cachepolicy_hintable(CACHEPOLICY_NO_STORE, &why), CACHEPOLICY_HINT_NO);
    CHECK(why != NULL);
    CHECK_INTEQ(cachepolicy_hintable(CACHEPOLICY_VARY_COOKIE, NULL),
                CACHEPOLICY_HINT_IF_COOKIE_STABLE);
    CHECK_INTEQ(cachepolicy_hintable(CACHEPOLICY_VARY_OTHER, NULL), CACHEPOLICY_HINT_YES);
    for (unsigned i = 0; i < CACHEPOLICY_NBITS; i++)
        CHECK(cachepolicy_bit_name(i) != NULL);
    CHECK(cachepolicy_bit_name(CACHEPOLICY_NBITS) == NULL);
    CHECK_INTEQ(CACHEPOLICY_ALL, (1u << CACHEPOLICY_NBITS) - 1);
}

int main(void)
{
    test_parse();
    test_rules();
    return TESTUTIL_SUMMARY();
}
