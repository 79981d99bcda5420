/* learn/netmem.c: client-network keys, bounds, expiry, medians, the population. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "learn/netmem.h"
#include "herald/error.h"
#include "tests/unit/testutil.h"

static const char *fmt(const netmem_key_t *k)
{
    static char buf[64];
    netmem_key_format(k, buf, sizeof(buf));
    return buf;
}

/* The network of s, formatted; "EINVAL" when s is no address. */
static const char *net_of(const char *s)
{
    netmem_key_t k;
    if (netmem_key_parse(s, strlen(s), &k) != 0)
        return "EINVAL";
    return fmt(&k);
}

static const char *forwarded(const char *s)
{
    netmem_key_t k;
    if (netmem_key_forwarded(s, strlen(s), &k) != 0)
        return "EINVAL";
    return fmt(&k);
}

static netmem_key_t key(const char *s)
{
    netmem_key_t k;
    memset(&k, 0, sizeof(k));
    CHECK_INTEQ(netmem_key_parse(s, strlen(s), &k), 0);
    return k;
}

static void test_keys(void)
{
    CHECK_STREQ(net_of("203.0.113.9"), "203.0.113.0/24");
    CHECK_STREQ(net_of("203.0.113.250"), "203.0.113.0/24");
    CHECK_STREQ(net_of(" 203.0.113.9:443 "), "203.0.113.0/24");
    CHECK_STREQ(net_of("2001:db8:1:2::1"), "2001:db8:1::/48");
    CHECK_STREQ(net_of("[2001:db8:1:ffff::7]:8443"), "2001:db8:1::/48");
    CHECK_STREQ(net_of("[2001:db8:2::1]"), "2001:db8:2::/48");
    CHECK_STREQ(net_of("fe80::1%eth0"), "fe80::/48");
    CHECK_STREQ(net_of("::ffff:10.1.2.3"), "10.1.2.0/24"); /* IPv4-mapped counts as IPv4 */
    CHECK_STREQ(net_of("::1"), "::/48");
    CHECK_STREQ(net_of(""), "EINVAL");
    CHECK_STREQ(net_of("unknown"), "EINVAL");
    CHECK_STREQ(net_of("_hidden"), "EINVAL");
    CHECK_STREQ(net_of("1.2.3"), "EINVAL");
    CHECK_STREQ(net_of("1.2.3.4.5"), "EINVAL");
    CHECK_STREQ(net_of("1.2.3.400"), "EINVAL");
    CHECK_STREQ(net_of("1.2.3.4:"), "EINVAL");
    CHECK_STREQ(net_of("1.2.3.4:http"), "EINVAL");
    CHECK_STREQ(net_of("[::1"), "EINVAL");
    CHECK_STREQ(net_of("[::1]x"), "EINVAL");
    CHECK_STREQ(net_of("::g"), "EINVAL");
    CHECK_STREQ(net_of("1.2.3.4 5.6.7.8"), "EINVAL");
    char longtext[200];
    memset(longtext, '1', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    CHECK_STREQ(net_of(longtext), "EINVAL");

    /* X-Forwarded-For: the rightmost element is what the trusted proxy saw. */
    CHECK_STREQ(forwarded("198.51.100.7"), "198.51.100.0/24");
    CHECK_STREQ(forwarded("203.0.113.9, 198.51.100.7"), "198.51.100.0/24");
    CHECK_STREQ(forwarded("1.1.1.1,2.2.2.2,3.3.3.3"), "3.3.3.0/24");
    CHECK_STREQ(forwarded("203.0.113.9, [2001:db8:5::1]:1234"), "2001:db8:5::/48");
    CHECK_STREQ(forwarded("198.51.100.7, unknown"), "EINVAL"); /* not the spoofable left one */
    CHECK_STREQ(forwarded("198.51.100.7,"), "EINVAL");
    CHECK_STREQ(forwarded(""), "EINVAL");

    /* Two addresses of one /24 are one key; the next /24 is another. */
    netmem_key_t a = key("192.0.2.1"), b = key("192.0.2.254"), c = key("192.0.3.1");
    CHECK(memcmp(&a, &b, sizeof(a)) == 0);
    CHECK(memcmp(&a, &c, sizeof(a)) != 0);
    char small[8];
    CHECK_INTEQ(netmem_key_format(&a, small, sizeof(small)), strlen("192.0.2.0/24"));
    CHECK_STREQ(small, "192.0.2");
}

static bool near(double a, double b)
{
    return fabs(a - b) <= 1e-9 * (fabs(a) + fabs(b) + 1);
}

static void test_estimates(void)
{
    netmem_opts_t o = {.max_networks = 16, .per_network = 4, .population = 8, .ttl_s = 100};
    netmem_t *m = netmem_create(&o);
    CHECK(m != NULL);
    netmem_key_t k = key("10.0.0.1");
    netmem_est_t e;
    CHECK(!netmem_get(m, &k, 0, &e));
    CHECK(!netmem_population(m, 0, &e));
    CHECK_INTEQ(netmem_note(m, &k, 1, 0, 10, 1), HERALD_EINVAL);
    CHECK_INTEQ(netmem_note(m, &k, 1, -5, 10, 1), HERALD_EINVAL);
    CHECK_INTEQ(netmem_note(m, &k, 1, NAN, 10, 1), HERALD_EINVAL);
    CHECK_INTEQ(netmem_note(m, &k, 1, INFINITY, 10, 1), HERALD_EINVAL);
    CHECK(!netmem_get(m, &k, 1, &e));

    /* One connection measuring again replaces its own sample. */
    CHECK_INTEQ(netmem_note(m, &k, 1, 1000, 20, 1), 0);
    CHECK_INTEQ(netmem_note(m, &k, 1, 2000, 30, 2), 0);
    CHECK(netmem_get(m, &k, 2, &e));
    CHECK_INTEQ(e.n, 1);
    CHECK(near(e.rate, 2000) && near(e.rtt_ms, 30));

    /* Other connections add samples, the last per_network kept; median. */
    CHECK_INTEQ(netmem_note(m, &k, 2, 4000, 10, 3), 0);
    CHECK_INTEQ(netmem_note(m, &k, 3, 3000, -1, 4), 0); /* RTT unknown */
    CHECK(netmem_get(m, &k, 4, &e));
    CHECK_INTEQ(e.n, 3);
    CHECK(near(e.rate, 3000));
    CHECK(near(e.rtt_ms, 20)); /* median of 30 and 10: only samples that have one */
    CHECK(near(e.age_s, 0));
    CHECK_INTEQ(netmem_note(m, &k, 4, 100, 10, 5), 0);
    CHECK_INTEQ(netmem_note(m, &k, 5, 100, 10, 6), 0); /* conn 1's sample (2000) goes */
    CHECK(netmem_get(m, &k, 6, &e));
    CHECK_INTEQ(e.n, 4);
    CHECK(near(e.rate, (100 + 3000) / 2.0)); /* 100 100 3000 4000 */

    /* The population: every network's recent connections. */
    netmem_key_t k6 = key("2001:db8::1");
    CHECK_INTEQ(netmem_note(m, &k6, 6, 9000, 50, 7), 0);
    CHECK(netmem_population(m, 7, &e));
    CHECK_INTEQ(e.n, 6); /* conns 1..6, conn 1 once */
    CHECK(near(e.rate, (2000 + 3000) / 2.0));
    netmem_key_t other = key("10.0.1.1");
    CHECK(!netmem_get(m, &other, 7, &e)); /* never seen: the caller falls back to the population */

    netmem_entry_t v[4];
    CHECK_INTEQ(netmem_list(m, 7, v, 4), 2);
    CHECK_STREQ(fmt(&v[0].key), "2001:db8::/48"); /* most recently updated first */
    CHECK_STREQ(fmt(&v[1].key), "10.0.0.0/24");
    CHECK_INTEQ(netmem_list(m, 7, v, 1), 1);

    netmem_stats_t st;
    netmem_stats(m, 7, &st);
    CHECK_INTEQ(st.networks, 2);
    CHECK_INTEQ(st.notes, 7);
    CHECK(near(st.p10, 1550) && near(st.p90, 9000));
    CHECK(st.population.n == 6);
    netmem_destroy(m);
}

static void test_bounds(void)
{
    netmem_opts_t o = {.max_networks = 4, .per_network = 2, .population = 3, .ttl_s = 100};
    netmem_t *m = netmem_create(&o);
    char addr[32];
    for (int i = 0; i < 6; i++) {
        snprintf(addr, sizeof(addr), "10.0.%d.1", i);
        netmem_key_t k = key(addr);
        CHECK_INTEQ(netmem_note(m, &k, (uint64_t)i + 1, 1000.0 * (i + 1), 10, i), 0);
    }
    netmem_stats_t st;
    netmem_stats(m, 6, &st);
    CHECK_INTEQ(st.networks, 4);
    CHECK_INTEQ(st.evicted, 2);
    netmem_est_t e;
    netmem_key_t first = key("10.0.0.1"), second = key("10.0.1.1"), third = key("10.0.2.1");
    CHECK(!netmem_get(m, &first, 6, &e)); /* updated longest ago: evicted */
    CHECK(!netmem_get(m, &second, 6, &e));
    CHECK(netmem_get(m, &third, 6, &e) && near(e.rate, 3000));
    CHECK(netmem_population(m, 6, &e));
    CHECK_INTEQ(e.n, 3); /* the population ring keeps the last 3 connections */
    CHECK(near(e.rate, 5000));

    /* Updating a network makes it the newest: a later eviction spares it. */
    CHECK_INTEQ(netmem_note(m, &third, 100, 3000, 10, 7), 0);
    netmem_key_t k7 = key("10.0.7.1");
    CHECK_INTEQ(netmem_note(m, &k7, 101, 7000, 10, 8), 0);
    CHECK(netmem_get(m, &third, 8, &e));
    netmem_key_t fourth = key("10.0.3.1");
    CHECK(!netmem_get(m, &fourth, 8, &e));

    /* Many more networks than fit: still bounded, still consistent. */
    for (int i = 0; i < 1000; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.1", 1 + i / 250, i % 250);
        netmem_key_t k = key(addr);
        CHECK_INTEQ(netmem_note(m, &k, 1000 + (uint64_t)i, 500, 10, 9), 0);
    }
    netmem_stats(m, 9, &st);
    CHECK_INTEQ(st.networks, 4);
    netmem_entry_t v[8];
    CHECK_INTEQ(netmem_list(m, 9, v, 8), 4);
    CHECK_STREQ(fmt(&v[0].key), "10.4.249.0/24");
    netmem_destroy(m);
}

static void test_expiry(void)
{
    netmem_opts_t o = {.max_networks = 8, .ttl_s = 10};
    netmem_t *m = netmem_create(&o);
    netmem_key_t a = key("192.0.2.7"), b = key("198.51.100.7");
    netmem_est_t e;
    CHECK_INTEQ(netmem_note(m, &a, 1, 1000, 10, 0), 0);
    CHECK_INTEQ(netmem_note(m, &a, 2, 3000, 10, 8), 0);
    CHECK_INTEQ(netmem_note(m, &b, 3, 5000, 10, 5), 0);
    CHECK(netmem_get(m, &a, 9, &e));
    CHECK_INTEQ(e.n, 2);
    CHECK(netmem_get(m, &a, 12, &e)); /* the first sample is past its time to live */
    CHECK_INTEQ(e.n, 1);
    CHECK(near(e.rate, 3000));
    CHECK(near(e.age_s, 4));
    CHECK(netmem_population(m, 12, &e));
    CHECK_INTEQ(e.n, 2);
    CHECK(netmem_get(m, &b, 15, &e));
    CHECK(!netmem_get(m, &b, 15.5, &e)); /* all of b's samples expired: b is forgotten */
    netmem_stats_t st;
    netmem_stats(m, 15.5, &st);
    CHECK_INTEQ(st.networks, 1);
    CHECK_INTEQ(st.expired, 1);
    netmem_stats(m, 19, &st);
    CHECK_INTEQ(st.networks, 0);
    CHECK_INTEQ(st.expired, 2);
    CHECK_INTEQ(st.population.n, 0); /* nothing recent: no population estimate either */
    CHECK(!netmem_population(m, 19, &e));
    CHECK(!netmem_get(m, &a, 19, &e));
    /* A forgotten network is learned afresh. */
    CHECK_INTEQ(netmem_note(m, &a, 4, 700, 10, 20), 0);
    CHECK(netmem_get(m, &a, 20, &e) && e.n == 1 && near(e.rate, 700));
    netmem_destroy(m);
    netmem_destroy(NULL);
}

int main(void)
{
    test_keys();
    test_estimates();
    test_bounds();
    test_expiry();
    return TESTUTIL_SUMMARY();
}
