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
    strring_t requested, pushed, pages;
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
    free(s);
}

static bool slot_open(const slot_t *sl, uint64_t now)
{
    return visit_state(sl->v) == VISIT_OPEN && now < sl->due && !visit_not_html(sl->v);
}

session_class_t session_resolve(session_t *s, session_class_t cls, bool has_referer, uint64_t now)
{
    if (cls != SESSION_MAYBE_PAGE)
        return cls;
    return !has_referer && session_attribute(s, NULL, now) == NULL ? SESSION_PAGE
                                                                   : SESSION_SUBRESOURCE;
}

int session_open(session_t *s, visit_page_t *pg, visit_t **out)
{
    if (s == NULL || pg == NULL || out == NULL || pg->page_key == NULL)
        return HERALD_EINVAL;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        slot_t *v = realloc(s->slots, cap * sizeof(*v));
        if (v == NULL)
            return HERALD_ENOMEM;
        s->slots = v;
        s->cap = cap;
    }
    pg->counts = !ring_has(&s->pages, pg->page_key);
    pg->counts_template =
        pg->counts && pg->template_key != NULL && !ring_has(&s->pages, pg->template_key);
    visit_t *v = NULL;
    int rc = visit_create(pg, &v);
    if (rc != 0)
        return rc;
    if ((rc = ring_add(&s->pages, pg->page_key)) != 0 ||
        (pg->template_key != NULL && (rc = ring_add(&s->pages, pg->template_key)) != 0)) {
        visit_unref(v);
        return rc;
    }
    s->slots[s->n++] = (slot_t){v, pg->t_ms + s->window_ms};
    /* Past SESSION_MAX_OPEN open visits the oldest close their window now:
     * a browser's follow-ups come for the newest page anyway. */
    size_t open = 0;
    for (size_t i = s->n; i-- > 0;)
        if (s->slots[i].due != 0 && visit_state(s->slots[i].v) == VISIT_OPEN &&
            ++open > SESSION_MAX_OPEN)
            s->slots[i].due = 0;
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
    return named;
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
