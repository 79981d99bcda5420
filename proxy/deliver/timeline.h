/*
 * The timeline of a page's last delivered visit, for the admin page: when
 * the page's request arrived, when herald sent its 103 and which links, when
 * each push was promised, got its first byte from the origin, was fetched
 * and finished (or was cancelled), when the origin's response head came and
 * when the HTML ended. An operator sees from it whether the origin's think
 * time (arrival to response head) was filled.
 *
 * Two halves:
 * - a recorder (timeline_t), made by delivery.c on the page's worker when it
 *   first pushes or hints for a page; refcounted by the page and each of its
 *   pushes (a push may outlive the page's stream) and touched only on that
 *   worker's loop, so without a lock;
 * - a process-wide store of the last timeline per page key, which the
 *   recorder moves into when its last reference goes. One mutex; bounded:
 *   at most TIMELINE_MAX_PAGES pages, least recently recorded dropped first,
 *   and at most TIMELINE_MAX_ITEMS items per timeline (the rest are counted
 *   in `dropped`). The admin (main thread) reads copies out.
 *
 * Times are milliseconds after the page's request head arrived (uv_hrtime()
 * based); a negative time means "did not happen".
 */
#ifndef HERALD_TIMELINE_H
#define HERALD_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Items (pushes and hinted links) kept per timeline, at most. */
#define TIMELINE_MAX_ITEMS 64
/** Pages whose last timeline is kept, at most. */
#define TIMELINE_MAX_PAGES 256

/** How an item was delivered. */
typedef enum timeline_via {
    TIMELINE_PUSH,
    TIMELINE_HINT,
} timeline_via_t;

/** How a push ended. */
typedef enum timeline_outcome {
    TIMELINE_OPEN,      /* not ended when the timeline was stored */
    TIMELINE_COMPLETED, /* the whole response went to the client */
    TIMELINE_CANCELLED, /* the client reset it (or it never started) */
    TIMELINE_FAILED,    /* the origin's answer was unusable: herald reset it */
} timeline_outcome_t;

typedef struct timeline_item {
    char *url; /* owned */
    timeline_via_t via;
    timeline_outcome_t outcome;
    double at_ms;         /* promised (push) or sent in the 103 (hint) */
    double fetch_ms;      /* push: its origin request started; -1: never */
    double first_byte_ms; /* push: first response byte from the origin; -1: none */
    double fetched_ms;    /* push: the origin's response ended; -1: not */
    double end_ms;        /* push: the stream closed (completed or cancelled); -1: not */
    uint64_t bytes;       /* push: body bytes from the origin */
} timeline_item_t;

typedef struct timeline {
    char *page;         /* the map's page key (owned) */
    int64_t wall_ms;    /* CLOCK_REALTIME at the request's arrival, Unix ms */
    uint64_t t0;        /* uv_hrtime() at arrival */
    double hints_ms;    /* the 103 went out; -1: none */
    double head_ms;     /* the origin's final response head arrived; -1: not */
    double html_end_ms; /* the page's response ended; -1: not */
    int status;         /* the page's final status, 0 until known */
    size_t n;           /* items used */
    size_t dropped;     /* items beyond TIMELINE_MAX_ITEMS, not recorded */
    timeline_item_t *v; /* n of them (owned; grown, at most TIMELINE_MAX_ITEMS) */
    size_t cap;         /* bytes allocated at v */
    int refs;           /* recorder references */
} timeline_t;

/**
 * A new recorder for `page` (copied) whose request arrived at uv_hrtime()
 * `t0`, CLOCK_REALTIME `wall_ms`. One reference, the caller's. Never NULL.
 */
timeline_t *timeline_begin(const char *page, uint64_t t0, int64_t wall_ms);

/** Another reference to t (NULL passes through). */
timeline_t *timeline_ref(timeline_t *t);

/**
 * Drop a reference; the last one moves t into the store (replacing the
 * page's previous timeline, which is freed). NULL is a no-op.
 */
void timeline_release(timeline_t *t);

/** Milliseconds from t's arrival to uv_hrtime() `now` (0 when now is 0 or earlier). */
double timeline_ms(const timeline_t *t, uint64_t now);

/**
 * Record an item (url copied) at uv_hrtime() `now`. Returns its index, or
 * -1 when t already holds TIMELINE_MAX_ITEMS (counted in t->dropped).
 */
int timeline_add(timeline_t *t, const char *url, timeline_via_t via, uint64_t now);

/** The item at idx (from timeline_add), or NULL when idx < 0. */
timeline_item_t *timeline_item(timeline_t *t, int idx);

/**
 * A copy of the page's last stored timeline into *out (owned by the caller:
 * timeline_dispose). HERALD_ENOTFOUND when none is stored. Any thread.
 */
int timeline_store_get(const char *page, timeline_t *out);

/** Forget the page's stored timeline (admin "forget page"). Any thread. */
void timeline_store_forget(const char *page);

/** Pages with a stored timeline (any thread). */
size_t timeline_store_count(void);

/** Free everything stored (at exit, and for tests). */
void timeline_store_clear(void);

/** Free what t owns (a copy from timeline_store_get); t itself is not freed. */
void timeline_dispose(timeline_t *t);

/** "push"/"hint", "open"/"completed"/"cancelled"/"failed". */
const char *timeline_via_name(timeline_via_t v);
const char *timeline_outcome_name(timeline_outcome_t o);

#endif
