/*
 * HTML discovery on gumbo. The rules follow what Chromium fetches while
 * loading a page at DPR 1 in a 1280x800 viewport with scripting enabled;
 * each rule names the spec/browser behaviour it copies.
 */
#include "html.h"

#include "charset.h"
#include "css.h"
#include "herald/error.h"
#include "url.h"

#include <ctype.h>
#include <gumbo.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The environment the "which candidate does a browser fetch" rules assume. */
#define VIEW_W 1280.0
#define VIEW_H 800.0
#define EM_PX 16.0
/* gumbo copies its tag stack into every parse error: unbounded errors cost
 * O(n^2) memory on unclosed markup. A few are plenty (we never read them). */
#define GUMBO_MAX_ERRORS 16

struct html_scanner {
    char *base;
    char *charset;
    char *buf;
    size_t len, cap, byte_cap;
    bool full, finished;
    char used_charset[CHARSET_NAME_MAX];
};

html_scanner_t *html_scanner_create(const char *base_url, const char *charset, size_t byte_cap)
{
    if (!base_url)
        return NULL;
    html_scanner_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->byte_cap = byte_cap ? byte_cap : HTML_SCANNER_DEFAULT_CAP;
    s->base = strdup(base_url);
    s->charset = charset ? strdup(charset) : NULL;
    if (!s->base || (charset && !s->charset)) {
        html_scanner_destroy(s);
        return NULL;
    }
    return s;
}

void html_scanner_destroy(html_scanner_t *s)
{
    if (!s)
        return;
    free(s->base);
    free(s->charset);
    free(s->buf);
    free(s);
}

int html_scanner_feed(html_scanner_t *s, const void *data, size_t len)
{
    if (s->full || s->finished)
        return 0;
    if (len >= s->byte_cap - s->len) {
        len = s->byte_cap - s->len;
        s->full = true;
    }
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + len)
            cap *= 2;
        if (cap > s->byte_cap)
            cap = s->byte_cap;
        char *b = realloc(s->buf, cap);
        if (!b)
            return HERALD_ENOMEM;
        s->buf = b;
        s->cap = cap;
    }
    if (len)
        memcpy(s->buf + s->len, data, len);
    s->len += len;
    return 0;
}

bool html_scanner_full(const html_scanner_t *s)
{
    return s->full;
}

const char *html_scanner_charset(const html_scanner_t *s)
{
    return s->finished ? s->used_charset : NULL;
}

/* ---- depth pre-pass ---------------------------------------------------- */

typedef struct cut_entry {
    uint32_t hash;
    uint8_t code;
    bool foreign;
} cut_entry_t;

enum {
    C_OTHER,
    C_P,
    C_LI,
    C_DTDD,
    C_CELL,
    C_TR,
    C_OPTION,
    C_TABLE,
    C_LIST,
    C_DL,
    C_SECTION, /* tbody, thead, tfoot */
    C_SELECT,
    C_BUTTON,
};

/* What the pre-pass needs to know about a tag name. */
enum {
    F_VOID = 1,       /* no end tag, never nests */
    F_RAWTEXT = 2,    /* contents are text up to the matching end tag */
    F_PCLOSE = 4,     /* a start tag that closes an open <p> ("in body") */
    F_FORMAT = 8,     /* a formatting element (re-created after misnesting) */
    F_ROOT = 16,      /* html, head, body: merged by the parser, never nest */
    F_PLAINTEXT = 32, /* the rest of the document is text */
    F_FOREIGN = 64,   /* svg, math: self-closing tags close there */
};

typedef struct tag_class {
    const char *name;
    uint8_t flags;
} tag_class_t;

/* Sorted by name for bsearch. */
static const tag_class_t tag_classes[] = {
    {"a", F_FORMAT},
    {"address", F_PCLOSE},
    {"area", F_VOID},
    {"article", F_PCLOSE},
    {"aside", F_PCLOSE},
    {"b", F_FORMAT},
    {"base", F_VOID},
    {"basefont", F_VOID},
    {"bgsound", F_VOID},
    {"big", F_FORMAT},
    {"blockquote", F_PCLOSE},
    {"body", F_ROOT},
    {"br", F_VOID},
    {"center", F_PCLOSE},
    {"code", F_FORMAT},
    {"col", F_VOID},
    {"dd", F_PCLOSE},
    {"details", F_PCLOSE},
    {"dialog", F_PCLOSE},
    {"dir", F_PCLOSE},
    {"div", F_PCLOSE},
    {"dl", F_PCLOSE},
    {"dt", F_PCLOSE},
    {"em", F_FORMAT},
    {"embed", F_VOID},
    {"fieldset", F_PCLOSE},
    {"figcaption", F_PCLOSE},
    {"figure", F_PCLOSE},
    {"font", F_FORMAT},
    {"footer", F_PCLOSE},
    {"form", F_PCLOSE},
    {"frame", F_VOID},
    {"h1", F_PCLOSE},
    {"h2", F_PCLOSE},
    {"h3", F_PCLOSE},
    {"h4", F_PCLOSE},
    {"h5", F_PCLOSE},
    {"h6", F_PCLOSE},
    {"head", F_ROOT},
    {"header", F_PCLOSE},
    {"hgroup", F_PCLOSE},
    {"hr", F_VOID | F_PCLOSE},
    {"html", F_ROOT},
    {"i", F_FORMAT},
    {"iframe", F_RAWTEXT},
    {"image", F_VOID},
    {"img", F_VOID},
    {"input", F_VOID},
    {"keygen", F_VOID},
    {"li", F_PCLOSE},
    {"link", F_VOID},
    {"listing", F_PCLOSE},
    {"main", F_PCLOSE},
    {"math", F_FOREIGN},
    {"menu", F_PCLOSE},
    {"meta", F_VOID},
    {"nav", F_PCLOSE},
    {"nobr", F_FORMAT},
    {"noembed", F_RAWTEXT},
    {"noframes", F_RAWTEXT},
    {"ol", F_PCLOSE},
    {"p", F_PCLOSE},
    {"param", F_VOID},
    {"plaintext", F_PLAINTEXT},
    {"pre", F_PCLOSE},
    {"s", F_FORMAT},
    {"script", F_RAWTEXT},
    {"search", F_PCLOSE},
    {"section", F_PCLOSE},
    {"small", F_FORMAT},
    {"source", F_VOID},
    {"strike", F_FORMAT},
    {"strong", F_FORMAT},
    {"style", F_RAWTEXT},
    {"summary", F_PCLOSE},
    {"svg", F_FOREIGN},
    {"table", F_PCLOSE},
    {"textarea", F_RAWTEXT},
    {"title", F_RAWTEXT},
    {"track", F_VOID},
    {"tt", F_FORMAT},
    {"u", F_FORMAT},
    {"ul", F_PCLOSE},
    {"wbr", F_VOID},
    {"xmp", F_PCLOSE | F_RAWTEXT},
};

static int tag_class_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const tag_class_t *)elem)->name);
}

static uint8_t tag_flags(const char *n, size_t len)
{
    char low[12];
    if (len >= sizeof(low))
        return 0;
    for (size_t i = 0; i < len; i++)
        low[i] = (char)tolower((unsigned char)n[i]);
    low[len] = 0;
    const tag_class_t *c = bsearch(low, tag_classes, sizeof(tag_classes) / sizeof(tag_classes[0]),
                                   sizeof(tag_classes[0]), tag_class_cmp);
    return c ? c->flags : 0;
}

static uint32_t name_hash(const char *n, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint32_t)tolower((unsigned char)n[i])) * 16777619u;
    return h;
}

static uint8_t name_code(const char *n, size_t len)
{
    static const struct {
        const char *n;
        uint8_t c;
    } t[] = {
        {"p", C_P},           {"li", C_LI},         {"dt", C_DTDD},       {"dd", C_DTDD},
        {"td", C_CELL},       {"th", C_CELL},       {"tr", C_TR},         {"option", C_OPTION},
        {"table", C_TABLE},   {"ul", C_LIST},       {"ol", C_LIST},       {"dl", C_DL},
        {"tbody", C_SECTION}, {"thead", C_SECTION}, {"tfoot", C_SECTION}, {"select", C_SELECT},
        {"button", C_BUTTON},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strlen(t[i].n) == len && strncasecmp(n, t[i].n, len) == 0)
            return t[i].c;
    return C_OTHER;
}

/* Index of the nearest open entry with code `want`, searching down no
 * further than an entry with one of the `stop` codes; -1 if none. */
static long find_open(const cut_entry_t *st, size_t n, uint8_t want, uint32_t stop_mask)
{
    for (size_t i = n; i-- > 0;) {
        if (st[i].code == want)
            return (long)i;
        if (stop_mask & (1u << st[i].code))
            return -1;
    }
    return -1;
}

static const char *skip_to(const char *p, const char *end, const char *needle, size_t nlen)
{
    while (p + nlen <= end) {
        const char *q = memchr(p, needle[0], (size_t)(end - p));
        if (!q || q + nlen > end)
            return end;
        if (strncasecmp(q, needle, nlen) == 0)
            return q;
        p = q + 1;
    }
    return end;
}

/* Blank a tag out: spaces keep offsets and only add whitespace text. */
static void blank(char *from, const char *to, size_t *count)
{
    memset(from, ' ', (size_t)(to - from));
    (*count)++;
}

size_t html_defuse(char *html, size_t len, unsigned max_depth, unsigned max_formatting)
{
    cut_entry_t *st = malloc(((size_t)max_depth + 1) * sizeof(*st));
    uint32_t *fmt = malloc(((size_t)max_formatting + 1) * sizeof(*fmt));
    size_t n = 0, nfmt = 0, blanked = 0;
    if (!st || !fmt) {
        /* No memory for the stacks: keep nothing rather than risk gumbo. */
        free(st);
        free(fmt);
        memset(html, ' ', len);
        return 1;
    }
    char *p = html;
    const char *end = html + len;
    const uint32_t table_scope = (1u << C_TABLE) | (1u << C_BUTTON) | (1u << C_CELL);
    while (p < end) {
        char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt || lt + 1 >= end)
            break;
        p = lt + 1;
        if (*p == '!') {
            if (end - p >= 3 && p[1] == '-' && p[2] == '-') {
                const char *q = skip_to(p + 3, end, "-->", 3);
                p = q == end ? (char *)end : (char *)q + 3;
            } else {
                char *q = memchr(p, '>', (size_t)(end - p));
                p = q ? q + 1 : (char *)end;
            }
            continue;
        }
        if (*p == '?') {
            char *q = memchr(p, '>', (size_t)(end - p));
            p = q ? q + 1 : (char *)end;
            continue;
        }
        bool closing = *p == '/';
        if (closing)
            p++;
        if (p >= end || !isalpha((unsigned char)*p))
            continue;
        const char *name = p;
        while (p < end && !isspace((unsigned char)*p) && *p != '/' && *p != '>')
            p++;
        size_t nlen = (size_t)(p - name);
        /* Attributes up to the '>' outside quotes. */
        bool self_closing = false;
        char quote = 0;
        while (p < end) {
            if (quote) {
                if (*p == quote)
                    quote = 0;
            } else if (*p == '"' || *p == '\'') {
                if (p[-1] == '=' || isspace((unsigned char)p[-1]))
                    quote = *p;
            } else if (*p == '>') {
                self_closing = p[-1] == '/';
                break;
            }
            p++;
        }
        if (p >= end)
            break;
        p++;
        uint8_t flags = tag_flags(name, nlen);
        if (flags & F_ROOT)
            continue;
        uint32_t h = name_hash(name, nlen);
        uint8_t code = name_code(name, nlen);
        bool formatting = flags & F_FORMAT;
        if (closing) {
            for (size_t i = n; i-- > 0;) {
                if (st[i].hash == h) {
                    n = i;
                    break;
                }
            }
            for (size_t i = nfmt; formatting && i-- > 0;) {
                if (fmt[i] == h) {
                    memmove(fmt + i, fmt + i + 1, (nfmt - i - 1) * sizeof(*fmt));
                    nfmt--;
                    break;
                }
            }
            continue;
        }
        bool foreign = (n && st[n - 1].foreign) || (flags & F_FOREIGN);
        if (!foreign && (flags & F_RAWTEXT)) {
            char needle[16] = "</";
            memcpy(needle + 2, name, nlen);
            p = (char *)skip_to(p, end, needle, nlen + 2);
            continue;
        }
        if (!foreign && (flags & F_PLAINTEXT))
            break;
        if ((flags & F_VOID) || (foreign && self_closing))
            continue;
        if (formatting && !foreign) {
            /* Unclosed formatting elements are re-created ("reconstructed")
             * at every later insertion: their number multiplies the tree. */
            if (nfmt >= max_formatting) {
                blank(lt, p, &blanked);
                continue;
            }
            fmt[nfmt++] = h;
        }
        /* Implied end tags, so that ordinary unclosed <p>, <li>, <td> ...
         * do not count as nesting. */
        long at = -1;
        if (!foreign) {
            if (flags & F_PCLOSE)
                at = find_open(st, n, C_P, table_scope);
            if (at >= 0)
                n = (size_t)at;
            at = -1;
            if (code == C_LI)
                at = find_open(st, n, C_LI, (1u << C_LIST) | table_scope);
            else if (code == C_DTDD)
                at = find_open(st, n, C_DTDD, (1u << C_DL) | table_scope);
            else if (code == C_CELL)
                at = find_open(st, n, C_CELL, (1u << C_TR) | (1u << C_TABLE));
            else if (code == C_TR)
                at = find_open(st, n, C_TR, 1u << C_TABLE);
            else if (code == C_OPTION && n && st[n - 1].code == C_OPTION)
                at = (long)n - 1;
            else if (code == C_SECTION) {
                at = find_open(st, n, C_TABLE, 0);
                if (at >= 0)
                    at++;
            }
            if (at >= 0)
                n = (size_t)at;
        }
        if (n >= max_depth) {
            blank(lt, p, &blanked);
            continue;
        }
        st[n].hash = h;
        st[n].code = code;
        st[n].foreign = foreign;
        n++;
    }
    free(st);
    free(fmt);
    return blanked;
}

/* ---- small parsers: media queries, lengths, sizes, srcset ------------- */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static const char *trim(const char *s, const char *e, const char **out_end)
{
    while (s < e && is_ws(*s))
        s++;
    while (e > s && is_ws(e[-1]))
        e--;
    *out_end = e;
    return s;
}

static bool word_eq(const char *s, const char *e, const char *w)
{
    size_t n = strlen(w);
    return (size_t)(e - s) == n && strncasecmp(s, w, n) == 0;
}

/* A CSS length in px against the assumed viewport; false when it is not a
 * plain length (calc() and friends are not evaluated). */
static bool parse_length(const char *s, const char *e, double *px)
{
    s = trim(s, e, &e);
    if (s == e)
        return false;
    char tmp[64];
    size_t n = (size_t)(e - s);
    if (n >= sizeof(tmp))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *u;
    double v = strtod(tmp, &u);
    if (u == tmp || v < 0 || !isfinite(v))
        return false;
    if (*u == 0)
        return v == 0 ? (*px = 0, true) : false;
    if (strcasecmp(u, "px") == 0)
        *px = v;
    else if (strcasecmp(u, "em") == 0 || strcasecmp(u, "rem") == 0)
        *px = v * EM_PX;
    else if (strcasecmp(u, "vw") == 0)
        *px = v * VIEW_W / 100.0;
    else if (strcasecmp(u, "vh") == 0)
        *px = v * VIEW_H / 100.0;
    else if (strcasecmp(u, "vmin") == 0)
        *px = v * VIEW_H / 100.0;
    else if (strcasecmp(u, "vmax") == 0)
        *px = v * VIEW_W / 100.0;
    else if (strcasecmp(u, "pt") == 0)
        *px = v * 4.0 / 3.0;
    else if (strcasecmp(u, "in") == 0)
        *px = v * 96.0;
    else if (strcasecmp(u, "cm") == 0)
        *px = v * 96.0 / 2.54;
    else
        return false;
    return true;
}

static bool parse_number(const char *s, const char *e, double *out)
{
    s = trim(s, e, &e);
    char tmp[64];
    size_t n = (size_t)(e - s);
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *u;
    *out = strtod(tmp, &u);
    if (u == tmp)
        return false;
    if (*u && strcasecmp(u, "dppx") != 0 && strcasecmp(u, "x") != 0)
        return false;
    return true;
}

/* One "(feature: value)" or "(feature)" inside the parentheses. */
static bool media_feature(const char *s, const char *e)
{
    s = trim(s, e, &e);
    const char *colon = memchr(s, ':', (size_t)(e - s));
    const char *ne = colon ? colon : e;
    const char *n = trim(s, ne, &ne);
    double v;
    if (!colon) {
        /* Level 4 range form "width >= 600px" (one comparison). */
        const char *op = n;
        while (op < e && !strchr("<>=", *op))
            op++;
        if (op < e) {
            const char *fe;
            const char *f = trim(n, op, &fe);
            bool ge = *op == '>', eq = op + 1 < e && op[1] == '=';
            bool strict = !eq && *op != '=';
            const char *vs = op + (eq ? 2 : 1);
            double actual;
            if (word_eq(f, fe, "width"))
                actual = VIEW_W;
            else if (word_eq(f, fe, "height"))
                actual = VIEW_H;
            else
                return false;
            if (!parse_length(vs, e, &v))
                return false;
            if (*op == '=')
                return actual == v;
            if (ge)
                return strict ? actual > v : actual >= v;
            return strict ? actual < v : actual <= v;
        }
        return word_eq(n, ne, "color") || word_eq(n, ne, "hover") || word_eq(n, ne, "pointer") ||
               word_eq(n, ne, "any-hover") || word_eq(n, ne, "any-pointer");
    }
    const char *ve;
    const char *val = trim(colon + 1, e, &ve);
    if (word_eq(n, ne, "min-width"))
        return parse_length(val, ve, &v) && VIEW_W >= v;
    if (word_eq(n, ne, "max-width"))
        return parse_length(val, ve, &v) && VIEW_W <= v;
    if (word_eq(n, ne, "width"))
        return parse_length(val, ve, &v) && VIEW_W == v;
    if (word_eq(n, ne, "min-height"))
        return parse_length(val, ve, &v) && VIEW_H >= v;
    if (word_eq(n, ne, "max-height"))
        return parse_length(val, ve, &v) && VIEW_H <= v;
    if (word_eq(n, ne, "orientation"))
        return word_eq(val, ve, "landscape");
    if (word_eq(n, ne, "prefers-color-scheme"))
        return word_eq(val, ve, "light");
    if (word_eq(n, ne, "prefers-reduced-motion"))
        return word_eq(val, ve, "no-preference");
    if (word_eq(n, ne, "hover") || word_eq(n, ne, "any-hover"))
        return word_eq(val, ve, "hover");
    if (word_eq(n, ne, "pointer") || word_eq(n, ne, "any-pointer"))
        return word_eq(val, ve, "fine");
    if (word_eq(n, ne, "min-resolution") || word_eq(n, ne, "-webkit-min-device-pixel-ratio") ||
        word_eq(n, ne, "min-device-pixel-ratio"))
        return parse_number(val, ve, &v) && 1.0 >= v;
    if (word_eq(n, ne, "max-resolution") || word_eq(n, ne, "-webkit-max-device-pixel-ratio") ||
        word_eq(n, ne, "max-device-pixel-ratio"))
        return parse_number(val, ve, &v) && 1.0 <= v;
    return false; /* unknown: the safe answer for "would it be fetched" */
}

/* One media query (no top-level commas): [not|only] [type] [and (f)]... or
 * (f) [and (f)]... Unknown syntax does not match. */
static bool media_query(const char *s, const char *e)
{
    s = trim(s, e, &e);
    bool negate = false, result = true, any = false;
    while (s < e) {
        while (s < e && is_ws(*s))
            s++;
        if (s >= e)
            break;
        if (*s == '(') {
            int depth = 0;
            const char *q = s;
            for (; q < e; q++) {
                if (*q == '(')
                    depth++;
                else if (*q == ')' && --depth == 0)
                    break;
            }
            if (q >= e)
                return false;
            result = result && media_feature(s + 1, q);
            any = true;
            s = q + 1;
            continue;
        }
        const char *w = s;
        while (s < e && !is_ws(*s) && *s != '(')
            s++;
        if (word_eq(w, s, "and"))
            continue;
        if (any && !word_eq(w, s, "and"))
            return false; /* "or", stray words: not understood */
        if (word_eq(w, s, "not"))
            negate = true;
        else if (word_eq(w, s, "only"))
            ;
        else if (word_eq(w, s, "all") || word_eq(w, s, "screen"))
            any = true;
        else {
            any = true;
            result = false; /* print, speech, tv, unknown types */
        }
    }
    return negate ? !result : result;
}

/** True when a media list (NULL or empty: all) matches screen at 1280x800. */
static bool media_matches(const char *m)
{
    if (!m)
        return true;
    const char *end = m + strlen(m), *te;
    const char *t = trim(m, end, &te);
    if (t == te)
        return true;
    const char *s = t;
    int depth = 0;
    for (const char *p = t; p <= te; p++) {
        if (p < te && *p == '(')
            depth++;
        else if (p < te && *p == ')')
            depth--;
        else if (p == te || (*p == ',' && depth == 0)) {
            if (media_query(s, p))
                return true;
            s = p + 1;
        }
    }
    return false;
}

/* The slot width `sizes` gives at the assumed viewport (100vw without it):
 * the first entry whose media condition matches. */
static double sizes_px(const char *sizes)
{
    double px = VIEW_W;
    if (!sizes)
        return px;
    const char *p = sizes, *end = sizes + strlen(sizes);
    while (p < end) {
        int depth = 0;
        const char *q = p;
        for (; q < end; q++) {
            if (*q == '(')
                depth++;
            else if (*q == ')')
                depth--;
            else if (*q == ',' && depth == 0)
                break;
        }
        const char *ee;
        const char *e = trim(p, q, &ee);
        /* The length is the last component; what precedes it is the condition. */
        const char *ls = ee;
        while (ls > e && !is_ws(ls[-1]) && ls[-1] != ')')
            ls--;
        double v;
        if (ls < ee && parse_length(ls, ee, &v)) {
            if (ls == e || media_query(e, ls)) {
                return v;
            }
        } else if (word_eq(ls, ee, "auto") && ls == e) {
            return px;
        }
        p = q + 1;
    }
    return px;
}

typedef struct candidate {
    const char *url;
    size_t url_len;
    double density; /* after normalisation */
    bool is_src;
} candidate_t;

typedef struct candidates {
    candidate_t *v;
    size_t n, cap;
    bool has_w, has_1x;
} candidates_t;

static int cand_push(candidates_t *c, candidate_t x)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        candidate_t *v = realloc(c->v, cap * sizeof(*v));
        if (!v)
            return HERALD_ENOMEM;
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = x;
    return 0;
}

/* HTML "parse a srcset attribute": URLs may hold commas; descriptors are
 * one of w, x (h is read and ignored); a candidate with invalid descriptors
 * is dropped. Densities of w candidates are set from slot_px. */
static int parse_srcset(const char *s, double slot_px, candidates_t *c)
{
    const char *p = s, *end = s + strlen(s);
    while (p < end) {
        while (p < end && (is_ws(*p) || *p == ','))
            p++;
        if (p >= end)
            break;
        const char *u = p;
        while (p < end && !is_ws(*p))
            p++;
        const char *ue = p;
        bool descriptors = true;
        if (ue[-1] == ',') {
            while (ue > u && ue[-1] == ',')
                ue--;
            descriptors = false;
        }
        double w = -1, x = -1;
        bool bad = false, seen_h = false;
        if (descriptors) {
            for (;;) {
                while (p < end && is_ws(*p))
                    p++;
                if (p >= end)
                    break;
                if (*p == ',') {
                    p++;
                    break;
                }
                const char *d = p;
                int depth = 0;
                while (p < end && ((!is_ws(*p) && *p != ',') || depth > 0)) {
                    if (*p == '(')
                        depth++;
                    else if (*p == ')')
                        depth--;
                    p++;
                }
                size_t dl = (size_t)(p - d);
                if (dl < 2) {
                    bad = true;
                    continue;
                }
                char last = (char)tolower((unsigned char)d[dl - 1]);
                char tmp[48];
                if (dl - 1 >= sizeof(tmp)) {
                    bad = true;
                    continue;
                }
                memcpy(tmp, d, dl - 1);
                tmp[dl - 1] = 0;
                char *ep;
                double v = strtod(tmp, &ep);
                if (*ep || ep == tmp || !isfinite(v)) {
                    bad = true;
                    continue;
                }
                if (last == 'w' && w < 0 && x < 0 && v > 0 && v == floor(v))
                    w = v;
                else if (last == 'x' && x < 0 && w < 0 && !seen_h && v >= 0)
                    x = v;
                else if (last == 'h' && !seen_h && x < 0 && v > 0)
                    seen_h = true;
                else
                    bad = true;
            }
        }
        if (bad || ue == u)
            continue;
        candidate_t cd = {.url = u, .url_len = (size_t)(ue - u), .density = 1.0};
        if (w > 0) {
            cd.density = w / (slot_px > 0 ? slot_px : 1e-9);
            c->has_w = true;
        } else if (x >= 0) {
            cd.density = x;
            if (x == 1.0)
                c->has_1x = true;
        } else {
            c->has_1x = true;
        }
        if (cand_push(c, cd))
            return HERALD_ENOMEM;
    }
    return 0;
}

/* Chromium's selection (HTMLSrcsetParser): candidates by density, equal
 * densities keep the first, at DPR <= 1 the smallest density >= 1 wins, or
 * the densest when none reaches 1. Returns an index into c->v or -1. */
static long pick_candidate(const candidates_t *c)
{
    long best = -1, densest = -1;
    for (size_t i = 0; i < c->n; i++) {
        const candidate_t *x = &c->v[i];
        if (x->is_src && c->has_w)
            continue;
        if (x->density >= 1.0 && (best < 0 || x->density < c->v[best].density))
            best = (long)i;
        if (densest < 0 || x->density > c->v[densest].density)
            densest = (long)i;
    }
    return best >= 0 ? best : densest;
}

/* ---- the walk ----------------------------------------------------------- */

typedef struct css_piece {
    const char *text;
    size_t len;
    bool blocking; /* a <style> in <head> with matching media: its @imports block */
} css_piece_t;

typedef struct walk {
    const char *base;
    const char *charset; /* the document's, for query encoding; NULL when UTF-8 */
    asset_list_t *out;
    css_piece_t *css;
    size_t ncss, capcss;
    const GumboNode *picture;    /* the last <picture> whose choice was computed */
    const GumboNode *picture_of; /* its chosen <source>, or NULL: the <img> */
    unsigned picture_group;      /* its alternates set */
    unsigned groups;             /* alternates sets numbered so far */
    /* what add() marks the next assets with (asset_t.strong, .group) */
    bool strong;
    unsigned group;
} walk_t;

static const char *attr(const GumboNode *n, const char *name)
{
    const GumboAttribute *a = gumbo_get_attribute(&n->v.element.attributes, name);
    return a ? a->value : NULL;
}

static bool has_token(const char *list, const char *tok)
{
    if (!list)
        return false;
    size_t tl = strlen(tok);
    const char *p = list;
    while (*p) {
        while (*p && is_ws(*p))
            p++;
        const char *s = p;
        while (*p && !is_ws(*p))
            p++;
        if ((size_t)(p - s) == tl && strncasecmp(s, tok, tl) == 0)
            return true;
    }
    return false;
}

static bool value_is(const char *v, const char *w)
{
    if (!v)
        return false;
    const char *e;
    const char *s = trim(v, v + strlen(v), &e);
    return word_eq(s, e, w);
}

static asset_crossorigin_t crossorigin_of(const char *v, asset_crossorigin_t dflt)
{
    if (!v)
        return dflt;
    /* Invalid values mean anonymous (the attribute's invalid value default). */
    return value_is(v, "use-credentials") ? ASSET_CORS_CREDENTIALS : ASSET_CORS_ANONYMOUS;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* A legacy-encoded document sends the non-ASCII characters of a query in
 * its own encoding (the path is always UTF-8, which url_resolve does). Sets
 * *out to a rewritten reference, or leaves it NULL when nothing changes. */
static int encode_query(const char *charset, const char *ref, size_t len, char **out)
{
    const char *q = memchr(ref, '?', len);
    if (!q)
        return 0;
    const char *hash = memchr(q, '#', len - (size_t)(q - ref));
    const char *qe = hash ? hash : ref + len;
    bool ascii = true;
    for (const char *p = q; p < qe && ascii; p++)
        ascii = (unsigned char)*p < 0x80;
    if (ascii)
        return 0;
    char *enc = NULL;
    int rc = charset_encode_query(charset, q, (size_t)(qe - q), &enc);
    if (rc == HERALD_EUNSUPPORTED)
        return 0;
    if (rc)
        return rc;
    size_t head = (size_t)(q - ref), el = strlen(enc), tail = (size_t)(ref + len - qe);
    char *r = malloc(head + el + tail + 1);
    if (!r) {
        free(enc);
        return HERALD_ENOMEM;
    }
    memcpy(r, ref, head);
    memcpy(r + head, enc, el);
    memcpy(r + head + el, qe, tail);
    r[head + el + tail] = 0;
    free(enc);
    *out = r;
    return 0;
}

/* Resolve and append one asset; references that are not http(s) or do not
 * resolve are skipped silently (they are no fetch of ours). */
static int add(walk_t *w, const char *ref, size_t ref_len, asset_kind_t kind,
               asset_crossorigin_t co, const char *media, const char *type, bool blocking,
               bool pick)
{
    char *url = NULL, *fixed = NULL;
    int rc;
    if (w->charset && (rc = encode_query(w->charset, ref, ref_len, &fixed)) != 0)
        return rc;
    if (fixed) {
        ref = fixed;
        ref_len = strlen(fixed);
    }
    rc = url_resolve(w->base, ref, ref_len, &url);
    free(fixed);
    if (rc == HERALD_ENOMEM)
        return rc;
    if (rc < 0)
        return 0;
    if (kind == ASSET_PRECONNECT) {
        char *origin = NULL;
        rc = url_origin(url, &origin);
        free(url);
        if (rc == HERALD_ENOMEM)
            return rc;
        if (rc < 0)
            return 0;
        url = origin;
    }
    if (kind == ASSET_FONT)
        co = co == ASSET_CORS_NONE ? ASSET_CORS_ANONYMOUS : co;
    asset_t a = {
        .url = url,
        .kind = kind,
        .as = asset_kind_as(kind),
        .crossorigin = co,
        .media = dup_or_null(media),
        .type = dup_or_null(type),
        .blocking = blocking,
        .pick = pick,
        .strong = w->strong,
        .group = w->group,
    };
    if ((media && !a.media) || (type && !a.type)) {
        free(a.url);
        free(a.media);
        free(a.type);
        return HERALD_ENOMEM;
    }
    return asset_list_add(w->out, &a);
}

static int add_z(walk_t *w, const char *ref, asset_kind_t kind, asset_crossorigin_t co,
                 const char *media, const char *type, bool blocking, bool pick)
{
    return add(w, ref, strlen(ref), kind, co, media, type, blocking, pick);
}

static bool image_type_supported(const char *type)
{
    if (!type)
        return true;
    const char *e = type + strlen(type);
    const char *semi = memchr(type, ';', (size_t)(e - type));
    if (semi)
        e = semi;
    const char *s = trim(type, e, &e);
    if (s == e)
        return true;
    static const char *const ok[] = {
        "image/webp",
        "image/avif",
        "image/jxl",
        "image/jpeg",
        "image/jpg",
        "image/pjpeg",
        "image/png",
        "image/apng",
        "image/gif",
        "image/svg+xml",
        "image/bmp",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        NULL,
    };
    for (const char *const *o = ok; *o; o++)
        if (word_eq(s, e, *o))
            return true;
    return false;
}

/* Emit every candidate of an image source set; `chosen` says whether this
 * set is the one the browser uses at all (the selected <source>, or the
 * <img> when no source matched). */
static int add_srcset(walk_t *w, const char *src, const char *srcset, const char *sizes,
                      asset_crossorigin_t co, bool chosen, const char *media, const char *type,
                      unsigned group, bool weak)
{
    candidates_t c = {0};
    int rc = 0;
    if (srcset && (rc = parse_srcset(srcset, sizes_px(sizes), &c)) != 0)
        goto out;
    if (src && *src && !c.has_1x && !c.has_w) {
        candidate_t cd = {.url = src, .url_len = strlen(src), .density = 1.0, .is_src = true};
        if ((rc = cand_push(&c, cd)) != 0)
            goto out;
    }
    /* One plain source (no srcset, no picture) is fetched as it is, unless
     * weak (lazy, a preload); several candidates are alternates: a browser
     * fetches one. */
    if (group == 0 && c.n > 1)
        group = ++w->groups;
    w->group = group;
    w->strong = group == 0 && !weak;
    long win = chosen ? pick_candidate(&c) : -1;
    /* The src comes first in document order (it is an attribute of the img);
     * within srcset the candidates keep their order. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < c.n; i++) {
            if (c.v[i].is_src != (pass == 0))
                continue;
            rc = add(w, c.v[i].url, c.v[i].url_len, ASSET_IMAGE, co, media, type, false,
                     (long)i == win);
            if (rc)
                goto out;
        }
        if (pass == 0 && src && *src && (c.has_1x || c.has_w) &&
            (rc = add_z(w, src, ASSET_IMAGE, co, media, type, false, false)) != 0)
            goto out;
    }
out:
    free(c.v);
    return rc;
}

static bool source_matches(const GumboNode *src)
{
    const char *srcset = attr(src, "srcset");
    if (!srcset || !*srcset)
        return false;
    if (!image_type_supported(attr(src, "type")))
        return false;
    if (!media_matches(attr(src, "media")))
        return false;
    candidates_t c = {0};
    bool any = parse_srcset(srcset, sizes_px(attr(src, "sizes")), &c) == 0 && c.n > 0;
    free(c.v);
    return any;
}

/* The <source> of `picture` the browser uses (first match before the img),
 * or NULL when the img's own src/srcset is used. Cached per picture so a
 * picture with many children costs linear time. */
static const GumboNode *picture_choice(walk_t *w, const GumboNode *picture)
{
    if (w->picture == picture)
        return w->picture_of;
    const GumboNode *chosen = NULL;
    const GumboVector *kids = &picture->v.element.children;
    for (unsigned i = 0; i < kids->length; i++) {
        const GumboNode *k = kids->data[i];
        if (k->type != GUMBO_NODE_ELEMENT)
            continue;
        if (k->v.element.tag == GUMBO_TAG_IMG)
            break;
        if (k->v.element.tag == GUMBO_TAG_SOURCE && source_matches(k)) {
            chosen = k;
            break;
        }
    }
    w->picture = picture;
    w->picture_of = chosen;
    w->picture_group = ++w->groups;
    return chosen;
}

/* gumbo 0.10.1 predates <picture>: it is an unknown element, known by the
 * name in its start tag. */
static bool is_picture(const GumboNode *n)
{
    if (!n || n->type != GUMBO_NODE_ELEMENT || n->v.element.tag != GUMBO_TAG_UNKNOWN ||
        n->v.element.tag_namespace != GUMBO_NAMESPACE_HTML)
        return false;
    GumboStringPiece name = n->v.element.original_tag;
    if (!name.data || name.length < 2)
        return false;
    gumbo_tag_from_original_text(&name);
    return name.length == 7 && strncasecmp(name.data, "picture", 7) == 0;
}

static bool is_js_type(const char *type)
{
    static const char *const js[] = {
        "",
        "application/ecmascript",
        "application/javascript",
        "application/x-ecmascript",
        "application/x-javascript",
        "text/ecmascript",
        "text/javascript",
        "text/javascript1.0",
        "text/javascript1.1",
        "text/javascript1.2",
        "text/javascript1.3",
        "text/javascript1.4",
        "text/javascript1.5",
        "text/jscript",
        "text/livescript",
        "text/x-ecmascript",
        "text/x-javascript",
        NULL,
    };
    const char *e;
    const char *s = trim(type, type + strlen(type), &e);
    for (const char *const *j = js; *j; j++)
        if (word_eq(s, e, *j))
            return true;
    return false;
}

static int on_link(walk_t *w, const GumboNode *n, bool in_head)
{
    const char *rel = attr(n, "rel"), *href = attr(n, "href");
    if (!rel || !href)
        return 0;
    const char *media = attr(n, "media"), *type = attr(n, "type");
    const char *cross = attr(n, "crossorigin");
    int rc = 0;
    if (has_token(rel, "stylesheet") && !has_token(rel, "alternate") && !attr(n, "disabled")) {
        /* A type other than text/css is not loaded (HTML "link type=stylesheet"). */
        if (!type || !*type || value_is(type, "text/css")) {
            bool blocking = in_head && media_matches(media);
            w->strong = true; /* a browser loads every stylesheet, matching media or not */
            rc = add_z(w, href, ASSET_STYLE, crossorigin_of(cross, ASSET_CORS_NONE), media, NULL,
                       blocking, true);
            w->strong = false;
            if (rc)
                return rc;
        }
    }
    if (has_token(rel, "preload")) {
        const char *as = attr(n, "as");
        static const struct {
            const char *as;
            asset_kind_t kind;
        } as_kinds[] = {
            {"style", ASSET_STYLE}, {"script", ASSET_SCRIPT}, {"font", ASSET_FONT},
            {"image", ASSET_IMAGE}, {"fetch", ASSET_OTHER},   {"track", ASSET_OTHER},
        };
        for (size_t i = 0; as && i < sizeof(as_kinds) / sizeof(as_kinds[0]); i++) {
            if (!value_is(as, as_kinds[i].as))
                continue;
            bool fetched = media_matches(media);
            asset_crossorigin_t co = crossorigin_of(cross, ASSET_CORS_NONE);
            if (as_kinds[i].kind == ASSET_IMAGE) {
                if (!image_type_supported(type))
                    break;
                const char *iss = attr(n, "imagesrcset");
                rc = add_srcset(w, href, iss, attr(n, "imagesizes"), co, fetched, media, type, 0,
                                true);
            } else {
                rc = add_z(w, href, as_kinds[i].kind, co, media, type, false, fetched);
            }
            if (rc)
                return rc;
            break;
        }
    }
    if (has_token(rel, "modulepreload")) {
        rc = add_z(w, href, ASSET_MODULE, crossorigin_of(cross, ASSET_CORS_ANONYMOUS), media, NULL,
                   false, media_matches(media));
        if (rc)
            return rc;
    }
    bool touch =
        has_token(rel, "apple-touch-icon") || has_token(rel, "apple-touch-icon-precomposed");
    if (has_token(rel, "icon") || touch) {
        /* Touch icons are fetched by iOS home screens, not by a desktop or
         * Android browser loading the page: reported, not picked. */
        rc = add_z(w, href, ASSET_ICON, crossorigin_of(cross, ASSET_CORS_NONE), media, type, false,
                   has_token(rel, "icon"));
        if (rc)
            return rc;
    }
    if (has_token(rel, "manifest")) {
        rc = add_z(w, href, ASSET_MANIFEST, crossorigin_of(cross, ASSET_CORS_NONE), NULL, NULL,
                   false, true);
        if (rc)
            return rc;
    }
    if (has_token(rel, "preconnect") || has_token(rel, "dns-prefetch")) {
        rc = add_z(w, href, ASSET_PRECONNECT, crossorigin_of(cross, ASSET_CORS_NONE), NULL, NULL,
                   false, true);
    }
    return rc;
}

static int on_script(walk_t *w, const GumboNode *n, bool in_head)
{
    const char *src = attr(n, "src");
    const char *type = attr(n, "type");
    if (value_is(type, "speculationrules"))
        w->out->speculation_rules = true; /* the page asks for its own prefetches */
    if (!src)
        return 0;
    bool module = type && value_is(type, "module");
    if (type && !module && !is_js_type(type))
        return 0; /* data blocks, templates, importmaps: not fetched as scripts */
    bool async = attr(n, "async") != NULL, defer = attr(n, "defer") != NULL;
    bool nomodule = attr(n, "nomodule") != NULL;
    const char *cross = attr(n, "crossorigin");
    size_t before = w->out->n;
    int rc;
    w->strong = module || !nomodule;
    if (module)
        rc = add_z(w, src, ASSET_MODULE, crossorigin_of(cross, ASSET_CORS_ANONYMOUS), NULL, NULL,
                   false, true);
    else
        /* nomodule scripts are not fetched by browsers that run modules. */
        rc = add_z(w, src, ASSET_SCRIPT, crossorigin_of(cross, ASSET_CORS_NONE), NULL, NULL,
                   in_head && !async && !defer && !nomodule, !nomodule);
    w->strong = false;
    if (rc == 0 && w->out->n > before) {
        asset_t *a = &w->out->v[w->out->n - 1];
        a->async = async;
        a->defer = defer || module;
        a->nomodule = nomodule && !module;
    }
    return rc;
}

static int add_css_text(walk_t *w, const char *text, size_t len, bool blocking)
{
    if (len == 0)
        return 0;
    if (w->ncss == w->capcss) {
        size_t cap = w->capcss ? w->capcss * 2 : 8;
        css_piece_t *v = realloc(w->css, cap * sizeof(*v));
        if (!v)
            return HERALD_ENOMEM;
        w->css = v;
        w->capcss = cap;
    }
    w->css[w->ncss++] = (css_piece_t){text, len, blocking};
    return 0;
}

static int on_element(walk_t *w, const GumboNode *n, bool in_head)
{
    const GumboElement *el = &n->v.element;
    int rc = 0;
    const char *style = attr(n, "style");
    if (style && (rc = add_css_text(w, style, strlen(style), false)) != 0)
        return rc;
    if (el->tag_namespace != GUMBO_NAMESPACE_HTML) {
        return 0;
    }
    switch (el->tag) {
    case GUMBO_TAG_LINK:
        return on_link(w, n, in_head);
    case GUMBO_TAG_SCRIPT:
        return on_script(w, n, in_head);
    case GUMBO_TAG_STYLE: {
        bool blocking = in_head && media_matches(attr(n, "media"));
        for (unsigned i = 0; i < el->children.length; i++) {
            const GumboNode *t = el->children.data[i];
            if (t->type == GUMBO_NODE_TEXT || t->type == GUMBO_NODE_WHITESPACE ||
                t->type == GUMBO_NODE_CDATA) {
                rc = add_css_text(w, t->v.text.text, strlen(t->v.text.text), blocking);
                if (rc)
                    return rc;
            }
        }
        return 0;
    }
    case GUMBO_TAG_IMG: {
        const GumboNode *parent = n->parent;
        bool chosen = true;
        unsigned group = 0;
        if (is_picture(parent)) {
            chosen = picture_choice(w, parent) == NULL;
            group = w->picture_group;
        }
        /* loading=lazy: fetched only near the viewport, which layout decides */
        bool lazy = value_is(attr(n, "loading"), "lazy");
        return add_srcset(w, attr(n, "src"), attr(n, "srcset"), attr(n, "sizes"),
                          crossorigin_of(attr(n, "crossorigin"), ASSET_CORS_NONE), chosen, NULL,
                          NULL, group, lazy);
    }
    case GUMBO_TAG_SOURCE: {
        const GumboNode *parent = n->parent;
        if (!is_picture(parent))
            return 0; /* <video>/<audio> sources are media, not fetched early */
        const char *srcset = attr(n, "srcset");
        if (!srcset)
            return 0;
        bool chosen = picture_choice(w, parent) == n;
        return add_srcset(w, NULL, srcset, attr(n, "sizes"), ASSET_CORS_NONE, chosen,
                          attr(n, "media"), attr(n, "type"), w->picture_group, true);
    }
    case GUMBO_TAG_BODY:
    case GUMBO_TAG_TABLE:
    case GUMBO_TAG_TD:
    case GUMBO_TAG_TH: {
        /* The legacy background attribute still loads an image (HTML
         * "rendering": it maps to background-image). */
        const char *bg = attr(n, "background");
        return bg ? add_z(w, bg, ASSET_IMAGE, ASSET_CORS_NONE, NULL, NULL, false, true) : 0;
    }
    case GUMBO_TAG_VIDEO: {
        const char *poster = attr(n, "poster");
        return poster ? add_z(w, poster, ASSET_IMAGE, ASSET_CORS_NONE, NULL, NULL, false, true) : 0;
    }
    case GUMBO_TAG_INPUT: {
        const char *src = attr(n, "src");
        if (src && value_is(attr(n, "type"), "image"))
            return add_z(w, src, ASSET_IMAGE, ASSET_CORS_NONE, NULL, NULL, false, true);
        return 0;
    }
    default:
        return 0;
    }
}

typedef struct frame {
    const GumboNode *node;
    bool in_head;
} frame_t;

typedef struct stack {
    frame_t *v;
    size_t n, cap;
} node_stack_t;

static int stack_push(node_stack_t *s, const GumboNode *node, bool in_head)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        frame_t *v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return HERALD_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (frame_t){node, in_head};
    return 0;
}

/* Children are pushed in reverse so nodes pop in document order. */
static int push_children(node_stack_t *s, const GumboVector *kids, bool in_head)
{
    for (unsigned i = kids->length; i-- > 0;) {
        const GumboNode *k = kids->data[i];
        if (k->type == GUMBO_NODE_ELEMENT && stack_push(s, k, in_head))
            return HERALD_ENOMEM;
    }
    return 0;
}

/* <base href>: the first one with an href, wherever it is (HTML "frozen base
 * URL"), resolved against the document URL. Returns a malloc'd URL, or NULL
 * with *rc 0 when there is none or it does not resolve. */
static char *find_base(const GumboNode *root, const char *doc_url, int *rc)
{
    node_stack_t s = {0};
    char *base = NULL;
    *rc = 0;
    if (root->type != GUMBO_NODE_DOCUMENT || push_children(&s, &root->v.document.children, false))
        goto fail;
    while (s.n) {
        const GumboNode *n = s.v[--s.n].node;
        const GumboElement *el = &n->v.element;
        if (el->tag == GUMBO_TAG_TEMPLATE || n->type == GUMBO_NODE_TEMPLATE)
            continue;
        if (el->tag == GUMBO_TAG_BASE && el->tag_namespace == GUMBO_NAMESPACE_HTML) {
            const char *href = attr(n, "href");
            if (href) {
                int r = url_resolve(doc_url, href, strlen(href), &base);
                if (r == HERALD_ENOMEM)
                    goto fail;
                break;
            }
        }
        if (push_children(&s, &el->children, false))
            goto fail;
    }
    free(s.v);
    return base;
fail:
    free(s.v);
    *rc = HERALD_ENOMEM;
    return NULL;
}

static int walk_tree(walk_t *w, const GumboNode *root)
{
    node_stack_t s = {0};
    int rc = 0;
    if (root->type != GUMBO_NODE_DOCUMENT)
        return 0;
    if ((rc = push_children(&s, &root->v.document.children, false)) != 0)
        goto out;
    while (s.n) {
        frame_t f = s.v[--s.n];
        const GumboNode *n = f.node;
        const GumboElement *el = &n->v.element;
        /* Template contents are inert; with scripting on, <noscript> content
         * is text to a browser (gumbo builds it as elements). */
        if (n->type == GUMBO_NODE_TEMPLATE || el->tag == GUMBO_TAG_TEMPLATE ||
            el->tag == GUMBO_TAG_NOSCRIPT)
            continue;
        if ((rc = on_element(w, n, f.in_head)) != 0)
            goto out;
        bool in_head =
            f.in_head || (el->tag == GUMBO_TAG_HEAD && el->tag_namespace == GUMBO_NAMESPACE_HTML);
        if ((rc = push_children(&s, &el->children, in_head)) != 0)
            goto out;
    }
out:
    free(s.v);
    return rc;
}

typedef struct css_ctx {
    asset_list_t *out;
    bool blocking;
} css_ctx_t;

static int on_css_ref(void *arg, const css_ref_t *ref)
{
    css_ctx_t *c = arg;
    asset_kind_t kind = ref->kind == CSS_REF_IMPORT ? ASSET_STYLE
                        : ref->kind == CSS_REF_FONT ? ASSET_FONT
                                                    : ASSET_IMAGE;
    asset_t a = {
        .url = strdup(ref->url),
        .kind = kind,
        .as = asset_kind_as(kind),
        .crossorigin = kind == ASSET_FONT ? ASSET_CORS_ANONYMOUS : ASSET_CORS_NONE,
        .media = dup_or_null(ref->media),
        .blocking = kind == ASSET_STYLE && c->blocking && media_matches(ref->media),
        .pick = true,
        /* @import always loads; url() images and fonts only when a rule uses them */
        .strong = kind == ASSET_STYLE,
    };
    if (!a.url || (ref->media && !a.media)) {
        free(a.url);
        free(a.media);
        return HERALD_ENOMEM;
    }
    return asset_list_add(c->out, &a);
}

int html_add_css(const char *css, size_t len, const char *base_url, asset_list_t *out)
{
    css_ctx_t c = {out, false};
    int rc = css_scan(css, len, base_url, on_css_ref, &c);
    return rc == HERALD_ENOMEM || rc == 0 ? rc : (rc < 0 ? rc : 0);
}

/* gumbo 0.10.1 leaks a few blocks on some malformed input (attribute copies
 * it drops while repairing the tree), and herald parses hostile HTML for as
 * long as it runs.  Every block gumbo allocates during one parse is linked
 * into that parse's list behind a small header; gumbo's own frees unlink it,
 * and whatever is still linked when the parse is done is freed here. */
typedef union gumbo_block {
    struct {
        union gumbo_block *prev, *next;
    } link;
    max_align_t align; /* keeps the payload as aligned as malloc's */
} gumbo_block_t;

typedef struct {
    gumbo_block_t head;
} gumbo_heap_t;

static void *gumbo_heap_alloc(void *data, size_t size)
{
    gumbo_heap_t *h = data;
    if (size > SIZE_MAX - sizeof(gumbo_block_t))
        return NULL;
    gumbo_block_t *b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->link.prev = &h->head;
    b->link.next = h->head.link.next;
    h->head.link.next->link.prev = b;
    h->head.link.next = b;
    return b + 1;
}

static void gumbo_heap_free(void *data, void *p)
{
    (void)data;
    if (!p)
        return;
    gumbo_block_t *b = (gumbo_block_t *)p - 1;
    b->link.prev->link.next = b->link.next;
    b->link.next->link.prev = b->link.prev;
    free(b);
}

static void gumbo_heap_release(gumbo_heap_t *h)
{
    gumbo_block_t *b = h->head.link.next;
    while (b != &h->head) {
        gumbo_block_t *next = b->link.next;
        free(b);
        b = next;
    }
    h->head.link.prev = h->head.link.next = &h->head;
}

int html_scanner_finish(html_scanner_t *s, asset_list_t *out)
{
    if (s->finished)
        return HERALD_EINVAL;
    s->finished = true;
    size_t bom = 0;
    charset_sniff(s->buf ? s->buf : "", s->len, s->charset, s->used_charset, &bom);
    char *utf8 = NULL;
    size_t ulen = 0;
    int rc = 0;
    if (strcmp(s->used_charset, "UTF-8") == 0 && s->buf) {
        /* Already what gumbo reads: parse the buffer itself (the pre-pass
         * may write into it; it is ours and used once). */
        utf8 = s->buf;
        ulen = s->len;
        s->buf = NULL;
        memmove(utf8, utf8 + bom, ulen - bom);
        ulen -= bom;
    } else {
        rc = charset_to_utf8(s->used_charset, s->buf ? s->buf + bom : "", s->len - bom, &utf8,
                             &ulen);
        if (rc == HERALD_EUNSUPPORTED) {
            strcpy(s->used_charset, "windows-1252");
            rc = charset_to_utf8(s->used_charset, s->buf ? s->buf + bom : "", s->len - bom, &utf8,
                                 &ulen);
        }
        if (rc)
            return rc;
        /* The raw bytes are not needed any more; free them before gumbo's peak. */
        free(s->buf);
        s->buf = NULL;
    }
    s->len = s->cap = 0;

    html_defuse(utf8, ulen, HTML_SCANNER_MAX_DEPTH, HTML_SCANNER_MAX_FORMATTING);
    gumbo_heap_t heap = {.head = {.link = {&heap.head, &heap.head}}};
    GumboOptions opt = kGumboDefaultOptions;
    opt.max_errors = GUMBO_MAX_ERRORS;
    opt.allocator = gumbo_heap_alloc;
    opt.deallocator = gumbo_heap_free;
    opt.userdata = &heap;
    GumboOutput *g = gumbo_parse_with_options(&opt, utf8, ulen);
    if (!g) {
        gumbo_heap_release(&heap);
        free(utf8);
        return HERALD_ENOMEM;
    }
    char *base = find_base(g->document, s->base, &rc);
    bool utf = strcmp(s->used_charset, "UTF-8") == 0 || strncmp(s->used_charset, "UTF-16", 6) == 0;
    walk_t w = {.base = base ? base : s->base, .charset = utf ? NULL : s->used_charset, .out = out};
    if (rc == 0)
        rc = walk_tree(&w, g->document);
    for (size_t i = 0; rc == 0 && i < w.ncss; i++) {
        css_ctx_t c = {out, w.css[i].blocking};
        rc = css_scan(w.css[i].text, w.css[i].len, w.base, on_css_ref, &c);
    }
    free(w.css);
    free(base);
    gumbo_destroy_output(&opt, g);
    gumbo_heap_release(&heap);
    free(utf8);
    return rc;
}
