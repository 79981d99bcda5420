#include "mempool.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

enum { CHUNK_SIZE = 4096 - 64 };

struct mempool_chunk {
    mempool_chunk_t *next;
    bool borrowed; /* the caller's memory (mempool_init_on): not freed */
    alignas(max_align_t) unsigned char data[];
};

void mempool_init(mempool_t *mp)
{
    mp->chunks = NULL;
    mp->used = 0;
    mp->cap = 0;
}

void mempool_init_on(mempool_t *mp, void *mem, size_t n)
{
    mempool_chunk_t *c = mem;
    c->next = NULL;
    c->borrowed = true;
    mp->chunks = c;
    mp->used = 0;
    mp->cap = n - sizeof(*c);
}

void mempool_dispose(mempool_t *mp)
{
    mempool_chunk_t *c = mp->chunks;
    while (c != NULL) {
        mempool_chunk_t *next = c->next;
        if (!c->borrowed)
            free(c);
        c = next;
    }
    mempool_init(mp);
}

void *mempool_alloc(mempool_t *mp, size_t n)
{
    const size_t align = alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    if (n > CHUNK_SIZE / 4) {
        /* A large block gets its own chunk, linked behind the head so the
         * head's free space stays usable. */
        mempool_chunk_t *c = xmalloc(sizeof(*c) + n);
        c->borrowed = false;
        if (mp->chunks == NULL) {
            c->next = NULL;
            mp->chunks = c;
            mp->used = mp->cap = 0;
            /* head is full by definition: the next small alloc opens a chunk */
        } else {
            c->next = mp->chunks->next;
            mp->chunks->next = c;
        }
        return c->data;
    }
    if (mp->chunks == NULL || mp->used + n > mp->cap) {
        mempool_chunk_t *c = xmalloc(sizeof(*c) + CHUNK_SIZE);
        c->borrowed = false;
        c->next = mp->chunks;
        mp->chunks = c;
        mp->used = 0;
        mp->cap = CHUNK_SIZE;
    }
    void *p = mp->chunks->data + mp->used;
    mp->used += n;
    return p;
}

char *mempool_strndup(mempool_t *mp, const char *s, size_t n)
{
    char *d = mempool_alloc(mp, n + 1);
    if (n > 0)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}
