/*
 * herald-scan: run discovery on one file and print what a browser would fetch,
 * one JSON object per line. The tool the golden tests and humans use to see
 * what the proxy would learn from a page.
 */
#include "asset.h"
#include "decode.h"
#include "herald/error.h"
#include "html.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: herald-scan [--base URL] [--type text/html|text/css] "
               "[--encoding gzip|deflate|br] [--charset NAME] [--cap BYTES] FILE|-\n");
}

static void json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f); /* UTF-8 passes through: JSON text is UTF-8 */
        }
    }
    fputc('"', f);
}

static const char *cors_name(asset_crossorigin_t c)
{
    switch (c) {
    case ASSET_CORS_ANONYMOUS:
        return "anonymous";
    case ASSET_CORS_CREDENTIALS:
        return "use-credentials";
    default:
        return NULL;
    }
}

static int read_all(const char *path, char **out, size_t *out_len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    if (!b) {
        if (f != stdin)
            fclose(f);
        return HERALD_ENOMEM;
    }
    for (;;) {
        if (n == cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                if (f != stdin)
                    fclose(f);
                return HERALD_ENOMEM;
            }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int err = ferror(f) ? -EIO : 0;
    if (f != stdin)
        fclose(f);
    if (err) {
        free(b);
        return err;
    }
    *out = b;
    *out_len = n;
    return 0;
}

/* Replace *data with its decoded form; a body decoded past max_out keeps
 * its first max_out bytes, as the proxy's scanner would. */
static int decode_all(const char *encoding, size_t max_out, char **data, size_t *len)
{
    decode_t *d = NULL;
    int rc = decode_create(encoding, max_out, &d);
    if (rc)
        return rc;
    rc = decode_feed(d, *data, *len);
    if (rc == 0)
        rc = decode_finish(d);
    if (rc == HERALD_ETOOBIG || rc == HERALD_ETRUNCATED)
        rc = 0;
    if (rc == 0) {
        size_t n;
        const char *p = decode_data(d, &n);
        char *copy = malloc(n + 1);
        if (!copy) {
            rc = HERALD_ENOMEM;
        } else {
            memcpy(copy, p, n);
            free(*data);
            *data = copy;
            *len = n > max_out ? max_out : n;
        }
    }
    decode_destroy(d);
    return rc;
}

int main(int argc, char **argv)
{
    const char *base = "http://localhost/", *type = "text/html", *encoding = NULL;
    const char *charset = NULL, *path = NULL;
    size_t cap = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--base") == 0)
            slot = &base;
        else if (strcmp(a, "--type") == 0)
            slot = &type;
        else if (strcmp(a, "--encoding") == 0)
            slot = &encoding;
        else if (strcmp(a, "--charset") == 0)
            slot = &charset;
        else if (strcmp(a, "--cap") == 0) {
            char *end;
            if (i + 1 >= argc || (cap = strtoull(argv[i + 1], &end, 10)) == 0 || *end) {
                fprintf(stderr, "herald-scan: --cap needs a positive number\n");
                return 2;
            }
            i++;
            continue;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (a[0] == '-' && a[1] != 0) {
            fprintf(stderr, "herald-scan: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "herald-scan: one input file only\n");
            return 2;
        } else {
            path = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "herald-scan: %s needs a value\n", a);
            return 2;
        }
        *slot = argv[++i];
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    bool css = strcmp(type, "text/css") == 0;
    if (!css && strcmp(type, "text/html") != 0) {
        fprintf(stderr, "herald-scan: --type must be text/html or text/css\n");
        return 2;
    }
    char *data = NULL;
    size_t len = 0;
    int rc = read_all(path, &data, &len);
    if (rc) {
        fprintf(stderr, "herald-scan: %s: %s\n", path, herald_strerror(rc));
        return 2;
    }
    if (encoding) {
        /* Like the proxy: HTML is decoded up to the scanner's cap only. */
        size_t max_out = css ? (size_t)64 << 20 : (cap ? cap : HTML_SCANNER_DEFAULT_CAP);
        rc = decode_all(encoding, max_out, &data, &len);
        if (rc) {
            fprintf(stderr, "herald-scan: --encoding %s: %s\n", encoding, herald_strerror(rc));
            free(data);
            return 2;
        }
    }

    asset_list_t list = {0};
    if (css) {
        rc = html_add_css(data, len, base, &list);
    } else {
        html_scanner_t *s = html_scanner_create(base, charset, cap);
        rc = s ? html_scanner_feed(s, data, len) : HERALD_ENOMEM;
        if (rc == 0)
            rc = html_scanner_finish(s, &list);
        html_scanner_destroy(s);
    }
    free(data);
    if (rc) {
        fprintf(stderr, "herald-scan: %s\n", herald_strerror(rc));
        asset_list_dispose(&list);
        return 1;
    }
    for (size_t i = 0; i < list.n; i++) {
        const asset_t *a = &list.v[i];
        fputs("{\"url\":", stdout);
        json_str(stdout, a->url);
        fputs(",\"kind\":", stdout);
        json_str(stdout, asset_kind_name(a->kind));
        fputs(",\"as\":", stdout);
        json_str(stdout, a->as);
        printf(",\"blocking\":%s,\"order\":%u,\"crossorigin\":", a->blocking ? "true" : "false",
               a->order);
        json_str(stdout, cors_name(a->crossorigin));
        fputs(",\"media\":", stdout);
        json_str(stdout, a->media);
        printf(",\"pick\":%s,\"strong\":%s,\"group\":%u}\n", a->pick ? "true" : "false",
               a->strong ? "true" : "false", a->group);
    }
    asset_list_dispose(&list);
    return fflush(stdout) == 0 ? 0 : 1;
}
