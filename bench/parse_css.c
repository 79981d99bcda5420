/*
 * css_scan throughput on a file: parse_css FILE [ITERATIONS]. Prints MB/s and
 * the number of references found, so a regression in speed or in what is
 * found shows in one run. Build by hand:
 *   cc -O2 -I. bench/parse_css.c parser/css.c parser/url.c -luriparser
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "parser/css.h"

static int count(void *arg, const css_ref_t *ref)
{
    (void)ref;
    (*(size_t *)arg)++;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [ITERATIONS]\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *css = malloc(len > 0 ? (size_t)len : 1);
    if (css == NULL || fread(css, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(f);
    int iters = argc > 2 ? atoi(argv[2]) : 50;
    size_t refs = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < iters; i++)
        if (css_scan(css, (size_t)len, "https://example.com/css/site.css", count, &refs) != 0)
            return 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%ld bytes x %d: %.1f MB/s, %zu refs per pass\n", len, iters,
           (double)len * iters / s / 1e6, refs / (size_t)(iters > 0 ? iters : 1));
    free(css);
    return 0;
}
