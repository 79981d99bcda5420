/*
 * CSS reference scan: a CSS Syntax Level 3 tokenizer (§4) feeding a small
 * state machine that knows just enough of the grammar (§5: blocks, at-rule
 * preludes, declarations) to tell @import, @font-face src and other url()s
 * apart. No tokens or trees are allocated: tokens are spans of the input and
 * values are decoded only when a URL is emitted, which keeps the scan fast.
 */
#include "css.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "strbuf.h"
#include "url.h"

/* ---- tokenizer ---------------------------------------------------------- */

typedef enum tok {
    T_EOF,
    T_WS,
    T_IDENT,
    T_FUNCTION, /* value: the name */
    T_AT,       /* value: the name */
    T_HASH,
    T_STRING, /* value: the contents */
    T_BAD_STRING,
    T_URL, /* value: the contents */
    T_BAD_URL,
    T_DELIM,
    T_NUMBER, /* number, percentage and dimension alike */
    T_CDO,
    T_CDC,
    T_COLON,
    T_SEMI,
    T_COMMA,
    T_LBRACK,
    T_RBRACK,
    T_LPAREN,
    T_RPAREN,
    T_LBRACE,
    T_RBRACE,
} tok_t;

typedef struct token {
    tok_t type;
    bool esc; /* the value holds escapes (or NULs) and must be decoded */
    size_t vs, ve;
} token_t;

typedef struct lexer {
    const unsigned char *s;
    size_t n, pos;
} lexer_t;

enum { C_NAME_START = 1, C_NAME = 2, C_WS = 4, C_NL = 8, C_HEX = 16, C_DIGIT = 32 };

static unsigned char cls[256];

/* Built on first use; the writes are idempotent so a race only repeats them. */
static void cls_init(void)
{
    if (cls['a'])
        return;
    for (int c = 0; c < 256; c++) {
        unsigned char v = 0;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        /* NUL becomes U+FFFD, a non-ASCII name code point (§3.3). */
        if (alpha || c == '_' || c >= 0x80 || c == 0)
            v |= C_NAME_START | C_NAME;
        if ((c >= '0' && c <= '9') || c == '-')
            v |= C_NAME;
        if (c >= '0' && c <= '9')
            v |= C_DIGIT | C_HEX;
        if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            v |= C_HEX;
        if (c == '\n' || c == '\r' || c == '\f')
            v |= C_NL | C_WS;
        if (c == ' ' || c == '\t')
            v |= C_WS;
        cls[c] = v;
    }
}

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

static bool valid_escape(const lexer_t *lx, size_t p)
{
    return p + 1 < lx->n && lx->s[p] == '\\' && !IS(lx->s[p + 1], C_NL);
}

static bool starts_ident(const lexer_t *lx, size_t p)
{
    if (p >= lx->n)
        return false;
    unsigned char c = lx->s[p];
    if (c == '-')
        return p + 1 < lx->n &&
               (IS(lx->s[p + 1], C_NAME_START) || lx->s[p + 1] == '-' || valid_escape(lx, p + 1));
    if (IS(c, C_NAME_START))
        return true;
    return valid_escape(lx, p);
}

static bool starts_number(const lexer_t *lx, size_t p)
{
    const unsigned char *s = lx->s;
    size_t n = lx->n;
    if (p < n && (s[p] == '+' || s[p] == '-'))
        p++;
    if (p < n && IS(s[p], C_DIGIT))
        return true;
    return p + 1 < n && s[p] == '.' && IS(s[p + 1], C_DIGIT);
}

/* p is just past the '\'; returns the position after the escape (§4.3.7). */
static size_t skip_escape(const lexer_t *lx, size_t p)
{
    if (p >= lx->n)
        return p;
    if (!IS(lx->s[p], C_HEX))
        return p + 1;
    size_t end = p + 6 < lx->n ? p + 6 : lx->n;
    while (p < end && IS(lx->s[p], C_HEX))
        p++;
    if (p < lx->n && IS(lx->s[p], C_WS)) {
        if (lx->s[p] == '\r' && p + 1 < lx->n && lx->s[p + 1] == '\n')
            p++;
        p++;
    }
    return p;
}

static size_t skip_name(const lexer_t *lx, size_t p, bool *esc)
{
    for (;;) {
        while (p < lx->n && IS(lx->s[p], C_NAME)) {
            if (lx->s[p] == 0)
                *esc = true;
            p++;
        }
        if (!valid_escape(lx, p))
            return p;
        *esc = true;
        p = skip_escape(lx, p + 1);
    }
}

static size_t skip_ws(const lexer_t *lx, size_t p)
{
    while (p < lx->n && IS(lx->s[p], C_WS))
        p++;
    return p;
}

static size_t skip_number(const lexer_t *lx, size_t p)
{
    const unsigned char *s = lx->s;
    size_t n = lx->n;
    if (s[p] == '+' || s[p] == '-')
        p++;
    while (p < n && IS(s[p], C_DIGIT))
        p++;
    if (p + 1 < n && s[p] == '.' && IS(s[p + 1], C_DIGIT)) {
        p += 2;
        while (p < n && IS(s[p], C_DIGIT))
            p++;
    }
    if (p + 1 < n && (s[p] | 0x20) == 'e') {
        size_t q = p + 1;
        if (s[q] == '+' || s[q] == '-')
            q++;
        if (q < n && IS(s[q], C_DIGIT)) {
            p = q;
            while (p < n && IS(s[p], C_DIGIT))
                p++;
        }
    }
    return p;
}

static void lex_string(lexer_t *lx, unsigned char q, token_t *t)
{
    const unsigned char *s = lx->s;
    size_t n = lx->n, p = lx->pos;
    t->vs = p;
    t->type = T_STRING;
    for (;;) {
        while (p < n && s[p] != q && s[p] != '\\' && !IS(s[p], C_NL)) {
            if (s[p] == 0)
                t->esc = true;
            p++;
        }
        if (p >= n) {
            t->ve = p; /* EOF: the string ends here (a parse error, not bad) */
            break;
        }
        if (s[p] == q) {
            t->ve = p++;
            break;
        }
        if (s[p] != '\\') { /* an unescaped newline: left for the next token */
            t->type = T_BAD_STRING;
            t->ve = p;
            break;
        }
        t->esc = true;
        if (p + 1 >= n) {
            p++;
        } else if (IS(s[p + 1], C_NL)) {
            p += (s[p + 1] == '\r' && p + 2 < n && s[p + 2] == '\n') ? 3 : 2;
        } else {
            p = skip_escape(lx, p + 1);
        }
    }
    lx->pos = p;
}

/* After "url(" and its whitespace, unquoted (§4.3.6). */
static void lex_url(lexer_t *lx, token_t *t)
{
    const unsigned char *s = lx->s;
    size_t n = lx->n, p = lx->pos;
    t->type = T_URL;
    t->vs = p;
    for (;;) {
        if (p >= n) {
            t->ve = p;
            lx->pos = p;
            return;
        }
        unsigned char c = s[p];
        if (c == ')') {
            t->ve = p;
            lx->pos = p + 1;
            return;
        }
        if (IS(c, C_WS)) {
            t->ve = p;
            p = skip_ws(lx, p);
            if (p >= n || s[p] == ')') {
                lx->pos = p < n ? p + 1 : p;
                return;
            }
            break;
        }
        if (c == '"' || c == '\'' || c == '(' || c <= 0x08 || c == 0x0b ||
            (c >= 0x0e && c <= 0x1f) || c == 0x7f) {
            if (c == 0) {
                t->esc = true;
                p++;
                continue;
            }
            break;
        }
        if (c == '\\') {
            if (!valid_escape(lx, p))
                break;
            t->esc = true;
            p = skip_escape(lx, p + 1);
            continue;
        }
        p++;
    }
    /* Remnants of a bad url: up to ')' or EOF, skipping escaped ')'. */
    t->type = T_BAD_URL;
    while (p < n) {
        if (s[p] == ')') {
            p++;
            break;
        }
        if (valid_escape(lx, p))
            p = skip_escape(lx, p + 1);
        else
            p++;
    }
    lx->pos = p;
}

static bool name_is(const lexer_t *lx, const token_t *t, const char *want);

/* An ident, function, url or bad-url token starting at lx->pos (§4.3.4). */
static void lex_ident_like(lexer_t *lx, token_t *t)
{
    t->vs = lx->pos;
    size_t p = skip_name(lx, lx->pos, &t->esc);
    t->ve = p;
    if (p < lx->n && lx->s[p] == '(') {
        p++;
        if (name_is(lx, t, "url")) {
            size_t q = skip_ws(lx, p);
            if (q >= lx->n || (lx->s[q] != '"' && lx->s[q] != '\'')) {
                lx->pos = q;
                t->esc = false;
                lex_url(lx, t);
                return;
            }
        }
        t->type = T_FUNCTION;
    } else {
        t->type = T_IDENT;
    }
    lx->pos = p;
}

static void lex_next(lexer_t *lx, token_t *t)
{
    const unsigned char *s = lx->s;
    size_t n = lx->n;
    t->esc = false;
again:
    if (lx->pos >= n) {
        t->type = T_EOF;
        return;
    }
    size_t p = lx->pos;
    unsigned char c = s[p];
    if (IS(c, C_NAME_START)) {
        lex_ident_like(lx, t);
        return;
    }
    if (IS(c, C_WS)) {
        lx->pos = skip_ws(lx, p + 1);
        t->type = T_WS;
        return;
    }
    if (IS(c, C_DIGIT)) {
        lx->pos = skip_number(lx, p);
        goto numeric;
    }
    lx->pos = p + 1;
    switch (c) {
    case '/':
        if (p + 1 < n && s[p + 1] == '*') {
            const unsigned char *q = s + p + 2;
            for (;;) {
                q = memchr(q, '*', (size_t)(s + n - q));
                if (q == NULL || q + 1 >= s + n) {
                    lx->pos = n;
                    break;
                }
                if (q[1] == '/') {
                    lx->pos = (size_t)(q + 2 - s);
                    break;
                }
                q++;
            }
            goto again;
        }
        t->type = T_DELIM;
        return;
    case '"':
    case '\'':
        lex_string(lx, c, t);
        return;
    case '#':
        if (p + 1 < n && (IS(s[p + 1], C_NAME) || valid_escape(lx, p + 1))) {
            lx->pos = skip_name(lx, p + 1, &t->esc);
            t->type = T_HASH;
            return;
        }
        t->type = T_DELIM;
        return;
    case '(':
        t->type = T_LPAREN;
        return;
    case ')':
        t->type = T_RPAREN;
        return;
    case '[':
        t->type = T_LBRACK;
        return;
    case ']':
        t->type = T_RBRACK;
        return;
    case '{':
        t->type = T_LBRACE;
        return;
    case '}':
        t->type = T_RBRACE;
        return;
    case ',':
        t->type = T_COMMA;
        return;
    case ':':
        t->type = T_COLON;
        return;
    case ';':
        t->type = T_SEMI;
        return;
    case '+':
    case '.':
        if (starts_number(lx, p)) {
            lx->pos = skip_number(lx, p);
            goto numeric;
        }
        t->type = T_DELIM;
        return;
    case '-':
        if (starts_number(lx, p)) {
            lx->pos = skip_number(lx, p);
            goto numeric;
        }
        if (p + 2 < n && s[p + 1] == '-' && s[p + 2] == '>') {
            lx->pos = p + 3;
            t->type = T_CDC;
            return;
        }
        if (starts_ident(lx, p)) {
            lx->pos = p;
            lex_ident_like(lx, t);
            return;
        }
        t->type = T_DELIM;
        return;
    case '<':
        if (p + 3 < n && s[p + 1] == '!' && s[p + 2] == '-' && s[p + 3] == '-') {
            lx->pos = p + 4;
            t->type = T_CDO;
            return;
        }
        t->type = T_DELIM;
        return;
    case '@':
        if (starts_ident(lx, p + 1)) {
            t->vs = p + 1;
            lx->pos = t->ve = skip_name(lx, p + 1, &t->esc);
            t->type = T_AT;
            return;
        }
        t->type = T_DELIM;
        return;
    case '\\':
        if (valid_escape(lx, p)) {
            lx->pos = p;
            lex_ident_like(lx, t);
            return;
        }
        t->type = T_DELIM;
        return;
    default:
        t->type = T_DELIM;
        return;
    }
numeric:
    /* A dimension's unit is part of the token: "1url(x)" holds no url. */
    if (starts_ident(lx, lx->pos)) {
        bool esc = false;
        lx->pos = skip_name(lx, lx->pos, &esc);
    } else if (lx->pos < n && s[lx->pos] == '%') {
        lx->pos++;
    }
    t->type = T_NUMBER;
}

/* ---- value decoding ------------------------------------------------------ */

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        cp = 0xFFFD;
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hexval(unsigned char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/*
 * Decode s[vs..ve) (escapes, escaped newlines, NULs) into o, which has room
 * for 3 bytes per input byte (an escape of k >= 2 bytes yields <= 4 bytes,
 * a NUL 3). Returns the decoded length.
 */
static size_t decode_value(const lexer_t *lx, size_t vs, size_t ve, char *o)
{
    const unsigned char *s = lx->s;
    size_t n = 0, p = vs;
    while (p < ve) {
        unsigned char c = s[p];
        if (c == 0) {
            n += put_utf8(o + n, 0xFFFD);
            p++;
            continue;
        }
        if (c != '\\') {
            o[n++] = (char)c;
            p++;
            continue;
        }
        p++;
        if (p >= ve)
            break;            /* '\' at EOF: nothing */
        if (IS(s[p], C_NL)) { /* escaped newline in a string: removed */
            p += (s[p] == '\r' && p + 1 < ve && s[p + 1] == '\n') ? 2 : 1;
            continue;
        }
        if (!IS(s[p], C_HEX)) {
            o[n++] = (char)s[p++];
            continue;
        }
        uint32_t cp = 0;
        size_t end = p + 6 < ve ? p + 6 : ve;
        while (p < end && IS(s[p], C_HEX))
            cp = cp * 16 + (uint32_t)hexval(s[p++]);
        if (p < ve && IS(s[p], C_WS))
            p += (s[p] == '\r' && p + 1 < ve && s[p + 1] == '\n') ? 2 : 1;
        n += put_utf8(o + n, cp);
    }
    return n;
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

/* ASCII case-insensitive name comparison, escapes decoded (`\75 rl` is url). */
static bool name_is(const lexer_t *lx, const token_t *t, const char *want)
{
    size_t len = t->ve - t->vs;
    if (!t->esc)
        return ieq((const char *)lx->s + t->vs, len, want);
    char tmp[96];
    if (len > 32)
        return false; /* longer than any name we look for, even escaped */
    size_t n = decode_value(lx, t->vs, t->ve, tmp);
    return ieq(tmp, n, want);
}

/* ---- scanner ------------------------------------------------------------- */

/* What the innermost rule or declaration list is in the middle of. */
typedef enum stmt {
    S_START,        /* before a statement's first token */
    S_IMPORT_URL,   /* after @import, waiting for its string or url */
    S_IMPORT_MEDIA, /* after @import's url, up to ';' */
    S_NAMESPACE,    /* @namespace prelude: its url is not fetched */
    S_FONT_FACE,    /* @font-face prelude */
    S_OTHER,        /* any other rule, prelude or declaration */
    S_DECL_NAME,    /* an ident at the start of a font-face declaration */
    S_DECL_SRC,     /* the value of a font-face src descriptor */
} stmt_t;

typedef enum frame_type {
    F_BLOCK,
    F_FONT_BLOCK,
    F_PAREN,
    F_BRACK,
    F_FN_URL,
    F_FN_IMAGE_SET,
    F_FN_FORMAT,
    F_FN_OTHER,
} frame_type_t;

typedef struct frame {
    uint8_t type;
    uint8_t saved_stmt; /* blocks: the enclosing statement's state */
    uint8_t saved_blk;  /* blocks: the enclosing block's depth */
    uint8_t used;       /* functions: a string argument was taken */
} frame_t;

#define CSS_MAX_DEPTH 64

typedef struct scan {
    lexer_t lx;
    const char *base;
    css_ref_cb cb;
    void *arg;
    frame_t st[CSS_MAX_DEPTH];
    unsigned depth, overflow; /* deeper nesting is counted, not tracked */
    unsigned blk;             /* depth of the innermost block's contents */
    stmt_t stmt;
    bool decl_is_src;
    bool import_allowed;
    /* A font src entry or @import waits for its format() or media list. */
    css_ref_kind_t pend_kind;
    bool pending;
    size_t media_start;
    strbuf_t pend_url, pend_fmt, tmp;
} scan_t;

static int emit(scan_t *sc, const char *url, size_t len, css_ref_kind_t kind, const char *media,
                const char *format)
{
    char *abs = NULL;
    int rc = url_resolve(sc->base, url, len, &abs);
    if (rc == HERALD_ENOMEM)
        return rc;
    if (rc < 0)
        return 0; /* data:, empty, fragment-only: nothing to fetch */
    css_ref_t ref = {.url = abs, .kind = kind, .media = media, .format = format};
    rc = sc->cb(sc->arg, &ref);
    free(abs);
    return rc;
}

/* The token's value: a span of the input, or decoded into sc->tmp. */
static int value(scan_t *sc, const token_t *t, const char **v, size_t *len)
{
    if (!t->esc) {
        *v = (const char *)sc->lx.s + t->vs;
        *len = t->ve - t->vs;
        return 0;
    }
    sc->tmp.n = 0;
    if ((t->ve - t->vs) > (SIZE_MAX - 1) / 3 || strbuf_reserve(&sc->tmp, (t->ve - t->vs) * 3 + 1))
        return HERALD_ENOMEM;
    *len = decode_value(&sc->lx, t->vs, t->ve, sc->tmp.p);
    *v = sc->tmp.p;
    return 0;
}

static int flush(scan_t *sc, size_t media_end)
{
    if (!sc->pending)
        return 0;
    sc->pending = false;
    const char *media = NULL, *format = NULL;
    if (sc->pend_kind == CSS_REF_IMPORT) {
        const unsigned char *s = sc->lx.s;
        size_t a = sc->media_start, e = media_end;
        while (a < e && IS(s[a], C_WS))
            a++;
        while (e > a && IS(s[e - 1], C_WS))
            e--;
        if (e > a) {
            sc->pend_fmt.n = 0;
            if (strbuf_reserve(&sc->pend_fmt, e - a + 1) < 0)
                return HERALD_ENOMEM;
            memcpy(sc->pend_fmt.p, s + a, e - a);
            sc->pend_fmt.p[e - a] = '\0';
            media = sc->pend_fmt.p;
        }
    } else if (sc->pend_fmt.n > 0) {
        format = sc->pend_fmt.p;
    }
    return emit(sc, sc->pend_url.p, sc->pend_url.n, sc->pend_kind, media, format);
}

static int set_pending(scan_t *sc, const char *v, size_t len, css_ref_kind_t kind)
{
    int rc = flush(sc, sc->lx.pos);
    if (rc != 0)
        return rc;
    sc->pend_url.n = 0;
    sc->pend_fmt.n = 0;
    if (strbuf_reserve(&sc->pend_url, len + 1) < 0)
        return HERALD_ENOMEM;
    memcpy(sc->pend_url.p, v, len);
    sc->pend_url.n = len;
    sc->pend_kind = kind;
    sc->pending = true;
    return 0;
}

static frame_t *top(scan_t *sc)
{
    return sc->depth > 0 && sc->overflow == 0 ? &sc->st[sc->depth - 1] : NULL;
}

static void push(scan_t *sc, frame_type_t type)
{
    if (sc->depth == CSS_MAX_DEPTH || sc->overflow > 0) {
        sc->overflow++;
        return;
    }
    frame_t *f = &sc->st[sc->depth++];
    f->type = (uint8_t)type;
    f->used = 0;
    if (type == F_BLOCK || type == F_FONT_BLOCK) {
        f->saved_stmt = (uint8_t)sc->stmt;
        f->saved_blk = (uint8_t)sc->blk;
        sc->blk = sc->depth;
        sc->stmt = S_START;
    }
}

/* A url found in a url token, url("...") or image-set("..."). */
static int found_url(scan_t *sc, const token_t *t, bool at_level)
{
    const char *v;
    size_t len;
    int rc = value(sc, t, &v, &len);
    if (rc < 0)
        return rc;
    if (at_level && sc->stmt == S_IMPORT_URL) {
        sc->stmt = S_IMPORT_MEDIA;
        sc->media_start = sc->lx.pos;
        return set_pending(sc, v, len, CSS_REF_IMPORT);
    }
    if (sc->stmt == S_IMPORT_MEDIA || sc->stmt == S_NAMESPACE)
        return 0;
    if (at_level && sc->stmt == S_DECL_SRC)
        return set_pending(sc, v, len, CSS_REF_FONT);
    rc = flush(sc, sc->lx.pos);
    if (rc != 0)
        return rc;
    return emit(sc, v, len, CSS_REF_IMAGE, NULL, NULL);
}

static void start_statement(scan_t *sc, const token_t *t)
{
    frame_t *blk = sc->blk > 0 ? &sc->st[sc->blk - 1] : NULL;
    bool toplevel = sc->blk == 0;
    if (t->type == T_AT) {
        if (name_is(&sc->lx, t, "import") && toplevel && sc->import_allowed) {
            sc->stmt = S_IMPORT_URL;
            return;
        }
        if (name_is(&sc->lx, t, "font-face"))
            sc->stmt = S_FONT_FACE;
        else if (name_is(&sc->lx, t, "namespace"))
            sc->stmt = S_NAMESPACE;
        else
            sc->stmt = S_OTHER;
        /* @import must come before every rule but @charset and @layer. */
        if (toplevel && !name_is(&sc->lx, t, "charset") && !name_is(&sc->lx, t, "layer") &&
            !name_is(&sc->lx, t, "import"))
            sc->import_allowed = false;
        return;
    }
    if (toplevel && (t->type == T_CDO || t->type == T_CDC))
        return;
    if (toplevel)
        sc->import_allowed = false;
    if (blk != NULL && blk->type == F_FONT_BLOCK && t->type == T_IDENT) {
        sc->stmt = S_DECL_NAME;
        sc->decl_is_src = name_is(&sc->lx, t, "src");
        return;
    }
    sc->stmt = S_OTHER;
}

static int step(scan_t *sc, const token_t *t)
{
    bool at_level = sc->overflow == 0 && sc->depth == sc->blk;
    frame_t *f;
    int rc;

    switch (t->type) {
    case T_WS:
        return 0;
    case T_URL:
        if (at_level && sc->stmt == S_START)
            start_statement(sc, t);
        return found_url(sc, t, at_level);
    case T_STRING:
        f = top(sc);
        if (at_level) {
            if (sc->stmt == S_START)
                start_statement(sc, t);
            if (sc->stmt == S_IMPORT_URL)
                return found_url(sc, t, true);
            return 0;
        }
        if (f == NULL || f->used)
            return 0;
        if (f->type == F_FN_URL) {
            f->used = 1;
            /* url("x") directly in the statement counts as at its level. */
            return found_url(sc, t, sc->depth == sc->blk + 1);
        }
        if (f->type == F_FN_IMAGE_SET)
            return found_url(sc, t, false);
        if (f->type == F_FN_FORMAT && sc->pending && sc->pend_kind == CSS_REF_FONT) {
            const char *v;
            size_t len;
            f->used = 1;
            if ((rc = value(sc, t, &v, &len)) < 0)
                return rc;
            if (strbuf_reserve(&sc->pend_fmt, len + 1) < 0)
                return HERALD_ENOMEM;
            memcpy(sc->pend_fmt.p, v, len);
            sc->pend_fmt.p[len] = '\0';
            sc->pend_fmt.n = len + 1;
        }
        return 0;
    case T_IDENT:
        if (!at_level) {
            /* format(woff2): CSS Fonts 4 allows a keyword too. */
            f = top(sc);
            if (f != NULL && f->type == F_FN_FORMAT && !f->used && sc->pending &&
                sc->pend_kind == CSS_REF_FONT) {
                token_t s = *t;
                s.type = T_STRING;
                return step(sc, &s);
            }
            return 0;
        }
        if (sc->stmt == S_START)
            start_statement(sc, t);
        else if (sc->stmt == S_IMPORT_URL || sc->stmt == S_DECL_NAME)
            sc->stmt = S_OTHER; /* not a valid @import or declaration: ignored */
        return 0;
    case T_COLON:
        if (at_level && sc->stmt == S_DECL_NAME)
            sc->stmt = sc->decl_is_src ? S_DECL_SRC : S_OTHER;
        else if (at_level && sc->stmt == S_START)
            sc->stmt = S_OTHER;
        return 0;
    case T_FUNCTION: {
        if (at_level) {
            if (sc->stmt == S_START)
                start_statement(sc, t);
            if (sc->stmt == S_IMPORT_URL && !name_is(&sc->lx, t, "url"))
                sc->stmt = S_OTHER;
        }
        frame_type_t ft = F_FN_OTHER;
        if (name_is(&sc->lx, t, "url"))
            ft = F_FN_URL;
        else if (name_is(&sc->lx, t, "image-set") || name_is(&sc->lx, t, "-webkit-image-set"))
            ft = F_FN_IMAGE_SET;
        else if (name_is(&sc->lx, t, "format"))
            ft = F_FN_FORMAT;
        push(sc, ft);
        return 0;
    }
    case T_LPAREN:
    case T_LBRACK:
        if (at_level && sc->stmt == S_START)
            start_statement(sc, t);
        push(sc, t->type == T_LPAREN ? F_PAREN : F_BRACK);
        return 0;
    case T_RPAREN:
    case T_RBRACK:
        if (sc->overflow > 0) {
            sc->overflow--;
            return 0;
        }
        f = top(sc);
        if (f == NULL || f->type == F_BLOCK || f->type == F_FONT_BLOCK)
            return 0; /* a stray closer is just a token */
        if ((t->type == T_RBRACK) != (f->type == F_BRACK))
            return 0;
        sc->depth--;
        if (f->type == F_FN_URL && sc->stmt == S_IMPORT_MEDIA && sc->depth == sc->blk)
            sc->media_start = sc->lx.pos; /* the media list follows url("...") */
        return 0;
    case T_SEMI:
        if (!at_level)
            return 0;
        rc = flush(sc, sc->lx.pos - 1);
        sc->stmt = S_START;
        return rc;
    case T_COMMA:
        if (at_level && sc->stmt == S_DECL_SRC)
            return flush(sc, sc->lx.pos);
        return 0;
    case T_LBRACE:
        if (at_level) {
            if (sc->stmt == S_START)
                start_statement(sc, t);
            /* @import with a block is invalid: dropped. */
            if (sc->pending && sc->pend_kind == CSS_REF_IMPORT)
                sc->pending = false;
            if (sc->stmt == S_DECL_SRC && (rc = flush(sc, sc->lx.pos)) != 0)
                return rc;
            push(sc, sc->stmt == S_FONT_FACE ? F_FONT_BLOCK : F_BLOCK);
        } else {
            push(sc, F_BLOCK);
        }
        return 0;
    case T_RBRACE:
        if (sc->overflow > 0) {
            sc->overflow--;
            return 0;
        }
        f = top(sc);
        if (f == NULL || (f->type != F_BLOCK && f->type != F_FONT_BLOCK))
            return 0;
        if (at_level && (rc = flush(sc, sc->lx.pos)) != 0)
            return rc;
        sc->depth--;
        sc->blk = f->saved_blk;
        /* A block ends its rule; a {} inside a src value does not end the value. */
        sc->stmt = f->saved_stmt == S_DECL_SRC ? S_DECL_SRC : S_START;
        return 0;
    default:
        if (at_level) {
            if (sc->stmt == S_START)
                start_statement(sc, t);
            else if (sc->stmt == S_IMPORT_URL)
                sc->stmt = S_OTHER;
        }
        return 0;
    }
}

int css_scan(const char *css, size_t len, const char *base_url, css_ref_cb cb, void *arg)
{
    cls_init();
    scan_t sc = {
        .lx = {.s = (const unsigned char *)css, .n = len},
        .base = base_url,
        .cb = cb,
        .arg = arg,
        .stmt = S_START,
        .import_allowed = true,
    };
    token_t t;
    int rc = 0;
    for (;;) {
        lex_next(&sc.lx, &t);
        if (t.type == T_EOF)
            break;
        if ((rc = step(&sc, &t)) != 0)
            goto out;
    }
    /* EOF closes every open construct; a pending @import or src is complete. */
    rc = flush(&sc, len);
out:
    free(sc.pend_url.p);
    free(sc.pend_fmt.p);
    free(sc.tmp.p);
    return rc;
}
