/*
 * herald's one error enum. Functions return 0 or a negative code: either one
 * of these or a negative errno passed through from libc or libuv unchanged
 * (libuv's UV_E* codes are negative errno values on unix). Codes below
 * HERALD_E_FATAL_THRESHOLD mean the object that returned them is unusable.
 *
 * This header lives in parser/ because parser/ is the lowest layer; learn/
 * and proxy/ include it for the codes only (no parser functionality).
 */
#ifndef HERALD_ERROR_H
#define HERALD_ERROR_H

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
    /* Errors from here down leave the object unusable. */
    HERALD_E_FATAL_THRESHOLD = -10500,
    HERALD_ENOMEM = -10501,
    HERALD_EINTERNAL = -10502,
};

/** A static string describing `code` (herald's codes and negative errno). Never NULL. */
const char *herald_strerror(int code);

#endif
