/*
 * HTTP/2 server session. See h2.h.
 *
 * Each client stream gets an h2_stream_t (nghttp2 stream user data) and an
 * exchange. Request bodies go to the exchange and are acknowledged with
 * nghttp2_session_consume() only when upstream wrote them to the origin, so
 * a slow origin holds back its own stream's window and nothing else.
 * Response bodies are copied into a per-stream queue of blocks that
 * nghttp2's data provider drains; an empty queue defers the stream until
 * bytes arrive. DATA payloads go to the connection as references to those
 * blocks, so a body byte is copied once in user space (out of upstream's
 * shared read buffer).
 */
#include "h2.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "alloc.h"
#include "list.h"
#include "block.h"
#include "exchange.h"
#include "headers.h"
#include "log.h"

typedef struct h2_session h2_session_t;

enum {
    H2_INITIAL_WINDOW = 256 * 1024,
    H2_CONNECTION_WINDOW = 16 * 1024 * 1024,
    H2_MAX_NV = 128,         /* response headers on the stack; more go to the heap */
    H2_MAX_HEAD = 60 * 1024, /* below nghttp2's 64 KiB send limit for a header block */
    H2_FRAME_HEADER = 9,
    H2_SKIPPED_RANGES = 16, /* runs of client stream ids never opened, remembered per session */
};

/** A stream's response progress; moves go through stream_set_state(). */
typedef enum h2_stream_state {
    H2_STREAM_REQUEST, /* request head collected / exchange running; no final response yet */
    H2_STREAM_BODY,    /* final HEADERS submitted; body bytes flow through the queue */
    H2_STREAM_EOF,     /* the last body byte is queued: the provider ends the stream */
    H2_STREAM_RESET,   /* RST_STREAM submitted (or the client reset it) */
} h2_stream_state_t;

typedef struct h2_stream {
    list_t link; /* in h2_session_t.streams */
    h2_session_t *s;
    int32_t id;
    exchange_t *ex; /* NULL once released */
    h2_stream_state_t state;
    block_queue_t q;    /* response body bytes (copied), not yet framed */
    size_t unconsumed;  /* request bytes given to the exchange, not yet consumed */
    uint64_t due_ms;    /* request still arriving: uv_now() by which more must come; 0 = none */
    bool head_done;     /* the request's header block is complete */
    bool rst_when_sent; /* RST_STREAM(NO_ERROR) once the response's last frame is out */
    size_t header_bytes;
    int reject_status; /* set while collecting headers: answer this instead of forwarding */
    const char *reject_text;
    bool deferred; /* the data provider returned NGHTTP2_ERR_DEFERRED */
    bool upstream_paused;
    bool started;
    bool response_done; /* response_end or response_error came from upstream */
    bool is_head;
    bool paced;           /* pushed, and held by the pacer (its push_take said 0) */
    bool push_dropped;    /* pushed, and the origin answered 4xx/5xx: reset at its end */
    const char *protocol; /* :protocol (extended CONNECT) */
} h2_stream_t;

/** The session's shutdown progress; moves go through h2_set_state(). */
typedef enum h2_state {
    H2_OPEN,   /* taking new streams */
    H2_NOTICE, /* shutdown notice queued (GOAWAY with the maximum stream id) */
    H2_GOAWAY, /* final GOAWAY queued: closes when the last stream is done */
} h2_state_t;

struct h2_session {
    conn_t *c;
    nghttp2_session *ng;
    h2_state_t state;
    list_t streams; /* every h2_stream_t of the session */
    size_t nstreams;
    int in_recv;    /* inside nghttp2_session_mem_recv: no mem_send now */
    bool deadlines; /* the connection's timer is armed for stream deadlines */
    /* the connection's pacer (exchange_client_t: the deliver layer's, valid
     * until the client is closed in conn_close); NULL ops: nothing paces */
    const exchange_pacer_ops_t *pacer_ops;
    void *pacer;
    unsigned npaced; /* streams with `paced` set */
    /* Which client stream ids were opened: every odd id up to max_client_id
     * except the runs in `skipped` (ids a client jumped over, so never
     * opened). The oldest run is forgotten when more come; its ids then
     * pass as opened, which errs on the lenient side. */
    int32_t max_client_id;
    struct {
        int32_t lo, hi; /* odd ids lo..hi, inclusive */
    } skipped[H2_SKIPPED_RANGES];
    unsigned nskipped, skipped_next; /* runs held; the slot the next run takes */
};

static void h2_set_state(h2_session_t *s, h2_state_t next)
{
    assert((s->state == H2_OPEN && next == H2_NOTICE) ||
           (s->state == H2_NOTICE && next == H2_GOAWAY));
    s->state = next;
}

static const exchange_frontend_ops_t h2_fops;
static const uint8_t drain_ping[8] = {'h', 'e', 'r', 'a', 'l', 'd', 'g', 'o'};

static void stream_set_state(h2_stream_t *st, h2_stream_state_t next)
{
    bool ok = false;
    switch (next) {
    case H2_STREAM_REQUEST:
        ok = false;
        break;
    case H2_STREAM_BODY:
        ok = st->state == H2_STREAM_REQUEST;
        break;
    case H2_STREAM_EOF:
        ok = st->state == H2_STREAM_REQUEST || st->state == H2_STREAM_BODY;
        break;
    case H2_STREAM_RESET:
        ok = true;
        break;
    }
    assert(ok && "illegal h2 stream transition");
    (void)ok;
    st->state = next;
}

static h2_stream_t *stream_get(h2_session_t *s, int32_t id)
{
    return nghttp2_session_get_stream_user_data(s->ng, id);
}

static void kick(h2_session_t *s)
{
    if (s->in_recv == 0)
        conn_flush_soon(s->c);
}

/* Release the stream's exchange: abort it if its response did not complete. */
static void stream_release(h2_stream_t *st)
{
    exchange_t *ex = st->ex;
    if (ex == NULL)
        return;
    st->ex = NULL;
    if (exchange_started(ex) && !st->response_done)
        exchange_abort(ex);
    if (exchange_started(ex))
        exchange_log(ex);
    exchange_frontend_done(ex);
}

static void stream_free(h2_stream_t *st)
{
    if (st->paced)
        st->s->npaced--;
    list_remove(&st->link);
    block_queue_dispose(&st->q); /* the connection keeps its own references */
    free(st);
}

/* ---- response bodies ---- */

static size_t queued(const h2_stream_t *st)
{
    return st->q.len;
}

static void q_append(h2_stream_t *st, const uint8_t *p, size_t n)
{
    /* copied: p is upstream's read buffer */
    block_queue_append(&st->q, st->s->c->f->blocks, p, n);
}

/*
 * A PING behind the output so far, when the pacer wants one (pace.h): its
 * ACK times how fast the bytes in front of it crossed the path. nghttp2
 * sends it before any further DATA, even within the mem_send call that
 * runs on_send_data (it only queues the frame, so that is allowed here).
 */
static void maybe_ping(h2_session_t *s)
{
    uint8_t opaque[8];
    if (s->state != H2_OPEN || s->pacer_ops == NULL ||
        !s->pacer_ops->ping_due(s->pacer, s->c->out_total, opaque))
        return;
    nghttp2_submit_ping(s->ng, NGHTTP2_FLAG_NONE, opaque);
}

static ssize_t on_data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *user)
{
    h2_stream_t *st = src->ptr;
    size_t avail = queued(st);
    if (avail == 0) {
        if (st->state == H2_STREAM_EOF) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED; /* response_body / response_end resume us */
    }
    /* A frame takes bytes of one block only: the next frame then starts a
     * block, whose headroom takes its header (on_send_data). A block holds
     * BLOCK_SIZE - H2_FRAME_HEADER bytes, so with TLS such a frame is
     * exactly one full record, encrypted where it lies. */
    block_t *b = NULL;
    const uint8_t *p = NULL;
    size_t n = block_queue_peek(&st->q, &b, &p);
    if (n > length)
        n = length;
    h2_session_t *s = st->s;
    if (st->ex != NULL && st->ex->role == EXCHANGE_ROLE_PUSHED && s->pacer_ops != NULL) {
        /* Ahead of its page's HTML, a push goes at the path's pace. */
        size_t k = s->pacer_ops->push_take(s->pacer, st->ex, n);
        if (k == 0) {
            if (!st->paced) {
                st->paced = true;
                s->npaced++;
                s->pacer_ops->held(s->pacer);
            }
            st->deferred = true;
            return NGHTTP2_ERR_DEFERRED; /* h2_session_produce offers it again */
        }
        if (st->paced) {
            st->paced = false;
            s->npaced--;
        }
        n = k;
    }
    /* No copy into nghttp2's buffer: on_send_data writes the frame header
     * and hands these n bytes to the connection by reference to our
     * queue's block. */
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (avail == n && st->state == H2_STREAM_EOF)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *user)
{
    h2_session_t *s = user;
    h2_stream_t *st = src->ptr;
    /* The payload is not copied: the connection takes a reference to our
     * block before we consume the bytes. framehd is nghttp2's 9-byte frame
     * header, valid only during this call: it goes into the block's
     * headroom when the frame starts the block (header and payload leave
     * as one slice), else conn_write copies it. We never register a
     * padding callback, so the frame carries no padding. */
    block_t *b = NULL;
    const uint8_t *p = NULL;
    size_t k = block_queue_peek(&st->q, &b, &p);
    assert(k >= length && "on_data_read keeps a frame within one block");
    (void)k;
    uint8_t *room = block_queue_headroom(&st->q);
    if (room != NULL) {
        memcpy(room, framehd, H2_FRAME_HEADER);
        conn_write_ref(s->c, b, room, H2_FRAME_HEADER + length);
    } else {
        conn_write(s->c, framehd, H2_FRAME_HEADER);
        conn_write_ref(s->c, b, p, length);
    }
    if (s->pacer_ops != NULL)
        s->pacer_ops->output(s->pacer, s->c->out_total, uv_hrtime());
    maybe_ping(s);
    block_queue_consume(&st->q, length);
    if (st->ex != NULL)
        st->ex->bytes_to_client += length;
    if (st->upstream_paused && st->ex != NULL && queued(st) < EXCHANGE_LOW_WATER) {
        st->upstream_paused = false;
        exchange_drained(st->ex); /* only restarts the origin read; nothing re-enters */
    }
    (void)ng, (void)frame;
    return 0;
}

static void resume(h2_stream_t *st)
{
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(st->s->ng, st->id);
    }
}

static bool skip_resp_header(const header_t *h)
{
    return h->name_len == 0 || h->name[0] == ':' || headers_hop_by_hop(h->name, h->name_len);
}

static nghttp2_nv make_nv(const char *name, size_t nlen, const char *value, size_t vlen)
{
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
    return nv;
}

/* ASCII lower case of every byte (RFC 9113 §8.2.1 wants lower-case names). */
/* clang-format off */
static const uint8_t lower_of[256] = {
#define L4(c) (c), (c) + 1, (c) + 2, (c) + 3
#define L16(c) L4(c), L4((c) + 4), L4((c) + 8), L4((c) + 12)
    L16(0x00), L16(0x10), L16(0x20), L16(0x30),
    0x40, L4(0x61), L4(0x65), L4(0x69), 0x6d, 0x6e, 0x6f,         /* @, A-O */
    L4(0x70), L4(0x74), 0x78, 0x79, 0x7a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, /* P-Z, [\]^_ */
    L16(0x60), L16(0x70), L16(0x80), L16(0x90), L16(0xa0), L16(0xb0), L16(0xc0), L16(0xd0),
    L16(0xe0), L16(0xf0),
#undef L16
#undef L4
};
/* clang-format on */

/* Roughly what nghttp2 counts against its 64 KiB max_send_header_block_length. */
static size_t head_estimate(const exchange_t *ex)
{
    size_t n = 0;
    for (size_t i = 0; i < ex->resp_headers.n; i++)
        n += ex->resp_headers.v[i].name_len + ex->resp_headers.v[i].value_len + 32;
    return n;
}

/* Submit HEADERS for ex's current status/headers: final with a body provider, or 1xx. */
static void submit_head(h2_stream_t *st, bool final, bool body)
{
    exchange_t *ex = st->ex;
    size_t cap = ex->resp_headers.n + 1;
    nghttp2_nv stack[H2_MAX_NV];
    nghttp2_nv *nva = cap <= H2_MAX_NV ? stack : xmalloc(cap * sizeof(*nva));
    char status[8];
    int st3 = ex->status >= 100 && ex->status <= 999 ? ex->status : 502;
    status[0] = (char)('0' + st3 / 100);
    status[1] = (char)('0' + st3 / 10 % 10);
    status[2] = (char)('0' + st3 % 10);
    status[3] = '\0';
    int sl = 3;
    size_t n = 0;
    nva[n++] = make_nv(":status", 7, status, (size_t)sl);
    /* Origins spell names as they like ("Content-Type"): all of them go
     * lower-cased into one buffer in ex's pool (nghttp2 would copy and
     * lower-case each name in the submit call). */
    size_t names = 0;
    for (size_t i = 0; i < ex->resp_headers.n; i++)
        names += ex->resp_headers.v[i].name_len;
    uint8_t *lc = mempool_alloc(&ex->pool, names + 1);
    for (size_t i = 0; i < ex->resp_headers.n; i++) {
        const header_t *h = &ex->resp_headers.v[i];
        if (skip_resp_header(h))
            continue;
        uint8_t *name = lc;
        for (size_t k = 0; k < h->name_len; k++)
            *lc++ = lower_of[(uint8_t)h->name[k]];
        /* Not copied by nghttp2: the strings live in ex's pool (or are
         * static) and ex outlives the stream, whose HEADERS nghttp2 packs
         * before it closes it (on_stream_close releases ex; a closing
         * connection produces nothing more). */
        nva[n] = make_nv((const char *)name, h->name_len, h->value, h->value_len);
        nva[n++].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
    }
    /* nghttp2 copies the array (and :status, which is on the stack) in the submit call. */
    if (!final) {
        nghttp2_submit_headers(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NULL, nva, n, NULL);
    } else if (body) {
        nghttp2_data_provider dp = {.source.ptr = st, .read_callback = on_data_read};
        nghttp2_submit_response(st->s->ng, st->id, nva, n, &dp);
    } else {
        nghttp2_submit_response(st->s->ng, st->id, nva, n, NULL);
    }
    if (nva != stack)
        free(nva);
}

/* A response made by herald itself (errors, refusals): a short text body. */
static void respond_simple(h2_stream_t *st, int status, const char *text)
{
    char len[24], code[8];
    size_t tl = strlen(text);
    int ll = snprintf(len, sizeof(len), "%zu", tl + 1);
    int cl = snprintf(code, sizeof(code), "%03d", status);
    nghttp2_nv nva[] = {
        make_nv(":status", 7, code, (size_t)cl),
        make_nv("content-type", 12, "text/plain; charset=utf-8", 25),
        make_nv("content-length", 14, len, (size_t)ll),
        make_nv("retry-after", 11, "1", 1), /* 503: the origin queue was full */
    };
    size_t nnv = status == 503 ? 4 : 3;
    if (st->ex != NULL)
        st->ex->status = status;
    if (st->is_head) {
        nghttp2_submit_response(st->s->ng, st->id, nva, nnv, NULL);
        stream_set_state(st, H2_STREAM_EOF);
    } else {
        q_append(st, (const uint8_t *)text, tl);
        q_append(st, (const uint8_t *)"\n", 1);
        stream_set_state(st, H2_STREAM_EOF);
        nghttp2_data_provider dp = {.source.ptr = st, .read_callback = on_data_read};
        nghttp2_submit_response(st->s->ng, st->id, nva, nnv, &dp);
    }
}

/* ---- request deadlines ----
 *
 * A stream whose request is still arriving must complete its header block
 * within header_timeout and then send body bytes at least every
 * body_timeout, as on HTTP/1.1: one stalled upload must not hold an origin
 * connection and a stream slot for ever. The streams of a session share the
 * connection's one timer, which serves nothing else while streams are open
 * (the idle timeout runs only when none are); a DATA frame just moves its
 * stream's deadline and the timer re-scans when it fires.
 */

static void arm_deadlines(h2_session_t *s)
{
    uint64_t due = UINT64_MAX;
    for (list_t *l = s->streams.next; l != &s->streams; l = l->next) {
        h2_stream_t *st = container_of(l, h2_stream_t, link);
        if (st->due_ms != 0 && st->due_ms < due)
            due = st->due_ms;
    }
    bool was = s->deadlines;
    s->deadlines = due != UINT64_MAX;
    if (!s->deadlines) {
        if (was)
            conn_timer_set(s->c, 0);
        return;
    }
    uint64_t now = uv_now(s->c->f->loop);
    conn_timer_set(s->c, due > now ? (double)(due - now) / 1000.0 : 0.001);
}

static void deadline_set(h2_stream_t *st, double seconds)
{
    st->due_ms = uv_now(st->s->c->f->loop) + (uint64_t)(seconds * 1000.0);
    if (!st->s->deadlines)
        arm_deadlines(st->s);
}

/* The client stopped sending its request: answer 408 if nothing went out
 * yet, else cancel the stream; either way the origin request is dropped.
 * Returns false when the whole connection ends instead: a header block
 * left unfinished blocks every stream (its CONTINUATIONs must come next). */
static bool request_timeout(h2_stream_t *st)
{
    h2_session_t *s = st->s;
    st->due_ms = 0;
    LOG_DEBUG("h2 %s:%u: stream %d request timeout", s->c->peer_addr, s->c->peer_port, st->id);
    if (!st->head_done) {
        nghttp2_session_terminate_session(s->ng, NGHTTP2_NO_ERROR);
        conn_close_after_write(s->c);
        return false;
    }
    exchange_t *ex = st->ex;
    bool answered = st->state != H2_STREAM_REQUEST;
    if (ex != NULL && !st->response_done) {
        st->response_done = true;
        exchange_abort(ex);
    }
    if (!answered) {
        /* HEADERS with END_STREAM completes the response; the RST_STREAM
         * (NO_ERROR) after it tells the client to stop sending (RFC 9113 §8.1). */
        nghttp2_nv nva[] = {
            make_nv(":status", 7, "408", 3),
            make_nv("content-length", 14, "0", 1),
        };
        if (ex != NULL)
            ex->status = 408;
        nghttp2_submit_response(s->ng, st->id, nva, 2, NULL);
        stream_set_state(st, H2_STREAM_EOF);
        st->rst_when_sent = true; /* not now: nghttp2 would drop the queued HEADERS */
    } else if (st->state != H2_STREAM_RESET) {
        stream_set_state(st, H2_STREAM_RESET);
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    }
    return true;
}

static void expire_deadlines(h2_session_t *s)
{
    uint64_t now = uv_now(s->c->f->loop);
    double body = s->c->f->cfg->body_timeout;
    for (list_t *l = s->streams.next; l != &s->streams; l = l->next) {
        h2_stream_t *st = container_of(l, h2_stream_t, link);
        if (st->due_ms == 0 || st->due_ms > now)
            continue;
        /* A client held back by our own flow control (the origin is slow to
         * take the body) is not stalling: its clock restarts. */
        if (st->unconsumed > 0 ||
            nghttp2_session_get_stream_local_window_size(s->ng, st->id) <= 0 ||
            nghttp2_session_get_local_window_size(s->ng) <= 0) {
            st->due_ms = now + (uint64_t)(body * 1000.0);
            continue;
        }
        if (!request_timeout(st)) {
            kick(s);
            return;
        }
    }
    s->deadlines = false;
    arm_deadlines(s);
    kick(s);
}

/* ---- exchange callbacks ---- */

/*
 * A pushed stream whose origin fetch failed (unreachable, timed out, head
 * too large) or answered 4xx/5xx. The client never asked for it: a pushed
 * error response would only stand in its push cache for the asset, and a
 * 502 made by herald would hide the origin's real answer. RST_STREAM(CANCEL)
 * instead, and a client that needs the URL requests it itself.
 */
static void push_cancel(h2_stream_t *st)
{
    if (st->state == H2_STREAM_RESET)
        return;
    stream_set_state(st, H2_STREAM_RESET);
    nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
}

static void on_response_head(exchange_t *ex, bool final)
{
    h2_stream_t *st = ex->fctx;
    if (st->state != H2_STREAM_REQUEST || st->push_dropped)
        return;
    bool pushed = ex->role == EXCHANGE_ROLE_PUSHED;
    if (pushed && final && !exchange_push_status_ok(ex->status)) {
        /* Nothing goes out, but the origin's response is read to its end
         * (the body is dropped: the state stays REQUEST), so that learning
         * sees its status and stops planning the asset. */
        st->push_dropped = true;
        return;
    }
    if (head_estimate(ex) > H2_MAX_HEAD) {
        if (!final || ex->status < 200)
            return; /* drop an oversized 1xx */
        LOG_WARN("h2: origin response header too large for %s %s", ex->method, ex->path);
        st->response_done = true;
        exchange_abort(ex);
        if (pushed)
            push_cancel(st);
        else
            respond_simple(st, 502, "origin response header too large");
        kick(st->s);
        return;
    }
    if (!final || ex->status < 200) {
        if (ex->status == 101 || ex->status < 100)
            return; /* 101 has no meaning in h2 */
        submit_head(st, false, false);
    } else {
        bool body = !st->is_head && ex->status != 204 && ex->status != 304;
        submit_head(st, true, body);
        stream_set_state(st, body ? H2_STREAM_BODY : H2_STREAM_EOF);
    }
    kick(st->s);
}

static size_t on_response_body(exchange_t *ex, const uint8_t *data, size_t len)
{
    h2_stream_t *st = ex->fctx;
    if (st->state != H2_STREAM_BODY)
        return 0; /* HEAD / 204 / 304, or reset: nothing goes out */
    q_append(st, data, len);
    resume(st);
    kick(st->s);
    size_t n = queued(st);
    if (n > EXCHANGE_HIGH_WATER)
        st->upstream_paused = true;
    return n;
}

static void on_response_end(exchange_t *ex)
{
    h2_stream_t *st = ex->fctx;
    st->response_done = true;
    if (st->push_dropped) {
        push_cancel(st);
    } else if (st->state == H2_STREAM_BODY) {
        stream_set_state(st, H2_STREAM_EOF);
        resume(st);
    }
    kick(st->s);
}

static void on_response_error(exchange_t *ex, int status)
{
    h2_stream_t *st = ex->fctx;
    st->response_done = true;
    if (st->state == H2_STREAM_REQUEST && ex->role == EXCHANGE_ROLE_PUSHED) {
        push_cancel(st);
    } else if (st->state == H2_STREAM_REQUEST) {
        respond_simple(st, status,
                       status == 504   ? "origin timed out"
                       : status == 503 ? "origin busy: too many requests waiting"
                                       : "origin unavailable");
    } else if (st->state != H2_STREAM_RESET) {
        /* Part of the body went out: never end the stream cleanly. */
        stream_set_state(st, H2_STREAM_RESET);
        nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    }
    kick(st->s);
}

static void on_request_consumed(exchange_t *ex, size_t n)
{
    h2_stream_t *st = ex->fctx;
    if (n > st->unconsumed)
        n = st->unconsumed;
    st->unconsumed -= n;
    nghttp2_session_consume(st->s->ng, st->id, n); /* may queue WINDOW_UPDATEs */
    /* The client may send again from now on: its body clock starts here,
     * not at the last scan that found it held back (else a hold ending
     * just before the deadline expires it at once). Moved, not re-armed. */
    if (st->due_ms != 0)
        st->due_ms =
            uv_now(st->s->c->f->loop) + (uint64_t)(st->s->c->f->cfg->body_timeout * 1000.0);
    kick(st->s);
}

static void on_tunnel_open(exchange_t *ex)
{
    /* Only h1 asks for upgrades. */
}

/* ---- push and hints (driven by delivery.c) ---- */

/* Request headers a pushed request inherits from its parent. */
static const char *const push_inherit[] = {"accept", "accept-encoding", "accept-language",
                                           "user-agent", "cookie"};

static exchange_t *on_push_promise(exchange_t *parent, const char *path)
{
    h2_stream_t *pst = parent->fctx;
    h2_session_t *s = pst->s;
    if ((pst->state != H2_STREAM_REQUEST && pst->state != H2_STREAM_BODY) || s->state != H2_OPEN ||
        conn_is_closing(s->c) ||
        nghttp2_session_get_remote_settings(s->ng, NGHTTP2_SETTINGS_ENABLE_PUSH) == 0)
        return NULL;
    h2_stream_t *st = xcalloc(1, sizeof(*st));
    st->s = s;
    block_queue_init(&st->q, H2_FRAME_HEADER);
    st->state = H2_STREAM_REQUEST;
    st->started = true;
    exchange_t *ex = exchange_create(s->c->f->xctx, s->c->client, &h2_fops, st);
    ex->proto = EXCHANGE_HTTP2;
    ex->role = EXCHANGE_ROLE_PUSHED;
    ex->method = "GET";
    /* Copied: the parent's strings live in its pool, and a queued push may
     * start after the page's stream is gone. */
    ex->scheme = mempool_strndup(&ex->pool, parent->scheme, strlen(parent->scheme));
    ex->authority = mempool_strndup(&ex->pool, parent->authority, strlen(parent->authority));
    ex->path = mempool_strndup(&ex->pool, path, strlen(path));
    ex->client_tls = parent->client_tls;
    memcpy(ex->client_addr, parent->client_addr, sizeof(ex->client_addr));
    ex->client_port = parent->client_port;
    ex->client_push = parent->client_push;
    ex->client_max_streams = parent->client_max_streams;
    nghttp2_nv nva[4 + 16];
    size_t n = 0;
    nva[n++] = make_nv(":method", 7, "GET", 3);
    nva[n++] = make_nv(":scheme", 7, ex->scheme, strlen(ex->scheme));
    nva[n++] = make_nv(":authority", 10, ex->authority, strlen(ex->authority));
    nva[n++] = make_nv(":path", 5, ex->path, strlen(ex->path));
    for (size_t i = 0; i < parent->req_headers.n && n < sizeof(nva) / sizeof(nva[0]); i++) {
        const header_t *h = &parent->req_headers.v[i];
        for (size_t k = 0; k < sizeof(push_inherit) / sizeof(push_inherit[0]); k++) {
            if (!headers_name_eq(h->name, h->name_len, push_inherit[k]))
                continue;
            /* copied into the pushed exchange's pool: the parent may go first */
            headers_add(&ex->req_headers, &ex->pool, push_inherit[k], strlen(push_inherit[k]),
                        h->value, h->value_len);
            const header_t *c = &ex->req_headers.v[ex->req_headers.n - 1];
            nva[n++] = make_nv(c->name, c->name_len, c->value, c->value_len);
            break;
        }
    }
    /* nghttp2 copies nva; st becomes the promised stream's user data. */
    int32_t id = nghttp2_submit_push_promise(s->ng, NGHTTP2_FLAG_NONE, pst->id, nva, n, st);
    if (id < 0) {
        LOG_DEBUG("h2: push_promise %s: %s", path, nghttp2_strerror(id));
        ex->logged = true;          /* nothing was sent: no access log line */
        exchange_frontend_done(ex); /* never started: freed here */
        free(st);
        return NULL;
    }
    st->id = id;
    st->ex = ex;
    list_insert(&s->streams, &st->link);
    s->nstreams++;
    if (!s->deadlines)
        conn_timer_set(s->c, 0);
    kick(s);
    return ex;
}

static bool on_early_hints(exchange_t *ex, const headers_t *links)
{
    h2_stream_t *st = ex->fctx;
    if (st->state != H2_STREAM_REQUEST || links->n == 0 || links->n > H2_MAX_NV - 1)
        return false;
    nghttp2_nv nva[H2_MAX_NV];
    size_t n = 0;
    nva[n++] = make_nv(":status", 7, "103", 3);
    for (size_t i = 0; i < links->n; i++)
        nva[n++] = make_nv("link", 4, links->v[i].value, links->v[i].value_len);
    /* nghttp2 copies nva during the call */
    if (nghttp2_submit_headers(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NULL, nva, n, NULL) != 0)
        return false;
    kick(st->s);
    return true;
}

static const exchange_frontend_ops_t h2_fops = {
    .response_head = on_response_head,
    .response_body = on_response_body,
    .response_end = on_response_end,
    .response_error = on_response_error,
    .request_consumed = on_request_consumed,
    .tunnel_open = on_tunnel_open,
    .push_promise = on_push_promise,
    .early_hints = on_early_hints,
};

/* ---- nghttp2 callbacks: name/value/data pointers point into the input ---- */

/* Whether the client jumped over `id` when it opened a higher stream. */
static bool client_id_skipped(const h2_session_t *s, int32_t id)
{
    for (unsigned i = 0; i < s->nskipped; i++)
        if (id >= s->skipped[i].lo && id <= s->skipped[i].hi)
            return true;
    return false;
}

/*
 * Every frame's header, before its payload. For client HEADERS this keeps
 * the record of opened stream ids, and catches HEADERS on an id lower than
 * one already opened that was itself never opened: new stream ids must
 * increase (RFC 9113 section 5.1.1), so that is a connection error of type
 * PROTOCOL_ERROR. nghttp2 ignores every HEADERS below the highest id, since
 * it cannot tell those from legal ones: trailers (or DATA) the client sent
 * on a stream before our RST_STREAM for it arrived. Those ids were opened,
 * so they still pass here.
 */
static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user)
{
    h2_session_t *s = user;
    int32_t id = hd->stream_id;
    if (hd->type != NGHTTP2_HEADERS || id <= 0 || (id & 1) == 0)
        return 0; /* stream 0 and our own (even) ids are nghttp2's to judge */
    if (id > s->max_client_id) {
        int32_t next = s->max_client_id == 0 ? 1 : s->max_client_id + 2;
        if (id > next) {
            s->skipped[s->skipped_next].lo = next;
            s->skipped[s->skipped_next].hi = id - 2;
            s->skipped_next = (s->skipped_next + 1) % H2_SKIPPED_RANGES;
            if (s->nskipped < H2_SKIPPED_RANGES)
                s->nskipped++;
        }
        s->max_client_id = id;
        return 0;
    }
    if (!client_id_skipped(s, id))
        return 0;
    LOG_DEBUG("h2 %s:%u: HEADERS on stream %d, never opened, below stream %d", s->c->peer_addr,
              s->c->peer_port, id, s->max_client_id);
    (void)ng;
    /* h2_session_recv ends the connection with GOAWAY(PROTOCOL_ERROR) */
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    h2_session_t *s = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    h2_stream_t *st = xcalloc(1, sizeof(*st));
    st->s = s;
    block_queue_init(&st->q, H2_FRAME_HEADER);
    st->id = frame->hd.stream_id;
    st->state = H2_STREAM_REQUEST;
    list_insert(&s->streams, &st->link);
    s->nstreams++;
    if (!s->deadlines)
        conn_timer_set(s->c, 0); /* the idle timeout ends */
    deadline_set(st, s->c->f->cfg->header_timeout);
    exchange_t *ex = exchange_create(s->c->f->xctx, s->c->client, &h2_fops, st);
    ex->proto = EXCHANGE_HTTP2;
    ex->scheme = s->c->tls != NULL ? "https" : "http";
    ex->client_tls = s->c->tls != NULL;
    _Static_assert(sizeof(ex->client_addr) == sizeof(s->c->peer_addr), "address sizes");
    memcpy(ex->client_addr, s->c->peer_addr, sizeof(ex->client_addr));
    ex->client_port = s->c->peer_port;
    st->ex = ex;
    nghttp2_session_set_stream_user_data(ng, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    h2_session_t *s = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers are not forwarded */
    h2_stream_t *st = stream_get(s, frame->hd.stream_id);
    if (st == NULL || st->ex == NULL || st->reject_status != 0)
        return 0;
    exchange_t *ex = st->ex;
    const config_t *cfg = s->c->f->cfg;
    st->header_bytes += namelen + valuelen + 32;
    if (st->header_bytes > cfg->max_header_size || ex->req_headers.n >= cfg->max_headers) {
        st->reject_status = 431;
        st->reject_text = "request header too large";
        return 0;
    }
    const char *n = (const char *)name, *v = (const char *)value;
    /* Copied into the exchange's pool: name and value live only during this call. */
    if (namelen > 0 && n[0] == ':') {
        char *copy = mempool_strndup(&ex->pool, v, valuelen);
        if (namelen == 7 && memcmp(n, ":method", 7) == 0)
            ex->method = copy;
        else if (namelen == 7 && memcmp(n, ":scheme", 7) == 0)
            ex->scheme = copy;
        else if (namelen == 10 && memcmp(n, ":authority", 10) == 0)
            ex->authority = copy;
        else if (namelen == 5 && memcmp(n, ":path", 5) == 0)
            ex->path = copy;
        else if (namelen == 9 && memcmp(n, ":protocol", 9) == 0)
            st->protocol = copy;
        return 0;
    }
    headers_add(&ex->req_headers, &ex->pool, n, namelen, v, valuelen);
    if (namelen == 14 && memcmp(n, "content-length", 14) == 0) {
        char *end = NULL;
        const char *cv = ex->req_headers.v[ex->req_headers.n - 1].value;
        long long cl = strtoll(cv, &end, 10);
        if (end != cv && cl >= 0)
            ex->req_content_length = cl;
    }
    return 0;
}

/* The request head is complete: forward it, or answer it here. */
static void start_stream(h2_session_t *s, h2_stream_t *st, bool end_stream)
{
    exchange_t *ex = st->ex;
    if (ex == NULL)
        return;
    st->is_head = ex->method != NULL && strcmp(ex->method, "HEAD") == 0;
    if (ex->method == NULL || (ex->path == NULL && strcmp(ex->method, "CONNECT") != 0)) {
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
        stream_set_state(st, H2_STREAM_RESET);
        return;
    }
    if (strcmp(ex->method, "CONNECT") == 0) {
        respond_simple(st, 501,
                       st->protocol ? "extended CONNECT (WebSocket over HTTP/2) is not supported"
                                    : "CONNECT is not supported by this proxy");
        return;
    }
    if (st->reject_status != 0) {
        respond_simple(st, st->reject_status, st->reject_text);
        return;
    }
    if (ex->authority == NULL) {
        const header_t *host = headers_find(&ex->req_headers, "host");
        ex->authority = host ? host->value : "";
    }
    ex->req_has_body = !end_stream;
    ex->client_push = nghttp2_session_get_remote_settings(s->ng, NGHTTP2_SETTINGS_ENABLE_PUSH);
    ex->client_max_streams =
        nghttp2_session_get_remote_settings(s->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    st->started = true;
    exchange_start(ex); /* may answer synchronously: submit calls are legal in callbacks */
    if (end_stream && st->ex != NULL)
        exchange_request_end(ex);
}

/* The real GOAWAY, naming the last stream we took: the session ends when those are done. */
static void send_final_goaway(h2_session_t *s)
{
    h2_set_state(s, H2_GOAWAY);
    nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    h2_session_t *s = user;
    h2_stream_t *st;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        st = stream_get(s, frame->hd.stream_id);
        if (st == NULL)
            return 0;
        bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        st->head_done = true;
        if (end)
            st->due_ms = 0; /* the request is complete */
        else if (frame->headers.cat == NGHTTP2_HCAT_REQUEST && st->state == H2_STREAM_REQUEST)
            deadline_set(st, s->c->f->cfg->body_timeout);
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            start_stream(s, st, end);
        } else if (end && st->started && st->ex != NULL) {
            exchange_request_end(st->ex); /* trailers end the body */
        }
        break;
    case NGHTTP2_PING:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
            break;
        if (s->state == H2_NOTICE && memcmp(frame->ping.opaque_data, drain_ping, 8) == 0)
            send_final_goaway(s);
        else if (s->pacer_ops != NULL &&
                 s->pacer_ops->ping_acked(s->pacer, frame->ping.opaque_data, uv_hrtime()) > 0 &&
                 s->npaced > 0)
            kick(s); /* the rate moved: held pushes may go */
        break;
    case NGHTTP2_DATA:
        st = stream_get(s, frame->hd.stream_id);
        if (st != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            st->due_ms = 0;
        if (st != NULL && st->started && st->ex != NULL &&
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            exchange_request_end(st->ex);
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                              size_t len, void *user)
{
    h2_session_t *s = user;
    h2_stream_t *st = stream_get(s, id);
    if (st != NULL && st->due_ms != 0) /* moved, not re-armed: expire_deadlines re-scans */
        st->due_ms = uv_now(s->c->f->loop) + (uint64_t)(s->c->f->cfg->body_timeout * 1000.0);
    if (st == NULL || !st->started || st->ex == NULL || st->ex->upstream == NULL) {
        /* Nobody will consume these bytes: give the window back at once. */
        nghttp2_session_consume(ng, id, len);
        return 0;
    }
    st->unconsumed += len;
    exchange_request_body(st->ex, data, len); /* copied: data points into the input */
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t error_code, void *user)
{
    h2_session_t *s = user;
    h2_stream_t *st = stream_get(s, id);
    if (st == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    if (st->unconsumed > 0) /* the stream is gone; its share of the connection window is not */
        nghttp2_session_consume_connection(ng, st->unconsumed);
    st->unconsumed = 0;
    stream_release(st);
    stream_free(st);
    s->nstreams--;
    if (s->nstreams == 0 && !conn_is_closing(s->c)) {
        s->deadlines = false;
        conn_timer_set(s->c, s->c->f->cfg->idle_timeout);
    }
    return 0;
}

/* A complete response to a request still arriving is followed by
 * RST_STREAM(NO_ERROR), which stops the client's upload (RFC 9113 §8.1);
 * it is submitted only once the response's last frame has gone, since
 * nghttp2 drops what is still queued for a stream being reset. */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    h2_session_t *s = user;
    if (frame->hd.type == NGHTTP2_PING && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        /* Called inside mem_send before the PING's own bytes are handed
         * back: out_total counts everything in front of it. */
        if (s->pacer_ops != NULL)
            s->pacer_ops->ping_sent(s->pacer, frame->ping.opaque_data, s->c->out_total,
                                    uv_hrtime());
        return 0;
    }
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
        (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA))
        return 0;
    h2_stream_t *st = stream_get(user, frame->hd.stream_id);
    if (st != NULL && st->rst_when_sent) {
        st->rst_when_sent = false;
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

/* A frame nghttp2 could not send (e.g. a header block over its limit): end the stream. */
static int on_frame_not_send(nghttp2_session *ng, const nghttp2_frame *frame, int code, void *user)
{
    h2_session_t *s = user;
    if (frame->hd.type == NGHTTP2_PUSH_PROMISE) {
        /* The promised stream never opened (parent gone): drop its exchange. */
        int32_t pid = frame->push_promise.promised_stream_id;
        for (list_t *l = s->streams.next; l != &s->streams; l = l->next) {
            h2_stream_t *st = container_of(l, h2_stream_t, link);
            if (st->id == pid && nghttp2_session_find_stream(ng, pid) == NULL) {
                stream_release(st);
                stream_free(st);
                s->nstreams--;
                break;
            }
        }
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    h2_stream_t *st = stream_get(s, frame->hd.stream_id);
    if (st != NULL && st->state != H2_STREAM_RESET) {
        stream_set_state(st, H2_STREAM_RESET);
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    }
    return 0;
}

static int on_error(nghttp2_session *ng, int code, const char *msg, size_t len, void *user)
{
    h2_session_t *s = user;
    (void)s;
    LOG_DEBUG("h2 %s:%u: %.*s", s->c->peer_addr, s->c->peer_port, (int)len, msg);
    return 0;
}

/* ---- session ---- */

static void *h2_create(conn_t *c)
{
    h2_session_t *s = xcalloc(1, sizeof(*s));
    s->c = c;
    list_init(&s->streams);
    const config_t *cfg = c->f->cfg;

    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        alloc_fail(__FILE__, __LINE__, 0);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_send_data_callback(cbs, on_send_data);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_error_callback2(cbs, on_error);

    nghttp2_option *opt;
    if (nghttp2_option_new(&opt) != 0)
        alloc_fail(__FILE__, __LINE__, 0);
    /* Windows reopen only as upstream consumes (on_request_consumed). */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    /* Flood protections: bounded CONTINUATIONs, RST_STREAM rate (rapid
     * reset), queued SETTINGS/PING acks and SETTINGS entries. Breaking them
     * ends this connection with GOAWAY; others are untouched. */
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);

    if (nghttp2_session_server_new2(&s->ng, cbs, s, opt) != 0)
        alloc_fail(__FILE__, __LINE__, 0);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);

    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_INITIAL_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->max_header_size},
    };
    nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, H2_CONNECTION_WINDOW);
    s->pacer_ops = c->client->pacer_ops;
    s->pacer = c->client->pacer;
    conn_timer_set(c, cfg->idle_timeout);
    return s;
}

static void h2_destroy(void *arg)
{
    h2_session_t *s = arg;
    nghttp2_session_del(s->ng); /* runs no stream-close callbacks */
    while (s->streams.next != &s->streams) {
        h2_stream_t *st = container_of(s->streams.next, h2_stream_t, link);
        assert(st->ex == NULL);
        stream_free(st);
    }
    free(s);
}

static int h2_recv(void *arg, const uint8_t *data, size_t len)
{
    h2_session_t *s = arg;
    s->in_recv++;
    /* Callbacks get pointers into data (the read buffer / TLS output); they copy. */
    ssize_t r = nghttp2_session_mem_recv(s->ng, data, len);
    s->in_recv--;
    if (r < 0) {
        LOG_DEBUG("h2 %s:%u: %s", s->c->peer_addr, s->c->peer_port, nghttp2_strerror((int)r));
        if (r == NGHTTP2_ERR_BAD_CLIENT_MAGIC)
            return -1;
        /* Flooding or another fatal error: tell the client why, then go. */
        nghttp2_session_terminate_session(
            s->ng, r == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
        return -1;
    }
    return 0;
}

/* Offer the pushes the pacer held to nghttp2 again: their data provider asks anew. */
static void offer_paced(h2_session_t *s)
{
    if (s->npaced == 0)
        return;
    for (list_t *l = s->streams.next; l != &s->streams; l = l->next) {
        h2_stream_t *st = container_of(l, h2_stream_t, link);
        if (st->paced)
            resume(st);
    }
}

static void h2_produce(void *arg)
{
    h2_session_t *s = arg;
    conn_t *c = s->c;
    if (s->in_recv > 0 || conn_is_closing(c))
        return;
    offer_paced(s);
    while (conn_buffered(c) < CONN_WRITE_CHUNK) {
        const uint8_t *data = NULL;
        ssize_t n = nghttp2_session_mem_send(s->ng, &data);
        if (n < 0) {
            LOG_DEBUG("h2 %s:%u: send: %s", c->peer_addr, c->peer_port, nghttp2_strerror((int)n));
            conn_close(c);
            return;
        }
        if (n == 0)
            break;
        /* data lives only until the next mem_send call: copy it into the write path. */
        conn_write(c, data, (size_t)n);
        if (s->pacer_ops != NULL)
            s->pacer_ops->output(s->pacer, c->out_total, uv_hrtime());
        maybe_ping(s); /* nghttp2 sends it before any further DATA */
    }
    /* Waiting plan items may fetch now; held pushes get another look later. */
    uint64_t due = s->pacer_ops != NULL ? s->pacer_ops->paced(s->pacer) : 0;
    if (due > 0 && !conn_is_closing(c))
        conn_defer_after(c, (due + 999999) / 1000000);
    if (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng))
        conn_close_after_write(c);
}

static void h2_written(void *arg) {}

static bool h2_idle(const void *arg)
{
    const h2_session_t *s = arg;
    return s == NULL || s->nstreams == 0;
}

static void h2_timeout(void *arg)
{
    h2_session_t *s = arg;
    if (s->deadlines) {
        expire_deadlines(s);
        return;
    }
    if (s->state == H2_NOTICE) {
        /* No PING ACK in time: send the final GOAWAY anyway. */
        send_final_goaway(s);
        kick(s);
        return;
    }
    if (s->nstreams > 0)
        return;
    nghttp2_session_terminate_session(s->ng, NGHTTP2_NO_ERROR);
    conn_close_after_write(s->c);
}

static void h2_deferred(void *arg)
{
    h2_session_t *s = arg;
    kick(s);
}

static void h2_drain(void *arg)
{
    h2_session_t *s = arg;
    if (s->state != H2_OPEN)
        return;
    h2_set_state(s, H2_NOTICE);
    nghttp2_submit_shutdown_notice(s->ng);
    /* The final GOAWAY follows the PING's ACK: one round trip in which
     * requests already on their way still get served. */
    nghttp2_submit_ping(s->ng, NGHTTP2_FLAG_NONE, drain_ping);
    if (s->nstreams == 0)
        conn_timer_set(s->c, 1.0); /* a client that never answers the PING */
    kick(s);
}

static void h2_abort(void *arg)
{
    h2_session_t *s = arg;
    for (list_t *l = s->streams.next; l != &s->streams; l = l->next) {
        h2_stream_t *st = container_of(l, h2_stream_t, link);
        stream_release(st);
    }
    /* the pacer goes with the connection's exchange_client_t, closed next */
    s->pacer_ops = NULL;
    s->pacer = NULL;
}

const conn_session_ops_t h2_session_ops = {
    .name = "h2",
    .proto = EXCHANGE_HTTP2,
    .create = h2_create,
    .destroy = h2_destroy,
    .recv = h2_recv,
    .produce = h2_produce,
    .written = h2_written,
    .idle = h2_idle,
    .timeout = h2_timeout,
    .deferred = h2_deferred,
    .drain = h2_drain,
    .abort = h2_abort,
    .flush_on_error = true,
};
