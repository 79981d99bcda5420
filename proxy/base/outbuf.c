/*
 * Output segments. See outbuf.h.
 */
#include "outbuf.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

enum { SEGS_KEEP = 64 }; /* a segment array this small survives outbuf_trim() */

void outbuf_init(outbuf_t *ob, block_cache_t *cache)
{
    *ob = (outbuf_t){.cache = cache};
}

void outbuf_dispose(outbuf_t *ob)
{
    for (size_t i = ob->head; i < ob->n; i++)
        block_unref(ob->v[i].b);
    block_unref(ob->copy);
    free(ob->v);
    outbuf_init(ob, ob->cache);
}

/* Append a segment that owns the reference `b`. */
static void push(outbuf_t *ob, block_t *b, const uint8_t *p, size_t len)
{
    if (ob->n == ob->cap) {
        if (ob->head > 0) {
            memmove(ob->v, ob->v + ob->head, (ob->n - ob->head) * sizeof(ob->v[0]));
            ob->n -= ob->head;
            ob->head = 0;
        } else {
            ob->cap = ob->cap ? ob->cap * 2 : 16;
            ob->v = xrealloc(ob->v, ob->cap * sizeof(ob->v[0]));
        }
    }
    ob->v[ob->n++] = (outbuf_seg_t){.b = b, .p = p, .len = len};
    ob->len += len;
    ob->sealed = false;
}

/* The last segment, when p[0..) would continue it and it may still grow. */
static outbuf_seg_t *continues(outbuf_t *ob, const block_t *b, const uint8_t *p)
{
    if (ob->n == ob->head || ob->sealed)
        return NULL;
    outbuf_seg_t *last = &ob->v[ob->n - 1];
    return last->b == b && last->p + last->len == p ? last : NULL;
}

void outbuf_write(outbuf_t *ob, const void *data, size_t len)
{
    const uint8_t *src = data;
    block_t *c = ob->copy;
    if (c != NULL && c->refs == 1)
        c->len = 0; /* no segment points into it any more: start over */
    while (len > 0) {
        if (c == NULL || c->len == c->cap) {
            /* Segments keep their own references to the old block. */
            block_unref(c);
            ob->copy = c = block_create(ob->cache, BLOCK_SIZE);
        }
        size_t k = c->cap - c->len < len ? c->cap - c->len : len;
        uint8_t *dst = c->data + c->len;
        memcpy(dst, src, k); /* copied: data is the caller's */
        c->len += k;
        src += k;
        len -= k;
        outbuf_seg_t *last = continues(ob, c, dst);
        if (last != NULL) {
            last->len += k;
            ob->len += k;
        } else {
            push(ob, block_ref(c), dst, k);
        }
    }
}

void outbuf_write_ref(outbuf_t *ob, block_t *b, const uint8_t *p, size_t len)
{
    assert(len == 0 || (p >= b->data && p + len <= b->data + b->len));
    if (len < OUTBUF_REF_MIN) {
        outbuf_write(ob, p, len);
        return;
    }
    outbuf_seg_t *last = continues(ob, b, p);
    if (last != NULL) {
        last->len += len;
        ob->len += len;
        return;
    }
    push(ob, block_ref(b), p, len);
}

size_t outbuf_iov(outbuf_t *ob, uv_buf_t *iov, size_t max)
{
    size_t k = 0;
    for (size_t i = ob->head; i < ob->n && k < max; i++, k++)
        iov[k] = uv_buf_init((char *)ob->v[i].p, (unsigned)ob->v[i].len);
    if (k > 0)
        ob->sealed = true;
    return k;
}

size_t outbuf_piece(const outbuf_t *ob, size_t record, size_t direct_min, size_t max,
                    uint8_t *stage, const uint8_t **p)
{
    if (ob->len == 0)
        return 0;
    const outbuf_seg_t *s = &ob->v[ob->head];
    if (s->len >= record) {
        /* Whole records straight from the segment; the rest (less than a
         * record) is gathered with what follows. */
        size_t k = s->len < max ? s->len : max;
        k = k < record ? record : k - k % record;
        *p = s->p;
        return k;
    }
    if (s->len >= direct_min) {
        *p = s->p; /* big enough to be a record of its own */
        return s->len;
    }
    size_t staged = 0;
    for (size_t i = ob->head; i < ob->n && staged < record; i++) {
        s = &ob->v[i];
        size_t need = record - staged;
        /* A large piece that would not fill the record cheaply stays in
         * place: the staged bytes go out as a (smaller) record first. */
        if (s->len >= direct_min && need > direct_min)
            break;
        size_t k = s->len < need ? s->len : need;
        memcpy(stage + staged, s->p, k);
        staged += k;
    }
    *p = stage;
    return staged;
}

void outbuf_consume(outbuf_t *ob, size_t n)
{
    assert(n <= ob->len);
    ob->len -= n;
    while (n > 0) {
        outbuf_seg_t *s = &ob->v[ob->head];
        if (n < s->len) {
            s->p += n; /* a write that ended inside this segment */
            s->len -= n;
            break;
        }
        n -= s->len;
        block_unref(s->b);
        ob->head++;
    }
    if (ob->head == ob->n)
        ob->head = ob->n = 0;
}

void outbuf_trim(outbuf_t *ob, size_t keep)
{
    if (ob->len != 0)
        return;
    if (ob->copy != NULL && ob->copy->cap > keep) {
        block_unref(ob->copy);
        ob->copy = NULL;
    }
    if (ob->cap > SEGS_KEEP) {
        free(ob->v);
        ob->v = NULL;
        ob->cap = 0;
    }
}
