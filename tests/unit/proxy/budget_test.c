/*
 * budget.c: who gets a free connection (client before push, longest wait
 * first, the local worker within the slack), the cap and the queue bound,
 * the pushed-fetch share, and the mailboxes between workers.
 */
#include "budget.h"

#include <stdbool.h>
#include <stdlib.h>
#include <uv.h>

#include "testutil.h"

#define N BUDGET_NONE
#define MS 1000000ULL

static void test_pick_rule(void)
{
    budget_class_t cls = BUDGET_NCLASSES;
    /* nobody waits */
    uint64_t none[3][BUDGET_NCLASSES] = {{N, N}, {N, N}, {N, N}};
    CHECK_INTEQ(budget_pick_among(none, 3, 0, true, 0, &cls), -1);

    /* the longest-waiting client request, wherever it is */
    uint64_t h1[3][BUDGET_NCLASSES] = {{50 * MS, N}, {10 * MS, N}, {30 * MS, N}};
    CHECK_INTEQ(budget_pick_among(h1, 3, -1, true, 0, &cls), 1);
    CHECK_INTEQ(cls, BUDGET_CLIENT);
    /* our own head 40 ms younger: beyond a 2 ms slack the old one still wins */
    CHECK_INTEQ(budget_pick_among(h1, 3, 0, true, 2 * MS, &cls), 1);
    /* within the slack our own is served (the connection stays here) */
    uint64_t h2[3][BUDGET_NCLASSES] = {{11 * MS, N}, {10 * MS, N}, {30 * MS, N}};
    CHECK_INTEQ(budget_pick_among(h2, 3, 0, true, 2 * MS, &cls), 0);
    CHECK_INTEQ(budget_pick_among(h2, 3, 0, true, 0, &cls), 1);
    /* equal times: the lowest slot, or ourselves */
    uint64_t h3[2][BUDGET_NCLASSES] = {{7, N}, {7, N}};
    CHECK_INTEQ(budget_pick_among(h3, 2, -1, true, 0, &cls), 0);
    CHECK_INTEQ(budget_pick_among(h3, 2, 1, true, 0, &cls), 1);

    /* a client request, however young, goes before every pushed fetch */
    uint64_t h4[2][BUDGET_NCLASSES] = {{N, 1 * MS}, {900 * MS, N}};
    CHECK_INTEQ(budget_pick_among(h4, 2, 0, true, 2 * MS, &cls), 1);
    CHECK_INTEQ(cls, BUDGET_CLIENT);
    /* pushes only: the oldest push, if pushes may take a connection */
    uint64_t h5[2][BUDGET_NCLASSES] = {{N, 5 * MS}, {N, 3 * MS}};
    CHECK_INTEQ(budget_pick_among(h5, 2, -1, true, 0, &cls), 1);
    CHECK_INTEQ(cls, BUDGET_PUSH);
    CHECK_INTEQ(budget_pick_among(h5, 2, -1, false, 0, &cls), -1);
    /* ... but a client waiter is served even then */
    uint64_t h6[2][BUDGET_NCLASSES] = {{N, 5 * MS}, {9 * MS, 3 * MS}};
    CHECK_INTEQ(budget_pick_among(h6, 2, 0, false, 0, &cls), 1);
    CHECK_INTEQ(cls, BUDGET_CLIENT);
}

static void test_cap_and_queue(void)
{
    budget_t *b = budget_create(3, 2, 1);
    budget_stats_t s;
    CHECK(budget_try_acquire(b));
    CHECK(budget_try_acquire(b));
    CHECK(budget_try_acquire(b));
    CHECK(!budget_try_acquire(b));
    budget_release(b);
    CHECK(budget_try_acquire(b));
    budget_stats(b, &s);
    CHECK_INTEQ(s.in_use, 3);
    CHECK_INTEQ(s.max, 3);

    /* the queue bound counts every class; the one over it is a rejection */
    CHECK(budget_queue_enter(b, BUDGET_CLIENT));
    CHECK(budget_queue_enter(b, BUDGET_PUSH));
    CHECK(!budget_queue_enter(b, BUDGET_CLIENT));
    CHECK_INTEQ(budget_queued(b, BUDGET_CLIENT), 1);
    CHECK_INTEQ(budget_queued(b, BUDGET_PUSH), 1);
    CHECK_INTEQ(budget_queued_total(b), 2);
    budget_queue_leave(b, BUDGET_CLIENT, 5 * MS, true, false);
    budget_queue_leave(b, BUDGET_PUSH, 9 * MS, false, true);
    budget_stats(b, &s);
    CHECK_INTEQ(s.queued, 0);
    CHECK_INTEQ(s.queue_full, 1);
    CHECK_INTEQ(s.queue_timeouts, 1);
    CHECK_INTEQ(s.waited, 1);
    CHECK_INTEQ(s.wait_ns_total, 5 * MS);
    CHECK_INTEQ(s.wait_ns_max, 5 * MS);
    for (int i = 0; i < 3; i++)
        budget_release(b);
    budget_destroy(b);

    /* a queue of 0: nobody waits, everyone beyond the cap is refused */
    b = budget_create(1, 0, 2);
    CHECK(!budget_queue_enter(b, BUDGET_CLIENT));
    budget_destroy(b);

    /* an idle connection (on another worker) about to serve a waiter frees its place */
    b = budget_create(1, 1, 2);
    CHECK(budget_queue_enter(b, BUDGET_CLIENT));
    CHECK(!budget_queue_enter(b, BUDGET_CLIENT));
    budget_publish_idle(b, 1, 1);
    CHECK(budget_queue_enter(b, BUDGET_CLIENT));
    CHECK(!budget_queue_enter(b, BUDGET_CLIENT));
    for (int i = 0; i < 2; i++)
        budget_queue_leave(b, BUDGET_CLIENT, 0, false, false);
    budget_destroy(b);
}

static void test_push_share(void)
{
    /* 8 connections: pushed fetches may hold 6, two stay for client requests */
    budget_t *b = budget_create(8, 10, 1);
    for (int i = 0; i < 6; i++) {
        CHECK(budget_push_ok(b));
        budget_push_busy(b, +1);
    }
    CHECK(!budget_push_ok(b));
    budget_push_busy(b, -1);
    CHECK(budget_push_ok(b));
    for (int i = 0; i < 5; i++)
        budget_push_busy(b, -1);
    budget_destroy(b);

    /* below 4 connections nothing is reserved: a push may use them all */
    b = budget_create(1, 10, 1);
    CHECK(budget_push_ok(b));
    budget_push_busy(b, +1);
    CHECK(!budget_push_ok(b));
    budget_push_busy(b, -1);
    budget_destroy(b);
}

static int wakes;

static void on_wake(uv_async_t *a)
{
    wakes++;
}

static void test_mailbox(void)
{
    uv_loop_t loop;
    CHECK_INTEQ(uv_loop_init(&loop), 0);
    uv_async_t wake;
    uv_async_init(&loop, &wake, on_wake);
    budget_t *b = budget_create(4, 4, 2);
    int out[8];

    /* an unregistered slot takes nothing */
    CHECK(!budget_send(b, 1, -1));
    budget_register(b, 1, &wake);
    CHECK(budget_send(b, 1, -1));
    CHECK(budget_send(b, 1, 42));
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(wakes >= 1);
    CHECK_INTEQ(budget_take(b, 1, out, 1), 1);
    CHECK_INTEQ(out[0], -1);
    CHECK(budget_send(b, 1, 43));
    CHECK_INTEQ(budget_take(b, 1, out, 8), 2);
    CHECK_INTEQ(out[0], 42);
    CHECK_INTEQ(out[1], 43);
    CHECK_INTEQ(budget_take(b, 1, out, 8), 0);
    for (int i = 0; i < 3; i++)
        budget_grant_done(b);

    /* a waiter whose grant is on its way leaves its place in the queue */
    for (int i = 0; i < 4; i++)
        CHECK(budget_queue_enter(b, BUDGET_CLIENT));
    CHECK(!budget_queue_enter(b, BUDGET_CLIENT));
    CHECK(budget_send(b, 1, -1));
    CHECK(budget_queue_enter(b, BUDGET_CLIENT));
    CHECK(!budget_queue_enter(b, BUDGET_CLIENT));
    CHECK_INTEQ(budget_take(b, 1, out, 8), 1);
    budget_queue_leave(b, BUDGET_CLIENT, 0, true, false); /* the grant's waiter */
    budget_grant_done(b);
    CHECK(!budget_queue_enter(b, BUDGET_CLIENT));
    for (int i = 0; i < 4; i++)
        budget_queue_leave(b, BUDGET_CLIENT, 0, false, false);

    /* heads and idle counts as others see them */
    budget_publish_head(b, 1, BUDGET_CLIENT, 5);
    CHECK(budget_queue_enter(b, BUDGET_CLIENT));
    budget_class_t cls;
    CHECK_INTEQ(budget_pick(b, 0, &cls), 1);
    budget_publish_idle(b, 1, 2);
    CHECK_INTEQ(budget_find_idle(b, 0), 1);
    CHECK_INTEQ(budget_find_idle(b, 1), -1);

    /* closing: the pending grants come back, and no more arrive */
    CHECK(budget_send(b, 1, 44));
    CHECK_INTEQ(budget_unregister(b, 1, out, 8), 1);
    CHECK_INTEQ(out[0], 44);
    budget_grant_done(b);
    CHECK(!budget_send(b, 1, -1));
    CHECK_INTEQ(budget_pick(b, 0, &cls), -1); /* its head is gone with it */
    CHECK_INTEQ(budget_find_idle(b, 0), -1);
    budget_queue_leave(b, BUDGET_CLIENT, 0, false, false);

    budget_destroy(b);
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INTEQ(uv_loop_close(&loop), 0);
}

int main(void)
{
    test_pick_rule();
    test_cap_and_queue();
    test_push_share();
    test_mailbox();
    return TESTUTIL_SUMMARY();
}
