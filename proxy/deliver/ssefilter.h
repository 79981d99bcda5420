/*
 * The SSE push comment filter: an origin's
 * text/event-stream may carry comment lines ": herald-push PATH"; they are
 * removed from the stream and handed to a callback (delivery pushes PATH)
 * at the point they occur, so the push precedes the next event. Lines may
 * be split across chunks anywhere. No I/O; out of memory aborts (proxy/).
 */
#ifndef HERALD_SSEFILTER_H
#define HERALD_SSEFILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The comment line prefix that asks for a push. */
#define SSEFILTER_MARKER ": herald-push "
/** A held partial line longer than this is forwarded (it cannot be a sane push comment). */
#define SSEFILTER_CARRY_MAX 4096

/** Filter state for one stream: zero it or ssefilter_init; free with ssefilter_dispose. */
typedef struct ssefilter {
    uint8_t *carry; /* a partial line that may become a push comment (heap) */
    size_t carry_len;
    uint8_t *buf; /* the filtered output of the last call (heap) */
    size_t cap;
    bool midline; /* the bytes forwarded last did not end their line */
} ssefilter_t;

/**
 * Called for each push comment with its PATH (the rest of the line, CR/LF
 * and trailing spaces removed; not NUL-terminated, valid during the call).
 */
typedef void (*ssefilter_push_cb)(void *ctx, const char *path, size_t len);

/** Start with an empty state (no line held back, no buffers). */
void ssefilter_init(ssefilter_t *f);
/** Free the buffers; a line still held back is dropped. */
void ssefilter_dispose(ssefilter_t *f);

/**
 * Filter the next chunk data[0..len) (borrowed for the call). Returns the
 * bytes to forward, in f's buffer (valid until the next call or dispose);
 * *out_len gets their length (0 possible). A trailing partial line that
 * may still become a push comment is held back until its newline arrives.
 */
const uint8_t *ssefilter_run(ssefilter_t *f, const uint8_t *data, size_t len, ssefilter_push_cb cb,
                             void *ctx, size_t *out_len);

#endif
