/*
 * Header lists and the header mapping between client and origin: hop-by-hop
 * removal, Host from :authority, X-Forwarded-*, Via. Pure functions over
 * memory (no sockets), unit-tested in tests/unit/proxy/headers_test.c.
 *
 * Names keep the case they arrived with; lookups compare case-insensitively
 * and the h2 frontend lower-cases on output. All strings of a list live in
 * the exchange's mempool and stay valid until the exchange is freed.
 */
#ifndef HERALD_HEADERS_H
#define HERALD_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>

#include "mempool.h"

typedef struct header {
    const char *name; /* NUL-terminated, name_len bytes */
    size_t name_len;
    const char *value; /* NUL-terminated, value_len bytes */
    size_t value_len;
} header_t;

typedef struct headers {
    header_t *v; /* in the pool */
    size_t n, cap;
} headers_t;

/** Append a copy of name/value (both copied into mp). */
void headers_add(headers_t *h, mempool_t *mp, const char *name, size_t name_len, const char *value,
                 size_t value_len);
/** Append without copying: name and value must outlive the list (pool or static). */
void headers_add_ref(headers_t *h, mempool_t *mp, const char *name, size_t name_len,
                     const char *value, size_t value_len);
/** The first header named by the nl bytes at `name` (case-insensitive), or NULL. Valid while the
 * list is. */
const header_t *headers_find_n(const headers_t *h, const char *name, size_t nl);
/**
 * The first header named `name` (NUL-terminated, case-insensitive), or NULL.
 * Inline so that a literal name's length folds to a constant.
 */
static inline const header_t *headers_find(const headers_t *h, const char *name)
{
    return headers_find_n(h, name, strlen(name));
}
/**
 * Case-insensitive equality of a counted string and a C string. Inline so
 * that for a literal `b` the length test folds to a constant: most
 * comparisons on the hot path fail on length alone.
 */
static inline bool headers_name_eq(const char *a, size_t alen, const char *b)
{
    return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

/**
 * The connection-specific fields of RFC 9110 §7.6.1 plus the legacy and h2c
 * ones (Connection, Keep-Alive, Transfer-Encoding, Upgrade,
 * Proxy-Connection, TE, HTTP2-Settings); dispatches on the length first, as
 * every header of every message passes through here.
 */
static inline bool headers_hop_by_hop(const char *name, size_t n)
{
    switch (n) {
    case 2:
        return strncasecmp(name, "te", 2) == 0;
    case 7:
        return strncasecmp(name, "upgrade", 7) == 0;
    case 10:
        return strncasecmp(name, "connection", 10) == 0 || strncasecmp(name, "keep-alive", 10) == 0;
    case 14:
        return strncasecmp(name, "http2-settings", 14) == 0;
    case 16:
        return strncasecmp(name, "proxy-connection", 16) == 0;
    case 17:
        return strncasecmp(name, "transfer-encoding", 17) == 0;
    default:
        return false;
    }
}

/**
 * A growable byte buffer (not pool memory): the origin request head. It may
 * start on caller memory (a stack array) and moves to the heap only when
 * that is outgrown, so the usual head costs no allocation.
 */
typedef struct headers_buf {
    char *p; /* NUL-terminated after each append */
    size_t len, cap;
    bool heap; /* p is malloc'd (owned); else it is the caller's memory or NULL */
} headers_buf_t;

/** An empty buffer (no allocation yet). */
void headers_buf_init(headers_buf_t *b);
/** An empty buffer writing into mem (cap bytes, cap >= 1) until it outgrows it. */
void headers_buf_init_on(headers_buf_t *b, char *mem, size_t cap);
/** Free the buffer's memory; it is empty afterwards. */
void headers_buf_dispose(headers_buf_t *b);
/** Append n bytes (copied). */
void headers_buf_append(headers_buf_t *b, const void *p, size_t n);

/** Write v in decimal at out (room for 20 digits, no NUL); returns the digit count. */
size_t headers_u64_digits(uint64_t v, char *out);

/**
 * What the origin request head is built from. Every pointer is borrowed for
 * the duration of headers_build_request() only.
 */
typedef struct headers_request {
    const char *method;       /* "GET" */
    const char *path;         /* origin-form, "/x?y" */
    const char *authority;    /* :authority or Host; NULL or "" when the client sent none */
    const char *scheme;       /* "http" / "https": X-Forwarded-Proto */
    const headers_t *headers; /* as received: hop-by-hop included, no pseudo-headers */
    const char *client_addr;  /* printable, no port: X-Forwarded-For */
    const char *via_proto;    /* the client's protocol for Via: "1.0", "1.1", "2" */
    bool has_body;
    int64_t content_length;      /* -1 unknown: the body is sent chunked when has_body */
    bool websocket;              /* keep Connection: upgrade / Upgrade: websocket */
    const char *host_override;   /* --origin-host; NULL or "" for none */
    const char *origin_hostport; /* Host when the client sent none (HTTP/1.0) */
    bool trust_forwarded;        /* append to incoming X-Forwarded-For, keep incoming -Proto */
} headers_request_t;

/**
 * Append the HTTP/1.1 request head for the origin (request line, headers,
 * blank line) to `out`: hop-by-hop headers removed (Connection and what it
 * names, Keep-Alive, Transfer-Encoding, Upgrade, Proxy-Connection, TE except
 * "trailers", HTTP2-Settings), Host from the override / authority / origin,
 * cookie crumbs joined with "; ", X-Forwarded-For/-Proto and Via added,
 * Content-Length or Transfer-Encoding: chunked for the body.
 */
void headers_build_request(const headers_request_t *in, headers_buf_t *out);

/**
 * Append to `out` the origin response headers `in` as the client should see
 * them: hop-by-hop removed (as above), every Set-Cookie kept, "Via:
 * <origin_proto> herald" appended (joined with any incoming Via). With
 * `upgrade` (a 101 to a websocket request) `Upgrade` is kept and
 * `Connection: upgrade` added. Strings of `in` are referenced, not copied:
 * they must live in `mp` (or longer).
 */
void headers_filter_response(const headers_t *in, headers_t *out, mempool_t *mp,
                             const char *origin_proto, bool upgrade);

/** true when the comma-separated list `value` holds `token` (case-insensitive, OWS trimmed). */
bool headers_has_token(const char *value, size_t value_len, const char *token);

/**
 * The value of cookie `name` (NUL-terminated, case-sensitive) in one Cookie
 * header value of value_len bytes ("a=1; b=2", RFC 6265 §4.2.1; pairs
 * without the space after ';' are read too), or NULL when it is not there.
 * The first pair with that name wins. The result points into `value` (valid
 * as long as it is) and is not NUL-terminated: *len gets its length.
 */
const char *headers_cookie_value(const char *value, size_t value_len, const char *name,
                                 size_t *len);

#endif
