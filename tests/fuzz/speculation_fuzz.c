/*
 * libFuzzer target for the URL readers of learn/speculation.c (the deny
 * matcher, herald's rule-set URL) and template_url_page_key: the input is a
 * URL, then after a NUL byte operator patterns separated by newlines.
 * Checks, beyond memory safety:
 *  - a default pattern word found (case-insensitively) in a path and query
 *    without percent-escapes always denies the URL;
 *  - a URL put in a rule set comes back out of the JSON unchanged.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "speculation.h"
#include "template.h"
#include "herald/error.h"

static bool has_ci(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    for (size_t i = 0; i + wl <= n; i++)
        if (strncasecmp(s + i, w, wl) == 0)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *url = buf;
    size_t ulen = strlen(url);
    /* operator patterns after the URL's NUL */
    const char *pats[8];
    size_t np = 0;
    for (char *p = ulen < size ? buf + ulen + 1 : NULL; p != NULL && np < 8;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        pats[np++] = p;
        p = nl ? nl + 1 : NULL;
    }
    (void)speculation_denied(url, pats, np);
    (void)speculation_is_rules_url(url);
    bool denied = speculation_denied(url, NULL, 0);
    /* the path and query as they stand: after "scheme://authority", before '#' */
    const char *pq = strstr(url, "://");
    if (pq != NULL && pq != url && pq == url + strcspn(url, ":/?#"))
        pq += 3 + strcspn(pq + 3, "/?#");
    else
        pq = url;
    size_t pql = strcspn(pq, "#");
    size_t nd;
    const char *const *def = speculation_default_deny(&nd);
    for (size_t i = 0; i < nd; i++) {
        size_t wl = strlen(def[i]);
        /* without escapes the path and query read as they stand */
        if (def[i][wl - 1] != '=' && memchr(pq, '%', pql) == NULL && has_ci(pq, pql, def[i]) &&
            !denied)
            abort();
    }
    char *key = NULL;
    int rc = template_url_page_key(url, &key);
    if (rc != 0 && rc != HERALD_EINVAL)
        abort();
    free(key);
    /* the URL through a rule set and back */
    pagemap_spec_item_t it = {.url = buf, .eagerness = PAGEMAP_EAGER_MODERATE};
    pagemap_spec_t spec = {.items = &it, .n = 1};
    char *json = NULL;
    if (speculation_rules_json(&spec, SPECULATION_PREFETCH, &json, NULL) == 0) {
        json_t *root = json_loads(json, 0, NULL);
        json_t *u = json_array_get(
            json_object_get(json_array_get(json_object_get(root, "prefetch"), 0), "urls"), 0);
        /* jansson refuses invalid UTF-8: then there is no JSON at all, which is fine */
        if (root == NULL || !json_is_string(u) || strcmp(json_string_value(u), url) != 0)
            abort();
        json_decref(root);
        free(json);
    }
    free(buf);
    return 0;
}
