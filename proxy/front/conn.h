/*
 * A client connection: the accepted socket, its optional TLS engine, the
 * protocol choice (h2 by ALPN or prior-knowledge preface, else HTTP/1.x),
 * timeouts, and the write path shared by the h1 and h2 sessions.
 *
 * Write path
 *   A session appends plaintext with conn_write() (copied) or
 *   conn_write_ref() (a reference to bytes already in a block: an h2
 *   response body is not copied again) and calls conn_flush(). Output is
 *   a list of segments (outbuf.h). At most one uv_write is in flight;
 *   while it is, new output collects behind it. Cleartext goes out by
 *   writev straight from the segments; with TLS, each write encrypts at
 *   most CONN_WRITE_CHUNK plaintext bytes from the segments into `wbuf`.
 *   An h2 session does not push output: conn_flush() pulls it from
 *   nghttp2 (h2_session_produce) only when the socket can take more, so
 *   nghttp2 decides stream order as late as possible.
 *
 * Lifetime
 *   conn_accept() allocates; conn_close() starts uv_close on every handle
 *   and the conn (with its session) is freed in the last close callback,
 *   never synchronously, so a session may call conn_close() from anywhere
 *   (even inside an nghttp2 or llhttp callback) and keep using `c` and its
 *   own state until it returns to the loop. After conn_close() no output
 *   is written and the session has aborted its exchanges.
 */
#ifndef HERALD_CONN_H
#define HERALD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "block.h"
#include "config.h"
#include "exchange.h"
#include "lazytimer.h"
#include "list.h"
#include "outbuf.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct tls_conn tls_conn_t;
typedef struct conn conn_t;

/**
 * What a worker gives its client connections: the front layer's whole view
 * of the worker (worker.c fills it in and reads nconns). Everything here
 * belongs to one loop's thread; nconns alone is also read by the admin
 * thread (relaxed atomic loads of the loop's relaxed stores).
 */
typedef struct front_ctx {
    uv_loop_t *loop;
    const config_t *cfg;   /* the worker's copy (a reload changes it on the loop) */
    SSL_CTX *ssl_ctx;      /* for new TLS connections, NULL without TLS listeners (swapped
                              on reload; live connections keep their SSL's reference) */
    block_cache_t *blocks; /* response body and output blocks of the connections */
    exchange_ctx_t *xctx;  /* the exchanges the sessions create */
    list_t conns;          /* every client connection (conn_t.link) */
    size_t nconns;
    size_t peak_conns; /* most at once since the owner last reset it */
    /** After a connection is gone (unlinked, nconns down): the owner may finish draining. */
    void (*conn_closed)(void *owner);
    void *owner;
} front_ctx_t;

/** Initialise f's list and counters; the caller sets the other fields. */
void front_init(front_ctx_t *f);
/**
 * Take over `fd`, a client connection accepted on a listener configured by
 * `conf` (borrowed for the call: TLS, cleartext h2 only, or cleartext h2
 * and HTTP/1.1 told apart by the first bytes); fd is closed on failure.
 */
void conn_accept(front_ctx_t *f, int fd, const config_listen_t *conf);
/** Begin a graceful close of every client connection (h2 GOAWAY; h1 close when idle). */
void conn_drain_all(front_ctx_t *f);
/** Close every client connection now (drain time is up). */
void conn_close_all(front_ctx_t *f);

/** One plaintext write at most this big (also the TLS encryption unit). */
enum { CONN_WRITE_CHUNK = 64 * 1024 };

/** Result of conn_preface_match(). */
typedef enum conn_preface {
    CONN_PREFACE_NO = -1,     /* not the h2 preface: HTTP/1.x */
    CONN_PREFACE_PARTIAL = 0, /* a prefix of the preface: need more bytes */
    CONN_PREFACE_YES = 1,     /* the full 24-byte h2 connection preface */
} conn_preface_t;

/**
 * Compare the first `len` bytes a cleartext client sent with the HTTP/2
 * connection preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n". Pure; reads at most
 * min(len, 24) bytes of p.
 */
conn_preface_t conn_preface_match(const uint8_t *p, size_t len);

/** The connection's states; transitions go through conn_set_state() (conn.c). */
typedef enum conn_state {
    CONN_HANDSHAKE, /* TLS handshake running (header_timeout bounds it) */
    CONN_DETECT,    /* cleartext: waiting for enough bytes to tell h2 from HTTP/1 (h2c-only too) */
    CONN_ACTIVE,    /* a session (h1 or h2) owns the bytes */
    CONN_LINGER,    /* output sent and shut down; discarding input until EOF */
    CONN_CLOSING,   /* uv_close issued; freed in the close callback */
} conn_state_t;

/**
 * How a connection talks to the session that owns its bytes once the
 * protocol is known (h1.c's h1_session_ops, h2.c's h2_session_ops): set
 * when the session is created, so conn.c never branches on the protocol.
 * `s` is the session create() returned.
 */
typedef struct conn_session_ops {
    const char *name;       /* "h1", "h2" */
    exchange_proto_t proto; /* what the connection's exchange_client_t says (HTTP11, HTTP2) */
    /** A session for c (owned by c: destroyed in c's last close callback). Never NULL. */
    void *(*create)(conn_t *c);
    /** Free it, after abort(). */
    void (*destroy)(void *s);
    /** Plaintext from the client (borrowed for the call). < 0: the connection must end. */
    int (*recv)(void *s, const uint8_t *data, size_t len);
    /** Queue what it has to send (NULL: the session writes as it goes). May close c. */
    void (*produce)(void *s);
    /** Output left for the kernel: the session may produce more. */
    void (*written)(void *s);
    /** No request in progress and nothing to send. */
    bool (*idle)(const void *s);
    /** conn_timer_set's timer fired. */
    void (*timeout)(void *s);
    /** conn_defer's callback. */
    void (*deferred)(void *s);
    /** Finish what is in progress, take nothing new, then close (graceful shutdown). */
    void (*drain)(void *s);
    /** The connection closes now: abort every exchange. */
    void (*abort)(void *s);
    /** After recv() failed, send what is queued first (h2's GOAWAY) instead of closing now. */
    bool flush_on_error;
} conn_session_ops_t;

/** A growable byte buffer (malloc'ed). */
typedef struct conn_buf {
    uint8_t *p;
    size_t len, cap;
} conn_buf_t;

/**
 * One client connection, owned by its front_ctx_t (f->conns) from conn_accept()
 * until the last close callback. Sessions may read the fields; only conn.c
 * writes them.
 */
typedef struct conn {
    uv_tcp_t tcp;      /* tcp.data == this */
    lazytimer_t timer; /* the one timeout (handshake, header, body, idle, linger);
                        * restarted per request, so lazy */
    uv_timer_t defer;  /* zero-delay kick for work that must not run re-entrantly */
    uv_idle_t idle;    /* conn_flush_soon(): one write for all output of a loop turn */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    list_t link; /* in f->conns */
    front_ctx_t *f;
    conn_state_t state;
    const conn_session_ops_t *sops; /* the session's table, NULL before CONN_ACTIVE */
    void *session;                  /* owned: sops->destroy in the last close callback */
    tls_conn_t *tls;                /* owned; NULL on cleartext listeners */
    /* the connection as its exchanges see it: opened with the session,
     * closed (our reference dropped) in conn_close; NULL before */
    exchange_client_t *client;
    int open_handles; /* handles still to see their close callback */
    bool reading;     /* uv_read_start is active */
    bool read_paused; /* the session asked to stop reading */
    bool writing;     /* wreq is in flight: wbuf (TLS) or the first `wlen` bytes of out */
    bool flushing;    /* inside conn_flush (re-entry guard) */
    bool close_after_write;
    bool shutdown_sent;
    bool tls_closing; /* close_notify queued */
    bool draining;    /* conn_drain_all reached this connection */
    bool h2c_only;    /* accepted on an ,h2c listener: cleartext HTTP/2 and nothing else */
    /* plaintext not yet written (cleartext: the in-flight write's bytes
     * included, they are dropped in write_cb) or not yet encrypted (TLS) */
    outbuf_t out;
    size_t wlen;        /* cleartext: bytes at the front of out in the in-flight uv_write */
    conn_buf_t wbuf;    /* TLS: ciphertext for the socket; kept until write_cb */
    uint8_t detect[24]; /* the first bytes of a cleartext connection (preface check) */
    size_t detect_len;
    uint64_t out_total;      /* plaintext bytes the session has written in all (pacing) */
    uint64_t tls_warm_bytes; /* plaintext sent since the TLS record warm-up began */
    uint64_t tls_last_write; /* uv_now() of the last TLS write, for the idle reset */
    char peer_addr[48];
    uint16_t peer_port;
} conn_t;

/** Append plaintext output (copied). Ignored once the connection is closing. */
void conn_write(conn_t *c, const void *data, size_t len);
/**
 * Append p[0..len), which lies inside b->data[0..b->len), without copying:
 * the connection takes its own reference to b and drops it once the kernel
 * has the bytes (or on close), so the caller keeps its own reference or
 * drops it as it likes, but must not rewrite those bytes (block.h). Short
 * slices are copied. Ignored once the connection is closing.
 */
void conn_write_ref(conn_t *c, block_t *b, const uint8_t *p, size_t len);
/** Start a write if none is in flight (pulls h2 output first). */
void conn_flush(conn_t *c);
/**
 * conn_flush() once this loop iteration's I/O callbacks are done, so that
 * output produced by several callbacks (a response head and its first body
 * bytes, responses of several streams) leaves in one write.
 */
void conn_flush_soon(conn_t *c);
/** Output bytes accepted but not yet written to the socket (plaintext and ciphertext). */
size_t conn_buffered(const conn_t *c);
/** Stop reading the socket (backpressure towards the client). Idempotent. */
void conn_read_pause(conn_t *c);
/** Read the socket again. Idempotent. */
void conn_read_resume(conn_t *c);
/** (Re)arm the connection's timeout; seconds <= 0 stops it. The session's
 *  *_session_timeout() runs when it fires. */
void conn_timer_set(conn_t *c, double seconds);
/** Run the session's *_session_deferred() from the loop soon (not re-entrantly). */
void conn_defer(conn_t *c);
/**
 * Run the session's *_session_deferred() in `ms` milliseconds, unless it is
 * due sooner already.
 */
void conn_defer_after(conn_t *c, uint64_t ms);
/** Close now: abort the session's exchanges, drop unsent output. Idempotent. */
void conn_close(conn_t *c);
/** Flush all output (TLS close_notify included), shut down, then close. */
void conn_close_after_write(conn_t *c);
/** True once conn_close() has run: the session must stop producing. */
static inline bool conn_is_closing(const conn_t *c)
{
    return c->state == CONN_CLOSING;
}

#endif
