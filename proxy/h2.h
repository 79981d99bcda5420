/*
 * The HTTP/2 server session (nghttp2): one exchange per client stream,
 * per-stream flow control driven by the origin's consumption, response
 * bodies queued per stream and pulled by nghttp2's data provider.
 *
 * conn.c owns the session: it creates it when ALPN chose h2 or the cleartext
 * preface was seen, feeds it plaintext, pulls output with
 * h2_session_produce() when the socket can take more, and destroys it in
 * its close callback.
 */
#ifndef HERALD_H2_H
#define HERALD_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/conn.h"

/** A session for c; queues the server SETTINGS. Never NULL. */
h2_session_t *h2_session_create(conn_t *c);
/** Free the session (after h2_session_abort()). */
void h2_session_destroy(h2_session_t *s);
/**
 * Plaintext from the client (the preface included); `data` is only valid
 * during the call. Returns 0 or a negative code when the connection must
 * close now (protocol error: the GOAWAY is already queued, so callers
 * should prefer conn_close_after_write()).
 */
int h2_session_recv(h2_session_t *s, const uint8_t *data, size_t len);
/**
 * Move frames from nghttp2 into the conn's output until about
 * CONN_WRITE_CHUNK bytes are queued or nghttp2 has nothing to send. Closes
 * the connection when nghttp2 wants neither to read nor to write.
 */
void h2_session_produce(h2_session_t *s);
/** A write completed (conn_flush() then pulls more). */
void h2_session_written(h2_session_t *s);
/** True when no stream is open (conn.c then trims its buffers). */
bool h2_session_idle(const h2_session_t *s);
/** The connection's timer fired (idle). */
void h2_session_timeout(h2_session_t *s);
/** conn_defer() callback (unused by h2; present for symmetry). */
void h2_session_deferred(h2_session_t *s);
/** Graceful shutdown: shutdown notice, then GOAWAY; close when streams are done. */
void h2_session_drain(h2_session_t *s);
/** The connection is closing: abort every exchange. */
void h2_session_abort(h2_session_t *s);

#endif
