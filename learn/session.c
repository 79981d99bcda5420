/* A connection's visits and what it asked for (see session.h). */
#include "session.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/error.h"

/* A small FIFO set of malloc'd strings: the oldest is forgotten when full. */
typedef struct strring {
    char **v;
    size_t n, head, cap;
} strring_t;

typedef struct slot {
    visit_t *v;
    uint64_t due; /* window end; 0 = hand over at once */
} slot_t;

struct session {
    uint64_t window_ms;
    slot_t *slots; /* most recent last */
    size_t n, cap;
    strring_t requested, pushed, pages, navs;
};

static bool ring_has(const strring_t *r, const char *s)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i], s) == 0)
            return true;
    return false;
}

static int ring_add(strring_t *r, const char *s)
{
    if (ring_has(r, s))
        return 0;
    if (r->v == NULL && (r->v = calloc(r->cap, sizeof(*r->v))) == NULL)
        return HERALD_ENOMEM; /* allocated on first use: most connections never need it */
    size_t len = strlen(s) + 1;
    char *c = malloc(len);
    if (c == NULL)
        return HERALD_ENOMEM;
    memcpy(c, s, len);
    if (r->n < r->cap) {
        r->v[r->n++] = c;
        return 0;
    }
    free(r->v[r->head]);
    r->v[r->head] = c;
    r->head = (r->head + 1) % r->cap;
    return 0;
}

static void ring_dispose(strring_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i]);
    free(r->v);
    memset(r, 0, sizeof(*r));
}

/* Case-insensitive: does the value contain token t? */
static bool has_word(const char *v, const char *t)
{
    if (v == NULL)
        return false;
    size_t n = strlen(t);
    for (const char *p = v; *p; p++)
        if (strncasecmp(p, t, n) == 0)
            return true;
    return false;
}

/* Does the comma/semicolon-separated header value name token t (case-insensitive)? */
static bool has_token(const char *v, const char *t)
{
    size_t n = strlen(t);
    for (const char *p = v; v != NULL && *p;) {
        p += strspn(p, " \t,;");
        size_t len = strcspn(p, ",;");
        size_t trim = len;
        while (trim > 0 && (p[trim - 1] == ' ' || p[trim - 1] == '\t'))
            trim--;
        if (trim == n && strncasecmp(p, t, n) == 0)
            return true;
        p += len;
    }
    return false;
}

session_class_t session_classify_purpose(session_class_t cls, const char *sec_purpose)
{
    if ((cls == SESSION_PAGE || cls == SESSION_MAYBE_PAGE) && has_token(sec_purpose, "prefetch"))
        return SESSION_PREFETCH;
    return cls;
}

bool session_is_reload(const char *cache_control, const char *pragma)
{
    if (has_token(pragma, "no-cache") || has_token(cache_control, "no-cache"))
        return true;
    for (const char *p = cache_control; p != NULL && *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        if (len > 8 && strncasecmp(p, "max-age=", 8) == 0) {
            size_t zeros = strspn(p + 8, "0");
            size_t rest = 8 + zeros;
            while (rest < len && (p[rest] == ' ' || p[rest] == '\t'))
                rest++;
            if (zeros > 0 && rest == len)
                return true; /* max-age=0 (or 00...) */
        }
        p += len;
    }
    return false;
}

session_class_t session_classify(const char *method, const char *sec_fetch_dest,
                                 const char *sec_fetch_mode, const char *accept)
{
    if (method == NULL || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0))
        return SESSION_OTHER;
    if (sec_fetch_dest != NULL || sec_fetch_mode != NULL) {
        if ((sec_fetch_dest != NULL && strcasecmp(sec_fetch_dest, "document") == 0) ||
            (sec_fetch_mode != NULL && strcasecmp(sec_fetch_mode, "navigate") == 0))
            return SESSION_PAGE;
        return SESSION_SUBRESOURCE;
    }
    if (has_word(accept, "text/html"))
        return SESSION_PAGE;
    if (accept == NULL || accept[strspn(accept, " \t")] == '\0' ||
        strcmp(accept + strspn(accept, " \t"), "*/*") == 0)
        return SESSION_MAYBE_PAGE;
    return SESSION_SUBRESOURCE;
}

int session_create(uint64_t window_ms, session_t **out)
{
    if (out == NULL)
        return HERALD_EINVAL;
    session_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return HERALD_ENOMEM;
    s->window_ms = window_ms;
    s->requested.cap = s->pushed.cap = SESSION_URLS;
    s->pages.cap = SESSION_PAGES;
    s->navs.cap = SESSION_NAVS;
    *out = s;
    return 0;
}

void session_destroy(session_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        visit_unref(s->slots[i].v);
    free(s->slots);
    ring_dispose(&s->requested);
    ring_dispose(&s->pushed);
    ring_dispose(&s->pages);
    ring_dispose(&s->navs);
    free(s);
}

static bool slot_open(const slot_t *sl, uint64_t now)
{
    return visit_state(sl->v) == VISIT_OPEN && now < sl->due && !visit_not_html(sl->v) &&
           !visit_dormant(sl->v);
}

session_class_t session_resolve(session_t *s, session_class_t cls, bool has_referer, uint64_t now)
{
    if (cls != SESSION_MAYBE_PAGE)
        return cls;
    return !has_referer && session_attribute(s, NULL, now) == NULL ? SESSION_PAGE
                                                                   : SESSION_SUBRESOURCE;
}

/*
 * The ring entry of a transition: "F\n<from>" for a source, "P\n<from>\n<page>"
 * for a pair. malloc'd; NULL on ENOMEM.
 */
static char *nav_entry(const char *from, const char *page)
{
    size_t lf = strlen(from), lp = page ? strlen(page) : 0;
    char *e = malloc(lf + lp + 4);
    if (e == NULL)
        return NULL;
    e[0] = page ? 'P' : 'F';
    e[1] = '\n';
    memcpy(e + 2, from, lf);
    if (page) {
        e[2 + lf] = '\n';
        memcpy(e + 3 + lf, page, lp + 1);
    } else {
        e[2 + lf] = '\0';
    }
    return e;
}

/*
 * Claim one transition entry: *counts is whether it was new. With `remember`
 * it is added to the ring (on ENOMEM *counts becomes false: what cannot be
 * remembered does not count). 0 or HERALD_ENOMEM.
 */
static int nav_claim(session_t *s, const char *from, const char *page, bool *counts)
{
    *counts = false;
    if (from == NULL)
        return 0;
    char *e = nav_entry(from, page);
    if (e == NULL)
        return HERALD_ENOMEM;
    int rc = 0;
    if (!ring_has(&s->navs, e)) {
        rc = ring_add(&s->navs, e);
        *counts = rc == 0;
    }
    free(e);
    return rc;
}

/* Decide (and remember) the transition weight of v. 0 or HERALD_ENOMEM (what failed counts not). */
static int nav_counts(session_t *s, visit_t *v)
{
    const char *from = visit_from_page_key(v), *tfrom = visit_from_template_key(v);
    const char *page = visit_page_key(v);
    bool f = false, p = false, tf = false, tp = false;
    int rc = nav_claim(s, from, NULL, &f);
    int rc2 = nav_claim(s, from, page, &p);
    rc = rc ? rc : rc2;
    rc2 = nav_claim(s, tfrom, NULL, &tf);
    rc = rc ? rc : rc2;
    rc2 = nav_claim(s, tfrom, page, &tp);
    rc = rc ? rc : rc2;
    visit_set_nav_counts(v, f, p, tf, tp);
    return rc;
}

/* Whether the page (and template) of a visit count, remembering them. 0 or HERALD_ENOMEM. */
static int page_counts(session_t *s, const char *page_key, const char *template_key, bool *counts,
                       bool *counts_template)
{
    *counts = !ring_has(&s->pages, page_key);
    *counts_template = *counts && template_key != NULL && !ring_has(&s->pages, template_key);
    int rc = ring_add(&s->pages, page_key);
    if (rc == 0 && template_key != NULL)
        rc = ring_add(&s->pages, template_key);
    if (rc != 0)
        *counts = *counts_template = false;
    return rc;
}

/* The visitor is on a prefetched page: its dormant visit becomes an open one from now. */
static int activate(session_t *s, slot_t *sl, uint64_t now)
{
    bool counts, counts_template;
    int rc =
        page_counts(s, visit_page_key(sl->v), visit_template_key(sl->v), &counts, &counts_template);
    visit_activate(sl->v, counts, counts_template);
    int rc2 = nav_counts(s, sl->v);
    sl->due = now + s->window_ms;
    return rc ? rc : rc2;
}

/* The dormant visit of a prefetch of url still waiting at now, or NULL. */
static slot_t *dormant_of(session_t *s, const char *url, uint64_t now)
{
    for (size_t i = s->n; url != NULL && i-- > 0;) {
        slot_t *sl = &s->slots[i];
        if (visit_dormant(sl->v) && now < sl->due && visit_state(sl->v) == VISIT_OPEN &&
            !visit_not_html(sl->v) && strcmp(visit_url(sl->v), url) == 0)
            return sl;
    }
    return NULL;
}

int session_open(session_t *s, visit_page_t *pg, visit_t **out)
{
    if (s == NULL || pg == NULL || out == NULL || pg->page_key == NULL || pg->url == NULL)
        return HERALD_EINVAL;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        slot_t *v = realloc(s->slots, cap * sizeof(*v));
        if (v == NULL)
            return HERALD_ENOMEM;
        s->slots = v;
        s->cap = cap;
    }
    int rc = 0;
    /* a navigation to a prefetched page: the browser did not use the prefetch;
     * a prefetch of it again: the new one replaces it */
    for (slot_t *sl; (sl = dormant_of(s, pg->url, pg->t_ms)) != NULL;)
        sl->due = 0;
    if (!pg->prefetch) {
        /* a navigation onward from a prefetched page: the visitor was on it */
        slot_t *from = pg->reload ? NULL : dormant_of(s, pg->referer, pg->t_ms);
        if (from != NULL && (rc = activate(s, from, pg->t_ms)) != 0)
            return rc;
    }
    pg->counts = !pg->prefetch && !ring_has(&s->pages, pg->page_key);
    pg->counts_template =
        pg->counts && pg->template_key != NULL && !ring_has(&s->pages, pg->template_key);
    visit_t *v = NULL;
    if ((rc = visit_create(pg, &v)) != 0)
        return rc;
    if (!pg->prefetch) {
        bool c, ct;
        if ((rc = page_counts(s, pg->page_key, pg->template_key, &c, &ct)) != 0 ||
            (rc = nav_counts(s, v)) != 0) {
            visit_unref(v);
            return rc;
        }
    }
    s->slots[s->n++] =
        (slot_t){v, pg->t_ms + (pg->prefetch ? (uint64_t)SESSION_PREFETCH_MS : s->window_ms)};
    /* Past SESSION_MAX_OPEN open visits the oldest close their window now:
     * a browser's follow-ups come for the newest page anyway. Past
     * SESSION_MAX_DORMANT prefetches the oldest is given up likewise. */
    size_t open = 0, dormant = 0;
    for (size_t i = s->n; i-- > 0;) {
        slot_t *sl = &s->slots[i];
        if (sl->due == 0 || visit_state(sl->v) != VISIT_OPEN)
            continue;
        if (visit_dormant(sl->v) ? ++dormant > SESSION_MAX_DORMANT : ++open > SESSION_MAX_OPEN)
            sl->due = 0;
    }
    visit_ref(v);
    *out = v;
    return 0;
}

visit_t *session_attribute(session_t *s, const char *referer_key, uint64_t now)
{
    visit_t *named = NULL;
    for (size_t i = s->n; i-- > 0;) {
        const slot_t *sl = &s->slots[i];
        if (!slot_open(sl, now))
            continue;
        if (referer_key == NULL)
            return sl->v; /* most recent first */
        if (strcmp(visit_url(sl->v), referer_key) == 0)
            return sl->v;
        if (named == NULL && visit_has(sl->v, referer_key, PAGEMAP_SRC_FOLLOWUP | PAGEMAP_SRC_PUSH))
            named = sl->v;
    }
    if (named != NULL || referer_key == NULL)
        return named;
    /* the page came from the browser's prefetch cache: its follow-ups start its visit */
    slot_t *sl = dormant_of(s, referer_key, now);
    if (sl == NULL)
        return NULL;
    (void)activate(s, sl, now); /* on ENOMEM it teaches nothing, but still attributes */
    return sl->v;
}

size_t session_expire(session_t *s, uint64_t now, visit_t **out, size_t max)
{
    size_t got = 0, keep = 0;
    for (size_t i = 0; i < s->n; i++) {
        slot_t sl = s->slots[i];
        bool done =
            got < max && (now >= sl.due || visit_state(sl.v) != VISIT_OPEN || visit_not_html(sl.v));
        if (!done) {
            s->slots[keep++] = sl;
            continue;
        }
        if (visit_state(sl.v) == VISIT_OPEN)
            visit_set_state(sl.v, VISIT_EXPIRED);
        out[got++] = sl.v;
    }
    s->n = keep;
    return got;
}

uint64_t session_next_due(const session_t *s)
{
    uint64_t due = UINT64_MAX;
    for (size_t i = 0; i < s->n; i++) {
        const slot_t *sl = &s->slots[i];
        uint64_t d = visit_state(sl->v) != VISIT_OPEN || visit_not_html(sl->v) ? 0 : sl->due;
        if (d < due)
            due = d;
    }
    return due;
}

size_t session_visits(const session_t *s)
{
    return s->n;
}

int session_note_requested(session_t *s, const char *key)
{
    return ring_add(&s->requested, key);
}

bool session_requested(const session_t *s, const char *key)
{
    return s != NULL && key != NULL && ring_has(&s->requested, key);
}

int session_note_pushed(session_t *s, const char *key)
{
    return ring_add(&s->pushed, key);
}

bool session_pushed(const session_t *s, const char *key)
{
    return s != NULL && key != NULL && ring_has(&s->pushed, key);
}
