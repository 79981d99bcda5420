/*
 * TLS for client connections: the shared server SSL_CTX (certificate, ALPN,
 * session resumption) and the per-connection engine that runs OpenSSL over
 * memory BIOs, so that libuv owns the socket and OpenSSL only transforms
 * bytes. Nothing here touches a uv handle.
 */
#ifndef HERALD_TLS_H
#define HERALD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct tls_conn tls_conn_t;

/**
 * The server context for every TLS listener of every worker (OpenSSL
 * contexts are thread-safe once set up): TLS 1.2-1.3, ALPN h2 then
 * http/1.1, tickets and a server-side session cache, no compression, no
 * renegotiation. Returns NULL and writes a message naming the file into
 * err[errlen] when the certificate or key cannot be loaded or do not match.
 * Free with tls_ctx_free().
 */
SSL_CTX *tls_ctx_create(const char *cert, const char *key, char *err, size_t errlen);
/** Release a context from tls_ctx_create() (NULL is fine). */
void tls_ctx_free(SSL_CTX *ctx);

/** A server-side TLS engine for one connection. Never NULL (aborts on OOM). */
tls_conn_t *tls_conn_create(SSL_CTX *ctx);
/** Free the engine and everything it buffers. */
void tls_conn_destroy(tls_conn_t *t);

/**
 * Hand ciphertext from the socket to the engine (copied: `data` need only
 * live during the call). Returns 0, or HERALD_EINTERNAL when the unread input would
 * no longer fit in memory's address space.
 */
int tls_conn_feed(tls_conn_t *t, const uint8_t *data, size_t len);

/**
 * Advance the handshake if needed and decrypt into out[cap]. Returns the
 * number of plaintext bytes (> 0); 0 when it needs more ciphertext (or the
 * handshake is still running); HERALD_EEOF when the peer sent close_notify;
 * HERALD_EPROTO on a protocol failure (close the connection). Call in a loop
 * until it returns <= 0.
 */
int tls_conn_read(tls_conn_t *t, uint8_t *out, size_t cap);
/** True once the handshake has completed. */
bool tls_conn_handshake_done(const tls_conn_t *t);
/** The ALPN protocol chosen ("h2", "http/1.1") or NULL. Valid while t lives. */
const char *tls_conn_alpn(const tls_conn_t *t, size_t *len);

/**
 * Encrypt plaintext (all of it; the caller bounds len to what one write
 * needs). Returns 0 or HERALD_EPROTO.
 */
int tls_conn_write(tls_conn_t *t, const uint8_t *data, size_t len);
/** Queue a close_notify alert. */
void tls_conn_shutdown(tls_conn_t *t);
/** Ciphertext waiting to go to the socket. */
size_t tls_conn_pending(const tls_conn_t *t);
/**
 * Move up to cap bytes of ciphertext waiting for the socket into out.
 * Returns the number moved.
 */
size_t tls_conn_take(tls_conn_t *t, uint8_t *out, size_t cap);
/**
 * Exchange the buffer of waiting ciphertext (malloc'd; *p, *len bytes of
 * *cap) with the caller's: the caller gets the ciphertext without a copy,
 * and new records go into the buffer it handed in (empty, or appended to).
 */
void tls_conn_swap_out(tls_conn_t *t, uint8_t **p, size_t *len, size_t *cap);

#endif
