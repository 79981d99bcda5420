/*
 * A one-shot timer that is cheap to push back: a timeout restarted on every
 * request (a connection's idle timeout, the origin's inactivity timeout)
 * costs a heap removal and insertion in libuv each time. A lazy timer only
 * records the new deadline when it is later than the one libuv already has;
 * when libuv's timer fires early it starts again for the remainder, and only
 * once the recorded deadline has passed does the callback run. Stopping only
 * clears the deadline: libuv's timer may still fire once, and then does
 * nothing.
 *
 * The callback runs no earlier than the last deadline set (by uv_now(), as
 * with uv_timer_start) and never after lazytimer_stop(). The handle is the
 * embedded uv_timer_t: its `data` is the caller's, and the caller closes it
 * with uv_close() as any timer.
 */
#ifndef HERALD_LAZYTIMER_H
#define HERALD_LAZYTIMER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct lazytimer {
    uv_timer_t t; /* first: the callback gets &t; t.data belongs to the caller */
    uint64_t due; /* uv_now() at which cb runs; 0: stopped */
    uv_timer_cb cb;
} lazytimer_t;

/** Initialise lt on loop (stopped); cb runs with &lt->t when a deadline passes. */
void lazytimer_init(uv_loop_t *loop, lazytimer_t *lt, uv_timer_cb cb);
/** Run the callback ms milliseconds from uv_now() (replacing any earlier deadline). */
void lazytimer_start(lazytimer_t *lt, uint64_t ms);
/** The callback will not run until the next lazytimer_start(). */
static inline void lazytimer_stop(lazytimer_t *lt)
{
    lt->due = 0;
}
/** true between lazytimer_start() and the callback or lazytimer_stop(). */
static inline bool lazytimer_armed(const lazytimer_t *lt)
{
    return lt->due != 0;
}

#endif
