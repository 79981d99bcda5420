/*
 * The HTTP/2 server session (nghttp2): one exchange per client stream,
 * per-stream flow control driven by the origin's consumption, response
 * bodies queued per stream and pulled by nghttp2's data provider.
 *
 * conn.c owns the session: it creates it when ALPN chose h2 or the cleartext
 * preface was seen, feeds it plaintext, pulls output with
 * the produce op when the socket can take more, and destroys it in
 * its close callback.
 */
#ifndef HERALD_H2_H
#define HERALD_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/**
 * The HTTP/2 session as conn.c sees it (conn_session_ops_t): create queues
 * the server SETTINGS; recv < 0 means a GOAWAY is queued, flush it and
 * close (flush_on_error); produce pulls nghttp2's output when the socket can
 * take more; idle when no stream is open; timeout ends an idle connection or
 * a stalled stream; drain sends the shutdown notice, PING and GOAWAY.
 */
extern const conn_session_ops_t h2_session_ops;

#endif
