/*
 * Encoding sniffing and transcoding to UTF-8. windows-1252 (the default of
 * the web and the meaning of "latin1") is decoded by a table here rather than
 * by iconv, because glibc's CP1252 rejects the five bytes WHATWG maps to C1
 * controls and the table is faster; everything else goes through iconv.
 */
#include "charset.h"

#include "herald/error.h"

#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *label;
    const char *name;
} labels[] = {
    {"utf-8", "UTF-8"},
    {"utf8", "UTF-8"},
    {"unicode-1-1-utf-8", "UTF-8"},
    {"x-unicode20utf8", "UTF-8"},
    {"windows-1252", "windows-1252"},
    {"cp1252", "windows-1252"},
    {"x-cp1252", "windows-1252"},
    {"iso-8859-1", "windows-1252"},
    {"iso8859-1", "windows-1252"},
    {"iso88591", "windows-1252"},
    {"iso_8859-1", "windows-1252"},
    {"iso_8859-1:1987", "windows-1252"},
    {"latin1", "windows-1252"},
    {"l1", "windows-1252"},
    {"ascii", "windows-1252"},
    {"us-ascii", "windows-1252"},
    {"ansi_x3.4-1968", "windows-1252"},
    {"cp819", "windows-1252"},
    {"ibm819", "windows-1252"},
    {"csisolatin1", "windows-1252"},
    {"iso-ir-100", "windows-1252"},
    {"utf-16", "UTF-16LE"},
    {"utf-16le", "UTF-16LE"},
    {"unicode", "UTF-16LE"},
    {"ucs-2", "UTF-16LE"},
    {"csunicode", "UTF-16LE"},
    {"iso-10646-ucs-2", "UTF-16LE"},
    {"unicodefeff", "UTF-16LE"},
    {"utf-16be", "UTF-16BE"},
    {"unicodefffe", "UTF-16BE"},
    {"gb2312", "GBK"},
    {"gbk", "GBK"},
    {"x-gbk", "GBK"},
    {"iso-8859-9", "windows-1254"},
    {"latin5", "windows-1254"},
    {"iso-8859-11", "windows-874"},
    {"tis-620", "windows-874"},
    {"x-sjis", "SHIFT_JIS"},
    {"sjis", "SHIFT_JIS"},
    {"ms_kanji", "SHIFT_JIS"},
};

/* windows-1252 0x80..0x9F; the undefined bytes map to the C1 control of the
 * same value, as WHATWG's index does. */
static const unsigned short cp1252_high[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

static bool is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

int charset_canonical(const char *label, size_t label_len, char name[CHARSET_NAME_MAX])
{
    while (label_len && is_space((unsigned char)*label))
        label++, label_len--;
    while (label_len && is_space((unsigned char)label[label_len - 1]))
        label_len--;
    if (label_len == 0 || label_len >= CHARSET_NAME_MAX)
        return HERALD_EUNSUPPORTED;
    char low[CHARSET_NAME_MAX];
    for (size_t i = 0; i < label_len; i++) {
        unsigned char c = (unsigned char)label[i];
        /* iconv takes suffixes such as //TRANSLIT from its argument: a label
         * is a plain token, anything else is not an encoding. */
        if (!(isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':'))
            return HERALD_EUNSUPPORTED;
        low[i] = (char)tolower(c);
    }
    low[label_len] = 0;
    for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
        if (strcmp(low, labels[i].label) == 0) {
            strcpy(name, labels[i].name);
            return 0;
        }
    }
    for (size_t i = 0; i <= label_len; i++)
        name[i] = (char)toupper((unsigned char)low[i]);
    iconv_t cd = iconv_open("UTF-8", name);
    if (cd == (iconv_t)-1)
        return HERALD_EUNSUPPORTED;
    iconv_close(cd);
    return 0;
}

static size_t ci_prefix(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)p[i]) != word[i])
            return 0;
    return n;
}

/* WHATWG "extracting a character encoding from a meta element": the value
 * after "charset", optional spaces, '=', optionally quoted. */
static bool charset_from_content(const char *v, size_t n, const char **lab, size_t *lab_len)
{
    const char *end = v + n;
    for (const char *p = v; p < end; p++) {
        if (!ci_prefix(p, end, "charset"))
            continue;
        const char *q = p + 7;
        while (q < end && is_space((unsigned char)*q))
            q++;
        if (q == end || *q != '=') {
            p = q - 1;
            continue;
        }
        q++;
        while (q < end && is_space((unsigned char)*q))
            q++;
        if (q == end)
            return false;
        if (*q == '"' || *q == '\'') {
            char quote = *q++;
            const char *e = memchr(q, quote, (size_t)(end - q));
            if (!e)
                return false;
            *lab = q;
            *lab_len = (size_t)(e - q);
            return true;
        }
        const char *e = q;
        while (e < end && !is_space((unsigned char)*e) && *e != ';')
            e++;
        *lab = q;
        *lab_len = (size_t)(e - q);
        return true;
    }
    return false;
}

/* One attribute of a tag in the prescan: returns false at the tag's end. */
static bool prescan_attr(const char **pp, const char *end, const char **name, size_t *name_len,
                         const char **val, size_t *val_len)
{
    const char *p = *pp;
    while (p < end && (is_space((unsigned char)*p) || *p == '/'))
        p++;
    if (p >= end || *p == '>')
        return false;
    *name = p;
    while (p < end && !is_space((unsigned char)*p) && *p != '=' && *p != '>' &&
           (p == *name || *p != '/'))
        p++;
    *name_len = (size_t)(p - *name);
    *val = p;
    *val_len = 0;
    while (p < end && is_space((unsigned char)*p))
        p++;
    if (p < end && *p == '=') {
        p++;
        while (p < end && is_space((unsigned char)*p))
            p++;
        if (p < end && (*p == '"' || *p == '\'')) {
            char quote = *p++;
            *val = p;
            while (p < end && *p != quote)
                p++;
            *val_len = (size_t)(p - *val);
            if (p < end)
                p++;
        } else {
            *val = p;
            while (p < end && !is_space((unsigned char)*p) && *p != '>')
                p++;
            *val_len = (size_t)(p - *val);
        }
    }
    *pp = p;
    return true;
}

static bool name_is(const char *n, size_t len, const char *word)
{
    return len == strlen(word) && ci_prefix(n, n + len, word) == len;
}

/* The WHATWG prescan, simplified where it cannot change the answer: skip
 * comments and other markup, read <meta> attributes. */
static bool prescan(const char *doc, size_t len, char name[CHARSET_NAME_MAX])
{
    const char *p = doc, *end = doc + (len < 1024 ? len : 1024);
    while (p < end) {
        if (*p != '<') {
            p++;
            continue;
        }
        if (ci_prefix(p, end, "<!--")) {
            const char *q = p + 4;
            while (q + 3 <= end && memcmp(q, "-->", 3) != 0)
                q++;
            p = q + 3;
            continue;
        }
        size_t m = ci_prefix(p, end, "<meta");
        if (m && p + m < end && (is_space((unsigned char)p[m]) || p[m] == '/')) {
            const char *q = p + m, *an, *av;
            size_t anl, avl;
            const char *lab = NULL;
            size_t lab_len = 0;
            bool http_equiv_ct = false, from_content = false;
            while (prescan_attr(&q, end, &an, &anl, &av, &avl)) {
                if (name_is(an, anl, "http-equiv")) {
                    http_equiv_ct = name_is(av, avl, "content-type");
                } else if (name_is(an, anl, "charset") && !lab) {
                    lab = av;
                    lab_len = avl;
                } else if (name_is(an, anl, "content") && !lab) {
                    if (charset_from_content(av, avl, &lab, &lab_len))
                        from_content = true;
                }
            }
            p = q;
            if (!lab || (from_content && !http_equiv_ct))
                continue;
            if (charset_canonical(lab, lab_len, name) != 0)
                continue;
            if (strncmp(name, "UTF-16", 6) == 0)
                strcpy(name, "UTF-8");
            return true;
        }
        if (p + 1 < end &&
            (p[1] == '!' || p[1] == '/' || p[1] == '?' || isalpha((unsigned char)p[1]))) {
            const char *q = memchr(p, '>', (size_t)(end - p));
            p = q ? q + 1 : end;
            continue;
        }
        p++;
    }
    return false;
}

static bool valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
        } else {
            return false;
        }
        if (i + k >= n) /* a sequence cut by the buffer's end is still UTF-8 */
            return true;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

charset_source_t charset_sniff(const char *doc, size_t len, const char *transport,
                               char name[CHARSET_NAME_MAX], size_t *bom_len)
{
    const unsigned char *u = (const unsigned char *)doc;
    *bom_len = 0;
    if (len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) {
        strcpy(name, "UTF-8");
        *bom_len = 3;
        return CHARSET_FROM_BOM;
    }
    if (len >= 2 && ((u[0] == 0xFF && u[1] == 0xFE) || (u[0] == 0xFE && u[1] == 0xFF))) {
        strcpy(name, u[0] == 0xFF ? "UTF-16LE" : "UTF-16BE");
        *bom_len = 2;
        return CHARSET_FROM_BOM;
    }
    if (transport && charset_canonical(transport, strlen(transport), name) == 0)
        return CHARSET_FROM_TRANSPORT;
    if (prescan(doc, len, name))
        return CHARSET_FROM_META;
    /* Browsers guess here (Chromium runs a detector); valid UTF-8 with any
     * non-ASCII byte is overwhelmingly UTF-8, anything else the legacy
     * default. Only the bytes we have are looked at. */
    strcpy(name, valid_utf8(u, len < 65536 ? len : 65536) ? "UTF-8" : "windows-1252");
    return CHARSET_FROM_DEFAULT;
}

static int from_cp1252(const unsigned char *in, size_t len, char **out, size_t *out_len)
{
    char *o = malloc(len * 3 + 1), *w = o;
    if (!o)
        return HERALD_ENOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned c = in[i];
        if (c >= 0x80 && c < 0xA0)
            c = cp1252_high[c - 0x80];
        if (c < 0x80) {
            *w++ = (char)c;
        } else if (c < 0x800) {
            *w++ = (char)(0xC0 | (c >> 6));
            *w++ = (char)(0x80 | (c & 0x3F));
        } else {
            *w++ = (char)(0xE0 | (c >> 12));
            *w++ = (char)(0x80 | ((c >> 6) & 0x3F));
            *w++ = (char)(0x80 | (c & 0x3F));
        }
    }
    *w = 0;
    *out = o;
    *out_len = (size_t)(w - o);
    return 0;
}

int charset_to_utf8(const char *name, const char *in, size_t len, char **out, size_t *out_len)
{
    if (strcmp(name, "UTF-8") == 0) {
        /* gumbo replaces invalid UTF-8 itself; a copy keeps ownership simple. */
        char *o = malloc(len + 1);
        if (!o)
            return HERALD_ENOMEM;
        memcpy(o, in, len);
        o[len] = 0;
        *out = o;
        *out_len = len;
        return 0;
    }
    if (strcmp(name, "windows-1252") == 0)
        return from_cp1252((const unsigned char *)in, len, out, out_len);

    iconv_t cd = iconv_open("UTF-8", name);
    if (cd == (iconv_t)-1)
        return HERALD_EUNSUPPORTED;
    size_t unit = strncmp(name, "UTF-16", 6) == 0 ? 2 : 1;
    size_t cap = len * 4 + 16;
    char *o = malloc(cap);
    if (!o) {
        iconv_close(cd);
        return HERALD_ENOMEM;
    }
    char *ip = (char *)in, *op = o;
    size_t il = len, ol = cap - 1;
    while (il > 0) {
        if (iconv(cd, &ip, &il, &op, &ol) != (size_t)-1)
            break;
        if (errno == E2BIG) {
            size_t used = (size_t)(op - o);
            cap *= 2;
            char *n = realloc(o, cap);
            if (!n) {
                free(o);
                iconv_close(cd);
                return HERALD_ENOMEM;
            }
            o = n;
            op = o + used;
            ol = cap - used - 1;
            continue;
        }
        /* EILSEQ or a truncated tail (EINVAL): one replacement character per
         * bad unit, then carry on. */
        if (ol < 3) {
            size_t used = (size_t)(op - o);
            cap *= 2;
            char *n = realloc(o, cap);
            if (!n) {
                free(o);
                iconv_close(cd);
                return HERALD_ENOMEM;
            }
            o = n;
            op = o + used;
            ol = cap - used - 1;
        }
        memcpy(op, "\xEF\xBF\xBD", 3);
        op += 3;
        ol -= 3;
        size_t skip = il < unit ? il : unit;
        ip += skip;
        il -= skip;
        iconv(cd, NULL, NULL, NULL, NULL);
    }
    iconv_close(cd);
    *op = 0;
    *out = o;
    *out_len = (size_t)(op - o);
    return 0;
}

static void put_pct(char **w, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    *(*w)++ = '%';
    *(*w)++ = hex[c >> 4];
    *(*w)++ = hex[c & 15];
}

int charset_encode_query(const char *name, const char *in, size_t len, char **out)
{
    bool utf = strcmp(name, "UTF-8") == 0 || strncmp(name, "UTF-16", 6) == 0;
    iconv_t cd = (iconv_t)-1;
    if (!utf && (cd = iconv_open(name, "UTF-8")) == (iconv_t)-1)
        return HERALD_EUNSUPPORTED;
    /* Worst case per input byte: a 4-byte character as "&#1114111;" percent-encoded. */
    char *o = malloc(len * 30 + 1), *w = o;
    if (!o) {
        if (cd != (iconv_t)-1)
            iconv_close(cd);
        return HERALD_ENOMEM;
    }
    const unsigned char *p = (const unsigned char *)in, *end = p + len;
    while (p < end) {
        if (*p < 0x80) {
            *w++ = (char)*p++;
            continue;
        }
        size_t n = *p >= 0xF0 ? 4 : *p >= 0xE0 ? 3 : *p >= 0xC0 ? 2 : 1;
        if (n > (size_t)(end - p))
            n = (size_t)(end - p);
        if (utf) {
            for (size_t i = 0; i < n; i++)
                put_pct(&w, p[i]);
            p += n;
            continue;
        }
        char buf[16], *ip = (char *)p, *op = buf;
        size_t il = n, ol = sizeof(buf);
        if (iconv(cd, &ip, &il, &op, &ol) != (size_t)-1 && il == 0) {
            for (char *q = buf; q < op; q++)
                put_pct(&w, (unsigned char)*q);
        } else {
            iconv(cd, NULL, NULL, NULL, NULL);
            /* Not representable: the HTML form-encoding fallback "&#N;". */
            unsigned long cp = n == 1 ? 0xFFFD : (unsigned long)(p[0] & (0x7F >> n));
            for (size_t i = 1; i < n; i++)
                cp = (cp << 6) | (p[i] & 0x3F);
            char ent[16];
            int k = snprintf(ent, sizeof(ent), "&#%lu;", cp);
            for (int i = 0; i < k; i++) {
                if (ent[i] >= '0' && ent[i] <= '9')
                    *w++ = ent[i];
                else
                    put_pct(&w, (unsigned char)ent[i]);
            }
        }
        p += n;
    }
    *w = 0;
    if (cd != (iconv_t)-1)
        iconv_close(cd);
    *out = o;
    return 0;
}
