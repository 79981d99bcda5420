/* Response header facts and what they allow (see cachepolicy.h). */
#include "learn/cachepolicy.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

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
    else if (bits & CACHEPOLICY_VARY_OTHER)
        r = "Vary on a header a push does not carry";
    if (why != NULL)
        *why = r;
    return r == NULL;
}

cachepolicy_hint_t cachepolicy_hintable(unsigned bits, const char **why)
{
    const char *r = NULL;
    cachepolicy_hint_t h = CACHEPOLICY_HINT_YES;
    if (bits & CACHEPOLICY_NO_STORE) {
        r = "Cache-Control: no-store (the preload is not kept for the page)";
        h = CACHEPOLICY_HINT_NO;
    } else if (bits & CACHEPOLICY_VARY_COOKIE) {
        r = "Vary: Cookie (hinted only when the page's cookies do not change)";
        h = CACHEPOLICY_HINT_IF_COOKIE_STABLE;
    }
    if (why != NULL)
        *why = r;
    return h;
}

static const char *const bit_names[CACHEPOLICY_NBITS] = {"no-store",
                                                         "no-cache",
                                                         "private",
                                                         "set-cookie",
                                                         "vary-cookie",
                                                         "vary-accept-encoding",
                                                         "vary-accept-language",
                                                         "vary-user-agent",
                                                         "vary-other"};

const char *cachepolicy_bit_name(unsigned i)
{
    return i < CACHEPOLICY_NBITS ? bit_names[i] : NULL;
}
