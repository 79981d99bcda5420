#include "strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"

int strbuf_reserve(strbuf_t *b, size_t more)
{
    if (b->cap - b->n >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 128;
    while (cap - b->n < more) {
        if (cap > SIZE_MAX / 2)
            return HERALD_ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (p == NULL)
        return HERALD_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int strbuf_add(strbuf_t *b, const char *s, size_t len)
{
    if (len == SIZE_MAX || strbuf_reserve(b, len + 1) < 0)
        return HERALD_ENOMEM;
    if (len > 0)
        memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
    return 0;
}
