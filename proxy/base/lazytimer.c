#include "lazytimer.h"

static void on_fire(uv_timer_t *t)
{
    lazytimer_t *lt = (lazytimer_t *)t;
    if (lt->due == 0)
        return;
    uint64_t now = uv_now(t->loop);
    if (now < lt->due) {
        uv_timer_start(t, on_fire, lt->due - now, 0);
        return;
    }
    lt->due = 0;
    lt->cb(t);
}

void lazytimer_init(uv_loop_t *loop, lazytimer_t *lt, uv_timer_cb cb)
{
    uv_timer_init(loop, &lt->t);
    lt->due = 0;
    lt->cb = cb;
}

void lazytimer_start(lazytimer_t *lt, uint64_t ms)
{
    uint64_t due = uv_now(lt->t.loop) + ms;
    if (due == 0)
        due = 1;
    /* libuv's timer already fires at or before the new deadline: on_fire
     * starts it again for the rest. */
    bool early = uv_is_active((uv_handle_t *)&lt->t) && uv_timer_get_due_in(&lt->t) <= ms;
    lt->due = due;
    if (!early)
        uv_timer_start(&lt->t, on_fire, ms, 0);
}
