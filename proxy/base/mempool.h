/*
 * A bump allocator whose memory lives exactly as long as one exchange (one
 * request/response). Allocations are never freed one by one; mempool_dispose()
 * frees them all. Small requests come from 4 KiB chunks; large ones get a
 * chunk of their own. Aborts on out of memory (proxy/ rule).
 */
#ifndef HERALD_MEMPOOL_H
#define HERALD_MEMPOOL_H

#include <stddef.h>

typedef struct mempool_chunk mempool_chunk_t;

typedef struct mempool {
    mempool_chunk_t *chunks;
    size_t used; /* bytes used in chunks (the head chunk) */
    size_t cap;  /* size of the head chunk's payload */
} mempool_t;

/** Prepare an empty pool in caller-owned memory. */
void mempool_init(mempool_t *mp);
/**
 * Prepare a pool whose first chunk is caller memory (n bytes at mem, aligned
 * for any type, a few dozen of them taken for bookkeeping; never freed by
 * the pool): an owner allocated together with its pool's first chunk costs
 * one malloc instead of two.
 */
void mempool_init_on(mempool_t *mp, void *mem, size_t n);
/** Free every allocation of the pool. The pool may be reused after mempool_init(). */
void mempool_dispose(mempool_t *mp);
/** n bytes, aligned for any type; valid until mempool_dispose(). */
void *mempool_alloc(mempool_t *mp, size_t n);
/** A NUL-terminated copy of s[0..n) in the pool. */
char *mempool_strndup(mempool_t *mp, const char *s, size_t n);

#endif
