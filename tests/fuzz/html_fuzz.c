/*
 * libFuzzer target for parser/html.c (and charset.c under it): feed the
 * input in chunks whose sizes come from the input, finish, check every
 * asset, dispose. The first byte picks a transport charset and a small cap so
 * the cap path is exercised too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asset.h"
#include "html.h"

static const char *const charsets[] = {NULL,        "utf-8", "windows-1252", "utf-16le",
                                       "shift_jis", "bogus", NULL,           NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    data++;
    size--;
    size_t cap = (ctl & 0x80) ? 512 : 0;
    html_scanner_t *s = html_scanner_create("https://ex.com/dir/page.html", charsets[ctl & 7], cap);
    if (!s)
        return 0;
    size_t chunk = 1 + ((ctl >> 3) & 15) * 97;
    for (size_t off = 0; off < size; off += chunk)
        if (html_scanner_feed(s, data + off, size - off < chunk ? size - off : chunk) != 0)
            abort();
    asset_list_t l = {0};
    if (html_scanner_finish(s, &l) != 0)
        abort();
    for (size_t i = 0; i < l.n; i++) {
        const asset_t *a = &l.v[i];
        if (!a->url || a->order != i ||
            (strncmp(a->url, "http://", 7) != 0 && strncmp(a->url, "https://", 8) != 0))
            abort();
        for (size_t j = 0; j < i; j++)
            if (l.v[j].kind == a->kind && strcmp(l.v[j].url, a->url) == 0)
                abort(); /* dedupe */
        (void)strlen(asset_kind_name(a->kind));
        if (a->media)
            (void)strlen(a->media);
        if (a->type)
            (void)strlen(a->type);
    }
    asset_list_dispose(&l);
    html_scanner_destroy(s);
    return 0;
}
