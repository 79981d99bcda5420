#include "proxy/alloc.h"

#include <stdio.h>
#include <stdlib.h>

void *alloc_fail(const char *file, int line, size_t n)
{
    fprintf(stderr, "herald: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
    abort();
}
