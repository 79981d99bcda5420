/* learn/digest: round trip, false-positive rate, known encodings, malformed input. */
#include "digest.h"

#include <stdio.h>
#include <stdlib.h>

#include "herald/error.h"
#include "testutil.h"

static void test_round_trip(void)
{
    digest_builder_t b;
    digest_builder_init(&b, DIGEST_DEFAULT_LOG2P);
    char url[64];
    for (int i = 0; i < 100; i++) {
        snprintf(url, sizeof(url), "https://e.com/asset%d.js", i);
        CHECK_INTEQ(digest_builder_add(&b, url, i % 2 ? "\"v1\"" : NULL), 0);
    }
    CHECK_INTEQ(digest_builder_add(&b, "https://e.com/asset0.js", NULL), 0); /* duplicate */
    char *value = NULL;
    size_t len = 0;
    CHECK_INTEQ(digest_builder_finish(&b, &value, &len), 0);
    CHECK(value != NULL && strlen(value) == len);
    CHECK(strchr(value, '=') == NULL && strchr(value, '+') == NULL && strchr(value, '/') == NULL);
    /* ~ 100 * (1 + 1 + 7 bits) / 8 ≈ 112 bytes → ~150 chars */
    CHECK(len < 220);

    testutil_guard_t g;
    const char *gv = testutil_guard(&g, value, len);
    digest_t d;
    const char *reason = NULL;
    CHECK_INTEQ(digest_parse(gv, len, &d, &reason), 0);
    CHECK_INTEQ(d.log2n, 7);
    CHECK_INTEQ(d.log2p, 7);
    CHECK(d.n >= 98 && d.n <= 100); /* truncated hashes may collide */
    for (int i = 0; i < 100; i++) {
        snprintf(url, sizeof(url), "https://e.com/asset%d.js", i);
        CHECK(digest_contains(&d, url, i % 2 ? "\"v1\"" : NULL));
    }
    /* a changed ETag is (almost surely) not in the digest */
    CHECK(!digest_contains(&d, "https://e.com/asset1.js", "\"v2\""));
    digest_dispose(&d);
    testutil_guard_free(&g);

    /* padded form accepted */
    char *padded = malloc(len + 3);
    memcpy(padded, value, len);
    size_t pl = len;
    while (pl % 4)
        padded[pl++] = '=';
    CHECK_INTEQ(digest_parse(padded, pl, &d, &reason), 0);
    CHECK(d.n >= 98);
    digest_dispose(&d);
    free(padded);
    free(value);
    digest_builder_dispose(&b);
}

static void test_false_positives(void)
{
    for (unsigned log2p = 5; log2p <= 8; log2p++) {
        digest_builder_t b;
        digest_builder_init(&b, log2p);
        char url[64];
        for (int i = 0; i < 1000; i++) {
            snprintf(url, sizeof(url), "https://e.com/m/%d.png", i);
            CHECK_INTEQ(digest_builder_add(&b, url, "\"e\""), 0);
        }
        char *value;
        size_t len;
        CHECK_INTEQ(digest_builder_finish(&b, &value, &len), 0);
        digest_t d;
        CHECK_INTEQ(digest_parse(value, len, &d, NULL), 0);
        int fp = 0, trials = 10000;
        for (int i = 0; i < trials; i++) {
            snprintf(url, sizeof(url), "https://e.com/other/%d.png", i);
            fp += digest_contains(&d, url, "\"e\"");
        }
        double rate = (double)fp / trials, nominal = 1.0 / (1u << log2p);
        /* N rounds 1000 up to 1024, so the real rate is ~ 1000/1024 of nominal */
        fprintf(stderr, "log2p=%u: false positives %d/%d = %.4f (nominal %.4f)\n", log2p, fp,
                trials, rate, nominal);
        CHECK(rate <= 2 * nominal);
        digest_dispose(&d);
        free(value);
        digest_builder_dispose(&b);
    }
}

static void test_known_encoding(void)
{
    /* Empty set: N = 1 (log 0), P = 2^7: bits 00000 00111, padded to 16 bits:
     * 0000 0001 1100 0000 = 0x01 0xC0 → base64url "AcA". */
    digest_builder_t b;
    digest_builder_init(&b, 7);
    char *value;
    CHECK_INTEQ(digest_builder_finish(&b, &value, NULL), 0);
    CHECK_STREQ(value, "AcA");
    digest_t d;
    CHECK_INTEQ(digest_parse(value, strlen(value), &d, NULL), 0);
    CHECK_INTEQ(d.n, 0);
    CHECK(!digest_contains(&d, "https://e.com/", NULL));
    digest_dispose(&d);
    free(value);
    digest_builder_dispose(&b);
    /* Hand-built: log2n=1, log2p=2 → 3-bit values {1, 6}: D=1 → "1"+"01",
     * D=4 → "0"+"1"+"00": 00001 00010 101 0100 + 7 pad bits
     * = 0x08 0xAA 0x00 = "CKoA" */
    CHECK_INTEQ(digest_parse("CKoA", 4, &d, NULL), 0);
    CHECK_INTEQ(d.n, 2);
    if (d.n == 2) {
        CHECK_INTEQ(d.v[0], 1);
        CHECK_INTEQ(d.v[1], 6);
    }
    digest_dispose(&d);
}

static void test_merge(void)
{
    /* cookie 1: 10 assets, N kept at 2^8 */
    digest_builder_t b;
    digest_builder_init(&b, 7);
    b.min_log2n = 8;
    char url[64];
    for (int i = 0; i < 10; i++) {
        snprintf(url, sizeof(url), "https://e.com/old%d.css", i);
        CHECK_INTEQ(digest_builder_add(&b, url, "\"1\""), 0);
    }
    char *v1;
    CHECK_INTEQ(digest_builder_finish(&b, &v1, NULL), 0);
    digest_builder_dispose(&b);
    digest_t d1;
    CHECK_INTEQ(digest_parse(v1, strlen(v1), &d1, NULL), 0);
    CHECK_INTEQ(d1.log2n, 8);
    /* cookie 2 = cookie 1 + 5 new pushes, built without min_log2n: N stays 2^8 */
    digest_builder_init(&b, 7);
    CHECK_INTEQ(digest_builder_add_digest(&b, &d1), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(url, sizeof(url), "https://e.com/new%d.js", i);
        CHECK_INTEQ(digest_builder_add(&b, url, NULL), 0);
    }
    char *v2;
    CHECK_INTEQ(digest_builder_finish(&b, &v2, NULL), 0);
    digest_builder_dispose(&b);
    digest_t d2;
    CHECK_INTEQ(digest_parse(v2, strlen(v2), &d2, NULL), 0);
    CHECK_INTEQ(d2.log2n, 8);
    for (int i = 0; i < 10; i++) {
        snprintf(url, sizeof(url), "https://e.com/old%d.css", i);
        CHECK(digest_contains(&d2, url, "\"1\""));
    }
    for (int i = 0; i < 5; i++) {
        snprintf(url, sizeof(url), "https://e.com/new%d.js", i);
        CHECK(digest_contains(&d2, url, NULL));
    }
    /* N grows past the old digest: new keys are in, nothing breaks */
    digest_builder_init(&b, 7);
    CHECK_INTEQ(digest_builder_add_digest(&b, &d2), 0);
    for (int i = 0; i < 300; i++) {
        snprintf(url, sizeof(url), "https://e.com/more%d.png", i);
        CHECK_INTEQ(digest_builder_add(&b, url, NULL), 0);
    }
    char *v3;
    CHECK_INTEQ(digest_builder_finish(&b, &v3, NULL), 0);
    digest_builder_dispose(&b);
    digest_t d3;
    CHECK_INTEQ(digest_parse(v3, strlen(v3), &d3, NULL), 0);
    CHECK_INTEQ(d3.log2n, 9);
    CHECK(digest_contains(&d3, "https://e.com/more299.png", NULL));
    CHECK_INTEQ(d3.n <= 300, 1); /* the 15 old prefixes were too short: dropped */
    digest_dispose(&d1);
    digest_dispose(&d2);
    digest_dispose(&d3);
    free(v1);
    free(v2);
    free(v3);
    CHECK_INTEQ(digest_builder_add_digest(&b, &(digest_t){0}), HERALD_EINVAL);
}

static void expect_bad(const char *v, int want)
{
    digest_t d;
    const char *reason = NULL;
    testutil_guard_t g;
    const char *gv = testutil_guard(&g, v, strlen(v));
    CHECK_INTEQ(digest_parse(gv, strlen(v), &d, &reason), want);
    CHECK(reason != NULL);
    CHECK(d.v == NULL && d.n == 0);
    testutil_guard_free(&g);
}

static void test_malformed(void)
{
    expect_bad("", HERALD_EPARSE);         /* no header */
    expect_bad("A", HERALD_EPARSE);        /* bad length */
    expect_bad("AA", HERALD_EPARSE);       /* 8 bits: header truncated */
    expect_bad("Ac!A", HERALD_EPARSE);     /* bad character */
    expect_bad("AcB", HERALD_EPARSE);      /* non-zero pad bits */
    expect_bad("AAA", HERALD_EPARSE);      /* P = 2^0 */
    expect_bad("_8A", HERALD_ETOOBIG);     /* log2n = 31 */
    expect_bad("CKoAAAAA", HERALD_EPARSE); /* zero run ≥ 8 bits after the last value */
    expect_bad("CKv_", HERALD_EPARSE);     /* trailing ones: value out of range */
    char *big = malloc(DIGEST_MAX_VALUE_LEN + 2);
    memset(big, 'A', DIGEST_MAX_VALUE_LEN + 1);
    big[DIGEST_MAX_VALUE_LEN + 1] = '\0';
    expect_bad(big, HERALD_ETOOBIG);
    free(big);
    digest_t d;
    CHECK_INTEQ(digest_parse(NULL, 0, &d, NULL), HERALD_EPARSE);
    CHECK(!digest_contains(NULL, "x", NULL));
    digest_dispose(NULL);
}

int main(void)
{
    test_round_trip();
    test_false_positives();
    test_known_encoding();
    test_merge();
    test_malformed();
    return TESTUTIL_SUMMARY();
}
