/* libFuzzer target for parser/link.c: parse, and what parses formats and parses back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "link.h"

static const char *BASE = "https://ex.com/dir/page.html";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    link_list_t l = {0};
    const char *why = NULL;
    int rc = link_parse((const char *)data, size, BASE, &l, &why);
    if (rc == HERALD_EPARSE && why == NULL)
        abort();
    if (rc != 0 && l.n != 0)
        abort();
    for (size_t i = 0; i < l.n; i++) {
        char *out = NULL;
        if (link_format(&l.v[i], BASE, &out) != 0)
            continue; /* e.g. only unknown rels, or control bytes in a value */
        link_list_t back = {0};
        if (link_parse(out, strlen(out), BASE, &back, &why) != 0 || back.n != 1)
            abort();
        if (strcmp(back.v[0].url, l.v[i].url) != 0 || back.v[0].nopush != l.v[i].nopush)
            abort();
        link_list_dispose(&back);
        free(out);
    }
    link_list_dispose(&l);
    return 0;
}
