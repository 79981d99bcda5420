/*
 * The process-wide origin budget; see budget.h for what is shared and why
 * the counters are sequentially consistent.
 */
#include "budget.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "alloc.h"

/* One worker's shared face. The atomics are written by the slot's own
 * worker and read by every other; the mailbox is under `mu`. Aligned so
 * that two workers' slots never share a cache line. */
typedef struct budget_slot {
    _Alignas(64) _Atomic uint64_t head[BUDGET_NCLASSES];
    _Atomic uint32_t nidle;
    uv_mutex_t mu;
    uv_async_t *wake; /* NULL while unregistered */
    int *grants;      /* fd >= 0, or -1 for a unit of budget */
    size_t ngrants, cap;
} budget_slot_t;

struct budget {
    uint32_t max, queue_max, push_max;
    int nslots;
    _Atomic uint32_t in_use;
    _Atomic uint32_t queued[BUDGET_NCLASSES];
    _Atomic uint32_t queued_total;
    _Atomic uint32_t push_busy;
    _Atomic uint32_t transit; /* grants sent, not yet taken from a mailbox */
    _Atomic uint64_t queue_full, queue_timeouts, waited, wait_ns_total, wait_ns_max, handoffs;
    budget_slot_t *slots;
};

budget_t *budget_create(uint32_t max, uint32_t queue_max, int nslots)
{
    assert(max >= 1 && nslots >= 1 && nslots <= BUDGET_MAX_SLOTS);
    budget_t *b = xcalloc(1, sizeof(*b));
    b->max = max;
    b->queue_max = queue_max;
    b->push_max = max - max / 4;
    b->nslots = nslots;
    b->slots = aligned_alloc(64, sizeof(budget_slot_t) * (size_t)nslots);
    if (b->slots == NULL)
        alloc_fail(__FILE__, __LINE__, sizeof(budget_slot_t) * (size_t)nslots);
    for (int i = 0; i < nslots; i++) {
        budget_slot_t *s = &b->slots[i];
        for (int c = 0; c < BUDGET_NCLASSES; c++)
            atomic_init(&s->head[c], BUDGET_NONE);
        atomic_init(&s->nidle, 0);
        if (uv_mutex_init(&s->mu) != 0)
            abort();
        s->wake = NULL;
        s->grants = NULL;
        s->ngrants = s->cap = 0;
    }
    return b;
}

void budget_destroy(budget_t *b)
{
    if (b == NULL)
        return;
    for (int i = 0; i < b->nslots; i++) {
        assert(b->slots[i].wake == NULL && b->slots[i].ngrants == 0);
        uv_mutex_destroy(&b->slots[i].mu);
        free(b->slots[i].grants);
    }
    free(b->slots);
    free(b);
}

int budget_nslots(const budget_t *b)
{
    return b->nslots;
}

void budget_register(budget_t *b, int slot, uv_async_t *wake)
{
    budget_slot_t *s = &b->slots[slot];
    uv_mutex_lock(&s->mu);
    s->wake = wake;
    uv_mutex_unlock(&s->mu);
}

size_t budget_unregister(budget_t *b, int slot, int *out, size_t cap)
{
    budget_slot_t *s = &b->slots[slot];
    for (int c = 0; c < BUDGET_NCLASSES; c++)
        atomic_store(&s->head[c], BUDGET_NONE);
    atomic_store(&s->nidle, 0);
    uv_mutex_lock(&s->mu);
    s->wake = NULL;
    size_t n = s->ngrants < cap ? s->ngrants : cap;
    for (size_t i = 0; i < n; i++)
        out[i] = s->grants[i];
    /* more than cap cannot be pending: each grant carries a unit of budget */
    assert(n == s->ngrants);
    s->ngrants = 0;
    uv_mutex_unlock(&s->mu);
    return n;
}

bool budget_try_acquire(budget_t *b)
{
    uint32_t n = atomic_load(&b->in_use);
    while (n < b->max)
        if (atomic_compare_exchange_weak(&b->in_use, &n, n + 1))
            return true;
    return false;
}

void budget_release(budget_t *b)
{
    uint32_t prev = atomic_fetch_sub(&b->in_use, 1);
    assert(prev > 0);
    (void)prev;
}

bool budget_push_ok(const budget_t *b)
{
    return atomic_load(&b->push_busy) < b->push_max;
}

void budget_push_busy(budget_t *b, int delta)
{
    if (delta > 0)
        atomic_fetch_add(&b->push_busy, 1);
    else
        atomic_fetch_sub(&b->push_busy, 1);
}

bool budget_queue_enter(budget_t *b, budget_class_t cls)
{
    /* Places taken: waiting requests, less those a connection is on its
     * way to (one grant in transit each) or will reach in a moment (an idle
     * connection on another worker, about to be handed over). */
    uint32_t idle = 0;
    for (int i = 0; i < b->nslots; i++)
        idle += atomic_load(&b->slots[i].nidle);
    uint32_t n = atomic_load(&b->queued_total);
    do {
        uint32_t soon = atomic_load(&b->transit) + idle;
        uint32_t waiting = n > soon ? n - soon : 0;
        if (waiting >= b->queue_max) {
            atomic_fetch_add_explicit(&b->queue_full, 1, memory_order_relaxed);
            return false;
        }
    } while (!atomic_compare_exchange_weak(&b->queued_total, &n, n + 1));
    atomic_fetch_add(&b->queued[cls], 1);
    return true;
}

void budget_queue_leave(budget_t *b, budget_class_t cls, uint64_t waited_ns, bool served,
                        bool timed_out)
{
    atomic_fetch_sub(&b->queued[cls], 1);
    atomic_fetch_sub(&b->queued_total, 1);
    if (timed_out)
        atomic_fetch_add_explicit(&b->queue_timeouts, 1, memory_order_relaxed);
    if (!served)
        return;
    atomic_fetch_add_explicit(&b->waited, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->wait_ns_total, waited_ns, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&b->wait_ns_max, memory_order_relaxed);
    while (waited_ns > m &&
           !atomic_compare_exchange_weak_explicit(&b->wait_ns_max, &m, waited_ns,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

uint32_t budget_queued(const budget_t *b, budget_class_t cls)
{
    return atomic_load(&((budget_t *)b)->queued[cls]);
}

uint32_t budget_queued_total(const budget_t *b)
{
    return atomic_load(&((budget_t *)b)->queued_total);
}

void budget_publish_head(budget_t *b, int slot, budget_class_t cls, uint64_t t_ns)
{
    atomic_store(&b->slots[slot].head[cls], t_ns);
}

void budget_publish_idle(budget_t *b, int slot, uint32_t nidle)
{
    atomic_store(&b->slots[slot].nidle, nidle);
}

int budget_find_idle(const budget_t *b, int self)
{
    int best = -1;
    uint32_t most = 0;
    for (int i = 0; i < b->nslots; i++) {
        if (i == self)
            continue;
        uint32_t n = atomic_load(&b->slots[i].nidle);
        if (n > most) {
            most = n;
            best = i;
        }
    }
    return best;
}

int budget_pick_among(const uint64_t (*heads)[BUDGET_NCLASSES], int n, int self, bool push_ok,
                      uint64_t slack_ns, budget_class_t *cls)
{
    for (int c = 0; c < BUDGET_NCLASSES; c++) {
        if (c == BUDGET_PUSH && !push_ok)
            break;
        int best = -1;
        uint64_t best_t = BUDGET_NONE;
        for (int i = 0; i < n; i++) {
            if (heads[i][c] != BUDGET_NONE && heads[i][c] < best_t) {
                best = i;
                best_t = heads[i][c];
            }
        }
        if (best < 0)
            continue;
        /* our own head within the slack of the oldest: keep the connection here */
        if (self >= 0 && self != best && heads[self][c] != BUDGET_NONE &&
            heads[self][c] - best_t <= slack_ns)
            best = self;
        *cls = (budget_class_t)c;
        return best;
    }
    return -1;
}

int budget_pick(const budget_t *b, int self, budget_class_t *cls)
{
    if (atomic_load(&((budget_t *)b)->queued_total) == 0)
        return -1;
    uint64_t heads[BUDGET_MAX_SLOTS][BUDGET_NCLASSES];
    for (int i = 0; i < b->nslots; i++)
        for (int c = 0; c < BUDGET_NCLASSES; c++)
            heads[i][c] = atomic_load(&b->slots[i].head[c]);
    int r = budget_pick_among((const uint64_t(*)[BUDGET_NCLASSES])heads, b->nslots, self,
                              budget_push_ok(b), BUDGET_FAIR_SLACK_NS, cls);
    return r;
}

bool budget_send(budget_t *b, int slot, int fd)
{
    budget_slot_t *s = &b->slots[slot];
    uv_mutex_lock(&s->mu);
    bool ok = s->wake != NULL;
    if (ok) {
        if (s->ngrants == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 8;
            s->grants = xrealloc(s->grants, s->cap * sizeof(*s->grants));
        }
        s->grants[s->ngrants++] = fd;
        atomic_fetch_add(&b->transit, 1);
        /* under the lock: the pool closes `wake` only after budget_unregister */
        uv_async_send(s->wake);
    }
    uv_mutex_unlock(&s->mu);
    if (ok)
        atomic_fetch_add_explicit(&b->handoffs, 1, memory_order_relaxed);
    return ok;
}

size_t budget_take(budget_t *b, int slot, int *out, size_t cap)
{
    budget_slot_t *s = &b->slots[slot];
    uv_mutex_lock(&s->mu);
    size_t n = s->ngrants < cap ? s->ngrants : cap;
    for (size_t i = 0; i < n; i++)
        out[i] = s->grants[i];
    s->ngrants -= n;
    for (size_t i = 0; i < s->ngrants; i++)
        s->grants[i] = s->grants[i + n];
    uv_mutex_unlock(&s->mu);
    return n;
}

void budget_grant_done(budget_t *b)
{
    atomic_fetch_sub(&b->transit, 1);
}

void budget_wake(budget_t *b, int slot)
{
    budget_slot_t *s = &b->slots[slot];
    uv_mutex_lock(&s->mu);
    if (s->wake != NULL)
        uv_async_send(s->wake);
    uv_mutex_unlock(&s->mu);
}

void budget_stats(const budget_t *b, budget_stats_t *out)
{
    budget_t *m = (budget_t *)b; /* atomic loads need a non-const object */
    out->max = b->max;
    out->queue_max = b->queue_max;
    out->in_use = atomic_load_explicit(&m->in_use, memory_order_relaxed);
    out->queued = atomic_load_explicit(&m->queued_total, memory_order_relaxed);
    out->push_busy = atomic_load_explicit(&m->push_busy, memory_order_relaxed);
    out->queue_full = atomic_load_explicit(&m->queue_full, memory_order_relaxed);
    out->queue_timeouts = atomic_load_explicit(&m->queue_timeouts, memory_order_relaxed);
    out->waited = atomic_load_explicit(&m->waited, memory_order_relaxed);
    out->wait_ns_total = atomic_load_explicit(&m->wait_ns_total, memory_order_relaxed);
    out->wait_ns_max = atomic_load_explicit(&m->wait_ns_max, memory_order_relaxed);
    out->handoffs = atomic_load_explicit(&m->handoffs, memory_order_relaxed);
}
