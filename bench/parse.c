/*
 * Discovery cost against its floor: html_scanner end to end (charset sniff,
 * pre-pass, gumbo, walk, URL resolution, inline CSS) against gumbo_parse
 * alone on the same bytes with the same options, and css_scan throughput.
 *
 *   parse [--reps N] HTML... [--css CSS...]
 *
 * Each measurement is the best of N samples; a sample repeats the operation
 * until it lasts at least 20 ms, so small pages are timed above clock noise.
 * One line per page and a total, "key value" pairs for bench/parse.sh.
 */
#include "asset.h"
#include "css.h"
#include "html.h"

#include <gumbo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Must match GUMBO_MAX_ERRORS in parser/html.c: the floor uses the same options. */
#define BENCH_GUMBO_MAX_ERRORS 16

typedef struct input {
    const char *path;
    char *data;
    size_t len;
} input_t;

static double now(void)
{
    struct timespec ts;
    /* CPU time of this thread: the machine is shared, wall time would count others. */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int load(const char *path, input_t *in)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    in->path = path;
    in->data = malloc((size_t)n + 1);
    in->len = fread(in->data, 1, (size_t)n, f);
    fclose(f);
    return 0;
}

static size_t sink; /* keeps the work observable */

static void run_discovery(const input_t *in)
{
    html_scanner_t *s = html_scanner_create("http://localhost/index.html", NULL, 0);
    asset_list_t l = {0};
    html_scanner_feed(s, in->data, in->len);
    html_scanner_finish(s, &l);
    sink += l.n;
    asset_list_dispose(&l);
    html_scanner_destroy(s);
}

static void run_gumbo(const input_t *in)
{
    GumboOptions opt = kGumboDefaultOptions;
    opt.max_errors = BENCH_GUMBO_MAX_ERRORS;
    GumboOutput *g = gumbo_parse_with_options(&opt, in->data, in->len);
    sink += g->document->v.document.children.length;
    gumbo_destroy_output(&opt, g);
}

static int count_ref(void *arg, const css_ref_t *ref)
{
    (void)ref;
    (*(size_t *)arg)++;
    return 0;
}

static void run_css(const input_t *in)
{
    size_t n = 0;
    css_scan(in->data, in->len, "http://localhost/style.css", count_ref, &n);
    sink += n;
}

/* One sample: seconds per operation over at least 20 ms of repeats. */
static double sample(void (*op)(const input_t *), const input_t *in)
{
    unsigned k = 0;
    double t0 = now(), t;
    do {
        op(in);
        k++;
        t = now() - t0;
    } while (t < 0.02);
    return t / k;
}

/* Best of reps samples of a and of b, taken alternately so that load from
 * elsewhere on the machine hits both alike. */
static void best2(void (*a)(const input_t *), void (*b)(const input_t *), const input_t *in,
                  int reps, double *ta, double *tb)
{
    *ta = *tb = 1e9;
    for (int r = 0; r < reps; r++) {
        double x = sample(a, in), y = b ? sample(b, in) : 0;
        if (x < *ta)
            *ta = x;
        if (y < *tb)
            *tb = y;
    }
}

int main(int argc, char **argv)
{
    int reps = 15;
    input_t html[64], css = {.path = "css"};
    size_t nhtml = 0;
    int in_css = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--css") == 0) {
            in_css = 1;
        } else if (in_css) {
            input_t c;
            if (load(argv[i], &c))
                return 2;
            css.data = realloc(css.data, css.len + c.len + 1);
            memcpy(css.data + css.len, c.data, c.len);
            css.len += c.len;
            css.data[css.len] = '\n';
            free(c.data);
        } else if (nhtml < 64) {
            if (load(argv[i], &html[nhtml]))
                return 2;
            nhtml++;
        }
    }
    if (nhtml == 0 && css.len == 0) {
        fprintf(stderr, "usage: parse [--reps N] HTML... [--css CSS...]\n");
        return 2;
    }
    double td = 0, tg = 0;
    size_t bytes = 0;
    for (size_t i = 0; i < nhtml; i++) {
        double d, g;
        best2(run_discovery, run_gumbo, &html[i], reps, &d, &g);
        td += d;
        tg += g;
        bytes += html[i].len;
        printf("page %s bytes %zu discovery_mbps %.1f gumbo_mbps %.1f ratio %.3f\n", html[i].path,
               html[i].len, html[i].len / d / 1e6, html[i].len / g / 1e6, d / g);
    }
    if (nhtml)
        printf("total html_bytes %zu discovery_mbps %.1f gumbo_mbps %.1f ratio %.3f\n", bytes,
               bytes / td / 1e6, bytes / tg / 1e6, td / tg);
    if (css.len) {

        double c, unused;
        best2(run_css, NULL, &css, reps, &c, &unused);
        printf("css bytes %zu css_mbps %.1f\n", css.len, css.len / c / 1e6);
    }
    return sink == 0 ? 1 : 0;
}
