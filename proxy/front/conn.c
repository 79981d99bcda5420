/*
 * Client connections: accept, TLS, protocol detection, the single-write
 * output path, timeouts and the libuv close sequence. See conn.h.
 */
#include "conn.h"

#include <assert.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "list.h"
#include "h1.h"
#include "h2.h"
#include "log.h"
#include "herald/error.h"
#include "tcpinfo.h"
#include "tls.h"

static const char h2_preface[24] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* Kernel send queue bound: keeps HTTP/2 scheduling decisions in user space. */
enum {
    NOTSENT_LOWAT = 16 * 1024,
    /* TLS dynamic record sizing (as nghttpx and h2o do): one-packet records
     * for the first TLS_WARMUP_BYTES and after TLS_IDLE_RESET_MS idle,
     * unless the path is already known to be fast (TLS_FAST_PATH_RATE). */
    TLS_SMALL_RECORD = 1300,
    TLS_WARMUP_BYTES = 1024 * 1024,
    TLS_IDLE_RESET_MS = 1000,
    TLS_MAX_RECORD = 16 * 1024, /* the protocol's limit on a record's plaintext */
    /* A segment piece this big becomes a record of its own rather than
     * being copied into the staging buffer to share one. */
    TLS_DIRECT_MIN = 4096,
    CONN_IOV_MAX = 64, /* buffers in one writev */
    READ_BUF_SIZE = 64 * 1024,
    LINGER_MS = 2000,
    TRIM_ABOVE = 16384, /* larger output buffers are freed when the session is idle */
};

/*
 * One read buffer per worker thread: every byte of it is consumed (parsed,
 * fed to TLS or copied by a session) before read_cb returns, so connections
 * can share it. This is scratch memory, not context.
 */
static __thread uint8_t read_buf[READ_BUF_SIZE];

/*
 * A delivery rate (bytes/s) at which a full 16 KiB record takes at most
 * ~130 us to arrive: small records would only cost CPU (8 times the records
 * to encrypt and frame) for no earlier use of the first bytes. Far above the
 * rates of the client paths the warm-up is for; loopback and data-centre
 * clients reach it within their first round trips.
 */
#define TLS_FAST_PATH_RATE (125ULL * 1000 * 1000)

/* Is the client's path already so fast that the warm-up has nothing to win?
 * Any sample proves it: an app-limited one only understates the path. */
static bool tls_path_fast(conn_t *c)
{
    uv_os_fd_t fd;
    tcpinfo_t ti;
    return uv_fileno((const uv_handle_t *)&c->tcp, &fd) == 0 && tcpinfo_read(fd, &ti) == 0 &&
           ti.delivery_rate >= TLS_FAST_PATH_RATE;
}

/* Where small plaintext segments are gathered into one TLS record; encrypted
 * before fill_wbuf returns, so, like read_buf, shared by a worker's
 * connections. */
static __thread uint8_t tls_stage[TLS_MAX_RECORD];

conn_preface_t conn_preface_match(const uint8_t *p, size_t len)
{
    size_t n = len < sizeof(h2_preface) ? len : sizeof(h2_preface);
    if (memcmp(p, h2_preface, n) != 0)
        return CONN_PREFACE_NO;
    return n == sizeof(h2_preface) ? CONN_PREFACE_YES : CONN_PREFACE_PARTIAL;
}

static void conn_set_state(conn_t *c, conn_state_t next)
{
    switch (next) {
    case CONN_HANDSHAKE:
    case CONN_DETECT:
        assert(0 && "initial states are set at accept");
        break;
    case CONN_ACTIVE:
        assert(c->state == CONN_HANDSHAKE || c->state == CONN_DETECT);
        break;
    case CONN_LINGER:
        assert(c->state == CONN_ACTIVE || c->state == CONN_HANDSHAKE || c->state == CONN_DETECT);
        break;
    case CONN_CLOSING:
        assert(c->state != CONN_CLOSING);
        break;
    }
    c->state = next;
}

static void buf_reserve(conn_buf_t *b, size_t extra)
{
    b->p = alloc_grow(b->p, &b->cap, b->len + extra, 16384);
}

/* ---- close ---- */

static void on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    if (c->session != NULL)
        c->sops->destroy(c->session);
    tls_conn_destroy(c->tls);
    outbuf_dispose(&c->out);
    free(c->wbuf.p);
    front_ctx_t *f = c->f;
    list_remove(&c->link);
    /* only this loop writes nconns; the admin thread reads it (metrics) */
    __atomic_store_n(&f->nconns, f->nconns - 1, __ATOMIC_RELAXED);
    free(c);
    if (f->conn_closed != NULL)
        f->conn_closed(f->owner);
}

void conn_close(conn_t *c)
{
    if (c->state == CONN_CLOSING)
        return;
    conn_set_state(c, CONN_CLOSING);
    /* Sessions abort their exchanges now (no fops callback reaches them
     * afterwards) but are freed only in the close callback: we may be deep
     * inside one of their callbacks. */
    if (c->session != NULL)
        c->sops->abort(c->session);
    /* after the aborts: open visits commit now, not a loop turn later (the
     * client's next connection may already be asking for the same page) */
    exchange_client_close(c->client);
    c->client = NULL;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    lazytimer_stop(&c->timer);
    uv_timer_stop(&c->defer);
    uv_idle_stop(&c->idle);
    /* Unsent output goes now, references to stream blocks included. A write
     * in flight may point into it: uv_close below closes the socket at once,
     * so libuv never reads those bytes again (its write_cb only reports
     * UV_ECANCELED). wbuf's memory (TLS) is freed with c. */
    outbuf_dispose(&c->out);
    c->wlen = 0;
    c->wbuf.len = 0;
    c->open_handles = 4;
    uv_close((uv_handle_t *)&c->timer.t, on_handle_closed);
    uv_close((uv_handle_t *)&c->defer, on_handle_closed);
    uv_close((uv_handle_t *)&c->idle, on_handle_closed);
    /* A write in flight is cancelled (write_cb sees UV_ECANCELED first). */
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    /* Our FIN is out. Keep reading (and discarding) until the client's EOF
     * so that unread request bytes don't turn our close into an RST that
     * could destroy the response in flight. */
    conn_set_state(c, CONN_LINGER);
    conn_timer_set(c, LINGER_MS / 1000.0);
    conn_read_resume(c);
}

static void start_shutdown(conn_t *c)
{
    c->shutdown_sent = true;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

void conn_close_after_write(conn_t *c)
{
    if (c->state == CONN_CLOSING || c->close_after_write)
        return;
    c->close_after_write = true;
    conn_flush(c);
}

/* ---- write path ---- */

void conn_write(conn_t *c, const void *data, size_t len)
{
    if (c->state == CONN_CLOSING || c->shutdown_sent || len == 0)
        return;
    outbuf_write(&c->out, data, len); /* copied: data is the caller's */
    c->out_total += len;
}

void conn_write_ref(conn_t *c, block_t *b, const uint8_t *p, size_t len)
{
    if (c->state == CONN_CLOSING || c->shutdown_sent || len == 0)
        return;
    outbuf_write_ref(&c->out, b, p, len); /* referenced: kept until written */
    c->out_total += len;
}

size_t conn_buffered(const conn_t *c)
{
    return outbuf_len(&c->out) + c->wbuf.len;
}

/* The session may produce more now that its bytes are out. */
static void tell_written(conn_t *c)
{
    if (c->session != NULL)
        c->sops->written(c->session);
}

/* Drained: an idle connection keeps no large buffers. */
static void trim_if_idle(conn_t *c)
{
    if (c->writing || outbuf_len(&c->out) != 0 || c->state == CONN_CLOSING)
        return;
    if (c->session == NULL || !c->sops->idle(c->session))
        return;
    outbuf_trim(&c->out, TRIM_ABOVE);
    if (c->wbuf.cap > TRIM_ABOVE) {
        free(c->wbuf.p);
        c->wbuf = (conn_buf_t){0};
    }
}

static void on_write(uv_write_t *req, int status)
{
    conn_t *c = req->data;
    c->writing = false;
    if (c->state == CONN_CLOSING)
        return; /* conn_close dropped the output */
    /* The kernel has the bytes: wbuf is ours again, the segments can go. */
    c->wbuf.len = 0;
    outbuf_consume(&c->out, c->wlen);
    c->wlen = 0;
    if (status < 0) {
        conn_close(c);
        return;
    }
    tell_written(c);
    conn_flush(c);
    trim_if_idle(c);
}

static void on_idle(uv_idle_t *h)
{
    conn_t *c = h->data;
    uv_idle_stop(h);
    conn_flush(c);
}

void conn_flush_soon(conn_t *c)
{
    /* An idle handle (not a check handle) so that the loop does not block
     * in poll before running it when we were called from a timer. */
    if (c->state != CONN_CLOSING && !c->writing && !uv_is_active((uv_handle_t *)&c->idle))
        uv_idle_start(&c->idle, on_idle);
}

/* Encrypt the next write's worth of plaintext (at most CONN_WRITE_CHUNK
 * bytes) into wbuf, straight from the segments: large pieces are encrypted
 * where they lie, small ones are gathered into tls_stage first. */
static void fill_wbuf(conn_t *c)
{
    size_t avail = outbuf_len(&c->out);
    if (avail > 0) {
        /* Dynamic record size: a client can use none of a TLS record until
         * all of it has arrived, so while the connection is young (or idle
         * again after a pause: its congestion window is small) records
         * stay within one packet and the page's first bytes are usable at
         * once; then full 16 KiB records for throughput. */
        uint64_t now = uv_now(c->tcp.loop);
        if (now - c->tls_last_write > TLS_IDLE_RESET_MS)
            c->tls_warm_bytes = 0;
        c->tls_last_write = now;
        /* one TCP_INFO read per write while warming up, none after; a write
         * that fits one small record is the same either way */
        if (c->tls_warm_bytes < TLS_WARMUP_BYTES && avail > TLS_SMALL_RECORD && tls_path_fast(c))
            c->tls_warm_bytes = TLS_WARMUP_BYTES;
        size_t record = c->tls_warm_bytes < TLS_WARMUP_BYTES ? TLS_SMALL_RECORD : TLS_MAX_RECORD;
        size_t done = 0;
        while (done < CONN_WRITE_CHUNK && outbuf_len(&c->out) > 0) {
            const uint8_t *p = NULL;
            size_t n = outbuf_piece(&c->out, record, TLS_DIRECT_MIN, CONN_WRITE_CHUNK - done,
                                    tls_stage, &p);
            /* p points into a segment or tls_stage: both hold still until
             * the consume below, and SSL_write is done with them by then. */
            for (size_t off = 0; off < n; off += record) {
                size_t k = n - off < record ? n - off : record;
                if (tls_conn_write(c->tls, p + off, k) != 0) {
                    conn_close(c);
                    return;
                }
            }
            outbuf_consume(&c->out, n);
            done += n;
        }
        c->tls_warm_bytes += done;
    }
    if (c->close_after_write && outbuf_len(&c->out) == 0 && !c->tls_closing) {
        c->tls_closing = true;
        tls_conn_shutdown(c->tls); /* close_notify after the last plaintext */
    }
    size_t pending = tls_conn_pending(c->tls);
    if (pending > 0 && c->wbuf.len == 0) {
        /* the usual case: take the records over, no copy */
        size_t len = 0;
        tls_conn_swap_out(c->tls, &c->wbuf.p, &len, &c->wbuf.cap);
        c->wbuf.len = len;
    } else if (pending > 0) {
        buf_reserve(&c->wbuf, pending);
        c->wbuf.len += tls_conn_take(c->tls, c->wbuf.p + c->wbuf.len, pending);
    }
}

/* Hand the pending ciphertext (TLS) or plaintext segments (cleartext) to
 * the socket: in place when the kernel takes them, else by one uv_write
 * that finishes in on_write. Returns 1 when everything went out, 0 when a
 * write is in flight, -1 when the connection closed. */
static int send_pending(conn_t *c)
{
    uv_stream_t *stream = (uv_stream_t *)&c->tcp;
    uv_buf_t iov[CONN_IOV_MAX];
    size_t nb, total;
    if (c->tls != NULL) {
        iov[0] = uv_buf_init((char *)c->wbuf.p, (unsigned)c->wbuf.len);
        nb = 1;
        total = c->wbuf.len;
    } else {
        nb = outbuf_iov(&c->out, iov, CONN_IOV_MAX);
        total = 0;
        for (size_t i = 0; i < nb; i++)
            total += iov[i].len;
    }
    /* Try the write in place first: when the kernel takes it all (the
     * common case with short send queues) there is no write request, no
     * callback and, above all, no epoll_ctl round trip that libuv's
     * uv_write costs when its queue drains. */
    int n = uv_try_write(stream, iov, (unsigned)nb);
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c);
        return -1;
    }
    size_t sent = n > 0 ? (size_t)n : 0;
    if (c->tls != NULL) {
        if (sent == total) {
            c->wbuf.len = 0;
            return 1;
        }
        memmove(c->wbuf.p, c->wbuf.p + sent, c->wbuf.len - sent);
        c->wbuf.len -= sent;
        iov[0] = uv_buf_init((char *)c->wbuf.p, (unsigned)c->wbuf.len);
    } else {
        /* The kernel may have stopped inside a segment: outbuf_consume
         * keeps that segment's rest. */
        outbuf_consume(&c->out, sent);
        if (sent == total)
            return 1;
        nb = outbuf_iov(&c->out, iov, CONN_IOV_MAX);
        c->wlen = 0;
        for (size_t i = 0; i < nb; i++)
            c->wlen += iov[i].len;
    }
    /* The rest waits for the socket. libuv copies the iov array, not the
     * bytes: wbuf, or the segments (their block references), stay put
     * until on_write. */
    c->wreq.data = c;
    if (uv_write(&c->wreq, stream, iov, (unsigned)nb, on_write) != 0) {
        conn_close(c);
        return -1;
    }
    c->writing = true;
    return 0;
}

/* A connection writes at most this many times in one conn_flush() before
 * yielding to the loop, so one busy client cannot starve the others. */
enum { FLUSH_ROUNDS = 8 };

void conn_flush(conn_t *c)
{
    if (c->state == CONN_CLOSING || c->writing || c->shutdown_sent || c->flushing)
        return;
    /* Re-entry (from produce, or from a session reacting to tell_written)
     * is a no-op: this loop picks up whatever was queued. */
    c->flushing = true;
    for (int round = 0;; round++) {
        if (c->session != NULL && c->sops->produce != NULL) {
            c->sops->produce(c->session); /* may close c */
            if (c->state == CONN_CLOSING)
                break;
        }
        if (c->tls != NULL) {
            fill_wbuf(c);
            if (c->state == CONN_CLOSING)
                break;
        }
        size_t pending = c->tls != NULL ? c->wbuf.len : outbuf_len(&c->out);
        if (pending == 0) {
            if (c->close_after_write && outbuf_len(&c->out) == 0) {
                c->flushing = false;
                start_shutdown(c);
                return;
            }
            break;
        }
        if (round == FLUSH_ROUNDS) {
            conn_flush_soon(c);
            break;
        }
        int r = send_pending(c);
        if (r < 0) {
            c->flushing = false;
            return;
        }
        if (r == 0)
            break;
        tell_written(c);
        if (c->state == CONN_CLOSING)
            break;
    }
    c->flushing = false;
    trim_if_idle(c);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->state == CONN_ACTIVE) {
        c->sops->timeout(c->session);
        return;
    }
    LOG_DEBUG("conn %s:%u: timeout in state %d", c->peer_addr, c->peer_port, c->state);
    conn_close(c);
}

void conn_timer_set(conn_t *c, double seconds)
{
    if (c->state == CONN_CLOSING)
        return;
    if (seconds <= 0) {
        lazytimer_stop(&c->timer);
        return;
    }
    uint64_t ms = (uint64_t)(seconds * 1000.0);
    lazytimer_start(&c->timer, ms ? ms : 1);
}

static void on_defer(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->state != CONN_ACTIVE)
        return;
    c->sops->deferred(c->session);
}

void conn_defer(conn_t *c)
{
    if (c->state != CONN_CLOSING)
        uv_timer_start(&c->defer, on_defer, 0, 0);
}

void conn_defer_after(conn_t *c, uint64_t ms)
{
    if (c->state == CONN_CLOSING)
        return;
    if (uv_is_active((const uv_handle_t *)&c->defer) && uv_timer_get_due_in(&c->defer) <= ms)
        return;
    uv_timer_start(&c->defer, on_defer, ms, 0);
}

/* ---- read path ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    *buf = uv_buf_init((char *)read_buf, sizeof(read_buf));
}

static void start_session(conn_t *c, const conn_session_ops_t *ops)
{
    c->sops = ops;
    conn_set_state(c, CONN_ACTIVE);
    uv_os_fd_t fd = -1;
    if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
        fd = -1;
    /* the observers set up their per-connection state (and h2's pacer) first */
    c->client = exchange_client_open(c->f->xctx, ops->proto, (int)fd, c->tls != NULL, c->peer_addr,
                                     c->peer_port);
    c->session = ops->create(c);
}

static void session_recv(conn_t *c, const uint8_t *p, size_t n)
{
    int rc = c->sops->recv(c->session, p, n);
    if (rc < 0 && c->state != CONN_CLOSING) {
        if (c->sops->flush_on_error)
            conn_close_after_write(c); /* let the GOAWAY out */
        else
            conn_close(c);
    }
}

/* Plaintext from the client: detect the protocol on cleartext, then hand it over. */
static void deliver(conn_t *c, const uint8_t *p, size_t n)
{
    if (c->state == CONN_DETECT) {
        size_t old = c->detect_len;
        size_t take = sizeof(c->detect) - old;
        if (take > n)
            take = n;
        memcpy(c->detect + old, p, take);
        c->detect_len += take;
        conn_preface_t m = conn_preface_match(c->detect, c->detect_len);
        if (m == CONN_PREFACE_PARTIAL)
            return; /* a preface split across reads: wait for the rest */
        /* On an h2c-only listener, bytes that are not the preface (an
         * HTTP/1.1 request, an invalid preface) go to nghttp2 too, which
         * rejects them: the connection closes without an HTTP/1.1 answer,
         * as RFC 9113 section 3.4 asks. */
        start_session(c, m == CONN_PREFACE_YES || c->h2c_only ? &h2_session_ops : &h1_session_ops);
        /* The bytes held back from earlier reads go first, then all of this read. */
        if (old > 0)
            session_recv(c, c->detect, old);
        if (c->state == CONN_ACTIVE)
            session_recv(c, p, n);
        return;
    }
    if (c->state == CONN_ACTIVE)
        session_recv(c, p, n);
}

static void on_tls_input(conn_t *c, const uint8_t *p, size_t n)
{
    if (tls_conn_feed(c->tls, p, n) != 0) {
        conn_close(c);
        return;
    }
    uint8_t plain[16 * 1024]; /* SSL_read output; consumed before the next SSL_read */
    for (;;) {
        if (c->state != CONN_HANDSHAKE && c->state != CONN_ACTIVE)
            return;
        int r = tls_conn_read(c->tls, plain, sizeof(plain));
        if (c->state == CONN_HANDSHAKE && tls_conn_handshake_done(c->tls)) {
            size_t alen = 0;
            const char *alpn = tls_conn_alpn(c->tls, &alen);
            bool h2 = alpn != NULL && alen == 2 && memcmp(alpn, "h2", 2) == 0;
            conn_timer_set(c, 0);
            start_session(c, h2 ? &h2_session_ops : &h1_session_ops);
        }
        if (r > 0) {
            deliver(c, plain, (size_t)r);
            continue;
        }
        if (r == 0)
            return;
        if (r == HERALD_EEOF && c->state == CONN_ACTIVE) {
            conn_close_after_write(c); /* peer's close_notify: finish what we have */
            return;
        }
        LOG_DEBUG("conn %s:%u: TLS error", c->peer_addr, c->peer_port);
        if (tls_conn_pending(c->tls) > 0)
            conn_close_after_write(c); /* let the alert out (e.g. protocol_version) */
        else
            conn_close(c);
        return;
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = stream->data;
    /* buf->base is the per-thread read_buf: consumed before we return. */
    if (nread == 0)
        return; /* EAGAIN, not EOF */
    if (c->state == CONN_CLOSING)
        return;
    if (nread < 0) {
        /* EOF or error. HTTP clients do not half-close while waiting for a
         * response (and a half-closed client is treated as gone), so close. */
        conn_close(c);
        return;
    }
    if (c->state == CONN_LINGER)
        return; /* discard */
    if (c->tls != NULL)
        on_tls_input(c, (const uint8_t *)buf->base, (size_t)nread);
    else
        deliver(c, (const uint8_t *)buf->base, (size_t)nread);
    conn_flush(c);
}

void conn_read_pause(conn_t *c)
{
    c->read_paused = true;
    if (c->reading && c->state != CONN_LINGER) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

void conn_read_resume(conn_t *c)
{
    c->read_paused = false;
    if (c->state == CONN_CLOSING || c->reading || c->read_paused)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

/* ---- accept, drain ---- */

static void on_reject_closed(uv_handle_t *h)
{
    free(h);
}

void front_init(front_ctx_t *f)
{
    list_init(&f->conns);
    f->nconns = f->peak_conns = 0;
}

void conn_accept(front_ctx_t *f, int fd, const config_listen_t *conf)
{
    conn_t *c = xcalloc(1, sizeof(*c));
    uv_tcp_init(f->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        /* c->tcp is c's first member: the close callback frees c. */
        uv_close((uv_handle_t *)&c->tcp, on_reject_closed);
        return;
    }
    c->f = f;
    outbuf_init(&c->out, f->blocks);
    lazytimer_init(f->loop, &c->timer, on_timer);
    c->timer.t.data = c;
    uv_timer_init(f->loop, &c->defer);
    c->defer.data = c;
    uv_idle_init(f->loop, &c->idle);
    c->idle.data = c;
    list_insert(&f->conns, &c->link);
    __atomic_store_n(&f->nconns, f->nconns + 1, __ATOMIC_RELAXED); /* see on_handle_closed */
    if (f->nconns > f->peak_conns)
        f->peak_conns = f->nconns;

    uv_tcp_nodelay(&c->tcp, 1);
    int lowat = NOTSENT_LOWAT;
    setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, c->peer_addr, sizeof(c->peer_addr));
            c->peer_port = ntohs(a->sin6_port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, c->peer_addr, sizeof(c->peer_addr));
            c->peer_port = ntohs(a->sin_port);
        }
    }
    if (conf->tls && f->ssl_ctx != NULL) {
        c->tls = tls_conn_create(f->ssl_ctx);
        c->state = CONN_HANDSHAKE;
    } else {
        c->state = CONN_DETECT;
        c->h2c_only = conf->h2c;
    }
    conn_timer_set(c, f->cfg->header_timeout);
    conn_read_resume(c);
}

void conn_drain_all(front_ctx_t *f)
{
    list_t *l = f->conns.next;
    while (l != &f->conns) {
        conn_t *c = container_of(l, conn_t, link);
        l = l->next; /* conn_close never unlinks synchronously, but be safe */
        if (c->state == CONN_CLOSING || c->draining)
            continue;
        c->draining = true;
        if (c->state != CONN_ACTIVE)
            conn_close(c);
        else
            c->sops->drain(c->session);
    }
}

void conn_close_all(front_ctx_t *f)
{
    list_t *l = f->conns.next;
    while (l != &f->conns) {
        conn_t *c = container_of(l, conn_t, link);
        l = l->next;
        conn_close(c);
    }
}
