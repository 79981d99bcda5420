/*
 * Allocation in proxy/: out of memory aborts with file and line (a proxy that
 * cannot allocate cannot recover). parser/ and learn/ return HERALD_ENOMEM
 * instead and never use these.
 */
#ifndef HERALD_ALLOC_H
#define HERALD_ALLOC_H

#include <stddef.h>

void *alloc_fail(const char *file, int line, size_t n);

static inline void *alloc_check(void *p, const char *file, int line, size_t n)
{
    return p != NULL ? p : alloc_fail(file, line, n);
}

#define xmalloc(n) alloc_check(malloc(n), __FILE__, __LINE__, (n))
#define xcalloc(k, n) alloc_check(calloc((k), (n)), __FILE__, __LINE__, (k) * (n))
#define xrealloc(p, n) alloc_check(realloc((p), (n)), __FILE__, __LINE__, (n))
#define xstrdup(s) ((char *)alloc_check(strdup(s), __FILE__, __LINE__, 0))
#define xstrndup(s, n) ((char *)alloc_check(strndup((s), (n)), __FILE__, __LINE__, (n)))

/**
 * Room for `need` bytes in the heap buffer p of *cap bytes: the capacity
 * starts at `first` and doubles until it fits (amortised O(1) per appended
 * byte), *cap is updated and the (possibly moved) buffer returned; p is
 * returned as it is when it already fits. p may be NULL.
 */
void *alloc_grow(void *p, size_t *cap, size_t need, size_t first);

#endif
