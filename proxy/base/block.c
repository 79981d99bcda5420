/*
 * Refcounted blocks and the block queue. See block.h.
 */
#include "block.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

void block_cache_init(block_cache_t *bc, size_t max)
{
    bc->free = NULL;
    bc->n = 0;
    bc->max = max;
}

void block_cache_trim(block_cache_t *bc)
{
    while (bc->free != NULL) {
        block_t *b = bc->free;
        bc->free = b->next;
        free(b);
    }
    bc->n = 0;
}

void block_cache_dispose(block_cache_t *bc)
{
    block_cache_trim(bc);
}

block_t *block_create(block_cache_t *cache, size_t cap)
{
    block_t *b;
    if (cache != NULL && cap == BLOCK_SIZE && cache->free != NULL) {
        b = cache->free;
        cache->free = b->next;
        cache->n--;
    } else {
        b = xmalloc(sizeof(*b) + cap);
    }
    b->next = NULL;
    b->cache = cap == BLOCK_SIZE ? cache : NULL;
    b->refs = 1;
    b->len = 0;
    b->cap = cap;
    return b;
}

void block_unref(block_t *b)
{
    if (b == NULL)
        return;
    assert(b->refs > 0);
    if (--b->refs > 0)
        return;
    block_cache_t *bc = b->cache;
    if (bc != NULL && bc->n < bc->max) {
        b->next = bc->free;
        bc->free = b;
        bc->n++;
        return;
    }
    free(b);
}

void block_queue_init(block_queue_t *q, size_t headroom)
{
    assert(headroom < BLOCK_SIZE);
    *q = (block_queue_t){.headroom = headroom};
}

void block_queue_dispose(block_queue_t *q)
{
    block_t *b = q->head;
    while (b != NULL) {
        block_t *next = b->next;
        block_unref(b);
        b = next;
    }
    block_queue_init(q, q->headroom);
}

void block_queue_append(block_queue_t *q, block_cache_t *cache, const void *p, size_t n)
{
    const uint8_t *src = p;
    block_t *t = q->tail;
    if (t != NULL && q->len == 0) {
        /* All consumed (the head is the tail). Alone with the block we may
         * overwrite it; otherwise its bytes may still be on their way to
         * the socket, so we only append after them, or let it go when full. */
        if (t->refs == 1) {
            t->len = q->off = q->headroom;
        } else if (t->len == t->cap) {
            block_unref(t);
            q->head = q->tail = t = NULL;
        }
    }
    while (n > 0) {
        if (t == NULL || t->len == t->cap) {
            block_t *b = block_create(cache, BLOCK_SIZE);
            b->len = q->headroom;
            if (t != NULL) {
                t->next = b;
            } else {
                q->head = b;
                q->off = q->headroom;
            }
            q->tail = t = b;
        }
        size_t k = t->cap - t->len < n ? t->cap - t->len : n;
        memcpy(t->data + t->len, src, k);
        t->len += k;
        q->len += k;
        src += k;
        n -= k;
    }
}

size_t block_queue_peek(const block_queue_t *q, block_t **b, const uint8_t **p)
{
    if (q->len == 0)
        return 0;
    *b = q->head;
    *p = q->head->data + q->off;
    return q->head->len - q->off;
}

void block_queue_consume(block_queue_t *q, size_t n)
{
    assert(n <= q->len);
    while (n > 0) {
        block_t *h = q->head;
        size_t k = h->len - q->off < n ? h->len - q->off : n;
        q->off += k;
        q->len -= k;
        n -= k;
        /* The tail stays even when consumed: the next append may fill it. */
        if (q->off == h->len && h != q->tail) {
            q->head = h->next;
            q->off = q->headroom;
            block_unref(h);
        }
    }
}

uint8_t *block_queue_headroom(const block_queue_t *q)
{
    if (q->len == 0 || q->headroom == 0 || q->off != q->headroom)
        return NULL;
    return q->head->data;
}
