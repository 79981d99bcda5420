/*
 * The HTTP/1.x frontend session: llhttp parses requests, one exchange at a
 * time (pipelined requests wait in the session's input buffer), responses
 * are framed with Content-Length, chunked, or close-delimited. WebSocket
 * upgrades turn the connection into a raw tunnel after the origin's 101.
 *
 * conn.c owns the session: it creates it when the connection is known to
 * speak HTTP/1.x, feeds it plaintext, and destroys it in its close callback.
 */
#ifndef HERALD_H1_H
#define HERALD_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/conn.h"

/** A session for c (c owns it). Arms the header timeout. Never NULL. */
h1_session_t *h1_session_create(conn_t *c);
/** Free the session; its exchange must have been released by h1_session_abort(). */
void h1_session_destroy(h1_session_t *s);
/**
 * Plaintext from the client; `data` is only valid during the call (it is the
 * read buffer or TLS output), so anything kept is copied. Returns 0 or a
 * negative code when the connection must close now.
 */
int h1_session_recv(h1_session_t *s, const uint8_t *data, size_t len);
/** A write completed: wake a paused origin if the buffer went below the low water. */
void h1_session_written(h1_session_t *s);
/** True when no exchange is in progress (conn.c then trims its buffers). */
bool h1_session_idle(const h1_session_t *s);
/** The connection's timer fired. */
void h1_session_timeout(h1_session_t *s);
/** conn_defer() asked for a call: start the next pipelined request. */
void h1_session_deferred(h1_session_t *s);
/** Graceful shutdown: close when idle, else `Connection: close` after this response. */
void h1_session_drain(h1_session_t *s);
/** The connection is closing: abort and release the exchange, if any. */
void h1_session_abort(h1_session_t *s);

#endif
