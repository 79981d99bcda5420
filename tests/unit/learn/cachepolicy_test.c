/* learn/cachepolicy: header facts, and what they allow for a push and a hint. */
#include "cachepolicy.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

/* glibc's reading of an HTTP date: what cachepolicy_http_date must match. */
static int64_t libc_date(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    return strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm) != NULL ? (int64_t)timegm(&tm) : -1;
}

/* Values from GNU date(1) (`date -u -d '...' +%s`), and agreement with
 * strptime on every truncation and one-byte change of valid dates. */
static void test_http_date(void)
{
    CHECK_INTEQ(cachepolicy_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    CHECK_INTEQ(cachepolicy_http_date("Thu, 29 Feb 2024 23:59:59 GMT"), 1709251199);
    CHECK_INTEQ(cachepolicy_http_date("Sat, 01 Jan 2000 00:00:00 GMT"), 946684800);
    CHECK_INTEQ(cachepolicy_http_date("Tue, 14 Nov 2023 22:13:20 GMT"), 1700000000);
    CHECK_INTEQ(cachepolicy_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
    CHECK_INTEQ(cachepolicy_http_date("Wed, 31 Dec 1969 23:59:59 GMT"), -1);
    CHECK_INTEQ(cachepolicy_http_date("Fri, 31 Dec 9999 23:59:59 GMT"), 253402300799);
    CHECK_INTEQ(cachepolicy_http_date("Sat, 01 Jan 0000 00:00:00 GMT"), -62167219200);
    /* every day of four years around two century turns (one leap, one not),
     * and days past a month's end (timegm rolls them over) */
    for (int y = 1899; y <= 2101; y += (y == 1901 ? 97 : 1)) {
        for (int m = 0; m < 12; m++) {
            static const char *const mn[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
            for (int d = 1; d <= 31; d++) {
                char buf[40];
                snprintf(buf, sizeof(buf), "Mon, %02d %s %04d 12:34:56 GMT", d, mn[m], y);
                CHECK_INTEQ(cachepolicy_http_date(buf), libc_date(buf));
            }
        }
    }
    CHECK_INTEQ(cachepolicy_http_date(NULL), -1);
    CHECK_INTEQ(cachepolicy_http_date(""), -1);
    CHECK_INTEQ(cachepolicy_http_date("garbage"), -1);
    /* not fixdate, but strptime's: the slow path keeps them */
    const char *loose[] = {"sun, 06 nov 1994 08:49:37 GMT",      "Sunday, 06 Nov 1994 08:49:37 GMT",
                           "Sun,  6 Nov 1994 08:49:37 GMT",      "Sun, 06 Nov 1994 08:49:60 GMT",
                           "Sun, 06 November 1994 08:49:37 GMT", "Sun,06 Nov 1994 08:49:37 GMT"};
    for (size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
        CHECK(libc_date(loose[i]) != -1);
        CHECK_INTEQ(cachepolicy_http_date(loose[i]), libc_date(loose[i]));
    }
    const char *valid[] = {"Sun, 06 Nov 1994 08:49:37 GMT", "Wed, 31 Dec 2025 23:59:59 GMT",
                           "Mon, 01 Jan 0000 00:00:00 GMT"};
    const char subst[] = " ,:0159AGMTZaz\t-x";
    for (size_t v = 0; v < sizeof(valid) / sizeof(valid[0]); v++) {
        char buf[40];
        size_t len = strlen(valid[v]);
        for (size_t cut = 0; cut <= len; cut++) {
            memcpy(buf, valid[v], cut);
            buf[cut] = '\0';
            CHECK_INTEQ(cachepolicy_http_date(buf), libc_date(buf));
        }
        for (size_t at = 0; at < len; at++)
            for (size_t k = 0; k < sizeof(subst) - 1; k++) {
                snprintf(buf, sizeof(buf), "%s", valid[v]);
                buf[at] = subst[k];
                CHECK_INTEQ(cachepolicy_http_date(buf), libc_date(buf));
            }
    }
}

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
    CHECK_INTEQ(cachepolicy_parse_vary("*"), CACHEPOLICY_VARY_STAR);
    CHECK_INTEQ(cachepolicy_parse_vary("Origin"), CACHEPOLICY_VARY_ORIGIN);
    CHECK_INTEQ(cachepolicy_parse_vary("X-Theme"), CACHEPOLICY_VARY_OTHER);
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
    CHECK(!cachepolicy_pushable(CACHEPOLICY_VARY_ORIGIN, NULL));
    CHECK(!cachepolicy_pushable(CACHEPOLICY_VARY_STAR, NULL));
    /* hints (bench/hint_reuse, Chromium 156): reused when the browser's cache
     * would serve the preload to the page's own request */
    const int64_t fresh = 60000, need = 2300;
    CHECK_INTEQ(cachepolicy_hintable(CACHEPOLICY_SET_COOKIE | CACHEPOLICY_PRIVATE, fresh, need,
                                     false, NULL),
                CACHEPOLICY_HINT_YES);
    CHECK_INTEQ(cachepolicy_hintable(CACHEPOLICY_NO_STORE, fresh, need, false, &why),
                CACHEPOLICY_HINT_NO);
    CHECK(why != NULL);
    CHECK_INTEQ(cachepolicy_hintable(CACHEPOLICY_VARY_STAR, fresh, need, false, NULL),
                CACHEPOLICY_HINT_NO);
    CHECK_INTEQ(cachepolicy_hintable(CACHEPOLICY_NO_CACHE, fresh, need, false, NULL),
                CACHEPOLICY_HINT_NO);
    /* not fresh long enough (max-age=0, or 1 s against a 2.3 s wait) */
    CHECK_INTEQ(cachepolicy_hintable(0, 0, need, false, NULL), CACHEPOLICY_HINT_NO);
    CHECK_INTEQ(cachepolicy_hintable(0, 1000, need, false, NULL), CACHEPOLICY_HINT_NO);
    CHECK_INTEQ(cachepolicy_hintable(0, 2300, need, false, NULL), CACHEPOLICY_HINT_YES);
    /* Vary: Origin: fine for a no-cors request, not for a CORS one */
    CHECK_INTEQ(cachepolicy_hintable(CACHEPOLICY_VARY_ORIGIN, fresh, need, false, NULL),
                CACHEPOLICY_HINT_YES);
    CHECK_INTEQ(cachepolicy_hintable(CACHEPOLICY_VARY_ORIGIN, fresh, need, true, NULL),
                CACHEPOLICY_HINT_NO);
    CHECK_INTEQ(cachepolicy_hintable(CACHEPOLICY_VARY_COOKIE, fresh, need, false, NULL),
                CACHEPOLICY_HINT_IF_COOKIE_STABLE);
    CHECK_INTEQ(cachepolicy_hintable(CACHEPOLICY_VARY_COOKIE | CACHEPOLICY_SET_COOKIE, fresh, need,
                                     false, NULL),
                CACHEPOLICY_HINT_NO);
    CHECK_INTEQ(
        cachepolicy_hintable(CACHEPOLICY_VARY_OTHER | CACHEPOLICY_VARY_UA, fresh, need, true, NULL),
        CACHEPOLICY_HINT_YES);
    for (unsigned i = 0; i < CACHEPOLICY_NBITS; i++)
        CHECK(cachepolicy_bit_name(i) != NULL);
    CHECK(cachepolicy_bit_name(CACHEPOLICY_NBITS) == NULL);
    CHECK_INTEQ(CACHEPOLICY_ALL, (1u << CACHEPOLICY_NBITS) - 1);
}

static void test_freshness(void)
{
    const int64_t now = 1700000000; /* Tue, 14 Nov 2023 22:13:20 GMT */
    cachepolicy_fresh_t h = {0};
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 0); /* nothing to go by */
    h.cache_control = "public, max-age=60";
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 60000);
    h.age = "20";
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 40000);
    h.age = "90";
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 0);
    h.age = NULL;
    h.cache_control = "private, max-age=\"30\"";
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 30000);
    h.cache_control = "max-age=60, no-cache";
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 0);
    h.cache_control = "private";
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 0);
    /* Expires - Date */
    h.date = "Tue, 14 Nov 2023 22:13:20 GMT";
    h.expires = "Tue, 14 Nov 2023 23:13:20 GMT";
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 3600000);
    h.expires = "0"; /* invalid: expired */
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 0);
    /* max-age wins over Expires */
    h.cache_control = "max-age=5";
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 5000);
    /* heuristic: 10% of the age of Last-Modified, at most a day */
    h.cache_control = NULL;
    h.expires = NULL;
    h.last_modified = "Tue, 14 Nov 2023 21:13:20 GMT"; /* an hour old */
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 360000);
    h.last_modified = "Sun, 06 Nov 1994 08:49:37 GMT";
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 86400000);
    h.last_modified = "Tue, 14 Nov 2023 22:13:20 GMT"; /* just now: stale */
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 0);
    h.last_modified = "garbage";
    CHECK_INTEQ(cachepolicy_freshness_ms(&h, now), 0);
}

int main(void)
{
    test_freshness();
    test_http_date();
    test_parse();
    test_rules();
    return TESTUTIL_SUMMARY();
}
