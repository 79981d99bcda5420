/*
 * lazytimer.c on a real libuv loop: the callback never runs before the last
 * deadline set (a later deadline pushes it back even though libuv's timer
 * fires at the earlier one), an earlier deadline brings it forward, a stop
 * cancels it, and a callback may start the timer again. Only lower bounds on
 * the loop's clock are checked: they hold however slow the machine is.
 */
#include "lazytimer.h"

#include "testutil.h"

typedef struct {
    lazytimer_t lt;
    int runs;
    uint64_t at; /* uv_now() of the last run */
    int again;   /* runs still to restart from the callback */
    uint64_t again_ms;
} probe_t;

static void on_run(uv_timer_t *t)
{
    probe_t *p = t->data;
    p->runs++;
    p->at = uv_now(t->loop);
    CHECK(!lazytimer_armed(&p->lt));
    if (p->again > 0) {
        p->again--;
        lazytimer_start(&p->lt, p->again_ms);
    }
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

static void probe_init(uv_loop_t *loop, probe_t *p)
{
    *p = (probe_t){0};
    lazytimer_init(loop, &p->lt, on_run);
    p->lt.t.data = p;
}

static void probe_close(uv_loop_t *loop, probe_t *p)
{
    uv_close((uv_handle_t *)&p->lt.t, on_closed);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void test_pushed_back(uv_loop_t *loop)
{
    probe_t p;
    probe_init(loop, &p);
    uv_update_time(loop);
    uint64_t t0 = uv_now(loop);
    lazytimer_start(&p.lt, 10);
    lazytimer_start(&p.lt, 60); /* libuv's timer stays at 10 ms */
    CHECK(lazytimer_armed(&p.lt));
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(p.runs == 1);
    CHECK(p.at >= t0 + 60);
    probe_close(loop, &p);
}

static void test_brought_forward(uv_loop_t *loop)
{
    probe_t p;
    probe_init(loop, &p);
    uv_update_time(loop);
    uint64_t t0 = uv_now(loop);
    lazytimer_start(&p.lt, 60000);
    lazytimer_start(&p.lt, 5); /* must not wait for the minute */
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(p.runs == 1);
    CHECK(p.at >= t0 + 5);
    probe_close(loop, &p);
}

static void test_stopped(uv_loop_t *loop)
{
    probe_t p;
    probe_init(loop, &p);
    lazytimer_start(&p.lt, 5);
    lazytimer_stop(&p.lt);
    CHECK(!lazytimer_armed(&p.lt));
    uv_run(loop, UV_RUN_DEFAULT); /* libuv's timer fires once, then nothing */
    CHECK(p.runs == 0);
    /* stopped, then started again with a later deadline */
    uv_update_time(loop);
    uint64_t t0 = uv_now(loop);
    lazytimer_start(&p.lt, 5);
    lazytimer_stop(&p.lt);
    lazytimer_start(&p.lt, 30);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(p.runs == 1);
    CHECK(p.at >= t0 + 30);
    probe_close(loop, &p);
}

static void test_restart_from_callback(uv_loop_t *loop)
{
    probe_t p;
    probe_init(loop, &p);
    uv_update_time(loop);
    uint64_t t0 = uv_now(loop);
    p.again = 2;
    p.again_ms = 5;
    lazytimer_start(&p.lt, 5);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(p.runs == 3);
    CHECK(p.at >= t0 + 15);
    probe_close(loop, &p);
}

int main(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    test_pushed_back(&loop);
    test_brought_forward(&loop);
    test_stopped(&loop);
    test_restart_from_callback(&loop);
    CHECK(uv_loop_close(&loop) == 0);
    return TESTUTIL_SUMMARY();
}
