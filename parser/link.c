/*
 * RFC 8288 Link header parsing and formatting. Parsing is strict about
 * structure (a malformed value is an error with a reason, never a guess at
 * what was meant) and lenient only where the meaning stays unambiguous:
 * empty list elements, a trailing ';', and unquoted values holding
 * characters outside `token` such as `type=text/css`.
 */
#include "link.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "strbuf.h"
#include "url.h"

static int buf_str(strbuf_t *b, const char *s)
{
    return strbuf_add(b, s, strlen(s));
}

static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* An unquoted parameter value: a token, leniently any visible byte but the delimiters. */
static bool is_value_char(unsigned char c)
{
    return c > 0x20 && c != 0x7f && c != ',' && c != ';' && c != '"' && c != '\\';
}

static bool ieq(const char *a, size_t n, const char *b)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c >= 'A' && c <= 'Z')
            c |= 0x20;
        if (b[i] == '\0' || c != (unsigned char)b[i])
            return false;
    }
    return b[n] == '\0';
}

static const struct {
    const char *name;
    unsigned bit;
} rel_names[] = {
    {"preload", LINK_REL_PRELOAD},
    {"modulepreload", LINK_REL_MODULEPRELOAD},
    {"preconnect", LINK_REL_PRECONNECT},
    {"dns-prefetch", LINK_REL_DNS_PREFETCH},
    {"stylesheet", LINK_REL_STYLESHEET},
    {"prefetch", LINK_REL_PREFETCH},
    {"icon", LINK_REL_ICON},
};

static unsigned parse_rel(const char *v, size_t len)
{
    unsigned rel = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && (is_ows((unsigned char)v[i]) || v[i] == '\n'))
            i++;
        size_t s = i;
        while (i < len && !is_ows((unsigned char)v[i]) && v[i] != '\n')
            i++;
        if (i == s)
            break;
        unsigned bit = LINK_REL_OTHER;
        for (size_t k = 0; k < sizeof rel_names / sizeof rel_names[0]; k++)
            if (ieq(v + s, i - s, rel_names[k].name)) {
                bit = rel_names[k].bit;
                break;
            }
        rel |= bit;
    }
    return rel;
}

static void link_free(link_t *l)
{
    free(l->url);
    free(l->as);
    free(l->type);
    free(l->media);
    free(l->anchor);
    memset(l, 0, sizeof *l);
}

void link_list_dispose(link_list_t *list)
{
    for (size_t i = 0; i < list->n; i++)
        link_free(&list->v[i]);
    free(list->v);
    list->v = NULL;
    list->n = list->cap = 0;
}

static int dup_value(const char *v, size_t len, bool lower, char **out)
{
    char *s = malloc(len + 1);
    if (s == NULL)
        return HERALD_ENOMEM;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        s[i] = lower && c >= 'A' && c <= 'Z' ? (char)(c | 0x20) : c;
    }
    s[len] = '\0';
    *out = s;
    return 0;
}

enum { P_REL = 1, P_AS = 2, P_CORS = 4, P_TYPE = 8, P_MEDIA = 16, P_NOPUSH = 32, P_ANCHOR = 64 };

/* Record one parameter on l unless it was already seen (first one wins). */
static int apply_param(link_t *l, unsigned *seen, const char *name, size_t nlen, const char *v,
                       size_t vlen, bool has_value)
{
    static const struct {
        const char *name;
        unsigned bit;
    } params[] = {{"rel", P_REL},      {"as", P_AS},       {"crossorigin", P_CORS},
                  {"type", P_TYPE},    {"media", P_MEDIA}, {"nopush", P_NOPUSH},
                  {"anchor", P_ANCHOR}};
    unsigned bit = 0;
    for (size_t k = 0; k < sizeof params / sizeof params[0]; k++)
        if (ieq(name, nlen, params[k].name)) {
            bit = params[k].bit;
            break;
        }
    if (bit == 0 || (*seen & bit))
        return 0;
    *seen |= bit;
    switch (bit) {
    case P_REL:
        l->rel = parse_rel(v, vlen);
        return 0;
    case P_AS:
        return has_value ? dup_value(v, vlen, true, &l->as) : 0;
    case P_CORS:
        /* HTML: a missing or invalid value is the anonymous state. */
        l->crossorigin = has_value && ieq(v, vlen, "use-credentials") ? ASSET_CORS_CREDENTIALS
                                                                      : ASSET_CORS_ANONYMOUS;
        return 0;
    case P_TYPE:
        return has_value ? dup_value(v, vlen, false, &l->type) : 0;
    case P_MEDIA:
        return has_value ? dup_value(v, vlen, false, &l->media) : 0;
    case P_NOPUSH:
        l->nopush = true;
        return 0;
    case P_ANCHOR:
        return has_value ? dup_value(v, vlen, false, &l->anchor) : 0;
    }
    return 0;
}

static int list_push(link_list_t *list, link_t *l)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 8;
        if (cap > SIZE_MAX / sizeof *list->v)
            return HERALD_ENOMEM;
        link_t *v = realloc(list->v, cap * sizeof *v);
        if (v == NULL)
            return HERALD_ENOMEM;
        list->v = v;
        list->cap = cap;
    }
    list->v[list->n++] = *l;
    memset(l, 0, sizeof *l);
    return 0;
}

int link_parse(const char *value, size_t len, const char *base, link_list_t *list,
               const char **reason)
{
    const char *why = NULL;
    const char *s = value;
    size_t n0 = list->n;
    size_t p = 0;
    strbuf_t qs = {0}; /* a quoted-string's unescaped value */
    link_t l = {0};
    int rc = 0;

    for (;;) {
        /* '#' lists allow empty elements: ", , <a>" */
        while (p < len && (is_ows((unsigned char)s[p]) || s[p] == ','))
            p++;
        if (p >= len)
            break;
        if (s[p] != '<') {
            why = "expected '<'";
            goto parse_error;
        }
        p++;
        const char *gt = memchr(s + p, '>', len - p);
        if (gt == NULL) {
            why = "unterminated '<' (missing '>')";
            goto parse_error;
        }
        size_t us = p, ue = (size_t)(gt - s);
        p = ue + 1;
        unsigned seen = 0;
        for (;;) {
            while (p < len && is_ows((unsigned char)s[p]))
                p++;
            if (p >= len)
                break;
            if (s[p] == ',') {
                p++;
                break;
            }
            if (s[p] != ';') {
                why = "expected ';' or ',' after link target or parameter";
                goto parse_error;
            }
            p++;
            while (p < len && is_ows((unsigned char)s[p]))
                p++;
            if (p >= len || s[p] == ',' || s[p] == ';')
                continue; /* an empty parameter: tolerated */
            size_t ns = p;
            while (p < len && is_tchar((unsigned char)s[p]))
                p++;
            if (p == ns) {
                why = "bad parameter name";
                goto parse_error;
            }
            size_t ne = p;
            while (p < len && is_ows((unsigned char)s[p]))
                p++;
            const char *v = NULL;
            size_t vlen = 0;
            bool has_value = false;
            if (p < len && s[p] == '=') {
                p++;
                while (p < len && is_ows((unsigned char)s[p]))
                    p++;
                has_value = true;
                if (p < len && s[p] == '"') {
                    p++;
                    qs.n = 0;
                    if ((rc = strbuf_add(&qs, "", 0)) < 0)
                        goto fail;
                    for (;;) {
                        if (p >= len) {
                            why = "unterminated quoted string";
                            goto parse_error;
                        }
                        unsigned char c = (unsigned char)s[p];
                        if (c == '"') {
                            p++;
                            break;
                        }
                        if (c == '\\') {
                            if (p + 1 >= len) {
                                why = "unterminated quoted string";
                                goto parse_error;
                            }
                            c = (unsigned char)s[++p];
                        }
                        if (is_ctl(c) && c != '\t') {
                            why = "control character in quoted string";
                            goto parse_error;
                        }
                        if ((rc = strbuf_add(&qs, (const char *)&c, 1)) < 0)
                            goto fail;
                        p++;
                    }
                    v = qs.p;
                    vlen = qs.n;
                } else {
                    size_t vs = p;
                    while (p < len && is_value_char((unsigned char)s[p]))
                        p++;
                    if (p == vs) {
                        why = "bad parameter value";
                        goto parse_error;
                    }
                    v = s + vs;
                    vlen = p - vs;
                }
            }
            if ((rc = apply_param(&l, &seen, s + ns, ne - ns, v, vlen, has_value)) < 0)
                goto fail;
        }
        rc = url_resolve(base, s + us, ue - us, &l.url);
        if (rc == HERALD_ENOMEM)
            goto fail;
        if (rc < 0) {
            link_free(&l); /* not an http(s) target: nothing herald can use */
            rc = 0;
            continue;
        }
        if ((rc = list_push(list, &l)) < 0)
            goto fail;
    }
    free(qs.p);
    return 0;

parse_error:
    rc = HERALD_EPARSE;
    if (reason != NULL)
        *reason = why;
fail:
    link_free(&l);
    free(qs.p);
    while (list->n > n0)
        link_free(&list->v[--list->n]);
    return rc;
}

/* ---- formatting ---------------------------------------------------------- */

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if (is_ctl((unsigned char)*s))
            return true;
    return false;
}

static int add_value(strbuf_t *b, const char *v)
{
    bool token = *v != '\0';
    for (const char *c = v; *c && token; c++)
        token = is_tchar((unsigned char)*c);
    if (token)
        return buf_str(b, v);
    int rc = strbuf_add(b, "\"", 1);
    for (const char *c = v; *c && rc == 0; c++) {
        if (*c == '"' || *c == '\\')
            rc = strbuf_add(b, "\\", 1);
        if (rc == 0)
            rc = strbuf_add(b, c, 1);
    }
    return rc < 0 ? rc : strbuf_add(b, "\"", 1);
}

static int add_param(strbuf_t *b, const char *name, const char *v)
{
    int rc = buf_str(b, "; ");
    if (rc == 0)
        rc = buf_str(b, name);
    if (rc == 0 && v != NULL) {
        rc = strbuf_add(b, "=", 1);
        if (rc == 0)
            rc = add_value(b, v);
    }
    return rc;
}

static int format_one(strbuf_t *b, const link_t *l, const char *page_url)
{
    if (l->url == NULL || has_ctl(l->url) || strpbrk(l->url, " <>") != NULL)
        return HERALD_EINVAL;
    if ((l->as && has_ctl(l->as)) || (l->type && has_ctl(l->type)) ||
        (l->media && has_ctl(l->media)))
        return HERALD_EINVAL;
    unsigned rel = l->rel & ~(unsigned)LINK_REL_OTHER;
    if (rel == 0)
        return HERALD_EINVAL;

    char *origin = NULL;
    int rc = url_origin(l->url, &origin);
    if (rc < 0)
        return rc == HERALD_ENOMEM ? rc : HERALD_EINVAL;
    const char *target = l->url;
    /* Path-absolute for same-origin resources; a preconnect names an origin. */
    bool path_only = false;
    if (page_url != NULL && !(rel & (LINK_REL_PRECONNECT | LINK_REL_DNS_PREFETCH))) {
        char *porigin = NULL;
        rc = url_origin(page_url, &porigin);
        if (rc == HERALD_ENOMEM) {
            free(origin);
            return rc;
        }
        path_only = rc == 0 && strcmp(origin, porigin) == 0;
        /* Userinfo would be lost from a path-absolute target. */
        const char *auth = strstr(l->url, "://");
        if (auth != NULL && memchr(auth + 3, '@', strcspn(auth + 3, "/?#")) != NULL)
            path_only = false;
        free(porigin);
    }
    free(origin);
    if (path_only) {
        const char *a = strstr(l->url, "://");
        const char *path = a + 3 + strcspn(a + 3, "/?#");
        /* A path starting "//" would read back as a network-path reference
         * (its first segment taken for a host): keep such targets absolute. */
        if (path[0] == '/' && path[1] == '/')
            path_only = false;
        else
            target = path;
    }

    rc = strbuf_add(b, "<", 1);
    if (rc == 0 && path_only && *target != '/')
        rc = strbuf_add(b, "/", 1);
    if (rc == 0)
        rc = strbuf_add(b, target, strcspn(target, "#"));
    if (rc == 0)
        rc = buf_str(b, ">; rel=");
    unsigned nrel = 0;
    for (size_t k = 0; k < sizeof rel_names / sizeof rel_names[0]; k++)
        nrel += (rel & rel_names[k].bit) != 0;
    if (rc == 0 && nrel > 1)
        rc = strbuf_add(b, "\"", 1);
    bool first = true;
    for (size_t k = 0; rc == 0 && k < sizeof rel_names / sizeof rel_names[0]; k++) {
        if (!(rel & rel_names[k].bit))
            continue;
        if (!first)
            rc = strbuf_add(b, " ", 1);
        if (rc == 0)
            rc = buf_str(b, rel_names[k].name);
        first = false;
    }
    if (rc == 0 && nrel > 1)
        rc = strbuf_add(b, "\"", 1);
    if (rc == 0 && l->as != NULL)
        rc = add_param(b, "as", l->as);
    if (rc == 0 && l->crossorigin == ASSET_CORS_ANONYMOUS)
        rc = add_param(b, "crossorigin", NULL);
    if (rc == 0 && l->crossorigin == ASSET_CORS_CREDENTIALS)
        rc = add_param(b, "crossorigin", "use-credentials");
    if (rc == 0 && l->type != NULL)
        rc = add_param(b, "type", l->type);
    if (rc == 0 && l->media != NULL)
        rc = add_param(b, "media", l->media);
    if (rc == 0 && l->nopush)
        rc = add_param(b, "nopush", NULL);
    return rc;
}

int link_format_list(const link_t *links, size_t n, const char *page_url, char **out)
{
    *out = NULL;
    if (n == 0)
        return HERALD_EINVAL;
    strbuf_t b = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0)
            rc = strbuf_add(&b, ", ", 2);
        if (rc == 0)
            rc = format_one(&b, &links[i], page_url);
    }
    if (rc < 0) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    return 0;
}

int link_format(const link_t *link, const char *page_url, char **out)
{
    return link_format_list(link, 1, page_url, out);
}

link_t link_preload(const char *url, const char *as, asset_crossorigin_t crossorigin,
                    const char *type, bool nopush)
{
    return (link_t){.url = (char *)url,
                    .rel = LINK_REL_PRELOAD,
                    .as = (char *)as,
                    .crossorigin = crossorigin,
                    .type = (char *)type,
                    .nopush = nopush};
}

link_t link_preconnect(const char *origin, asset_crossorigin_t crossorigin)
{
    return (link_t){.url = (char *)origin, .rel = LINK_REL_PRECONNECT, .crossorigin = crossorigin};
}
