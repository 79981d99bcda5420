/*
 * OpenSSL over memory. The socket belongs to conn.c (libuv); here we only
 * turn ciphertext into plaintext and back, through one BIO of our own. Its
 * output side appends each record to a plain buffer, which conn.c takes
 * over whole (tls_conn_swap_out) and writes from: a memory BIO would cost a
 * second copy of every record (BIO_read) and its growth. Its input side
 * hands OpenSSL what tls_conn_feed copied into another plain buffer: a
 * memory BIO's write, read and pending calls cost ~2k instructions per
 * request more than these few lines. Output is encrypted only when conn.c asks for it, one write's
 * worth at a time, so a large response never piles up as ciphertext.
 */
#include "tls.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "herald/error.h"
#include "alloc.h"

struct tls_conn {
    SSL *ssl;
    BIO *bio;     /* reads from in, appends to out; owned by ssl */
    uint8_t *out; /* ciphertext for the socket */
    size_t out_len, out_cap;
    uint8_t *in; /* ciphertext from the socket: in[in_off..in_len) not yet read by OpenSSL */
    size_t in_off, in_len, in_cap;
    bool handshake_done;
};

/* ---- the BIO: input source and output sink ---- */

enum { IN_KEEP = 16 * 1024 }; /* a drained input buffer larger than this is freed */

static int source_read(BIO *b, char *out, int outl)
{
    tls_conn_t *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t avail = t->in_len - t->in_off;
    if (avail == 0 || outl <= 0) {
        BIO_set_retry_read(b); /* empty: "retry", never EOF (the socket says EOF) */
        return -1;
    }
    size_t n = avail < (size_t)outl ? avail : (size_t)outl;
    memcpy(out, t->in + t->in_off, n);
    t->in_off += n;
    if (t->in_off == t->in_len) {
        t->in_off = t->in_len = 0;
        if (t->in_cap > IN_KEEP) {
            free(t->in);
            t->in = NULL;
            t->in_cap = 0;
        }
    }
    return (int)n;
}

static int sink_write(BIO *b, const char *data, int len)
{
    tls_conn_t *t = BIO_get_data(b);
    if (len <= 0)
        return 0;
    t->out = alloc_grow(t->out, &t->out_cap, t->out_len + (size_t)len, 16 * 1024 + 512);
    memcpy(t->out + t->out_len, data, (size_t)len);
    t->out_len += (size_t)len;
    return len;
}

static long sink_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num, (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* nothing buffered here: conn.c writes out */
    case BIO_CTRL_WPENDING: {
        tls_conn_t *t = BIO_get_data(b);
        return (long)t->out_len;
    }
    case BIO_CTRL_PENDING: {
        tls_conn_t *t = BIO_get_data(b);
        return (long)(t->in_len - t->in_off);
    }
    default:
        return 0;
    }
}

static int sink_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *sink_method;
static pthread_once_t sink_once = PTHREAD_ONCE_INIT;

static void sink_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "herald-sink");
    if (m == NULL || !BIO_meth_set_write(m, sink_write) || !BIO_meth_set_read(m, source_read) ||
        !BIO_meth_set_ctrl(m, sink_ctrl) || !BIO_meth_set_create(m, sink_create))
        alloc_fail(__FILE__, __LINE__, 0);
    sink_method = m; /* lives as long as the process */
}

/* ALPN wire format: h2 first (our preference), then http/1.1. */
static const unsigned char alpn_server_pref[] = "\x02h2\x08http/1.1";

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel = NULL;
    /* out points into either list; both outlive the handshake (static / client hello). */
    if (SSL_select_next_proto(&sel, outlen, alpn_server_pref, sizeof(alpn_server_pref) - 1, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no overlap: carry on without ALPN (HTTP/1.1) */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static void err_fmt(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char reason[256] = "unknown error";
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    snprintf(err, errlen, "%s %s: %s", what, file, reason);
    ERR_clear_error();
}

SSL_CTX *tls_ctx_create(const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        err_fmt(err, errlen, "cannot create TLS context for", cert);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Partial writes and a moving buffer: conn.c hands SSL_write its own buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_ecdh_auto(ctx, 1);
    /* AES-128-GCM first, as nghttpx and h2o do: with the server's preference
     * on, OpenSSL's default list would pick AES-256-GCM, which costs more CPU
     * per byte for no practical gain. TLS 1.2 keeps forward-secret AEADs only. */
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                  "TLS_CHACHA20_POLY1305_SHA256");
    SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                 "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
    /* Resumption: OpenSSL's built-in ticket keys plus a server-side cache. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 20000);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"herald", 6);
    SSL_CTX_set_timeout(ctx, 3600);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);

    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        err_fmt(err, errlen, "cannot load TLS certificate", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            goto mismatch; /* OpenSSL checks the pair while loading */
        err_fmt(err, errlen, "cannot load TLS key", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
    mismatch:;
        char what[1200];
        snprintf(what, sizeof(what), "TLS key %s does not match certificate", key);
        err_fmt(err, errlen, what, cert);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

tls_conn_t *tls_conn_create(SSL_CTX *ctx)
{
    tls_conn_t *t = xcalloc(1, sizeof(*t));
    pthread_once(&sink_once, sink_init);
    t->ssl = SSL_new(ctx);
    t->bio = BIO_new(sink_method);
    if (t->ssl == NULL || t->bio == NULL)
        alloc_fail(__FILE__, __LINE__, sizeof(*t));
    BIO_set_data(t->bio, t);
    SSL_set_bio(t->ssl, t->bio, t->bio); /* ssl owns the BIO (one reference for both) */
    SSL_set_accept_state(t->ssl);
    return t;
}

void tls_conn_destroy(tls_conn_t *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    free(t->out);
    free(t->in);
    free(t);
}

int tls_conn_feed(tls_conn_t *t, const uint8_t *data, size_t len)
{
    /* Copied: data may be the uv read buffer, reused after we return. */
    if (len == 0)
        return 0;
    if (t->in_off > 0) { /* what OpenSSL has not read yet moves to the front */
        memmove(t->in, t->in + t->in_off, t->in_len - t->in_off);
        t->in_len -= t->in_off;
        t->in_off = 0;
    }
    if (len > SIZE_MAX / 2 - t->in_len)
        return HERALD_EINTERNAL;
    t->in = alloc_grow(t->in, &t->in_cap, t->in_len + len, 4096);
    memcpy(t->in + t->in_len, data, len);
    t->in_len += len;
    return 0;
}

static int ssl_result(tls_conn_t *t, int r)
{
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return HERALD_EEOF;
    default:
        ERR_clear_error();
        return HERALD_EPROTO;
    }
}

int tls_conn_read(tls_conn_t *t, uint8_t *out, size_t cap)
{
    if (!t->handshake_done) {
        int r = SSL_do_handshake(t->ssl);
        if (r != 1)
            return ssl_result(t, r);
        t->handshake_done = true;
    }
    size_t got = 0;
    int r = SSL_read_ex(t->ssl, out, cap, &got);
    if (r == 1)
        return (int)got;
    return ssl_result(t, r);
}

bool tls_conn_handshake_done(const tls_conn_t *t)
{
    return t->handshake_done;
}

const char *tls_conn_alpn(const tls_conn_t *t, size_t *len)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    *len = n;
    return n > 0 ? (const char *)p : NULL;
}

int tls_conn_write(tls_conn_t *t, const uint8_t *data, size_t len)
{
    while (len > 0) {
        size_t n = 0;
        int r = SSL_write_ex(t->ssl, data, len, &n);
        if (r != 1) {
            ERR_clear_error();
            return HERALD_EPROTO; /* memory BIOs never want more room */
        }
        data += n;
        len -= n;
    }
    return 0;
}

void tls_conn_shutdown(tls_conn_t *t)
{
    if (t->handshake_done)
        SSL_shutdown(t->ssl); /* queues close_notify into wbio; we do not wait for the peer's */
    ERR_clear_error();
}

size_t tls_conn_pending(const tls_conn_t *t)
{
    return t->out_len;
}

void tls_conn_swap_out(tls_conn_t *t, uint8_t **p, size_t *len, size_t *cap)
{
    uint8_t *op = t->out;
    size_t ol = t->out_len, oc = t->out_cap;
    t->out = *p;
    t->out_len = *len;
    t->out_cap = *cap;
    *p = op;
    *len = ol;
    *cap = oc;
}

size_t tls_conn_take(tls_conn_t *t, uint8_t *out, size_t cap)
{
    size_t n = t->out_len < cap ? t->out_len : cap;
    memcpy(out, t->out, n);
    memmove(t->out, t->out + n, t->out_len - n);
    t->out_len -= n;
    return n;
}
