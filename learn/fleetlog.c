/*
 * The fleet's evidence batches (fleetlog.h): a builder that writes the JSON
 * text record by record (so its size is known exactly while it grows and
 * the caps hold before anything is sent), and a strict decoder that
 * validates a whole batch before the caller may apply any of it.
 */
#include "fleetlog.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cachepolicy.h"
#include "fleetjson.h"
#include "herald/error.h"

/* The bit values below are on the wire: changing them needs a new version. */
_Static_assert(PAGEMAP_SRC_HTML == 1 && PAGEMAP_SRC_CSS == 2 && PAGEMAP_SRC_LINK == 4 &&
                   PAGEMAP_SRC_FOLLOWUP == 8 && PAGEMAP_SRC_PUSH == 16 && PAGEMAP_SRC_HINT == 32,
               "PAGEMAP_SRC_* bits are wire values of fleetlog version 1");
_Static_assert(CACHEPOLICY_ALL == 0x7ffu && CACHEPOLICY_NO_STORE == 1 &&
                   CACHEPOLICY_VARY_STAR == 1u << 10,
               "CACHEPOLICY_* bits are wire values of fleetlog version 1");
_Static_assert(PAGEMAP_CORS_NONE == 0 && PAGEMAP_CORS_ANONYMOUS == 1 &&
                   PAGEMAP_CORS_CREDENTIALS == 2,
               "pagemap_cors_t values are wire values of fleetlog version 1");
#define SRC_ALL 0x3fu
#define THINK_MAX 1e9 /* ms: longer think times are recorded as this */

bool fleetlog_instance_valid(const char *id)
{
    if (id == NULL || id[0] == '\0')
        return false;
    size_t n = 0;
    for (const char *p = id; *p; p++, n++) {
        char c = *p;
        if (n >= FLEETLOG_MAX_INSTANCE ||
            !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Whether s[0..n) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

bool fleetlog_string_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t n = strlen(s);
    return n <= FLEETLOG_MAX_STRING && utf8_valid((const unsigned char *)s, n);
}

/* ---- text buffer ------------------------------------------------------- */

typedef struct sb {
    char *p;
    size_t n, cap;
} sb_t;

static int sb_reserve(sb_t *b, size_t more)
{
    if (b->n + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        return HERALD_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int sb_put(sb_t *b, const char *s, size_t n)
{
    if (sb_reserve(b, n) != 0)
        return HERALD_ENOMEM;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

static int sb_printf(sb_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sb_printf(sb_t *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return HERALD_EINTERNAL; /* every format here is short */
    return sb_put(b, tmp, (size_t)n);
}

/* Append the literal `lit` then v in decimal (no printf: records are
 * written on the request path). */
static int sb_lit_u(sb_t *b, const char *lit, uint64_t v)
{
    char tmp[24];
    size_t n = sizeof(tmp);
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    size_t ll = strlen(lit);
    if (sb_reserve(b, ll + sizeof(tmp) - n) != 0)
        return HERALD_ENOMEM;
    memcpy(b->p + b->n, lit, ll);
    memcpy(b->p + b->n + ll, tmp + n, sizeof(tmp) - n);
    b->n += ll + sizeof(tmp) - n;
    b->p[b->n] = '\0';
    return 0;
}

/* Append the literal `lit` then ms (0..THINK_MAX) to the microsecond, as
 * decimal text with at most three decimals; *held = the value a reader
 * parses from it (the nearest double to the decimal: strtod and the
 * division below both round correctly, so they agree). */
static int sb_lit_ms(sb_t *b, const char *lit, double ms, double *held)
{
    uint64_t us = (uint64_t)llround(ms * 1000.0);
    *held = (double)us / 1000.0;
    int rc = sb_lit_u(b, lit, us / 1000);
    unsigned frac = (unsigned)(us % 1000);
    if (rc != 0 || frac == 0)
        return rc;
    char tmp[4] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                   (char)('0' + frac % 10)};
    size_t n = tmp[3] != '0' ? 4 : tmp[2] != '0' ? 3 : 2;
    return sb_put(b, tmp, n);
}

/* Append the literal `lit` then v as 16 lower-case hex digits in quotes. */
static int sb_lit_hex(sb_t *b, const char *lit, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[18];
    tmp[0] = tmp[17] = '"';
    for (int i = 16; i >= 1; i--, v >>= 4)
        tmp[i] = hex[v & 15];
    size_t ll = strlen(lit);
    if (sb_reserve(b, ll + sizeof(tmp)) != 0)
        return HERALD_ENOMEM;
    memcpy(b->p + b->n, lit, ll);
    memcpy(b->p + b->n + ll, tmp, sizeof(tmp));
    b->n += ll + sizeof(tmp);
    b->p[b->n] = '\0';
    return 0;
}

static int sb_lit(sb_t *b, const char *lit)
{
    return sb_put(b, lit, strlen(lit));
}

/* Bytes of s as a JSON string literal, quotes included. */
static size_t json_str_len(const char *s)
{
    size_t n = 2;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p == '"' || *p == '\\') ? 2 : *p < 0x20 ? 6 : 1;
    return n;
}

static int sb_json_str(sb_t *b, const char *s)
{
    if (sb_reserve(b, json_str_len(s)) != 0)
        return HERALD_ENOMEM;
    char *o = b->p + b->n;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            o += sprintf(o, "\\u%04x", *p);
        } else {
            *o++ = (char)*p;
        }
    }
    *o++ = '"';
    *o = '\0';
    b->n = (size_t)(o - b->p);
    return 0;
}

/* ---- builder ----------------------------------------------------------- */

typedef struct slot {
    uint64_t hash;
    uint32_t idx1; /* string index + 1; 0 = empty */
} slot_t;

struct fleetlog_builder {
    char instance[FLEETLOG_MAX_INSTANCE + 1];
    uint64_t next_seq;
    char **strs;          /* the string table, in index order (malloc'd copies) */
    uint32_t *last_asset; /* per string: its last asset record + 1, 0 none (capstr) */
    size_t nstr, capstr;
    size_t str_bytes; /* of the encoded table: literals and commas */
    slot_t *slots;    /* open addressing over strs */
    size_t nslots;    /* a power of two, at least twice nstr */
    sb_t rec;         /* encoded records, comma-separated */
    size_t nrec, nitems;
    sb_t scratch; /* the record being built */
    /* The records again, as fleetlog_decode gives them back (string
     * pointers into strs; visit items and digests as indexes into hitems
     * and hdig, made pointers at finish): the instance applies its own
     * held records from these without decoding its batch. */
    fleetlog_rec_t *hrec; /* nrec of caphrec */
    size_t caphrec;
    size_t *hitem_at; /* per record: its first item in hitems */
    long *hdig_at;    /* per record: its digest in hdig, -1 none */
    pagemap_item_t *hitems;
    size_t nhitems, caphitems;
    digest_t *hdig;
    size_t nhdig, caphdig;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static void slot_insert(slot_t *slots, size_t nslots, uint64_t h, uint32_t idx1)
{
    size_t i = (size_t)h & (nslots - 1);
    while (slots[i].idx1 != 0)
        i = (i + 1) & (nslots - 1);
    slots[i] = (slot_t){h, idx1};
}

/* Rebuild the index over strs[0..nstr) (no allocation). */
static void slots_rebuild(fleetlog_builder_t *b)
{
    if (b->slots == NULL)
        return;
    memset(b->slots, 0, b->nslots * sizeof(*b->slots));
    for (size_t i = 0; i < b->nstr; i++)
        slot_insert(b->slots, b->nslots, hash_str(b->strs[i]), (uint32_t)i + 1);
}

/* Index of s in the table, or -1 when it is not there. */
static long lookup(const fleetlog_builder_t *b, const char *s, uint64_t h)
{
    if (b->slots != NULL) {
        for (size_t i = (size_t)h & (b->nslots - 1); b->slots[i].idx1 != 0;
             i = (i + 1) & (b->nslots - 1))
            if (b->slots[i].hash == h && strcmp(b->strs[b->slots[i].idx1 - 1], s) == 0)
                return (long)b->slots[i].idx1 - 1;
    }
    return -1;
}

enum { INTERN_ENOMEM = -1, INTERN_EINVAL = -2 };

/* Index of s in the table, adding it when new: INTERN_EINVAL when a new
 * string is not valid (fleetlog_string_valid: strings are checked once,
 * when they enter the table), INTERN_ENOMEM. */
static long intern(fleetlog_builder_t *b, const char *s)
{
    uint64_t h = hash_str(s);
    long found = lookup(b, s, h);
    if (found >= 0)
        return found;
    if (!fleetlog_string_valid(s))
        return INTERN_EINVAL;
    if ((b->nstr + 1) * 2 > b->nslots) {
        size_t n = b->nslots ? b->nslots * 2 : 64;
        slot_t *ns = calloc(n, sizeof(*ns));
        if (ns == NULL)
            return -1;
        free(b->slots);
        b->slots = ns;
        b->nslots = n;
        slots_rebuild(b);
    }
    if (b->nstr == b->capstr) {
        size_t cap = b->capstr ? b->capstr * 2 : 64;
        char **ns = realloc(b->strs, cap * sizeof(*ns));
        if (ns != NULL)
            b->strs = ns;
        uint32_t *la = realloc(b->last_asset, cap * sizeof(*la));
        if (la != NULL)
            b->last_asset = la;
        if (ns == NULL || la == NULL)
            return -1;
        b->capstr = cap;
    }
    size_t len = strlen(s) + 1;
    char *copy = malloc(len);
    if (copy == NULL)
        return -1;
    memcpy(copy, s, len);
    b->strs[b->nstr] = copy;
    b->last_asset[b->nstr] = 0;
    slot_insert(b->slots, b->nslots, h, (uint32_t)b->nstr + 1);
    b->str_bytes += json_str_len(s) + (b->nstr > 0);
    return (long)b->nstr++;
}

/* Drop strings added since the table had `nstr` entries and `bytes` of text. */
static void strings_rollback(fleetlog_builder_t *b, size_t nstr, size_t bytes)
{
    if (b->nstr == nstr)
        return;
    for (size_t i = nstr; i < b->nstr; i++)
        free(b->strs[i]);
    b->nstr = nstr;
    b->str_bytes = bytes;
    slots_rebuild(b);
}

int fleetlog_builder_create(const char *instance, uint64_t first_seq, fleetlog_builder_t **out)
{
    if (out == NULL)
        return HERALD_EINVAL;
    *out = NULL;
    if (!fleetlog_instance_valid(instance) || first_seq < 1 ||
        first_seq > (uint64_t)FLEETLOG_MAX_INT)
        return HERALD_EINVAL;
    fleetlog_builder_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return HERALD_ENOMEM;
    memcpy(b->instance, instance, strlen(instance) + 1);
    b->next_seq = first_seq;
    *out = b;
    return 0;
}

static void held_clear(fleetlog_builder_t *b)
{
    for (size_t i = 0; i < b->nhdig; i++)
        digest_dispose(&b->hdig[i]);
    b->nhdig = b->nhitems = 0;
}

static void builder_clear(fleetlog_builder_t *b)
{
    held_clear(b);
    for (size_t i = 0; i < b->nstr; i++)
        free(b->strs[i]);
    b->nstr = 0;
    b->str_bytes = 0;
    if (b->slots != NULL)
        memset(b->slots, 0, b->nslots * sizeof(*b->slots));
    b->rec.n = 0;
    if (b->rec.p != NULL)
        b->rec.p[0] = '\0';
    b->nrec = b->nitems = 0;
}

void fleetlog_builder_destroy(fleetlog_builder_t *b)
{
    if (b == NULL)
        return;
    builder_clear(b);
    free(b->hrec);
    free(b->hitem_at);
    free(b->hdig_at);
    free(b->hitems);
    free(b->hdig);
    free(b->strs);
    free(b->last_asset);
    free(b->slots);
    free(b->rec.p);
    free(b->scratch.p);
    free(b);
}

size_t fleetlog_builder_records(const fleetlog_builder_t *b)
{
    return b ? b->nrec : 0;
}

/* Everything but the strings and records: {"v":1,"inst":"","seq":N,"t":N,"str":[],"rec":[]}
 * with 16 digits for seq and 20 characters for t. */
static size_t frame_bytes(const fleetlog_builder_t *b)
{
    return 54 + strlen(b->instance) + 16 + 20;
}

size_t fleetlog_builder_bytes(const fleetlog_builder_t *b)
{
    if (b == NULL)
        return 0;
    return frame_bytes(b) + b->str_bytes + b->rec.n;
}

bool fleetlog_builder_full(const fleetlog_builder_t *b)
{
    return b != NULL &&
           (fleetlog_builder_bytes(b) >= FLEETLOG_FLUSH_BYTES ||
            b->nrec >= FLEETLOG_MAX_RECORDS / 4 * 3 || b->nstr >= FLEETLOG_MAX_STRINGS / 4 * 3 ||
            b->nitems >= FLEETLOG_MAX_ITEMS / 4 * 3);
}

uint64_t fleetlog_builder_next_seq(const fleetlog_builder_t *b)
{
    return b ? b->next_seq : 0;
}

/* Append ,"name":<index of s> (s interned; *held = the table's copy); rc as intern. */
static int put_idx(fleetlog_builder_t *b, const char *name, const char *s, const char **held)
{
    long i = intern(b, s);
    if (i < 0)
        return i == INTERN_EINVAL ? HERALD_EINVAL : HERALD_ENOMEM;
    *held = b->strs[i];
    int rc = sb_put(&b->scratch, ",\"", 2);
    if (rc == 0)
        rc = sb_lit(&b->scratch, name);
    return rc ? rc : sb_lit_u(&b->scratch, "\":", (uint64_t)i);
}

/* Room for one more held record with `nitems` items and `ndig` digests
 * (nothing changes but capacities); 0 or HERALD_ENOMEM. */
static int held_reserve(fleetlog_builder_t *b, size_t nitems, size_t ndig)
{
    if (b->nrec == b->caphrec) {
        size_t cap = b->caphrec ? b->caphrec * 2 : 64;
        fleetlog_rec_t *r = realloc(b->hrec, cap * sizeof(*r));
        if (r != NULL)
            b->hrec = r;
        size_t *at = realloc(b->hitem_at, cap * sizeof(*at));
        if (at != NULL)
            b->hitem_at = at;
        long *dg = realloc(b->hdig_at, cap * sizeof(*dg));
        if (dg != NULL)
            b->hdig_at = dg;
        if (r == NULL || at == NULL || dg == NULL)
            return HERALD_ENOMEM;
        b->caphrec = cap;
    }
    if (b->nhitems + nitems > b->caphitems) {
        size_t cap = b->caphitems ? b->caphitems * 2 : 256;
        while (cap < b->nhitems + nitems)
            cap *= 2;
        pagemap_item_t *it = realloc(b->hitems, cap * sizeof(*it));
        if (it == NULL)
            return HERALD_ENOMEM;
        b->hitems = it;
        b->caphitems = cap;
    }
    if (b->nhdig + ndig > b->caphdig) {
        size_t cap = b->caphdig ? b->caphdig * 2 : 16;
        digest_t *d = realloc(b->hdig, cap * sizeof(*d));
        if (d == NULL)
            return HERALD_ENOMEM;
        b->hdig = d;
        b->caphdig = cap;
    }
    return 0;
}

static uint64_t clamp_u(uint64_t v)
{
    return v > (uint64_t)FLEETLOG_MAX_INT ? (uint64_t)FLEETLOG_MAX_INT : v;
}

/* Keep the scratch record when it fits; else undo the strings it added. */
static int commit_record(fleetlog_builder_t *b, size_t nstr0, size_t bytes0, size_t nitems)
{
    size_t new_str = b->str_bytes - bytes0;
    size_t rec = b->scratch.n + (b->nrec > 0);
    int rc = 0;
    if (b->scratch.n + new_str > FLEETLOG_MAX_RECORD_BYTES ||
        fleetlog_builder_bytes(b) + rec > FLEETLOG_MAX_BATCH_BYTES ||
        b->nrec + 1 > FLEETLOG_MAX_RECORDS || b->nstr > FLEETLOG_MAX_STRINGS ||
        b->nitems + nitems > FLEETLOG_MAX_ITEMS)
        rc = HERALD_ETOOBIG;
    else if (sb_reserve(&b->rec, rec) != 0)
        rc = HERALD_ENOMEM;
    if (rc != 0) {
        strings_rollback(b, nstr0, bytes0);
        return rc;
    }
    if (b->nrec > 0)
        sb_put(&b->rec, ",", 1); /* reserved above: cannot fail */
    sb_put(&b->rec, b->scratch.p, b->scratch.n);
    b->nrec++;
    b->nitems += nitems;
    return 0;
}

/* commit_record for a record with no item nor digest, and its held copy h
 * (room reserved). */
/* Close the record in scratch (rc: how writing it went) and commit it with
 * its held copy h; on failure, the strings it interned are dropped. */
static int held_close(fleetlog_builder_t *b, int rc, size_t nstr0, size_t bytes0,
                      const fleetlog_rec_t *h)
{
    if (rc == 0)
        rc = sb_put(&b->scratch, "}", 1);
    if (rc != 0) {
        strings_rollback(b, nstr0, bytes0);
        return rc;
    }
    rc = commit_record(b, nstr0, bytes0, 0);
    if (rc == 0) {
        b->hrec[b->nrec - 1] = *h;
        b->hitem_at[b->nrec - 1] = b->nhitems;
        b->hdig_at[b->nrec - 1] = -1;
    }
    return rc;
}

static bool item_counts(const pagemap_item_t *it)
{
    return it->url != NULL && it->url[0] != '\0';
}

static int visit_check(const pagemap_visit_t *v)
{
    /* strings are checked as they enter the table (intern) */
    if (v->page_key == NULL || v->page_key[0] == '\0' || v->status < 0 || v->status > 999 ||
        v->now_ms < 0 || v->now_ms > FLEETLOG_MAX_INT || (v->nitems > 0 && v->items == NULL))
        return HERALD_EINVAL;
    size_t n = 0;
    for (size_t i = 0; i < v->nitems; i++) {
        const pagemap_item_t *it = &v->items[i];
        if (!item_counts(it))
            continue;
        if (++n > FLEETLOG_MAX_VISIT_ITEMS || (it->key != NULL && it->key[0] == '\0') ||
            (unsigned)it->crossorigin > 2)
            return HERALD_EINVAL;
    }
    return 0;
}

/* The digest as a cookie value (NULL when none or empty). */
static int digest_text(const digest_t *d, char **out)
{
    *out = NULL;
    if (d == NULL || d->n == 0)
        return 0;
    digest_builder_t db;
    digest_builder_init(&db, d->log2p);
    db.min_log2n = d->log2n;
    int rc = digest_builder_add_digest(&db, d);
    size_t len = 0;
    if (rc == 0)
        rc = digest_builder_finish(&db, out, &len);
    digest_builder_dispose(&db);
    if (rc == 0 && len > DIGEST_MAX_VALUE_LEN) {
        free(*out);
        *out = NULL;
        rc = HERALD_ETOOBIG;
    }
    return rc;
}

static int visit_record(fleetlog_builder_t *b, const pagemap_visit_t *v, uint64_t client,
                        const char *dig, size_t *nitems, fleetlog_rec_t *h)
{
    sb_t *s = &b->scratch;
    pagemap_visit_t *hv = &h->visit;
    pagemap_item_t *hit = b->hitems + b->nhitems; /* reserved for v->nitems */
    h->type = FLEETLOG_REC_VISIT;
    h->client = client;
    hv->now_ms = v->now_ms;
    hv->think_ms = -1;
    int rc = sb_lit_u(s, "{\"r\":\"visit\",\"t\":", (uint64_t)v->now_ms); /* checked >= 0 */
    if (rc == 0 && client != 0)
        rc = sb_lit_hex(s, ",\"c\":", client);
    if (rc == 0)
        rc = put_idx(b, "p", v->page_key, &hv->page_key);
    if (rc == 0 && v->template_key != NULL && v->template_key[0] != '\0' &&
        strcmp(v->template_key, v->page_key) != 0)
        rc = put_idx(b, "tp", v->template_key, &hv->template_key);
    hv->status = v->status;
    if (rc == 0 && v->status != 0)
        rc = sb_lit_u(s, ",\"st\":", (uint64_t)v->status); /* checked 0..999 */
    if (rc == 0 && isfinite(v->think_ms) && v->think_ms >= 0)
        rc = sb_lit_ms(s, ",\"think\":", v->think_ms > THINK_MAX ? THINK_MAX : v->think_ms,
                       &hv->think_ms);
    hv->html_size = clamp_u(v->html_size);
    if (rc == 0 && v->html_size != 0)
        rc = sb_lit_u(s, ",\"html\":", clamp_u(v->html_size));
    unsigned f = (v->html_scanned ? FLEETLOG_VF_HTML_SCANNED : 0) |
                 (v->css_scanned ? FLEETLOG_VF_CSS_SCANNED : 0) |
                 (v->browser ? FLEETLOG_VF_BROWSER : 0) |
                 (v->multiplexed ? FLEETLOG_VF_MULTIPLEXED : 0) |
                 (v->pushes_used ? FLEETLOG_VF_PUSHES_USED : 0) |
                 (v->page_cookie ? FLEETLOG_VF_PAGE_COOKIE : 0) |
                 (v->page_set_cookie ? FLEETLOG_VF_PAGE_SET_COOKIE : 0) |
                 (v->supplement ? FLEETLOG_VF_SUPPLEMENT : 0);
    hv->html_scanned = v->html_scanned;
    hv->css_scanned = v->css_scanned;
    hv->browser = v->browser;
    hv->multiplexed = v->multiplexed;
    hv->pushes_used = v->pushes_used;
    hv->page_cookie = v->page_cookie;
    hv->page_set_cookie = v->page_set_cookie;
    hv->supplement = v->supplement;
    hv->validator = v->validator;
    if (rc == 0 && f != 0)
        rc = sb_lit_u(s, ",\"f\":", f);
    if (rc == 0 && v->validator != 0)
        rc = sb_lit_hex(s, ",\"val\":", v->validator);
    if (rc == 0 && dig != NULL) {
        rc = sb_lit(s, ",\"dig\":");
        if (rc == 0)
            rc = sb_json_str(s, dig);
    }
    if (rc == 0)
        rc = sb_lit(s, ",\"it\":[");
    size_t n = 0;
    for (size_t i = 0; rc == 0 && i < v->nitems; i++) {
        const pagemap_item_t *it = &v->items[i];
        if (!item_counts(it))
            continue;
        const char *key = it->key ? it->key : it->url;
        pagemap_kind_t kind =
            (unsigned)it->kind < PAGEMAP_KIND_COUNT_ ? it->kind : PAGEMAP_KIND_OTHER;
        long k = intern(b, key);
        if (k == INTERN_EINVAL) {
            rc = HERALD_EINVAL;
            break;
        }
        pagemap_item_t *hi = &hit[n];
        *hi = (pagemap_item_t){.kind = kind,
                               .crossorigin = it->crossorigin,
                               .order = it->order,
                               .sources = it->sources & SRC_ALL,
                               .group = it->group,
                               .blocking = it->blocking,
                               .strong = it->strong,
                               .conditional = it->conditional,
                               .skipped = it->skipped,
                               .push_cancelled = it->push_cancelled};
        rc = k < 0 ? HERALD_ENOMEM : sb_lit_u(s, n ? ",{\"k\":" : "{\"k\":", (uint64_t)k);
        n++;
        if (k >= 0)
            hi->key = hi->url = b->strs[k];
        if (rc == 0 && strcmp(it->url, key) != 0)
            rc = put_idx(b, "u", it->url, &hi->url);
        if (rc == 0)
            rc = sb_lit(s, ",\"kd\":\"");
        if (rc == 0)
            rc = sb_lit(s, pagemap_kind_name(kind));
        if (rc == 0)
            rc = sb_put(s, "\"", 1);
        if (rc == 0 && it->as != NULL)
            rc = put_idx(b, "as", it->as, &hi->as);
        if (rc == 0 && it->crossorigin != PAGEMAP_CORS_NONE)
            rc = sb_lit_u(s, ",\"co\":", (uint64_t)it->crossorigin); /* checked 0..2 */
        if (rc == 0 && it->order != 0)
            rc = sb_lit_u(s, ",\"o\":", it->order);
        if (rc == 0 && (it->sources & SRC_ALL) != 0)
            rc = sb_lit_u(s, ",\"s\":", it->sources & SRC_ALL);
        if (rc == 0 && it->group != 0)
            rc = sb_lit_u(s, ",\"g\":", it->group);
        unsigned itf = (it->blocking ? FLEETLOG_IF_BLOCKING : 0) |
                       (it->strong ? FLEETLOG_IF_STRONG : 0) |
                       (it->conditional ? FLEETLOG_IF_CONDITIONAL : 0) |
                       (it->skipped ? FLEETLOG_IF_SKIPPED : 0) |
                       (it->push_cancelled ? FLEETLOG_IF_PUSH_CANCELLED : 0);
        if (rc == 0 && itf != 0)
            rc = sb_lit_u(s, ",\"f\":", itf);
        if (rc == 0)
            rc = sb_put(s, "}", 1);
    }
    if (rc == 0)
        rc = sb_put(s, "]}", 2);
    *nitems = n;
    hv->nitems = n;
    return rc;
}

int fleetlog_builder_add_visit(fleetlog_builder_t *b, const pagemap_visit_t *v, uint64_t client)
{
    if (b == NULL || v == NULL)
        return HERALD_EINVAL;
    if (v->authorized)
        return 0;
    int rc = visit_check(v);
    if (rc != 0)
        return rc;
    char *dig = NULL;
    if ((rc = digest_text(v->digest, &dig)) != 0)
        return rc;
    if ((rc = held_reserve(b, v->nitems, dig != NULL)) != 0) {
        free(dig);
        return rc;
    }
    digest_t hd = {0}; /* the digest as the batch's readers parse it */
    bool has_dig = dig != NULL;
    if (has_dig && (rc = digest_parse(dig, strlen(dig), &hd, NULL)) != 0) {
        free(dig);
        return rc == HERALD_ENOMEM ? rc : HERALD_EINVAL;
    }
    size_t nstr0 = b->nstr, bytes0 = b->str_bytes, nitems = 0;
    fleetlog_rec_t h = {0};
    b->scratch.n = 0;
    rc = visit_record(b, v, client, dig, &nitems, &h);
    free(dig);
    if (rc != 0)
        strings_rollback(b, nstr0, bytes0);
    else
        rc = commit_record(b, nstr0, bytes0, nitems);
    if (rc != 0) {
        digest_dispose(&hd);
        return rc;
    }
    size_t r = b->nrec - 1;
    b->hrec[r] = h;
    b->hitem_at[r] = b->nhitems;
    b->nhitems += nitems;
    b->hdig_at[r] = -1;
    if (has_dig) {
        b->hdig_at[r] = (long)b->nhdig;
        b->hdig[b->nhdig++] = hd;
    }
    return 0;
}

static bool str_same(const char *a, const char *b)
{
    return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/* Whether the held asset record h says what m (as recorded) says. */
static bool meta_same(const pagemap_asset_meta_t *h, const pagemap_asset_meta_t *m)
{
    return h->status == m->status && h->size == m->size && h->policy == m->policy &&
           h->fresh_ms == m->fresh_ms && h->pushed == m->pushed &&
           str_same(h->content_type, m->content_type) && str_same(h->etag, m->etag) &&
           str_same(h->last_modified, m->last_modified) && str_same(h->location, m->location);
}

int fleetlog_builder_add_asset(fleetlog_builder_t *b, const char *key,
                               const pagemap_asset_meta_t *m)
{
    if (b == NULL || key == NULL || key[0] == '\0' || m == NULL || m->status < 0 || m->status > 999)
        return HERALD_EINVAL;
    fleetlog_rec_t h = {.type = FLEETLOG_REC_ASSET};
    pagemap_asset_meta_t *hm = &h.meta;
    *hm = (pagemap_asset_meta_t){
        .status = m->status,
        .size = clamp_u(m->size),
        .policy = m->policy & CACHEPOLICY_ALL,
        .fresh_ms = m->fresh_ms >= 0 ? (int64_t)clamp_u((uint64_t)m->fresh_ms) : -1,
        .pushed = m->pushed,
        .content_type = m->content_type,
        .etag = m->etag,
        .last_modified = m->last_modified,
        .location = m->location};
    /* The same metadata as this batch's last record of the asset: applying
     * it again changes nothing anywhere, so it is not written again (an
     * asset is seen on every visit of every page that names it). */
    long k = lookup(b, key, hash_str(key));
    if (k >= 0 && b->last_asset[k] != 0 && meta_same(&b->hrec[b->last_asset[k] - 1].meta, hm))
        return 0;
    if (held_reserve(b, 0, 0) != 0)
        return HERALD_ENOMEM;
    size_t nstr0 = b->nstr, bytes0 = b->str_bytes;
    sb_t *s = &b->scratch;
    s->n = 0;
    hm->content_type = hm->etag = hm->last_modified = hm->location = NULL;
    k = intern(b, key);
    if (k >= 0)
        h.asset_key = b->strs[k];
    int rc = k == INTERN_EINVAL ? HERALD_EINVAL
             : k < 0            ? HERALD_ENOMEM
                                : sb_lit_u(s, "{\"r\":\"asset\",\"k\":", (uint64_t)k);
    if (rc == 0 && m->status != 0)
        rc = sb_lit_u(s, ",\"st\":", (uint64_t)m->status); /* checked 0..999 */
    if (rc == 0 && m->size != 0)
        rc = sb_lit_u(s, ",\"sz\":", clamp_u(m->size));
    if (rc == 0 && m->content_type != NULL)
        rc = put_idx(b, "ct", m->content_type, &hm->content_type);
    if (rc == 0 && m->etag != NULL)
        rc = put_idx(b, "et", m->etag, &hm->etag);
    if (rc == 0 && m->last_modified != NULL)
        rc = put_idx(b, "lm", m->last_modified, &hm->last_modified);
    if (rc == 0 && m->location != NULL)
        rc = put_idx(b, "loc", m->location, &hm->location);
    if (rc == 0 && (m->policy & CACHEPOLICY_ALL) != 0)
        rc = sb_lit_u(s, ",\"pol\":", m->policy & CACHEPOLICY_ALL);
    if (rc == 0 && m->fresh_ms >= 0)
        rc = sb_lit_u(s, ",\"fr\":", clamp_u((uint64_t)m->fresh_ms));
    if (rc == 0 && m->pushed)
        rc = sb_lit(s, ",\"f\":1");
    rc = held_close(b, rc, nstr0, bytes0, &h);
    if (rc == 0)
        b->last_asset[k] = (uint32_t)b->nrec;
    return rc;
}

int fleetlog_builder_add_explore(fleetlog_builder_t *b, const pagemap_explore_delta_t *d)
{
    if (b == NULL || d == NULL || d->key == NULL || d->key[0] == '\0' ||
        !fleetlog_string_valid(d->key) || d->plans == 0 || d->explored > d->plans)
        return HERALD_EINVAL;
    if (held_reserve(b, 0, 0) != 0)
        return HERALD_ENOMEM;
    size_t nstr0 = b->nstr, bytes0 = b->str_bytes;
    sb_t *s = &b->scratch;
    s->n = 0;
    fleetlog_rec_t h = {.type = FLEETLOG_REC_EXPLORE};
    h.explore.plans = clamp_u(d->plans);
    if (d->explored > 0) {
        h.explore.explored = clamp_u(d->explored);
        h.explore.cursor = d->cursor;
    }
    long k = intern(b, d->key);
    if (k >= 0)
        h.explore.key = b->strs[k];
    int rc =
        k == INTERN_EINVAL ? HERALD_EINVAL
        : k < 0            ? HERALD_ENOMEM
                : sb_printf(s, "{\"r\":\"explore\",\"p\":%ld,\"n\":%" PRIu64, k, clamp_u(d->plans));
    if (rc == 0 && d->explored > 0)
        rc = sb_printf(s, ",\"x\":%" PRIu64 ",\"cur\":\"%016" PRIx64 "\"", clamp_u(d->explored),
                       d->cursor);
    return held_close(b, rc, nstr0, bytes0, &h);
}

int fleetlog_builder_finish(fleetlog_builder_t *b, int64_t now_ms, char **out, size_t *outlen,
                            uint64_t *seq)
{
    return fleetlog_builder_finish_held(b, now_ms, out, outlen, seq, NULL);
}

/* Hand the held records, their items, digests and strings to `out` as a
 * batch of `seq` at now_ms; the builder keeps none of them. */
static void held_give(fleetlog_builder_t *b, uint64_t seq, int64_t now_ms, fleetlog_batch_t *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->instance, b->instance, sizeof(out->instance));
    out->seq = seq;
    out->t_ms = now_ms;
    for (size_t i = 0; i < b->nrec; i++) {
        fleetlog_rec_t *r = &b->hrec[i];
        if (r->type != FLEETLOG_REC_VISIT)
            continue;
        r->visit.items = r->visit.nitems ? b->hitems + b->hitem_at[i] : NULL;
        r->visit.digest = b->hdig_at[i] >= 0 ? &b->hdig[b->hdig_at[i]] : NULL;
    }
    out->recs = b->hrec;
    out->n = b->nrec;
    out->items = b->hitems;
    out->digests = b->hdig;
    out->ndigests = b->nhdig;
    out->strs = (const char **)b->strs;
    out->nstr = b->nstr;
    out->own_strs = true;
    b->hrec = NULL;
    b->caphrec = 0;
    free(b->hitem_at);
    free(b->hdig_at);
    b->hitem_at = NULL;
    b->hdig_at = NULL;
    b->hitems = NULL;
    b->nhitems = b->caphitems = 0;
    b->hdig = NULL;
    b->nhdig = b->caphdig = 0;
    b->strs = NULL;
    b->nstr = b->capstr = 0;
    free(b->last_asset);
    b->last_asset = NULL;
}

int fleetlog_builder_finish_held(fleetlog_builder_t *b, int64_t now_ms, char **out, size_t *outlen,
                                 uint64_t *seq, fleetlog_batch_t *held)
{
    if (b == NULL || out == NULL || now_ms < 0 || now_ms > FLEETLOG_MAX_INT ||
        b->next_seq > (uint64_t)FLEETLOG_MAX_INT)
        return HERALD_EINVAL;
    *out = NULL;
    sb_t o = {0};
    int rc = sb_reserve(&o, fleetlog_builder_bytes(b));
    if (rc == 0)
        rc = sb_printf(&o, "{\"v\":%d,\"inst\":\"%s\",\"seq\":%" PRIu64 ",\"t\":%" PRId64,
                       FLEETLOG_VERSION, b->instance, b->next_seq, now_ms);
    if (rc == 0)
        rc = sb_put(&o, ",\"str\":[", 8);
    for (size_t i = 0; rc == 0 && i < b->nstr; i++) {
        if (i > 0)
            rc = sb_put(&o, ",", 1);
        if (rc == 0)
            rc = sb_json_str(&o, b->strs[i]);
    }
    if (rc == 0)
        rc = sb_put(&o, "],\"rec\":[", 9);
    if (rc == 0 && b->rec.n > 0)
        rc = sb_put(&o, b->rec.p, b->rec.n);
    if (rc == 0)
        rc = sb_put(&o, "]}", 2);
    if (rc != 0) {
        free(o.p);
        return rc;
    }
    *out = o.p;
    if (outlen)
        *outlen = o.n;
    if (seq)
        *seq = b->next_seq;
    if (held != NULL)
        held_give(b, b->next_seq, now_ms, held);
    b->next_seq++;
    builder_clear(b);
    return 0;
}

/* ---- decoder ----------------------------------------------------------- */

typedef struct dctx {
    char *reason;
    size_t reasonlen;
    int rc;
    fleetlog_batch_t *b;
} dctx_t;

static bool fail(dctx_t *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(dctx_t *c, int rc, const char *fmt, ...)
{
    if (c->rc == 0) {
        c->rc = rc;
        if (c->reason && c->reasonlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->reason, c->reasonlen, fmt, ap);
            va_end(ap);
        }
    }
    return false;
}

/* Every member of o is one of names[0..n). */
static bool only(dctx_t *c, json_t *o, const char *const *names, size_t n, const char *what,
                 size_t idx)
{
    const char *k = fleetjson_unknown(o, names, n);
    if (k != NULL)
        return fail(c, HERALD_EPARSE, "%s %zu: unknown member \"%.32s\"", what, idx, k);
    return true;
}

/* Optional integer member in [lo, hi]; absent = def. */
static bool get_i(dctx_t *c, json_t *o, const char *k, int64_t lo, int64_t hi, int64_t def,
                  int64_t *out, const char *what, size_t idx)
{
    json_t *v = json_object_get(o, k);
    *out = def;
    if (v == NULL)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return fail(c, HERALD_EPARSE,
                    "%s %zu: \"%s\" is not an integer in [%" PRId64 ", %" PRId64 "]", what, idx, k,
                    lo, hi);
    *out = json_integer_value(v);
    return true;
}

/* Optional string-table index member; absent = NULL. */
static bool get_s(dctx_t *c, json_t *o, const char *k, bool required, const char **out,
                  const char *what, size_t idx)
{
    json_t *v = json_object_get(o, k);
    *out = NULL;
    if (v == NULL) {
        if (required)
            return fail(c, HERALD_EPARSE, "%s %zu: missing \"%s\"", what, idx, k);
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) >= c->b->nstr)
        return fail(c, HERALD_EPARSE, "%s %zu: \"%s\" is not a string index", what, idx, k);
    *out = c->b->strs[json_integer_value(v)];
    return true;
}

/* Optional 16-hex-digit member; absent = 0. */
static bool get_hex(dctx_t *c, json_t *o, const char *k, uint64_t *out, const char *what,
                    size_t idx)
{
    json_t *v = json_object_get(o, k);
    *out = 0;
    if (v == NULL)
        return true;
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s == NULL || json_string_length(v) != 16)
        return fail(c, HERALD_EPARSE, "%s %zu: \"%s\" is not 16 hex digits", what, idx, k);
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        char ch = s[i];
        unsigned d = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
                     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                                              : 16;
        if (d == 16)
            return fail(c, HERALD_EPARSE, "%s %zu: \"%s\" is not 16 hex digits", what, idx, k);
        x = x << 4 | d;
    }
    *out = x;
    return true;
}

static const char *const visit_members[] = {"r",     "t",    "c", "p",   "tp",  "st",
                                            "think", "html", "f", "val", "dig", "it"};
static const char *const item_members[] = {"k", "u", "kd", "as", "co", "o", "s", "g", "f"};
static const char *const asset_members[] = {"r",  "k",   "st",  "sz", "ct", "et",
                                            "lm", "loc", "pol", "fr", "f"};
static const char *const explore_members[] = {"r", "p", "n", "x", "cur"};
#define N_(a) (sizeof(a) / sizeof((a)[0]))

static bool parse_item(dctx_t *c, json_t *io, pagemap_item_t *it, size_t ridx)
{
    if (!json_is_object(io))
        return fail(c, HERALD_EPARSE, "record %zu: an item is not an object", ridx);
    if (!only(c, io, item_members, N_(item_members), "record", ridx))
        return false;
    const char *key, *url;
    int64_t co, o, s, g, f;
    if (!get_s(c, io, "k", true, &key, "record", ridx) ||
        !get_s(c, io, "u", false, &url, "record", ridx) ||
        !get_s(c, io, "as", false, &it->as, "record", ridx) ||
        !get_i(c, io, "co", 0, 2, 0, &co, "record", ridx) ||
        !get_i(c, io, "o", 0, UINT32_MAX, 0, &o, "record", ridx) ||
        !get_i(c, io, "s", 0, SRC_ALL, 0, &s, "record", ridx) ||
        !get_i(c, io, "g", 0, UINT32_MAX, 0, &g, "record", ridx) ||
        !get_i(c, io, "f", 0, FLEETLOG_IF_ALL, 0, &f, "record", ridx))
        return false;
    if (key[0] == '\0' || (url != NULL && url[0] == '\0'))
        return fail(c, HERALD_EPARSE, "record %zu: an item has an empty key or URL", ridx);
    json_t *kd = json_object_get(io, "kd");
    if (kd == NULL || !json_is_string(kd) || pagemap_kind_parse(json_string_value(kd), &it->kind))
        return fail(c, HERALD_EPARSE, "record %zu: an item has no valid \"kd\"", ridx);
    it->key = key;
    it->url = url ? url : key;
    it->crossorigin = (pagemap_cors_t)co;
    it->order = (unsigned)o;
    it->sources = (unsigned)s;
    it->group = (uint32_t)g;
    it->blocking = f & FLEETLOG_IF_BLOCKING;
    it->strong = f & FLEETLOG_IF_STRONG;
    it->conditional = f & FLEETLOG_IF_CONDITIONAL;
    it->skipped = f & FLEETLOG_IF_SKIPPED;
    it->push_cancelled = f & FLEETLOG_IF_PUSH_CANCELLED;
    return true;
}

static bool parse_visit(dctx_t *c, json_t *ro, fleetlog_rec_t *r, size_t *nitems, size_t ridx)
{
    fleetlog_batch_t *b = c->b;
    pagemap_visit_t *v = &r->visit;
    if (!only(c, ro, visit_members, N_(visit_members), "record", ridx))
        return false;
    int64_t t, st, html, f;
    if (!get_i(c, ro, "t", 0, FLEETLOG_MAX_INT, -1, &t, "record", ridx) ||
        !get_hex(c, ro, "c", &r->client, "record", ridx) ||
        !get_s(c, ro, "p", true, &v->page_key, "record", ridx) ||
        !get_s(c, ro, "tp", false, &v->template_key, "record", ridx) ||
        !get_i(c, ro, "st", 0, 999, 0, &st, "record", ridx) ||
        !get_i(c, ro, "html", 0, FLEETLOG_MAX_INT, 0, &html, "record", ridx) ||
        !get_i(c, ro, "f", 0, FLEETLOG_VF_ALL, 0, &f, "record", ridx) ||
        !get_hex(c, ro, "val", &v->validator, "record", ridx))
        return false;
    if (t < 0)
        return fail(c, HERALD_EPARSE, "record %zu: missing \"t\"", ridx);
    if (v->page_key[0] == '\0' || (v->template_key != NULL && v->template_key[0] == '\0'))
        return fail(c, HERALD_EPARSE, "record %zu: empty page or template key", ridx);
    v->now_ms = t;
    v->status = (int)st;
    v->html_size = (uint64_t)html;
    v->think_ms = -1;
    json_t *think = json_object_get(ro, "think");
    if (think != NULL) {
        if (!json_is_number(think) || !isfinite(json_number_value(think)) ||
            json_number_value(think) < 0 || json_number_value(think) > THINK_MAX)
            return fail(c, HERALD_EPARSE, "record %zu: bad \"think\"", ridx);
        v->think_ms = json_number_value(think);
    }
    v->html_scanned = f & FLEETLOG_VF_HTML_SCANNED;
    v->css_scanned = f & FLEETLOG_VF_CSS_SCANNED;
    v->browser = f & FLEETLOG_VF_BROWSER;
    v->multiplexed = f & FLEETLOG_VF_MULTIPLEXED;
    v->pushes_used = f & FLEETLOG_VF_PUSHES_USED;
    v->page_cookie = f & FLEETLOG_VF_PAGE_COOKIE;
    v->page_set_cookie = f & FLEETLOG_VF_PAGE_SET_COOKIE;
    v->supplement = f & FLEETLOG_VF_SUPPLEMENT;
    json_t *dig = json_object_get(ro, "dig");
    if (dig != NULL) {
        if (!json_is_string(dig))
            return fail(c, HERALD_EPARSE, "record %zu: \"dig\" is not a string", ridx);
        digest_t *d = &b->digests[b->ndigests];
        const char *why = NULL;
        int rc = digest_parse(json_string_value(dig), json_string_length(dig), d, &why);
        if (rc == HERALD_ENOMEM)
            return fail(c, rc, "out of memory");
        if (rc != 0)
            return fail(c, HERALD_EPARSE, "record %zu: bad \"dig\": %s", ridx,
                        why ? why : herald_strerror(rc));
        b->ndigests++;
        v->digest = d;
    }
    json_t *its = json_object_get(ro, "it");
    if (!json_is_array(its)) /* its size was checked before the items were counted */
        return fail(c, HERALD_EPARSE, "record %zu: \"it\" is not an array", ridx);
    v->items = json_array_size(its) ? &b->items[*nitems] : NULL;
    v->nitems = json_array_size(its);
    for (size_t i = 0; i < v->nitems; i++)
        if (!parse_item(c, json_array_get(its, i), &b->items[(*nitems)++], ridx))
            return false;
    return true;
}

static bool parse_asset(dctx_t *c, json_t *ro, fleetlog_rec_t *r, size_t ridx)
{
    pagemap_asset_meta_t *m = &r->meta;
    if (!only(c, ro, asset_members, N_(asset_members), "record", ridx))
        return false;
    int64_t st, sz, pol, fr, f;
    if (!get_s(c, ro, "k", true, &r->asset_key, "record", ridx) ||
        !get_i(c, ro, "st", 0, 999, 0, &st, "record", ridx) ||
        !get_i(c, ro, "sz", 0, FLEETLOG_MAX_INT, 0, &sz, "record", ridx) ||
        !get_s(c, ro, "ct", false, &m->content_type, "record", ridx) ||
        !get_s(c, ro, "et", false, &m->etag, "record", ridx) ||
        !get_s(c, ro, "lm", false, &m->last_modified, "record", ridx) ||
        !get_s(c, ro, "loc", false, &m->location, "record", ridx) ||
        !get_i(c, ro, "pol", 0, CACHEPOLICY_ALL, 0, &pol, "record", ridx) ||
        !get_i(c, ro, "fr", 0, FLEETLOG_MAX_INT, -1, &fr, "record", ridx) ||
        !get_i(c, ro, "f", 0, 1, 0, &f, "record", ridx))
        return false;
    if (r->asset_key[0] == '\0')
        return fail(c, HERALD_EPARSE, "record %zu: empty asset key", ridx);
    m->status = (int)st;
    m->size = (uint64_t)sz;
    m->policy = (unsigned)pol;
    m->fresh_ms = fr;
    m->pushed = f != 0;
    return true;
}

static bool parse_explore(dctx_t *c, json_t *ro, fleetlog_rec_t *r, size_t ridx)
{
    pagemap_explore_delta_t *d = &r->explore;
    if (!only(c, ro, explore_members, N_(explore_members), "record", ridx))
        return false;
    int64_t n, x;
    if (!get_s(c, ro, "p", true, &d->key, "record", ridx) ||
        !get_i(c, ro, "n", 1, FLEETLOG_MAX_INT, 0, &n, "record", ridx) ||
        !get_i(c, ro, "x", 1, FLEETLOG_MAX_INT, 0, &x, "record", ridx) ||
        !get_hex(c, ro, "cur", &d->cursor, "record", ridx))
        return false;
    if (d->key[0] == '\0')
        return fail(c, HERALD_EPARSE, "record %zu: empty page key", ridx);
    if (n == 0)
        return fail(c, HERALD_EPARSE, "record %zu: missing \"n\"", ridx);
    if (x > n)
        return fail(c, HERALD_EPARSE, "record %zu: \"x\" over \"n\"", ridx);
    if ((x > 0) != (json_object_get(ro, "cur") != NULL))
        return fail(c, HERALD_EPARSE, "record %zu: \"cur\" without \"x\" or the reverse", ridx);
    d->plans = (uint64_t)n;
    d->explored = (uint64_t)x;
    return true;
}

/* Check the frame and the string table; size the arrays. */
static bool parse_frame(dctx_t *c, json_t *root, json_t **recs, size_t *nitems, size_t *ndig)
{
    fleetlog_batch_t *b = c->b;
    json_t *inst = json_object_get(root, "inst");
    if (!json_is_string(inst) || !fleetlog_instance_valid(json_string_value(inst)) ||
        strlen(json_string_value(inst)) != json_string_length(inst))
        return fail(c, HERALD_EPARSE, "bad \"inst\"");
    memcpy(b->instance, json_string_value(inst), json_string_length(inst) + 1);
    int64_t seq, t;
    if (!get_i(c, root, "seq", 1, FLEETLOG_MAX_INT, 0, &seq, "batch", 0) ||
        !get_i(c, root, "t", 0, FLEETLOG_MAX_INT, -1, &t, "batch", 0))
        return false;
    if (seq == 0 || t < 0)
        return fail(c, HERALD_EPARSE, "missing \"seq\" or \"t\"");
    b->seq = (uint64_t)seq;
    b->t_ms = t;
    json_t *str = json_object_get(root, "str");
    *recs = json_object_get(root, "rec");
    if (!json_is_array(str) || !json_is_array(*recs))
        return fail(c, HERALD_EPARSE, "\"str\" or \"rec\" is not an array");
    if (json_array_size(str) > FLEETLOG_MAX_STRINGS)
        return fail(c, HERALD_ETOOBIG, "%zu strings (at most %d)", json_array_size(str),
                    FLEETLOG_MAX_STRINGS);
    if (json_array_size(*recs) > FLEETLOG_MAX_RECORDS)
        return fail(c, HERALD_ETOOBIG, "%zu records (at most %d)", json_array_size(*recs),
                    FLEETLOG_MAX_RECORDS);
    size_t bytes = 0;
    for (size_t i = 0; i < json_array_size(str); i++) {
        json_t *s = json_array_get(str, i);
        if (!json_is_string(s))
            return fail(c, HERALD_EPARSE, "string %zu is not a string", i);
        size_t n = json_string_length(s);
        if (n > FLEETLOG_MAX_STRING)
            return fail(c, HERALD_ETOOBIG, "string %zu has %zu bytes (at most %d)", i, n,
                        FLEETLOG_MAX_STRING);
        if (memchr(json_string_value(s), '\0', n) != NULL)
            return fail(c, HERALD_EPARSE, "string %zu contains NUL", i);
        bytes += n + 1;
    }
    *nitems = *ndig = 0;
    for (size_t i = 0; i < json_array_size(*recs); i++) {
        json_t *ro = json_array_get(*recs, i), *it = json_object_get(ro, "it");
        if (it != NULL && json_is_array(it)) {
            if (json_array_size(it) > FLEETLOG_MAX_VISIT_ITEMS)
                return fail(c, HERALD_ETOOBIG, "record %zu: %zu items (at most %d)", i,
                            json_array_size(it), FLEETLOG_MAX_VISIT_ITEMS);
            *nitems += json_array_size(it);
        }
        if (json_object_get(ro, "dig") != NULL)
            (*ndig)++;
    }
    if (*nitems > FLEETLOG_MAX_ITEMS)
        return fail(c, HERALD_ETOOBIG, "%zu items (at most %d)", *nitems, FLEETLOG_MAX_ITEMS);
    b->arena = malloc(bytes ? bytes : 1);
    b->strs = malloc((json_array_size(str) ? json_array_size(str) : 1) * sizeof(*b->strs));
    if (b->arena == NULL || b->strs == NULL)
        return fail(c, HERALD_ENOMEM, "out of memory");
    char *p = b->arena;
    for (size_t i = 0; i < json_array_size(str); i++) {
        json_t *s = json_array_get(str, i);
        size_t n = json_string_length(s);
        memcpy(p, json_string_value(s), n + 1);
        b->strs[i] = p;
        p += n + 1;
    }
    b->nstr = json_array_size(str);
    return true;
}

static bool parse_batch(dctx_t *c, json_t *root)
{
    fleetlog_batch_t *b = c->b;
    json_t *recs = NULL;
    size_t nitems = 0, ndig = 0;
    if (!parse_frame(c, root, &recs, &nitems, &ndig))
        return false;
    size_t n = json_array_size(recs);
    b->recs = calloc(n ? n : 1, sizeof(*b->recs));
    b->items = calloc(nitems ? nitems : 1, sizeof(*b->items));
    b->digests = calloc(ndig ? ndig : 1, sizeof(*b->digests));
    if (b->recs == NULL || b->items == NULL || b->digests == NULL)
        return fail(c, HERALD_ENOMEM, "out of memory");
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *ro = json_array_get(recs, i), *r = json_object_get(ro, "r");
        fleetlog_rec_t *rec = &b->recs[i];
        if (!json_is_object(ro) || !json_is_string(r))
            return fail(c, HERALD_EPARSE, "record %zu: not an object with \"r\"", i);
        if (strcmp(json_string_value(r), "visit") == 0) {
            rec->type = FLEETLOG_REC_VISIT;
            if (!parse_visit(c, ro, rec, &used, i))
                return false;
        } else if (strcmp(json_string_value(r), "asset") == 0) {
            rec->type = FLEETLOG_REC_ASSET;
            if (!parse_asset(c, ro, rec, i))
                return false;
        } else if (strcmp(json_string_value(r), "explore") == 0) {
            rec->type = FLEETLOG_REC_EXPLORE;
            if (!parse_explore(c, ro, rec, i))
                return false;
        } else {
            return fail(c, HERALD_EPARSE, "record %zu: unknown type", i);
        }
        b->n = i + 1;
    }
    return true;
}

static const char *const batch_members[] = {"v", "inst", "seq", "t", "str", "rec"};

int fleetlog_decode(const char *data, size_t len, fleetlog_batch_t *out, char *reason,
                    size_t reasonlen)
{
    if (out == NULL)
        return HERALD_EINVAL;
    memset(out, 0, sizeof(*out));
    json_t *root = NULL;
    int rc = fleetjson_open(data, len, FLEETLOG_MAX_BATCH_BYTES, FLEETLOG_VERSION, batch_members,
                            N_(batch_members), &root, reason, reasonlen);
    if (rc != 0)
        return rc;
    dctx_t c = {.reason = reason, .reasonlen = reasonlen, .b = out};
    parse_batch(&c, root);
    json_decref(root);
    if (c.rc != 0)
        fleetlog_batch_dispose(out);
    return c.rc;
}

void fleetlog_batch_dispose(fleetlog_batch_t *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->ndigests; i++)
        digest_dispose(&b->digests[i]);
    free(b->digests);
    free(b->items);
    free(b->recs);
    for (size_t i = 0; b->own_strs && i < b->nstr; i++)
        free((char *)b->strs[i]);
    free(b->strs);
    free(b->arena);
    memset(b, 0, sizeof(*b));
}
