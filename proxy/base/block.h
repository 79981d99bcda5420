/*
 * Refcounted byte blocks, a per-worker cache of them, and a FIFO queue of
 * them.
 *
 * A block is one allocation: a header and `cap` bytes, of which the first
 * `len` are filled. Filled bytes are never rewritten while anybody else holds
 * a reference: the owner only appends after `len`, or starts over at 0 once
 * it holds the only reference. So a reader can keep a pointer into a block
 * (with a reference) while the owner goes on appending to it. That is how a
 * response body reaches the socket without being copied again: h2.c queues
 * the origin's bytes in blocks and conn.c writes references to them.
 *
 * Reference counts are plain integers: a block belongs to one worker's loop.
 * Out of memory aborts (proxy/ rule).
 */
#ifndef HERALD_BLOCK_H
#define HERALD_BLOCK_H

#include <stddef.h>
#include <stdint.h>

/** The capacity of the blocks queues and outbufs use (the cacheable size). */
enum { BLOCK_SIZE = 16 * 1024 };

typedef struct block_cache block_cache_t;

typedef struct block {
    struct block *next;   /* the next block in a block_queue_t or a cache's free list */
    block_cache_t *cache; /* where the last unref puts a BLOCK_SIZE block; NULL: free() */
    size_t refs;
    size_t len; /* data[0..len) is filled */
    size_t cap;
    uint8_t data[];
} block_t;

/**
 * Free BLOCK_SIZE blocks kept for reuse: a worker turns over a block per
 * 16 KiB of response body, and recycling them (most recently freed first,
 * so their memory is likely still cached) beats malloc/free, which returns
 * the heap's top to the kernel only to fault it back in. Caller-embedded;
 * every block created from a cache must be gone before block_cache_dispose().
 */
struct block_cache {
    block_t *free;
    size_t n, max; /* blocks kept now, and at most */
};

/** An empty cache keeping at most max free blocks. */
void block_cache_init(block_cache_t *bc, size_t max);
/** Free the blocks kept. */
void block_cache_dispose(block_cache_t *bc);
/**
 * Free the blocks kept now (to give memory back after a burst); unlike
 * block_cache_dispose() the cache stays in use: blocks created from it may
 * live on and come back to it.
 */
void block_cache_trim(block_cache_t *bc);

/**
 * A new empty block of cap bytes with one reference (the caller's). A
 * BLOCK_SIZE block comes from cache, and returns there, when cache is not
 * NULL; the cache must outlive the block.
 */
block_t *block_create(block_cache_t *cache, size_t cap);

/** Take another reference to b; returns b. */
static inline block_t *block_ref(block_t *b)
{
    b->refs++;
    return b;
}

/** Drop a reference; the last one frees b (or gives it back to its cache). NULL is fine. */
void block_unref(block_t *b);

/**
 * Bytes in FIFO order, kept in a chain of BLOCK_SIZE blocks: appends copy
 * into the tail block while it has room, the head is consumed. The queue
 * holds one reference to each of its blocks.
 *
 * Each block may start with `headroom` bytes that hold no queued bytes: the
 * consumer can put a prefix there (an h2 frame header) right before the
 * block's first bytes, so that prefix and bytes leave as one contiguous
 * slice (block_queue_headroom()).
 */
typedef struct block_queue {
    block_t *head, *tail;
    size_t off;      /* head->data[0..off) is consumed (or headroom) */
    size_t len;      /* unconsumed bytes in all blocks */
    size_t headroom; /* data[0..headroom) of every block is left for the consumer */
} block_queue_t;

/** An empty queue whose blocks reserve `headroom` (< BLOCK_SIZE) bytes each. */
void block_queue_init(block_queue_t *q, size_t headroom);

/** Drop every block (references others hold stay valid); the queue is empty after. */
void block_queue_dispose(block_queue_t *q);

/** Append a copy of p[0..n); new blocks come from cache (NULL: malloc). */
void block_queue_append(block_queue_t *q, block_cache_t *cache, const void *p, size_t n);

/**
 * The first unconsumed bytes that are contiguous (the rest of the head
 * block): returns their number (0 when the queue is empty) and sets *b and
 * *p. The pointer stays valid while the queue holds the block, or for as
 * long as the caller holds a reference of its own (block_ref(*b)).
 */
size_t block_queue_peek(const block_queue_t *q, block_t **b, const uint8_t **p);

/** Consume n bytes from the front (n <= q->len). */
void block_queue_consume(block_queue_t *q, size_t n);

/**
 * When nothing of the head block has been consumed yet, its headroom:
 * q->headroom writable bytes right before block_queue_peek()'s bytes, that
 * nobody else references yet. Write them, then consume at least one byte
 * (which closes the window) before calling again. NULL otherwise, or when
 * the queue is empty or has no headroom.
 */
uint8_t *block_queue_headroom(const block_queue_t *q);

#endif
