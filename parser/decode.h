/*
 * Content decoding for scanning only: herald forwards the origin's bytes
 * untouched and decodes a copy (gzip, deflate, br) so the HTML and CSS
 * parsers can read it. Streaming: fed chunk by chunk as the body arrives,
 * with a hard cap on decoded bytes so a decompression bomb costs an error,
 * not memory.
 */
#ifndef HERALD_DECODE_H
#define HERALD_DECODE_H

#include <stddef.h>

/** An opaque streaming decoder: decode_create() ... decode_destroy(). Not thread-safe. */
typedef struct decode decode_t;

/**
 * Create a decoder for a Content-Encoding field value (`gzip`, `x-gzip`,
 * `deflate`, `br`, `identity`, empty or NULL for none; a list such as
 * `gzip, br` is decoded in reverse order, up to 4 codings). `deflate` accepts
 * both zlib-wrapped and raw streams, as browsers do. At most `max_out`
 * decoded bytes are accepted in total. *out is the caller's to
 * decode_destroy(). Returns 0; HERALD_EUNSUPPORTED for an unknown coding
 * (compress, zstd...); HERALD_ENOMEM.
 */
int decode_create(const char *content_encoding, size_t max_out, decode_t **out);

/**
 * Feed in[0..len) (borrowed for the call only). Decoded bytes are appended
 * to the buffer that decode_data() shows. Returns 0; HERALD_ETOOBIG when the
 * decoded total would pass max_out; HERALD_EPARSE for a corrupt stream;
 * HERALD_ENOMEM. After an error the decoder only repeats it; decode_reason()
 * says why. Bytes after the end of a compressed stream are ignored.
 */
int decode_feed(decode_t *d, const void *in, size_t len);

/**
 * The body has ended: 0 when every compressed stream was complete,
 * HERALD_ETRUNCATED when one stopped short (decoded bytes so far stay
 * readable), or the error an earlier call returned.
 */
int decode_finish(decode_t *d);

/**
 * The decoded bytes not yet consumed; *len is set. The pointer is valid until
 * the next decode_feed/decode_consume/decode_destroy. The buffer is always
 * NUL-terminated (the NUL is not counted) so text parsers may rely on it.
 */
const char *decode_data(const decode_t *d, size_t *len);

/**
 * Drop the first n (clamped to what is there) decoded bytes, for callers that
 * scan as they go; they still count toward max_out.
 */
void decode_consume(decode_t *d, size_t n);

/** Decoded bytes produced so far, consumed ones included. */
size_t decode_total(const decode_t *d);

/** A static string saying why the last error happened, or NULL. */
const char *decode_reason(const decode_t *d);

/** Free the decoder and its buffer. NULL is ignored. */
void decode_destroy(decode_t *d);

#endif
