/*
 * A growable NUL-terminated byte string for parser/ (which returns
 * HERALD_ENOMEM rather than aborting): capacity doubles, so appending n
 * bytes costs amortised O(n). Embedded by the caller: zero-initialise it,
 * free(b->p) when done.
 */
#ifndef HERALD_STRBUF_H
#define HERALD_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
    char *p; /* NUL-terminated once anything was added */
    size_t n, cap;
} strbuf_t;

/** Room for `more` bytes after the n used ones. 0 or HERALD_ENOMEM (b unchanged). */
int strbuf_reserve(strbuf_t *b, size_t more);
/** Append s[0..len) and a NUL. 0 or HERALD_ENOMEM (b unchanged). */
int strbuf_add(strbuf_t *b, const char *s, size_t len);

#endif
