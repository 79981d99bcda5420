/*
 * block.c: reference counts, the block cache, and the queue's promise that
 * bytes someone else holds a reference to are never rewritten.
 */
#include "block.h"

#include <string.h>

#include "testutil.h"

static void test_refs_and_cache(void)
{
    block_cache_t bc;
    block_cache_init(&bc, 2);
    block_t *a = block_create(&bc, BLOCK_SIZE);
    CHECK(a->refs == 1 && a->len == 0 && a->cap == BLOCK_SIZE && a->cache == &bc);
    CHECK(block_ref(a) == a && a->refs == 2);
    block_unref(a);
    CHECK(a->refs == 1 && bc.n == 0);
    block_unref(a); /* the last reference: kept for reuse */
    CHECK(bc.n == 1);
    block_t *b = block_create(&bc, BLOCK_SIZE);
    CHECK(b == a && bc.n == 0 && b->refs == 1 && b->len == 0);
    /* Only BLOCK_SIZE blocks are cached; the cache keeps at most max. */
    block_t *odd = block_create(&bc, 100);
    CHECK(odd->cache == NULL);
    block_unref(odd);
    CHECK(bc.n == 0);
    block_t *c = block_create(&bc, BLOCK_SIZE), *d = block_create(&bc, BLOCK_SIZE);
    block_unref(b);
    block_unref(c);
    block_unref(d); /* over max: freed */
    CHECK(bc.n == 2);
    block_unref(NULL);
    block_cache_dispose(&bc);
    CHECK(bc.n == 0 && bc.free == NULL);
    /* Without a cache blocks are plain allocations. */
    block_t *e = block_create(NULL, BLOCK_SIZE);
    CHECK(e->cache == NULL);
    block_unref(e);
}

/* Read n bytes from the front of q through peek/consume. */
static void drain(block_queue_t *q, uint8_t *out, size_t n)
{
    while (n > 0) {
        block_t *b = NULL;
        const uint8_t *p = NULL;
        size_t k = block_queue_peek(q, &b, &p);
        CHECK(k > 0);
        if (k == 0)
            return;
        CHECK(p >= b->data && p + k <= b->data + b->len);
        if (k > n)
            k = n;
        memcpy(out, p, k);
        block_queue_consume(q, k);
        out += k;
        n -= k;
    }
}

static void test_queue_order(void)
{
    enum { TOTAL = 5 * BLOCK_SIZE + 123 };
    static uint8_t in[TOTAL], out[TOTAL];
    for (size_t i = 0; i < TOTAL; i++)
        in[i] = (uint8_t)(i * 31 + 7);
    block_queue_t q = {0};
    block_t *b;
    const uint8_t *p;
    CHECK(block_queue_peek(&q, &b, &p) == 0);
    /* Appends of awkward sizes cross block boundaries. */
    size_t sizes[] = {1, 9, BLOCK_SIZE - 10, 3 * BLOCK_SIZE + 5, 4000};
    size_t at = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        block_queue_append(&q, NULL, in + at, sizes[i]);
        at += sizes[i];
    }
    block_queue_append(&q, NULL, in + at, TOTAL - at);
    CHECK(q.len == TOTAL);
    CHECK(block_queue_peek(&q, &b, &p) == BLOCK_SIZE && p == b->data);
    /* Consumption in odd steps, interleaved with peeks. */
    size_t got = 0;
    size_t steps[] = {5, BLOCK_SIZE, 1, 60000};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        drain(&q, out + got, steps[i]);
        got += steps[i];
        CHECK(q.len == TOTAL - got);
    }
    drain(&q, out + got, TOTAL - got);
    CHECK(q.len == 0 && memcmp(in, out, TOTAL) == 0);
    CHECK(block_queue_peek(&q, &b, &p) == 0);
    block_queue_dispose(&q);
    CHECK(q.head == NULL && q.tail == NULL && q.len == 0);
}

static void test_queue_shared_bytes_stay(void)
{
    block_cache_t bc;
    block_cache_init(&bc, 8);
    block_queue_t q = {0};
    block_t *b;
    const uint8_t *p;

    /* Drained and alone with its block: the queue starts the block over. */
    block_queue_append(&q, &bc, "abc", 3);
    block_t *first = q.head;
    block_queue_consume(&q, 3);
    block_queue_append(&q, &bc, "de", 2);
    CHECK(q.head == first && q.off == 0 && first->len == 2);
    CHECK(block_queue_peek(&q, &b, &p) == 2 && memcmp(p, "de", 2) == 0);

    /* Drained while a reader holds the block: new bytes go after the old. */
    block_t *held = block_ref(q.head);
    const uint8_t *held_p = p;
    block_queue_consume(&q, 2);
    block_queue_append(&q, &bc, "fgh", 3);
    CHECK(memcmp(held_p, "de", 2) == 0);
    CHECK(block_queue_peek(&q, &b, &p) == 3 && b == held && p == held_p + 2);
    CHECK(memcmp(p, "fgh", 3) == 0);

    /* Disposing the queue leaves the reader's block alone. */
    block_queue_dispose(&q);
    CHECK(held->refs == 1 && memcmp(held->data, "defgh", 5) == 0);
    block_unref(held);

    /* A held block that is full is let go: the next append opens a new one. */
    static uint8_t fill[BLOCK_SIZE];
    memset(fill, 'x', sizeof(fill));
    block_queue_append(&q, &bc, fill, sizeof(fill));
    held = block_ref(q.head);
    block_queue_consume(&q, BLOCK_SIZE);
    block_queue_append(&q, &bc, "y", 1);
    CHECK(q.head != held && q.head == q.tail && held->refs == 1);
    CHECK(held->len == BLOCK_SIZE && held->data[0] == 'x' && held->data[BLOCK_SIZE - 1] == 'x');
    CHECK(block_queue_peek(&q, &b, &p) == 1 && p[0] == 'y');
    block_unref(held);

    /* Consumed blocks before the tail are released at once. */
    block_queue_append(&q, &bc, fill, sizeof(fill));
    block_t *second = q.tail;
    CHECK(q.head != second);
    size_t cached = bc.n;
    block_queue_consume(&q, BLOCK_SIZE); /* "y" and the first block's share of fill */
    CHECK(q.head == second && q.off == 0 && q.len == 1 && bc.n == cached + 1);
    block_queue_dispose(&q);
    block_cache_dispose(&bc);
}

/* Headroom: room for a prefix right before each block's first bytes,
 * offered once per block (and again only once the block is reused). */
static void test_queue_headroom(void)
{
    block_queue_t q;
    block_queue_init(&q, 9);
    block_t *b;
    const uint8_t *p;
    CHECK(block_queue_headroom(&q) == NULL);
    static uint8_t in[2 * BLOCK_SIZE];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 5);
    block_queue_append(&q, NULL, in, sizeof(in));
    /* A block carries BLOCK_SIZE - 9 queued bytes. */
    CHECK(block_queue_peek(&q, &b, &p) == BLOCK_SIZE - 9 && p == b->data + 9);
    uint8_t *room = block_queue_headroom(&q);
    CHECK(room == b->data);
    memcpy(room, "HEADER-01", 9);
    block_t *held = block_ref(b);
    block_queue_consume(&q, 100);
    CHECK(block_queue_headroom(&q) == NULL); /* once per block */
    CHECK(memcmp(held->data, "HEADER-01", 9) == 0 && memcmp(held->data + 9, in, 100) == 0);
    block_queue_consume(&q, BLOCK_SIZE - 9 - 100);
    /* The next block: its own headroom, its bytes right after it. */
    CHECK(block_queue_peek(&q, &b, &p) == BLOCK_SIZE - 9 && b != held);
    CHECK(block_queue_headroom(&q) == b->data && memcmp(p, in + BLOCK_SIZE - 9, 10) == 0);
    block_queue_consume(&q, q.len);
    CHECK(block_queue_headroom(&q) == NULL);
    /* The drained tail is reused once nobody else holds it: headroom again. */
    block_queue_append(&q, NULL, "abc", 3);
    CHECK(block_queue_peek(&q, &b, &p) == 3 && p == b->data + 9);
    CHECK(block_queue_headroom(&q) == b->data);
    /* Held by a reader when drained: new bytes follow, no headroom offered
     * (the reader may be using the old header). */
    block_t *reader = block_ref(b);
    block_queue_consume(&q, 3);
    block_queue_append(&q, NULL, "de", 2);
    CHECK(block_queue_peek(&q, &b, &p) == 2 && p == reader->data + 12);
    CHECK(block_queue_headroom(&q) == NULL);
    block_unref(reader);
    block_unref(held);
    block_queue_dispose(&q);
    CHECK(q.headroom == 9 && q.len == 0);
}

int main(void)
{
    test_refs_and_cache();
    test_queue_order();
    test_queue_shared_bytes_stay();
    test_queue_headroom();
    return TESTUTIL_SUMMARY();
}
