/*
 * A connection's pending output: an ordered list of segments, each a slice
 * of a refcounted block (block.h). Small writes are copied into a block the
 * outbuf owns; large payloads that already sit in a block (an h2 stream's
 * response queue) are referenced instead of copied. The bytes leave by
 * writev (outbuf_iov) or, for TLS, as record-sized pieces to encrypt
 * (outbuf_piece); outbuf_consume() then drops what went out, which may end
 * in the middle of a segment. Pure bookkeeping: no I/O here.
 */
#ifndef HERALD_OUTBUF_H
#define HERALD_OUTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "block.h"

/* A referenced slice smaller than this is copied instead: a separate
 * iovec (or, with TLS, a separate piece to encrypt) costs more than the copy. */
enum { OUTBUF_REF_MIN = 1024 };

typedef struct outbuf_seg {
    block_t *b;       /* one reference, held by the segment */
    const uint8_t *p; /* the unsent bytes: p[0..len), inside b->data */
    size_t len;
} outbuf_seg_t;

/** Caller-embedded; only outbuf.c writes the fields. */
typedef struct outbuf {
    outbuf_seg_t *v; /* v[head..n) are pending, oldest first */
    size_t head, n, cap;
    size_t len;           /* pending bytes in all segments */
    block_t *copy;        /* where outbuf_write() copies to (BLOCK_SIZE); one reference */
    block_cache_t *cache; /* where copy blocks come from (borrowed; NULL: malloc) */
    bool sealed;          /* the last segment was handed out by outbuf_iov(): never extend it */
} outbuf_t;

/** An empty outbuf whose copy blocks come from cache (NULL: malloc); cache must outlive it. */
void outbuf_init(outbuf_t *ob, block_cache_t *cache);

/** Pending bytes. */
static inline size_t outbuf_len(const outbuf_t *ob)
{
    return ob->len;
}

/** Drop every segment and the copy block; ob is empty (and reusable, same cache) after. */
void outbuf_dispose(outbuf_t *ob);

/** Append a copy of data[0..len) (into as many blocks as it takes). */
void outbuf_write(outbuf_t *ob, const void *data, size_t len);

/**
 * Append p[0..len), which lies inside b->data[0..b->len): the segment takes
 * its own reference to b, so the caller may drop its own at once; the bytes
 * must not change until the segment is consumed (block.h: filled bytes are
 * never rewritten while shared). Slices under OUTBUF_REF_MIN are copied.
 */
void outbuf_write_ref(outbuf_t *ob, block_t *b, const uint8_t *p, size_t len);

/**
 * Describe up to max pending segments, oldest first, as iov[0..count) for a
 * writev; returns the count. The memory they point to stays valid until
 * outbuf_consume() drops it or outbuf_dispose(); segments handed out here
 * never grow afterwards (a write in flight owns their length).
 */
size_t outbuf_iov(outbuf_t *ob, uv_buf_t *iov, size_t max);

/**
 * The next plaintext to encrypt, for TLS records of `record` bytes: returns
 * its length (0 when ob is empty, else at most max(max, record)) and points
 * *p either into a segment, for whole records of a large segment (no copy),
 * or to stage[0..record), where small segments are gathered so that they
 * don't become tiny records of their own. A piece of a segment of at least
 * `direct_min` bytes is left where it is unless it completes the staged
 * record with at most `direct_min` bytes. Consumes nothing: encrypt *p,
 * then outbuf_consume() the returned length. stage must hold `record` bytes.
 */
size_t outbuf_piece(const outbuf_t *ob, size_t record, size_t direct_min, size_t max,
                    uint8_t *stage, const uint8_t **p);

/** Drop the first n pending bytes (n <= outbuf_len), releasing finished segments. */
void outbuf_consume(outbuf_t *ob, size_t n);

/**
 * With nothing pending, free storage above `keep` bytes (the copy block and
 * a large segment array) so that an idle connection holds little memory.
 */
void outbuf_trim(outbuf_t *ob, size_t keep);

#endif
