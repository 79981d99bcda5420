/* libFuzzer target for learn/template.c: keys from request paths; template_key is idempotent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"
#include "herald/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    if (in == NULL)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    char *page = NULL, *t1 = NULL, *t2 = NULL;
    if (template_page_key("example.com", in, &page) != 0)
        abort();
    if (template_key(page, &t1) != 0 || template_key(t1, &t2) != 0)
        abort();
    if (strcmp(t1, t2) != 0)
        abort();
    (void)template_is_volatile_url(in);
    (void)template_is_volatile_url(page);
    free(in);
    free(page);
    free(t1);
    free(t2);
    return 0;
}
