/*
 * What an asset response's headers allow herald to do with the asset on a
 * later visit: push it (herald fetches it with the page request's headers
 * and hands the response to the client's cache as its own) or hint it (a
 * 103 Early Hints preload: the browser fetches it itself, with its own
 * cookies, and uses the response for the page's own request only when its
 * cache lets it). The two have different rules; see cachepolicy_pushable()
 * and cachepolicy_hintable(). Pure functions over header values; no
 * allocation, no logging.
 */
#ifndef HERALD_CACHEPOLICY_H
#define HERALD_CACHEPOLICY_H

#include <stdbool.h>
#include <stdint.h>

/** Facts of one response's headers (bitmask, 0 = a plain cacheable response). */
enum cachepolicy_bits {
    CACHEPOLICY_NO_STORE = 1u << 0, /* Cache-Control: no-store */
    CACHEPOLICY_NO_CACHE = 1u << 1, /* Cache-Control: no-cache (or Pragma-like must-revalidate 0) */
    CACHEPOLICY_PRIVATE = 1u << 2,  /* Cache-Control: private */
    CACHEPOLICY_SET_COOKIE = 1u << 3, /* the response sets a cookie */
    CACHEPOLICY_VARY_COOKIE = 1u << 4,
    CACHEPOLICY_VARY_ENCODING = 1u << 5, /* Vary: Accept-Encoding */
    CACHEPOLICY_VARY_LANGUAGE = 1u << 6, /* Vary: Accept-Language */
    CACHEPOLICY_VARY_UA = 1u << 7,       /* Vary: User-Agent */
    CACHEPOLICY_VARY_OTHER = 1u << 8,    /* Vary on any header not named here */
    CACHEPOLICY_VARY_ORIGIN = 1u << 9,   /* Vary: Origin */
    CACHEPOLICY_VARY_STAR = 1u << 10,    /* Vary: * */
};

/** Every bit cachepolicy_parse_* can set. */
#define CACHEPOLICY_ALL 0x7ffu

/** The bits of one Cache-Control value (directives are case-insensitive). NULL → 0. */
unsigned cachepolicy_parse_cache_control(const char *value);

/** The bits of one Vary value (a comma-separated list of header names). NULL → 0. */
unsigned cachepolicy_parse_vary(const char *value);

/** The response headers that decide how long a cache may reuse a response. Borrowed; NULL absent.
 */
typedef struct cachepolicy_fresh {
    const char *cache_control; /* every Cache-Control line joined with ", " */
    const char *expires;
    const char *date;
    const char *last_modified;
    const char *age;
} cachepolicy_fresh_t;

/**
 * The freshness lifetime of a response in milliseconds, as a browser's
 * private cache computes it (RFC 9111 §4.2): max-age, else Expires - Date,
 * else 10% of Date - Last-Modified (heuristic, capped at one day), minus
 * Age; 0 with no-store, no-cache, a past Expires or nothing to go by.
 * Dates are IMF-fixdate (RFC 9110 §5.6.7); a missing Date counts as `now_s`
 * (Unix seconds). Never negative.
 */
int64_t cachepolicy_freshness_ms(const cachepolicy_fresh_t *h, int64_t now_s);

/**
 * An HTTP date as glibc's strptime("%a, %d %b %Y %H:%M:%S GMT") and timegm()
 * read it, in Unix seconds; -1 when it is not one (or s is NULL). The
 * IMF-fixdate layout every origin sends ("Sun, 06 Nov 1994 08:49:37 GMT") is
 * read directly, without strptime's locale-bound name search; anything else
 * goes to strptime, so the two agree on every input.
 */
int64_t cachepolicy_http_date(const char *s);

/**
 * Whether herald may push the asset: never with no-store, no-cache, private
 * or Set-Cookie, nor with Vary on a header the PUSH_PROMISE does not copy
 * from the page's request (Origin, *, or any other). Vary on Cookie, Accept-Encoding,
 * Accept-Language and User-Agent is fine: the pushed request carries the
 * page request's values of those, so the response is the one the client's
 * own request would get. `why` (may be NULL) gets a static reason when false.
 */
bool cachepolicy_pushable(unsigned bits, const char **why);

/** How a hint of the asset is allowed (cachepolicy_hintable). */
typedef enum cachepolicy_hint {
    CACHEPOLICY_HINT_NO = 0,
    CACHEPOLICY_HINT_YES,
    /*
     * Vary: Cookie: only when the page request carried a cookie and the
     * page's response sets none (the preload and the page's own request
     * then go out with the same Cookie header).
     */
    CACHEPOLICY_HINT_IF_COOKIE_STABLE,
} cachepolicy_hint_t;

/**
 * Whether a 103 preload of the asset is used by the browser for the page's
 * own request. Chromium (156, measured by bench/hint_reuse) reuses a
 * preload through its HTTP cache: exactly when a browser cache would serve
 * the stored response to the page's request. So: never with no-store or
 * Vary: *; only when the response is still fresh when the page asks for it
 * (`fresh_ms` >= `need_ms`, the time from the hint's fetch to the page's
 * request; a response with no freshness, or no-cache, is fetched again or
 * revalidated); with Vary: Origin not for a request in CORS mode (`cors`:
 * fonts, module scripts, crossorigin images: the preload is fetched without
 * an Origin header); with Vary: Cookie only while the cookies stay the same
 * (CACHEPOLICY_HINT_IF_COOKIE_STABLE: the asset itself sets none here, the
 * page's response sets none, and no other asset of the same 103 sets one).
 * Set-Cookie on the asset alone and private do not stop a hint (the browser
 * fetches with its own credentials into its own cache). `why` (may be NULL)
 * gets a static reason for NO and IF_COOKIE_STABLE.
 */
cachepolicy_hint_t cachepolicy_hintable(unsigned bits, int64_t fresh_ms, int64_t need_ms, bool cors,
                                        const char **why);

/** Number of CACHEPOLICY_* bits. */
#define CACHEPOLICY_NBITS 11

/**
 * Static name of bit number i (0 = CACHEPOLICY_NO_STORE: "no-store", ...,
 * "set-cookie", "vary-cookie", "vary-accept-encoding", ...), NULL when i is
 * out of range. The admin and the snapshot spell policies with these.
 */
const char *cachepolicy_bit_name(unsigned i);

#endif
