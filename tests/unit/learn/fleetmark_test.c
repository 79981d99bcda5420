/* learn/fleetmark: client hashes, the window decision, the bounded cache against a plain model. */
#include "fleetmark.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "testutil.h"

/* SHA-256(salt, 'n', 4, the IPv4 address's bytes), first 8 bytes: the documented hash. */
static uint64_t v4_expected(const unsigned char ip[4], const char *salt)
{
    unsigned char buf[64], md[SHA256_DIGEST_LENGTH];
    size_t n = strlen(salt);
    memcpy(buf, salt, n);
    buf[n++] = 'n';
    buf[n++] = 4;
    memcpy(buf + n, ip, 4);
    SHA256(buf, n + 4, md);
    uint64_t h = 0;
    for (int i = 0; i < 8; i++)
        h = h << 8 | md[i];
    return h;
}

static void test_client_hash(void)
{
    /* against SHA256() directly, with the thread's memo switching between
     * salts and addresses */
    static const unsigned char ip1[4] = {198, 51, 100, 7}, ip2[4] = {198, 51, 100, 8};
    for (int round = 0; round < 2; round++) {
        CHECK(fleetmark_client_hash("198.51.100.7", "s:", 2) == v4_expected(ip1, "s:"));
        CHECK(fleetmark_client_hash("198.51.100.7", "s:", 2) == v4_expected(ip1, "s:"));
        CHECK(fleetmark_client_hash("198.51.100.7", "t:", 2) == v4_expected(ip1, "t:"));
        CHECK(fleetmark_client_hash("198.51.100.8", "t:", 2) == v4_expected(ip2, "t:"));
        CHECK(fleetmark_client_hash("198.51.100.7", "t:", 2) == v4_expected(ip1, "t:"));
    }
    uint64_t v4 = fleetmark_client_hash("192.0.2.1", NULL, 0);
    CHECK(v4 != 0);
    CHECK(v4 == fleetmark_client_hash("::ffff:192.0.2.1", NULL, 0));
    CHECK(v4 == fleetmark_client_hash("[::ffff:192.0.2.1]", NULL, 0));
    CHECK(v4 != fleetmark_client_hash("192.0.2.2", NULL, 0));
    /* one /64 is one client; another /64 is another */
    uint64_t v6 = fleetmark_client_hash("2001:db8:aa:bb::1", NULL, 0);
    CHECK(v6 == fleetmark_client_hash("2001:db8:aa:bb:ffff:1:2:3", NULL, 0));
    CHECK(v6 == fleetmark_client_hash("[2001:db8:aa:bb::9]", NULL, 0));
    CHECK(v6 != fleetmark_client_hash("2001:db8:aa:bc::1", NULL, 0));
    /* the salt separates fleets */
    CHECK(v4 != fleetmark_client_hash("192.0.2.1", "s", 1));
    CHECK(fleetmark_client_hash("192.0.2.1", "s", 1) == fleetmark_client_hash("192.0.2.1", "s", 1));
    char longsalt[100];
    memset(longsalt, 'k', sizeof(longsalt));
    CHECK(fleetmark_client_hash("192.0.2.1", longsalt, 100) !=
          fleetmark_client_hash("192.0.2.1", longsalt, 99));
    /* not an address: the string itself, never equal to an address's network */
    uint64_t s = fleetmark_client_hash("unknown-client", NULL, 0);
    CHECK(s != 0 && s != fleetmark_client_hash("unknown-client2", NULL, 0));
    char big[600];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    uint64_t b1 = fleetmark_client_hash(big, NULL, 0);
    big[598] = 'y';
    CHECK(b1 != 0 && b1 != fleetmark_client_hash(big, NULL, 0));
    CHECK(fleetmark_client_hash(NULL, NULL, 0) == 0);
    CHECK(fleetmark_client_hash("", NULL, 0) == 0);
    /* the same on every instance and build: the first 64 bits of SHA-256("n" 04 c0 00 02 01)
     * and of SHA-256("e.com/"), as python3's hashlib computes them */
    CHECK(v4 == 0x454226afa4d05295ull);
    CHECK(fleetmark_key_hash("e.com/") == 0x01562a7f40a4478cull);
    CHECK(fleetmark_key_hash("e.com/") != 0);
    CHECK(fleetmark_key_hash("e.com/") != fleetmark_key_hash("e.com/x"));
}

static void test_window(void)
{
    fleetmark_t *m = NULL;
    CHECK_INTEQ(fleetmark_create(0, 10, &m), HERALD_EINVAL);
    CHECK_INTEQ(fleetmark_create(4, 0, &m), HERALD_EINVAL);
    CHECK_INTEQ(fleetmark_create(4, 1000, &m), 0);
    CHECK_INTEQ(fleetmark_window(m), 1000);
    CHECK(fleetmark_allows(m, 7, "p", 0));
    CHECK(fleetmark_take(m, 7, "p", 100));
    CHECK(!fleetmark_allows(m, 7, "p", 1099));
    CHECK(!fleetmark_take(m, 7, "p", 1099));
    CHECK(fleetmark_allows(m, 7, "q", 500)); /* another page */
    CHECK(fleetmark_allows(m, 8, "p", 500)); /* another client */
    CHECK(fleetmark_take(m, 0, "p", 500));   /* no mark: always */
    CHECK(fleetmark_take(m, 0, "p", 500));
    CHECK(fleetmark_allows(m, 7, "p", 1100)); /* the window is over */
    CHECK(fleetmark_take(m, 7, "p", 1100));
    CHECK(!fleetmark_take(m, 7, "p", 2099));

    /* a visit: the template mark is taken only when the page counts */
    bool page, tpl;
    fleetmark_take_visit(m, 9, "e.com/i/1", "e.com/i/*", 0, false, &page, &tpl);
    CHECK(page && tpl);
    fleetmark_take_visit(m, 9, "e.com/i/2", "e.com/i/*", 10, false, &page, &tpl);
    CHECK(page && !tpl);
    fleetmark_take_visit(m, 9, "e.com/i/2", "e.com/i/*", 20, false, &page, &tpl);
    CHECK(!page && !tpl);
    fleetmark_take_visit(m, 9, "e.com/x", "e.com/x", 20, false, &page, &tpl);
    CHECK(page && !tpl); /* a template equal to the page is none */

    /* marks learned from Redis */
    fleetmark_note(m, 11, "p", 5000);
    CHECK(!fleetmark_allows(m, 11, "p", 4999));
    CHECK(fleetmark_allows(m, 11, "p", 5000));
    fleetmark_note(m, 11, "p", 4000); /* an earlier end does not shorten it */
    CHECK(!fleetmark_allows(m, 11, "p", 4500));
    CHECK(fleetmark_redis_reply(m, 12, "p", 100, 0)); /* Redis set it: counts, noted */
    CHECK(!fleetmark_allows(m, 12, "p", 1099));
    CHECK(!fleetmark_redis_reply(m, 13, "p", 100, 250)); /* live elsewhere for 250 ms */
    CHECK(!fleetmark_allows(m, 13, "p", 349));
    CHECK(fleetmark_allows(m, 13, "p", 350));
    CHECK(fleetmark_redis_reply(m, 14, "p", 100, -1)); /* no answer: the cache decides */
    CHECK(!fleetmark_redis_reply(m, 14, "p", 200, -1));

    /* folding: a seen mark (held by another instance's visit) does not bar that visit when it
     * arrives in a batch; a counted one (this map counted the client already) does */
    fleetmark_take_visit(m, 13, "p", NULL, 200, true, &page, &tpl);
    CHECK(page); /* 13 was only seen (reply 250 above): the holder's visit counts here */
    fleetmark_take_visit(m, 13, "p", NULL, 210, true, &page, &tpl);
    CHECK(!page); /* now counted here: a second one does not */
    fleetmark_take_visit(m, 12, "p", NULL, 300, true, &page, &tpl);
    CHECK(!page); /* 12 counted locally (reply 0) */
    fleetmark_note(m, 15, "p", 10000);
    CHECK(!fleetmark_take(m, 15, "p", 300)); /* a local visit: seen marks bar it */
    fleetmark_destroy(m);
}

/* The cache against a plain list (capacity, eviction of the oldest inserted, lookups). */
static void test_model(void)
{
    /* a window longer than the ring lasts: live marks are evicted too */
    enum { CAP = 128, OPS = 200000, WINDOW = 300 };
    fleetmark_t *m = NULL;
    CHECK_INTEQ(fleetmark_create(CAP, WINDOW, &m), 0);
    struct {
        uint64_t c;
        int k;
        int64_t until;
    } model[CAP];
    size_t head = 0, n = 0;
    uint64_t s = 88172645463325252ull;
    char key[16];
    int bad = 0, evicted_live = 0;
    for (int64_t t = 0; t < OPS; t++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        uint64_t c = 1 + s % 16;
        int k = (int)((s >> 20) % 16);
        snprintf(key, sizeof(key), "k%d", k);
        /* the model's answer */
        size_t at = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            size_t j = (head + i) % CAP;
            if (model[j].c == c && model[j].k == k)
                at = j;
        }
        bool want = at == SIZE_MAX || model[at].until <= t;
        bool got = fleetmark_take(m, c, key, t);
        bad += got != want;
        if (want) {
            if (at != SIZE_MAX) {
                model[at].until = t + WINDOW;
            } else {
                if (n == CAP) {
                    evicted_live += model[head].until > t;
                    head = (head + 1) % CAP, n--;
                }
                size_t j = (head + n++) % CAP;
                model[j].c = c, model[j].k = k, model[j].until = t + WINDOW;
            }
        }
    }
    CHECK_INTEQ(bad, 0);
    CHECK(evicted_live > 1000); /* the case this test is for happened */
    CHECK_INTEQ(fleetmark_count(m), CAP);
    fleetmark_destroy(m);
}

/* The first 8 bytes of SHA-256(key), big-endian, from OpenSSL directly. */
static uint64_t sha_first64(const char *key)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), md);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | md[i];
    return v;
}

/* Key hashes are remembered per thread: asked again, in any order, for
 * keys that share a slot, for keys too long to remember, each is still
 * its own SHA-256. */
static void test_key_hash_memo(void)
{
    char keys[300][160];
    for (int i = 0; i < 300; i++) {
        int len = snprintf(keys[i], sizeof(keys[i]), "e.com/page/%d", i);
        if (i % 10 == 9) /* over the memo's key length */
            memset(keys[i] + len, 'x', sizeof(keys[i]) - 1 - (size_t)len), keys[i][159] = '\0';
    }
    int bad = 0;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 300; i++) {
            int k = round == 1 ? 299 - i : (i * 7) % 300;
            bad += fleetmark_key_hash(keys[k]) != sha_first64(keys[k]);
        }
    CHECK_INTEQ(bad, 0);
    CHECK(fleetmark_key_hash("") == sha_first64(""));
    CHECK(fleetmark_key_hash(NULL) == sha_first64(""));
}

int main(void)
{
    test_client_hash();
    test_key_hash_memo();
    test_window();
    test_model();
    return TESTUTIL_SUMMARY();
}
