/*
 * The process-wide origin budget: at most --origin-max-connections
 * connections to the origin for all workers together, and at most
 * --origin-queue requests waiting for one. upstream.c owns the connections
 * and the per-worker queues; this file holds only what the workers share.
 *
 * What is shared, and how
 *   - `in_use`: connections counted against the cap (connecting, busy, idle,
 *     or in transit between workers). A worker opens a connection only after
 *     budget_try_acquire() moved it from n to n+1 below the cap (one CAS);
 *     whoever closes a counted connection gives the unit back
 *     (budget_release) or hands it on to a waiting request.
 *   - `queued[class]`: requests waiting in any worker's queue, per class
 *     (client requests before pushed fetches), bounded in total by
 *     budget_queue_enter().
 *   - per worker (a "slot", index = worker id): the enqueue time of the head
 *     of each of its queues and its idle count, published with atomic stores
 *     so that any worker can tell who has waited longest (budget_pick), and a
 *     mailbox (mutex + uv_async wakeup) through which a connection (its
 *     file descriptor) or a unit of budget is handed to that worker.
 *
 * Ordering. Counters are sequentially consistent: a worker that enqueues
 * bumps `queued` and then looks for capacity (free budget, idle connections
 * elsewhere); a worker that frees capacity publishes it and then looks at
 * `queued`. One of the two always sees the other, so no request waits while
 * capacity sits unused.
 *
 * Threads: every function may be called from any worker thread; mailboxes
 * are the only locked part and only cross-worker hand-offs touch them.
 */
#ifndef HERALD_BUDGET_H
#define HERALD_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct budget budget_t;

/** A waiting request's class: client requests are always served before pushed fetches. */
typedef enum budget_class {
    BUDGET_CLIENT = 0,
    BUDGET_PUSH = 1,
    BUDGET_NCLASSES,
} budget_class_t;

/** Slots (workers) a budget can have: --workers' maximum. */
enum { BUDGET_MAX_SLOTS = 256 };

/** "Nobody waiting" as a published head time. */
#define BUDGET_NONE UINT64_MAX

/**
 * A waiter on the local worker is preferred over an older one elsewhere
 * unless that one has waited this much longer (ns): connections stay on
 * their worker while the workers' queues age evenly, and move to the worker
 * whose requests wait longest once they do not.
 */
#define BUDGET_FAIR_SLACK_NS (2 * 1000 * 1000ULL)

/** Counters for /stats and /metrics (budget_stats()). */
typedef struct budget_stats {
    uint32_t max, queue_max; /* the configured caps */
    uint32_t in_use;         /* connections counted against max now */
    uint32_t queued;         /* requests waiting now (all classes) */
    uint32_t push_busy;      /* connections serving pushed fetches now */
    uint64_t queue_full;     /* requests answered 503: the queue was full */
    uint64_t queue_timeouts; /* requests answered 504: origin_timeout ran out in the queue */
    uint64_t waited;         /* requests that waited and then got a connection */
    uint64_t wait_ns_total;  /* their waits summed */
    uint64_t wait_ns_max;    /* the longest of them */
    uint64_t handoffs;       /* connections (or budget units) handed to another worker */
} budget_stats_t;

/**
 * A budget of `max` connections (>= 1) and `queue_max` waiting requests for
 * `nslots` workers (1..BUDGET_MAX_SLOTS). Never NULL (aborts on out of memory). Pushed
 * fetches may hold at most max - max/4 connections, so a quarter of the
 * budget (when max >= 4) is always left to client requests.
 */
budget_t *budget_create(uint32_t max, uint32_t queue_max, int nslots);
/** Free b; every slot must be unregistered and nothing in use any more. */
void budget_destroy(budget_t *b);

/** The number of slots budget_create() was given. */
int budget_nslots(const budget_t *b);

/**
 * Slot `slot` belongs to a running pool from now on: grants for it wake
 * `wake` (borrowed; it must stay valid until budget_unregister()).
 */
void budget_register(budget_t *b, int slot, uv_async_t *wake);
/**
 * The slot's pool is closing: no more grants reach it, its published heads
 * and idle count are cleared, and the grants still in its mailbox are moved
 * to out[0..cap) (see budget_take: each needs its budget_grant_done) for
 * the caller to give back; returns how many (the mailbox never holds more
 * than the budget's max).
 */
size_t budget_unregister(budget_t *b, int slot, int *out, size_t cap);

/** Take one unit of budget if in_use < max. */
bool budget_try_acquire(budget_t *b);
/** Give one unit back. */
void budget_release(budget_t *b);

/** Whether a pushed fetch may take a connection now (push_busy below its limit). */
bool budget_push_ok(const budget_t *b);
/** A connection starts (+1) or stops (-1) serving a pushed fetch. */
void budget_push_busy(budget_t *b, int delta);

/**
 * Count one more waiting request of class `cls`; false (and counted as a
 * queue_full rejection) when queue_max requests already wait. Requests that
 * a free connection is about to serve take no place: one per grant on its
 * way (budget_send until budget_grant_done) and one per idle connection
 * (budget_publish_idle), which its worker hands over when woken.
 */
bool budget_queue_enter(budget_t *b, budget_class_t cls);
/**
 * One waiting request of class `cls` left its queue after `waited_ns`:
 * `served` when it got a connection (counted in waited and wait times),
 * false when it was aborted or timed out (`timed_out` counts it).
 */
void budget_queue_leave(budget_t *b, budget_class_t cls, uint64_t waited_ns, bool served,
                        bool timed_out);
/** Requests waiting now, of one class. */
uint32_t budget_queued(const budget_t *b, budget_class_t cls);
/** Requests waiting now, all classes. */
uint32_t budget_queued_total(const budget_t *b);

/** Publish the enqueue time (uv_hrtime ns) of slot's head waiter of `cls`, or BUDGET_NONE. */
void budget_publish_head(budget_t *b, int slot, budget_class_t cls, uint64_t t_ns);
/** Publish slot's idle connection count (only the slot's own worker calls this). */
void budget_publish_idle(budget_t *b, int slot, uint32_t nidle);
/** A registered slot other than `self` with idle connections, or -1. */
int budget_find_idle(const budget_t *b, int self);

/**
 * Which slot's waiter gets the next free connection, from the published
 * heads: client waiters before pushed fetches (those only while
 * budget_push_ok), the longest-waiting first, except that `self`'s own
 * head is preferred within BUDGET_FAIR_SLACK_NS. Returns the slot and sets
 * *cls, or -1 when nobody is waiting. `self` may be -1 (no preference).
 */
int budget_pick(const budget_t *b, int self, budget_class_t *cls);

/**
 * The pure rule behind budget_pick() over a snapshot: heads[i][c] is slot
 * i's head enqueue time for class c (BUDGET_NONE: empty), n slots.
 */
int budget_pick_among(const uint64_t (*heads)[BUDGET_NCLASSES], int n, int self, bool push_ok,
                      uint64_t slack_ns, budget_class_t *cls);

/**
 * Hand slot `slot` a grant: `fd` >= 0 is an idle origin connection (the
 * receiver owns the descriptor and the budget unit that comes with it), -1
 * a unit of budget to open a connection with. Wakes the slot's pool. False
 * when the slot is not registered (the caller keeps fd and the unit).
 */
bool budget_send(budget_t *b, int slot, int fd);
/**
 * Move up to `cap` pending grants of `slot` into out[]; returns how many.
 * Each must be followed by budget_grant_done() once it has served a
 * waiting request (or been passed on, kept idle, or given back).
 */
size_t budget_take(budget_t *b, int slot, int *out, size_t cap);
/** One grant taken with budget_take() or budget_unregister() is dealt with. */
void budget_grant_done(budget_t *b);
/** Wake slot's pool (so it looks for waiters to serve) if it is registered. */
void budget_wake(budget_t *b, int slot);

/** A consistent-enough snapshot of the counters (relaxed loads). Any thread. */
void budget_stats(const budget_t *b, budget_stats_t *out);

#endif
