/*
 * herald's one error enum, shared by every layer (parser/, learn/, proxy/):
 * functions return 0 or a negative code, either one of these or a negative
 * errno passed through from libc or libuv unchanged (libuv's UV_E* codes are
 * negative errno values on unix). Codes below HERALD_E_FATAL_THRESHOLD mean
 * the object that returned them is unusable. Header-only: it depends on
 * nothing but libc, so the lowest layer can include it.
 */
#ifndef HERALD_ERROR_H
#define HERALD_ERROR_H

#include <string.h>

enum herald_error {
    HERALD_EOK = 0,
    /* Outside bytes did not parse; a reason string goes with it. */
    HERALD_EPARSE = -10001,
    /* Input larger than a configured cap (decoded bytes, document size). */
    HERALD_ETOOBIG = -10002,
    /* A value is out of its allowed range or of the wrong form. */
    HERALD_EINVAL = -10003,
    /* Unsupported feature, encoding, charset or version. */
    HERALD_EUNSUPPORTED = -10004,
    /* Not found (page, asset, option). */
    HERALD_ENOTFOUND = -10005,
    /* The input ended before the structure was complete. */
    HERALD_ETRUNCATED = -10006,
    /* A peer broke the protocol (a TLS alert, a bad record, ...). */
    HERALD_EPROTO = -10007,
    /* The peer ended the stream cleanly (a TLS close_notify). */
    HERALD_EEOF = -10008,
    /* Errors from here down leave the object unusable. */
    HERALD_E_FATAL_THRESHOLD = -10500,
    HERALD_ENOMEM = -10501,
    HERALD_EINTERNAL = -10502,
};

/** A static string describing `code` (herald's codes and negative errno). Never NULL. */
static inline const char *herald_strerror(int code)
{
    switch (code) {
    case HERALD_EOK:
        return "ok";
    case HERALD_EPARSE:
        return "parse error";
    case HERALD_ETOOBIG:
        return "input too large";
    case HERALD_EINVAL:
        return "invalid value";
    case HERALD_EUNSUPPORTED:
        return "unsupported";
    case HERALD_ENOTFOUND:
        return "not found";
    case HERALD_ETRUNCATED:
        return "truncated input";
    case HERALD_EPROTO:
        return "protocol error";
    case HERALD_EEOF:
        return "closed by the peer";
    case HERALD_ENOMEM:
        return "out of memory";
    case HERALD_EINTERNAL:
        return "internal error";
    default:
        break;
    }
    if (code < 0 && code > -4096)
        return strerror(-code);
    return "unknown error";
}

#endif
