/* Response header facts and what they allow (see cachepolicy.h). */
#include "cachepolicy.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static bool word_is(const char *p, size_t len, const char *w)
{
    return strlen(w) == len && strncasecmp(p, w, len) == 0;
}

unsigned cachepolicy_parse_cache_control(const char *v)
{
    unsigned bits = 0;
    if (v == NULL)
        return 0;
    const char *p = v;
    while (*p) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, " \t,=");
        if (word_is(p, len, "no-store"))
            bits |= CACHEPOLICY_NO_STORE;
        else if (word_is(p, len, "no-cache"))
            bits |= CACHEPOLICY_NO_CACHE;
        else if (word_is(p, len, "private"))
            bits |= CACHEPOLICY_PRIVATE;
        p += len;
        p += strspn(p, " \t");
        if (*p == '=') { /* skip the value, quoted or not: private="x, y" names fields */
            p++;
            p += strspn(p, " \t");
            if (*p == '"') {
                p++;
                while (*p && *p != '"')
                    p += (*p == '\\' && p[1]) ? 2 : 1;
                if (*p)
                    p++;
            }
        }
        p += strcspn(p, ",");
    }
    return bits;
}

unsigned cachepolicy_parse_vary(const char *v)
{
    unsigned bits = 0;
    if (v == NULL)
        return 0;
    const char *p = v;
    while (*p) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, " \t,");
        if (len == 0)
            break;
        if (word_is(p, len, "cookie"))
            bits |= CACHEPOLICY_VARY_COOKIE;
        else if (word_is(p, len, "accept-encoding"))
            bits |= CACHEPOLICY_VARY_ENCODING;
        else if (word_is(p, len, "accept-language"))
            bits |= CACHEPOLICY_VARY_LANGUAGE;
        else if (word_is(p, len, "user-agent"))
            bits |= CACHEPOLICY_VARY_UA;
        else if (word_is(p, len, "origin"))
            bits |= CACHEPOLICY_VARY_ORIGIN;
        else if (word_is(p, len, "*"))
            bits |= CACHEPOLICY_VARY_STAR;
        else
            bits |= CACHEPOLICY_VARY_OTHER;
        p += len;
    }
    return bits;
}

bool cachepolicy_pushable(unsigned bits, const char **why)
{
    const char *r = NULL;
    if (bits & CACHEPOLICY_NO_STORE)
        r = "Cache-Control: no-store";
    else if (bits & CACHEPOLICY_PRIVATE)
        r = "Cache-Control: private";
    else if (bits & CACHEPOLICY_NO_CACHE)
        r = "Cache-Control: no-cache";
    else if (bits & CACHEPOLICY_SET_COOKIE)
        r = "Set-Cookie";
    else if (bits & (CACHEPOLICY_VARY_OTHER | CACHEPOLICY_VARY_ORIGIN | CACHEPOLICY_VARY_STAR))
        r = "Vary on a header a push does not carry";
    if (why != NULL)
        *why = r;
    return r == NULL;
}

cachepolicy_hint_t cachepolicy_hintable(unsigned bits, int64_t fresh_ms, int64_t need_ms, bool cors,
                                        const char **why)
{
    const char *r = NULL;
    cachepolicy_hint_t h = CACHEPOLICY_HINT_NO;
    if (bits & CACHEPOLICY_NO_STORE)
        r = "Cache-Control: no-store (the preload is not kept for the page)";
    else if (bits & CACHEPOLICY_VARY_STAR)
        r = "Vary: * (the preload never matches the page's request)";
    else if (fresh_ms < need_ms || (bits & CACHEPOLICY_NO_CACHE))
        r = "not fresh long enough for the page's request (it would fetch or revalidate again)";
    else if (cors && (bits & CACHEPOLICY_VARY_ORIGIN))
        r = "Vary: Origin on a CORS request (the preload is fetched without Origin)";
    else if (bits & CACHEPOLICY_VARY_COOKIE) {
        r = "Vary: Cookie (hinted only while the page's cookies stay the same)";
        h = (bits & CACHEPOLICY_SET_COOKIE) ? CACHEPOLICY_HINT_NO
                                            : CACHEPOLICY_HINT_IF_COOKIE_STABLE;
        if (h == CACHEPOLICY_HINT_NO)
            r = "Vary: Cookie and Set-Cookie (the preload's cookie changes the page's request)";
    } else
        h = CACHEPOLICY_HINT_YES;
    if (why != NULL)
        *why = r;
    return h;
}

/* ---- freshness ---- */

/* n decimal digits at p (no sign, no space), or -1. */
static int digits(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* Index of the 3 bytes at p in names (exact case), or -1. */
static int name3(const char *p, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (p[0] == names[i][0] && p[1] == names[i][1] && p[2] == names[i][2])
            return i;
    return -1;
}

/* Days from 1970-01-01 to year y, month m (1..12), day 1 of the proleptic
 * Gregorian calendar; negative before 1970. Years are counted from March,
 * so a leap day ends its year, and grouped in 400-year cycles of 146097
 * days, which makes the arithmetic exact for any year. */
static int64_t days_to_month(int64_t y, int m)
{
    if (m <= 2)
        y--; /* January and February end the year before */
    int64_t cycle = (y >= 0 ? y : y - 399) / 400;
    int64_t yc = y - cycle * 400;                   /* 0..399 */
    int64_t mar = m > 2 ? m - 3 : m + 9;            /* months since March */
    int64_t dy = (153 * mar + 2) / 5;               /* days from March 1 to the month */
    int64_t dc = yc * 365 + yc / 4 - yc / 100 + dy; /* days into the cycle */
    return cycle * 146097 + dc - 719468;            /* 719468: 0000-03-01 to 1970-01-01 */
}

/* The IMF-fixdate layout exactly, fields in the ranges strptime takes
 * without question: Unix seconds as timegm() would give them (a day past
 * the month's end rolls over, as timegm normalizes it); -2 for anything
 * else (then strptime decides). */
static int64_t fixdate(const char *s)
{
    static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    /* "Www, DD Mmm YYYY HH:MM:SS GMT", checked left to right: a byte is
     * read only once every byte before it was found non-NUL. */
    if (name3(s, wdays, 7) < 0 || s[3] != ',' || s[4] != ' ')
        return -2;
    int mday = digits(s + 5, 2);
    if (mday < 1 || mday > 31 || s[7] != ' ')
        return -2;
    int mon = name3(s + 8, months, 12);
    if (mon < 0 || s[11] != ' ')
        return -2;
    int year = digits(s + 12, 4);
    if (year < 0 || s[16] != ' ')
        return -2;
    int hour = digits(s + 17, 2);
    if (hour < 0 || hour > 23 || s[19] != ':')
        return -2;
    int min = digits(s + 20, 2);
    if (min < 0 || min > 59 || s[22] != ':')
        return -2;
    int sec = digits(s + 23, 2);
    if (sec < 0 || sec > 59 || s[25] != ' ')
        return -2;
    if (s[26] != 'G' || s[27] != 'M' || s[28] != 'T')
        return -2;
    int64_t days = days_to_month(year, mon + 1) + mday - 1;
    return days * 86400 + hour * 3600 + min * 60 + sec;
}

int64_t cachepolicy_http_date(const char *s)
{
    if (s == NULL)
        return -1;
    /* strptime matches %a and %b against the locale's names, case-folded,
     * with strncasecmp over every candidate, and timegm normalizes through
     * mktime's search: thousands of instructions per date, on every asset
     * response learning sees. */
    int64_t t = fixdate(s);
    if (t != -2)
        return t;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm) == NULL)
        return -1;
    return (int64_t)timegm(&tm);
}

/* The value of directive `name` (delta-seconds) in a Cache-Control list; -1 absent. */
static int64_t cc_seconds(const char *cc, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = cc; p != NULL && *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, " \t,=");
        bool hit = len == nl && strncasecmp(p, name, nl) == 0;
        p += len;
        p += strspn(p, " \t");
        if (*p == '=') {
            p++;
            p += strspn(p, " \t\"");
            if (hit) {
                char *e = NULL;
                long long v = strtoll(p, &e, 10);
                return e != p && v >= 0 ? (int64_t)v : 0;
            }
        }
        p += strcspn(p, ",");
    }
    return -1;
}

int64_t cachepolicy_freshness_ms(const cachepolicy_fresh_t *h, int64_t now_s)
{
    if (cachepolicy_parse_cache_control(h->cache_control) &
        (CACHEPOLICY_NO_STORE | CACHEPOLICY_NO_CACHE))
        return 0;
    int64_t date = cachepolicy_http_date(h->date);
    if (date < 0)
        date = now_s;
    int64_t life = cc_seconds(h->cache_control, "max-age");
    if (life < 0 && h->expires != NULL) {
        int64_t exp = cachepolicy_http_date(h->expires);
        life = exp > date ? exp - date : 0; /* an invalid Expires means expired */
    }
    if (life < 0) {
        int64_t lm = cachepolicy_http_date(h->last_modified);
        life = lm >= 0 && lm < date ? (date - lm) / 10 : 0;
        if (life > 86400)
            life = 86400;
    }
    int64_t age = h->age != NULL ? strtoll(h->age, NULL, 10) : 0;
    if (age < 0)
        age = 0;
    if (life > INT64_MAX / 1000)
        life = INT64_MAX / 1000;
    return life > age ? (life - age) * 1000 : 0;
}

static const char *const bit_names[CACHEPOLICY_NBITS] = {"no-store",
                                                         "no-cache",
                                                         "private",
                                                         "set-cookie",
                                                         "vary-cookie",
                                                         "vary-accept-encoding",
                                                         "vary-accept-language",
                                                         "vary-user-agent",
                                                         "vary-other",
                                                         "vary-origin",
                                                         "vary-star"};

const char *cachepolicy_bit_name(unsigned i)
{
    return i < CACHEPOLICY_NBITS ? bit_names[i] : NULL;
}
