/* libFuzzer target for parser/css.c: every reference found is an absolute http(s) URL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "css.h"

static int check(void *arg, const css_ref_t *ref)
{
    (void)arg;
    if (ref->url == NULL ||
        (strncmp(ref->url, "http://", 7) != 0 && strncmp(ref->url, "https://", 8) != 0))
        abort();
    if (ref->kind != CSS_REF_IMPORT && ref->media != NULL)
        abort();
    if (ref->kind != CSS_REF_FONT && ref->format != NULL)
        abort();
    /* Touch the strings so ASan sees a dangling or unterminated one. */
    (void)strlen(ref->url);
    if (ref->media)
        (void)strlen(ref->media);
    if (ref->format)
        (void)strlen(ref->format);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)css_scan((const char *)data, size, "https://ex.com/css/site.css", check, NULL);
    return 0;
}
