/*
 * proxy/deliver/timeline.c: a recorder reaches the store only when its last
 * reference goes, replaces the page's previous timeline, keeps at most
 * TIMELINE_MAX_ITEMS items and TIMELINE_MAX_PAGES pages (least recently
 * recorded dropped first), and copies out what the admin reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "timeline.h"
#include "testutil.h"

#define MS 1000000ULL

int main(void)
{
    uint64_t t0 = 5000 * MS;
    timeline_t got;

    /* times relative to arrival; stored only after the last release */
    timeline_t *t = timeline_begin("a.test/", t0, 1700000000000);
    CHECK(timeline_ms(t, t0 + 250 * MS) == 250.0);
    CHECK(timeline_ms(t, 0) == 0.0);
    int i = timeline_add(t, "/css/site.css", TIMELINE_PUSH, t0 + 1 * MS);
    CHECK(i == 0);
    timeline_t *r = timeline_ref(t); /* a push's reference */
    timeline_release(t);             /* the page goes first */
    CHECK(timeline_store_get("a.test/", &got) == HERALD_ENOTFOUND);
    timeline_item_t *it = timeline_item(r, i);
    CHECK(it != NULL && it->at_ms == 1.0 && it->end_ms < 0 && it->outcome == TIMELINE_OPEN);
    it->end_ms = timeline_ms(r, t0 + 3 * MS);
    it->outcome = TIMELINE_COMPLETED;
    r->head_ms = 400;
    timeline_release(r);
    CHECK(timeline_store_count() == 1);
    CHECK(timeline_store_get("a.test/", &got) == 0);
    CHECK_STREQ(got.page, "a.test/");
    CHECK(got.wall_ms == 1700000000000 && got.head_ms == 400 && got.hints_ms < 0);
    CHECK(got.n == 1 && got.v[0].end_ms == 3.0 && got.v[0].outcome == TIMELINE_COMPLETED);
    CHECK_STREQ(got.v[0].url, "/css/site.css");
    timeline_dispose(&got);
    CHECK(timeline_item(NULL, 0) == NULL && timeline_item(r, -1) == NULL);

    /* the next visit replaces it; items beyond the cap are counted, not kept */
    t = timeline_begin("a.test/", t0, 1700000001000);
    for (int k = 0; k < TIMELINE_MAX_ITEMS + 5; k++) {
        char u[32];
        snprintf(u, sizeof(u), "/img/%d.png", k);
        int idx = timeline_add(t, u, k % 2 ? TIMELINE_HINT : TIMELINE_PUSH, t0 + (uint64_t)k * MS);
        CHECK((idx < 0) == (k >= TIMELINE_MAX_ITEMS));
    }
    timeline_release(t);
    CHECK(timeline_store_count() == 1);
    CHECK(timeline_store_get("a.test/", &got) == 0);
    CHECK(got.wall_ms == 1700000001000 && got.n == TIMELINE_MAX_ITEMS && got.dropped == 5);
    CHECK_STREQ(got.v[TIMELINE_MAX_ITEMS - 1].url, "/img/63.png");
    CHECK(got.v[1].via == TIMELINE_HINT && got.v[1].outcome == TIMELINE_COMPLETED);
    timeline_dispose(&got);

    /* bounded pages: the least recently recorded go first */
    for (int k = 0; k < TIMELINE_MAX_PAGES + 10; k++) {
        char p[32];
        snprintf(p, sizeof(p), "p%d.test/", k);
        timeline_release(timeline_begin(p, t0, 0));
    }
    CHECK(timeline_store_count() == TIMELINE_MAX_PAGES);
    CHECK(timeline_store_get("a.test/", &got) == HERALD_ENOTFOUND);
    CHECK(timeline_store_get("p9.test/", &got) == HERALD_ENOTFOUND);
    CHECK(timeline_store_get("p10.test/", &got) == 0);
    timeline_dispose(&got);
    /* re-recording a page makes it the newest */
    timeline_release(timeline_begin("p10.test/", t0, 1));
    timeline_release(timeline_begin("new.test/", t0, 2));
    CHECK(timeline_store_get("p10.test/", &got) == 0 && got.wall_ms == 1);
    timeline_dispose(&got);
    CHECK(timeline_store_get("p11.test/", &got) == HERALD_ENOTFOUND);

    timeline_store_forget("p10.test/");
    CHECK(timeline_store_get("p10.test/", &got) == HERALD_ENOTFOUND);
    CHECK(timeline_store_count() == TIMELINE_MAX_PAGES - 1);
    timeline_store_clear();
    CHECK(timeline_store_count() == 0);
    CHECK_STREQ(timeline_outcome_name(TIMELINE_CANCELLED), "cancelled");
    CHECK_STREQ(timeline_via_name(TIMELINE_HINT), "hint");
    return TESTUTIL_SUMMARY();
}
