/*
 * The cache-digest cookie (docs/architecture.md, "Delivery policy" step 2): a
 * Golomb-coded set of URL+ETag hashes encoded as in
 * draft-ietf-httpbis-cache-digest-02, section 2.1, carried in a cookie as
 * base64url without padding.
 *
 * Encoding: N = number of keys rounded up to a power of two, P = 1/false-
 * positive rate, a power of two. Bits: log2(N) in 5 bits, log2(P) in 5
 * bits, then for each distinct hash value V in ascending order (C starts at
 * -1): D = V - C - 1 as Q = D / P zero bits, one 1 bit, and R = D % P in
 * log2(P) bits; C = V. Zero-padded to a byte boundary. A key's hash value
 * is the SHA-256 of the URL (with the ETag appended, quotes and W/ included,
 * when there is one) read as a big-endian integer and truncated to its
 * top log2(N*P) bits. No logging, no locks.
 */
#ifndef HERALD_DIGEST_H
#define HERALD_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Default log2(P): 1/128 false positives. */
#define DIGEST_DEFAULT_LOG2P 7
/** Largest log2(N) digest_parse accepts (2^16 entries). */
#define DIGEST_MAX_LOG2N 16
/** Largest cookie value digest_parse accepts, in base64url characters. */
#define DIGEST_MAX_VALUE_LEN 16384

/** A parsed digest: sorted distinct hash values. Free with digest_dispose. */
typedef struct digest {
    unsigned log2n, log2p;
    uint64_t *v; /* malloc'd, ascending */
    size_t n;
} digest_t;

/**
 * Collects keys; init with digest_builder_init, free with
 * digest_builder_dispose. Fields are private except min_log2n.
 */
typedef struct digest_builder {
    uint64_t *h;      /* hash prefixes, left-aligned (the top `w[i]` bits count) */
    unsigned char *w; /* width in bits of each prefix: 64 for added keys */
    size_t n, cap;
    unsigned log2p;
    unsigned min_log2n; /* N >= 2^min_log2n (0 by default); may be set after init */
    unsigned merged_log2n;
} digest_builder_t;

/**
 * Start an empty builder with false-positive rate 1/2^log2p (1..31; other
 * values are clamped into that range).
 */
void digest_builder_init(digest_builder_t *b, unsigned log2p);

/**
 * Add a key: `url` (absolute URL as pushed) and `etag` (the ETag header
 * value as sent, or NULL). Both borrowed for the call. Returns 0,
 * HERALD_EINVAL or HERALD_ENOMEM.
 */
int digest_builder_add(digest_builder_t *b, const char *url, const char *etag);

/**
 * Add every value of a parsed digest (the client's previous cookie), so the
 * new cookie covers what the client had plus what was pushed since. N of
 * the result is at least d's N; a merged value stays exact while the
 * result's log2(N*P) is not above d's, and is dropped otherwise (N grew
 * past the old digest: those assets may be pushed once more; set
 * min_log2n, e.g. 8, to keep N stable). `d` is borrowed. Returns 0,
 * HERALD_EINVAL or HERALD_ENOMEM.
 */
int digest_builder_add_digest(digest_builder_t *b, const digest_t *d);

/**
 * Encode the set as a cookie value (base64url, no padding). *out is
 * malloc'd, NUL-terminated, owned by the caller; *outlen (may be NULL) gets
 * its length. The builder keeps its keys (add more and finish again).
 * Returns 0, HERALD_ETOOBIG (more than 2^31 keys) or HERALD_ENOMEM.
 */
int digest_builder_finish(digest_builder_t *b, char **out, size_t *outlen);

/** Free the builder's keys; it is empty and reusable afterwards (log2p and min_log2n kept). */
void digest_builder_dispose(digest_builder_t *b);

/**
 * Decode a cookie value value[0..len) (base64url; '=' padding tolerated)
 * into *out (owned by the caller, free with digest_dispose). Pure and
 * bounded: no read past len. Returns 0; HERALD_ETOOBIG when len >
 * DIGEST_MAX_VALUE_LEN or log2(N) > DIGEST_MAX_LOG2N; HERALD_EPARSE for a
 * bad character, a header that does not fit, log2(P) 0 or log2(N*P) > 62,
 * a value out of range, a truncated remainder or non-zero padding; in
 * every error case *reason (may be NULL) points to a static string and
 * *out is empty. HERALD_ENOMEM.
 */
int digest_parse(const char *value, size_t len, digest_t *out, const char **reason);

/** Whether url (+ etag, NULL = none) may be in the digest (false positives at rate 1/P). */
bool digest_contains(const digest_t *d, const char *url, const char *etag);

/** Free a parsed digest's values and zero it. NULL is a no-op. */
void digest_dispose(digest_t *d);

#endif
