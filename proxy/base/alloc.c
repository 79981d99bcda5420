#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>

void *alloc_grow(void *p, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap && p != NULL)
        return p;
    size_t c = *cap > first ? *cap : first;
    while (c < need)
        c *= 2;
    p = xrealloc(p, c);
    *cap = c;
    return p;
}

void *alloc_fail(const char *file, int line, size_t n)
{
    fprintf(stderr, "herald: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
    abort();
}
