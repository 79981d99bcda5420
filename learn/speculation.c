/* Deny patterns, herald's rule-set URL and the rule-set JSON (see speculation.h). */
#include "speculation.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/error.h"

static const char *const default_deny[] = {
    "logout",  "log-out",  "log_out", "signout", "sign-out",    "sign_out", "logoff",
    "log-off", "delete",   "remove",  "destroy", "unsubscribe", "cancel",   "cart",
    "basket",  "checkout", "admin",   "do=",     "action="};

const char *const *speculation_default_deny(size_t *n)
{
    if (n != NULL)
        *n = sizeof(default_deny) / sizeof(default_deny[0]);
    return default_deny;
}

/* The path (and query) of url: after "scheme://authority" when absolute. */
static const char *path_of(const char *url)
{
    const char *p = strstr(url, "://");
    if (p != NULL && p != url && p == url + strcspn(url, ":/?#"))
        return p + 3 + strcspn(p + 3, "/?#");
    return url;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * Percent-decode s[0..len) into dst (lower case, NUL-terminated; dst holds
 * len + 1). '+' is a space in a query. Returns the decoded length, or -1
 * when a NUL byte was encoded.
 */
static long decode(const char *s, size_t len, char *dst, bool query)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%' && i + 2 < len && hexval((unsigned char)s[i + 1]) >= 0 &&
            hexval((unsigned char)s[i + 2]) >= 0) {
            c = hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]);
            i += 2;
            if (c == 0)
                return -1;
        } else if (c == '+' && query) {
            c = ' ';
        }
        dst[n++] = (char)tolower(c);
    }
    dst[n] = '\0';
    return (long)n;
}

/* Does hay[0..hlen) (lower case) contain pat[0..plen) case-insensitively? */
static bool contains(const char *hay, size_t hlen, const char *pat, size_t plen)
{
    if (plen == 0 || plen > hlen)
        return false;
    for (size_t i = 0; i + plen <= hlen; i++) {
        size_t k = 0;
        while (k < plen && hay[i + k] == (char)tolower((unsigned char)pat[k]))
            k++;
        if (k == plen)
            return true;
    }
    return false;
}

/* Is a query key (raw q[0..qlen), split at '&' and ';') equal to key[0..klen), decoded? */
static bool has_key(const char *q, size_t qlen, const char *key, size_t klen)
{
    char buf[SPECULATION_MAX_URL + 1];
    for (size_t i = 0; i < qlen;) {
        size_t j = i;
        while (j < qlen && q[j] != '&' && q[j] != ';')
            j++;
        size_t e = i;
        while (e < j && q[e] != '=')
            e++;
        long n = decode(q + i, e - i, buf, true);
        if (n >= 0 && (size_t)n == klen && strncasecmp(buf, key, klen) == 0)
            return true;
        i = j + 1;
    }
    return false;
}

bool speculation_denied(const char *url, const char *const *patterns, size_t n)
{
    if (url == NULL)
        return true;
    if (patterns == NULL)
        patterns = speculation_default_deny(&n);
    const char *p = path_of(url);
    size_t end = strcspn(p, "#");
    if (end > SPECULATION_MAX_URL)
        return true;
    size_t qpos = strcspn(p, "?#");
    const char *q = qpos < end ? p + qpos + 1 : p + end;
    size_t qlen = qpos < end ? end - qpos - 1 : 0;
    char path[SPECULATION_MAX_URL + 1], query[SPECULATION_MAX_URL + 1];
    long pl = decode(p, qpos < end ? qpos : end, path, false);
    long ql = decode(q, qlen, query, true);
    if (pl < 0 || ql < 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        const char *pat = patterns[i];
        size_t len = pat ? strlen(pat) : 0;
        if (len == 0)
            continue;
        if (pat[len - 1] == '=') {
            if (len > 1 && has_key(q, qlen, pat, len - 1))
                return true;
        } else if (contains(path, (size_t)pl, pat, len) || contains(query, (size_t)ql, pat, len)) {
            return true;
        }
    }
    return false;
}

bool speculation_is_rules_url(const char *url)
{
    if (url == NULL)
        return false;
    const char *p = path_of(url);
    if (p == url && *p != '/')
        p += strcspn(p, "/"); /* a page key: the path follows the authority */
    size_t n = strlen(SPECULATION_RULES_PATH);
    return strncmp(p, SPECULATION_RULES_PATH, n) == 0 &&
           (p[n] == '\0' || p[n] == '?' || p[n] == '#');
}

/* Append {"source":"list","urls":[...],"eagerness":name} for the items of one eagerness. */
static int add_rule(json_t *rules, const pagemap_spec_t *spec, pagemap_eagerness_t e,
                    const char *name)
{
    json_t *urls = NULL;
    for (size_t i = 0; i < spec->n; i++) {
        if (spec->items[i].eagerness != e || spec->items[i].url == NULL)
            continue;
        if (urls == NULL && (urls = json_array()) == NULL)
            return HERALD_ENOMEM;
        if (json_array_append_new(urls, json_string(spec->items[i].url)) != 0) {
            json_decref(urls);
            return HERALD_ENOMEM;
        }
    }
    if (urls == NULL)
        return 0;
    json_t *rule = json_object();
    if (rule == NULL || json_object_set_new(rule, "source", json_string("list")) != 0) {
        json_decref(rule);
        json_decref(urls);
        return HERALD_ENOMEM;
    }
    /* json_object_set_new and json_array_append_new steal the value even when they fail */
    if (json_object_set_new(rule, "urls", urls) != 0 ||
        json_object_set_new(rule, "eagerness", json_string(name)) != 0) {
        json_decref(rule);
        return HERALD_ENOMEM;
    }
    return json_array_append_new(rules, rule) == 0 ? 0 : HERALD_ENOMEM;
}

int speculation_rules_json(const pagemap_spec_t *spec, speculation_action_t action, char **json,
                           size_t *len)
{
    if (spec == NULL || json == NULL || (spec->n > 0 && spec->items == NULL))
        return HERALD_EINVAL;
    *json = NULL;
    json_t *root = json_object(), *rules = json_array();
    int rc = root && rules ? 0 : HERALD_ENOMEM;
    if (rc == 0)
        rc = add_rule(rules, spec, PAGEMAP_EAGER_IMMEDIATE, "immediate");
    if (rc == 0)
        rc = add_rule(rules, spec, PAGEMAP_EAGER_MODERATE, "moderate");
    if (rc == 0) {
        const char *key = action == SPECULATION_PRERENDER ? "prerender" : "prefetch";
        rc = json_object_set_new(root, key, rules) == 0 ? 0 : HERALD_ENOMEM;
        rules = NULL; /* stolen */
    }
    char *s = rc == 0 ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(rules);
    json_decref(root);
    if (rc == 0 && s == NULL)
        rc = HERALD_ENOMEM;
    if (rc != 0)
        return rc;
    *json = s;
    if (len != NULL)
        *len = strlen(s);
    return 0;
}
