/*
 * outbuf.c: segment bookkeeping for writev and partial writes, references
 * held and dropped, TLS record pieces; then a random walk checked against a
 * flat copy of the byte stream.
 */
#include "outbuf.h"

#include <string.h>

#include "testutil.h"

/* The bytes iov[0..n) describe, concatenated into out; returns their count. */
static size_t flatten(const uv_buf_t *iov, size_t n, uint8_t *out)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + len, iov[i].base, iov[i].len);
        len += iov[i].len;
    }
    return len;
}

/* A BLOCK_SIZE block from bc filled with n bytes of pattern seed. */
static block_t *filled(block_cache_t *bc, size_t n, int seed)
{
    block_t *b = block_create(bc, BLOCK_SIZE);
    for (size_t i = 0; i < n; i++)
        b->data[i] = (uint8_t)(seed + i * 13);
    b->len = n;
    return b;
}

static void test_copies_and_seal(void)
{
    outbuf_t ob;
    outbuf_init(&ob, NULL);
    uv_buf_t iov[8];
    uint8_t flat[64];
    CHECK(outbuf_iov(&ob, iov, 8) == 0);
    outbuf_write(&ob, "ab", 2);
    outbuf_write(&ob, "cd", 2);
    outbuf_write(&ob, "", 0);
    CHECK(outbuf_len(&ob) == 4);
    /* Consecutive copies share one segment... */
    CHECK(outbuf_iov(&ob, iov, 8) == 1);
    CHECK(flatten(iov, 1, flat) == 4 && memcmp(flat, "abcd", 4) == 0);
    /* ...but a segment handed to a write never grows: its length is the write's. */
    outbuf_write(&ob, "ef", 2);
    CHECK(iov[0].len == 4);
    size_t n = outbuf_iov(&ob, iov, 8);
    CHECK(n == 2 && flatten(iov, n, flat) == 6 && memcmp(flat, "abcdef", 6) == 0);
    /* A write that ended inside the first segment. */
    outbuf_consume(&ob, 3);
    CHECK(outbuf_len(&ob) == 3);
    n = outbuf_iov(&ob, iov, 8);
    CHECK(n == 2 && flatten(iov, n, flat) == 3 && memcmp(flat, "def", 3) == 0);
    CHECK(outbuf_iov(&ob, iov, 1) == 1 && iov[0].len == 1);
    outbuf_consume(&ob, 3);
    CHECK(outbuf_len(&ob) == 0 && outbuf_iov(&ob, iov, 8) == 0);
    /* A copy bigger than a block spans blocks, in order. */
    static uint8_t big[3 * BLOCK_SIZE + 17], back[sizeof(big)];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    outbuf_write(&ob, big, sizeof(big));
    n = outbuf_iov(&ob, iov, 8);
    CHECK(n == 4 && flatten(iov, n, back) == sizeof(big) && memcmp(big, back, sizeof(big)) == 0);
    outbuf_dispose(&ob);
    CHECK(outbuf_len(&ob) == 0);
}

static void test_refs(void)
{
    block_cache_t bc;
    block_cache_init(&bc, 8);
    outbuf_t ob;
    outbuf_init(&ob, &bc);
    uv_buf_t iov[8];
    static uint8_t flat[4 * BLOCK_SIZE];

    /* A short slice is copied: no reference taken. */
    block_t *small = filled(&bc, 100, 1);
    outbuf_write_ref(&ob, small, small->data, 100);
    CHECK(small->refs == 1);
    block_unref(small);

    /* A large one is referenced; the segment's reference outlives ours. */
    block_t *b = filled(&bc, BLOCK_SIZE, 2);
    outbuf_write(&ob, "HDR", 3);
    outbuf_write_ref(&ob, b, b->data + 10, 5000);
    CHECK(b->refs == 2);
    /* Contiguous slices of one block extend the segment. */
    outbuf_write_ref(&ob, b, b->data + 5010, 2000);
    CHECK(b->refs == 2);
    block_unref(b);
    CHECK(b->refs == 1 && outbuf_len(&ob) == 100 + 3 + 7000);
    size_t n = outbuf_iov(&ob, iov, 8);
    CHECK(n == 2 && iov[1].base == (char *)b->data + 10 && iov[1].len == 7000);
    CHECK(flatten(iov, n, flat) == 7103 && memcmp(flat + 103, b->data + 10, 7000) == 0);

    /* A partial write ends inside the referenced segment: it keeps the block. */
    size_t cached = bc.n;
    outbuf_consume(&ob, 103 + 6000);
    CHECK(b->refs == 1 && bc.n == cached);
    n = outbuf_iov(&ob, iov, 8);
    CHECK(n == 1 && iov[0].base == (char *)b->data + 6010 && iov[0].len == 1000);
    /* The rest goes out: the block returns to the cache. */
    outbuf_consume(&ob, 1000);
    CHECK(bc.n == cached + 1);

    /* The copy block starts over once no segment uses it. */
    outbuf_write(&ob, "x", 1);
    block_t *copy = ob.copy;
    CHECK(copy->len == 1);
    outbuf_consume(&ob, 1);
    outbuf_write(&ob, "y", 1);
    CHECK(ob.copy == copy && copy->len == 1);
    outbuf_consume(&ob, 1);

    /* Dispose drops every reference, pending ones included. */
    b = filled(&bc, BLOCK_SIZE, 3);
    outbuf_write_ref(&ob, b, b->data, BLOCK_SIZE);
    block_unref(b);
    outbuf_dispose(&ob);
    CHECK(ob.cache == &bc && outbuf_len(&ob) == 0);
    /* Trim frees the copy block only when idle and large. */
    outbuf_write(&ob, "z", 1);
    outbuf_trim(&ob, 0);
    CHECK(ob.copy != NULL);
    outbuf_consume(&ob, 1);
    outbuf_trim(&ob, BLOCK_SIZE);
    CHECK(ob.copy != NULL);
    outbuf_trim(&ob, 0);
    CHECK(ob.copy == NULL);
    outbuf_dispose(&ob);
    block_cache_dispose(&bc);
}

/* Take every piece for records of `record` bytes; pieces[] gets their
 * lengths and direct[] whether they pointed into a segment. */
static size_t pieces(outbuf_t *ob, size_t record, size_t direct_min, uint8_t *out, size_t *len,
                     int *direct, size_t max_pieces)
{
    static uint8_t stage[16384];
    size_t k = 0, at = 0;
    while (outbuf_len(ob) > 0 && k < max_pieces) {
        const uint8_t *p = NULL;
        size_t n = outbuf_piece(ob, record, direct_min, 65536, stage, &p);
        CHECK(n > 0);
        if (n == 0)
            break;
        memcpy(out + at, p, n);
        at += n;
        len[k] = n;
        direct[k] = p != stage;
        k++;
        outbuf_consume(ob, n);
    }
    return k;
}

/* DATA frames as h2.c writes them: a copied 9-byte header, a referenced payload. */
static void frames(outbuf_t *ob, block_t *b, const size_t *sizes, size_t n, uint8_t *flat,
                   size_t *flen)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t hd[9];
        memset(hd, (int)i + 1, sizeof(hd));
        outbuf_write(ob, hd, 9);
        memcpy(flat + *flen, hd, 9);
        *flen += 9;
        outbuf_write_ref(ob, b, b->data + at, sizes[i]);
        memcpy(flat + *flen, b->data + at, sizes[i]);
        *flen += sizes[i];
        at += sizes[i];
    }
}

static void test_pieces(void)
{
    outbuf_t ob;
    outbuf_init(&ob, NULL);
    static uint8_t flat[80000], got[80000];
    size_t len[128];
    int direct[128];
    /* One block big enough for the payloads of all frames (bodies sit in
     * 16 KiB blocks in h2.c; here one big block keeps the test short). */
    block_t *b = block_create(NULL, 4 * 16384);
    for (size_t i = 0; i < b->cap; i++)
        b->data[i] = (uint8_t)(i * 3 + 1);
    b->len = b->cap;

    /* Warm-up records (1300): every piece is one full record but the last. */
    size_t sizes[] = {16384, 16384, 2048, 100};
    size_t flen = 0;
    frames(&ob, b, sizes, 4, flat, &flen);
    size_t k = pieces(&ob, 1300, 4096, got, len, direct, 128);
    size_t total = 0, ndirect = 0;
    for (size_t i = 0; i < k; i++) {
        CHECK(len[i] % 1300 == 0 || i == k - 1);
        CHECK(direct[i] || len[i] <= 1300);
        total += len[i];
        ndirect += (size_t)direct[i];
    }
    CHECK(total == flen && memcmp(got, flat, flen) == 0);
    CHECK(ndirect >= 2); /* the big payloads were encrypted in place */

    /* Full records: a header can't join a big payload without copying it,
     * so it goes alone; the payload is one direct record; a small payload
     * rides with its header. */
    flen = 0;
    frames(&ob, b, sizes, 4, flat, &flen);
    k = pieces(&ob, 16384, 4096, got, len, direct, 128);
    CHECK(k == 5);
    CHECK(len[0] == 9 && !direct[0]);
    CHECK(len[1] == 16384 && direct[1]);
    CHECK(len[2] == 9 && !direct[2]);
    CHECK(len[3] == 16384 && direct[3]);
    CHECK(len[4] == 9 + 2048 + 9 + 100 && !direct[4]);
    CHECK(memcmp(got, flat, flen) == 0);

    /* A run of small writes makes full records. */
    for (int i = 0; i < 4000; i++)
        outbuf_write(&ob, "0123456789", 10);
    CHECK(outbuf_iov(&ob, (uv_buf_t[4]){0}, 4) > 0); /* sealed segments change nothing */
    k = pieces(&ob, 16384, 4096, got, len, direct, 128);
    CHECK(k == 3 && len[0] == 16384 && len[1] == 16384 && len[2] == 40000 - 32768);
    block_unref(b);
    outbuf_dispose(&ob);
}

/* A random walk over writes, references, writev rounds with partial writes,
 * writes while a "write" is in flight, and TLS pieces, all checked against
 * the flat stream. */
static uint32_t rng = 12345;
static uint32_t rnd(uint32_t n)
{
    rng = rng * 1103515245u + 12345u;
    return (rng >> 8) % n;
}

static void test_random(void)
{
    enum { CAP = 1 << 21 };
    static uint8_t model[CAP], flat[CAP], stage[16384];
    size_t mhead = 0, mtail = 0; /* model[mhead..mtail) is pending */
    block_cache_t bc;
    block_cache_init(&bc, 4);
    outbuf_t ob;
    outbuf_init(&ob, &bc);
    uv_buf_t iov[16];
    for (int step = 0; step < 20000 && mtail < CAP - 70000; step++) {
        switch (rnd(5)) {
        case 0: { /* copy */
            size_t n = rnd(3) == 0 ? rnd(40000) : rnd(20);
            for (size_t i = 0; i < n; i++)
                model[mtail + i] = (uint8_t)rnd(256);
            outbuf_write(&ob, model + mtail, n);
            mtail += n;
            break;
        }
        case 1: { /* reference a slice of a fresh block, then drop ours */
            size_t blen = 1 + rnd(BLOCK_SIZE);
            block_t *b = filled(&bc, blen, (int)rnd(256));
            size_t off = rnd((uint32_t)blen), n = rnd((uint32_t)(blen - off + 1));
            outbuf_write_ref(&ob, b, b->data + off, n);
            memcpy(model + mtail, b->data + off, n);
            mtail += n;
            block_unref(b);
            break;
        }
        case 2:
        case 3: { /* a writev that takes some bytes, maybe with more written meanwhile */
            size_t nb = outbuf_iov(&ob, iov, 1 + rnd(16));
            size_t total = flatten(iov, nb, flat);
            CHECK(total <= mtail - mhead && memcmp(flat, model + mhead, total) == 0);
            if (rnd(2)) { /* in flight: later writes must not touch these bytes */
                uint8_t junk[100];
                memset(junk, 0xee, sizeof(junk));
                outbuf_write(&ob, junk, sizeof(junk));
                memcpy(model + mtail, junk, sizeof(junk));
                mtail += sizeof(junk);
                uint8_t again[16 * BLOCK_SIZE + 1024];
                if (total <= sizeof(again)) {
                    CHECK(flatten(iov, nb, again) == total);
                    CHECK(memcmp(again, model + mhead, total) == 0);
                }
            }
            size_t sent = total ? rnd((uint32_t)total + 1) : 0;
            outbuf_consume(&ob, sent);
            mhead += sent;
            break;
        }
        case 4: { /* TLS pieces */
            size_t record = rnd(2) ? 1300 : 16384;
            for (int i = 0; i < 3 && outbuf_len(&ob) > 0; i++) {
                const uint8_t *p = NULL;
                size_t n = outbuf_piece(&ob, record, 4096, 65536, stage, &p);
                CHECK(n > 0 && n <= outbuf_len(&ob));
                CHECK(p != stage || n <= record);
                CHECK(memcmp(p, model + mhead, n) == 0);
                outbuf_consume(&ob, n);
                mhead += n;
            }
            break;
        }
        }
        CHECK(outbuf_len(&ob) == mtail - mhead);
    }
    size_t nb = outbuf_iov(&ob, iov, 16);
    CHECK(nb <= 16);
    outbuf_dispose(&ob);
    block_cache_dispose(&bc);
}

int main(void)
{
    test_copies_and_seal();
    test_refs();
    test_pieces();
    test_random();
    return TESTUTIL_SUMMARY();
}
