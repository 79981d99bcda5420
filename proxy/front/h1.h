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

#include "conn.h"

/**
 * The HTTP/1.x session as conn.c sees it (conn_session_ops_t): create arms
 * the header timeout; recv < 0 means close now; idle when no request is in
 * progress; timeout answers 408 or closes an idle connection; drain closes
 * once the exchange in progress is done; no produce (it writes as it goes).
 */
extern const conn_session_ops_t h1_session_ops;

#endif
