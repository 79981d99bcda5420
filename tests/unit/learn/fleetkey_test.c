/* learn/fleetkey: the key layout, exactly as docs/fleet.md lists it. */
#include "fleetkey.h"

#include <stdio.h>

#include "herald/error.h"
#include "testutil.h"

static void test_names(void)
{
    static const char *const want[FLEETKEY_NAME_COUNT_] = {
        "herald:v1:epoch", "herald:v1:log",  "herald:v1:steer",    "herald:v1:steer:chan",
        "herald:v1:pins",  "herald:v1:base", "herald:v1:base:lock"};
    char buf[FLEETKEY_MAX_LEN];
    for (int i = 0; i < FLEETKEY_NAME_COUNT_; i++) {
        int n = fleetkey_build(buf, sizeof(buf), FLEETKEY_DEFAULT_PREFIX, (fleetkey_name_t)i);
        CHECK_INTEQ(n, strlen(want[i]));
        CHECK_STREQ(buf, want[i]);
    }
    CHECK_INTEQ(fleetkey_build(buf, sizeof(buf), "", FLEETKEY_LOG), 6);
    CHECK_STREQ(buf, "v1:log");
    CHECK_INTEQ(fleetkey_build(buf, sizeof(buf), "shop-eu{1}:", FLEETKEY_PINS), 18);
    CHECK_STREQ(buf, "shop-eu{1}:v1:pins");
    CHECK(fleetkey_seq(buf, sizeof(buf), "herald:", "7f3a-0") > 0);
    CHECK_STREQ(buf, "herald:v1:seq:7f3a-0");
    CHECK(fleetkey_steer_seq(buf, sizeof(buf), "herald:", "i1") > 0);
    CHECK_STREQ(buf, "herald:v1:steer:seq:i1");
    CHECK(fleetkey_base_chunks(buf, sizeof(buf), "herald:", "i1-4") > 0);
    CHECK_STREQ(buf, "herald:v1:base:i1-4");
    /* SHA-256("e.com/") starts 01562a7f40a4478c (python3's hashlib) */
    CHECK(fleetkey_mark(buf, sizeof(buf), "herald:", 0xabcull, "e.com/") > 0);
    CHECK_STREQ(buf, "herald:v1:mark:0000000000000abc:01562a7f40a4478c");
}

static void test_refuses(void)
{
    char buf[FLEETKEY_MAX_LEN];
    CHECK(fleetkey_prefix_valid("herald:"));
    CHECK(fleetkey_prefix_valid(""));
    CHECK(!fleetkey_prefix_valid("a b"));
    CHECK(!fleetkey_prefix_valid("a\nb"));
    CHECK(!fleetkey_prefix_valid("caf\xc3\xa9"));
    CHECK(!fleetkey_prefix_valid(NULL));
    char longp[FLEETKEY_MAX_PREFIX + 2];
    memset(longp, 'p', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    CHECK(!fleetkey_prefix_valid(longp));
    longp[FLEETKEY_MAX_PREFIX] = '\0';
    CHECK(fleetkey_prefix_valid(longp));
    /* the longest prefix and id still fit FLEETKEY_MAX_LEN */
    char id[65];
    memset(id, 'i', 64);
    id[64] = '\0';
    CHECK(fleetkey_steer_seq(buf, sizeof(buf), longp, id) > 0);
    CHECK(fleetkey_mark(buf, sizeof(buf), longp, 1, "k") > 0);
    CHECK_INTEQ(fleetkey_build(buf, 5, "herald:", FLEETKEY_LOG), HERALD_ETOOBIG);
    CHECK_INTEQ(fleetkey_build(buf, sizeof(buf), "a b", FLEETKEY_LOG), HERALD_EINVAL);
    CHECK_INTEQ(fleetkey_build(buf, sizeof(buf), "h:", FLEETKEY_NAME_COUNT_), HERALD_EINVAL);
    CHECK_INTEQ(fleetkey_seq(buf, sizeof(buf), "h:", "a/b"), HERALD_EINVAL);
    CHECK_INTEQ(fleetkey_mark(buf, sizeof(buf), "h:", 0, "k"), HERALD_EINVAL);
    CHECK_INTEQ(fleetkey_mark(buf, sizeof(buf), "h:", 1, NULL), HERALD_EINVAL);
}

int main(void)
{
    test_names();
    test_refuses();
    return TESTUTIL_SUMMARY();
}
