/* metrics.c: the Prometheus rendering follows the exposition conventions. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "proxy/metrics.h"
#include "tests/unit/testutil.h"

/* Every "# TYPE name counter" names a metric ending in _total, every name
 * starts with herald_, and every TYPE has a HELP just before it. */
static void test_render(void)
{
    metrics_snapshot_t s;
    memset(&s, 0, sizeof(s));
    s.requests[2][2] = 7;
    s.requests_total = 7;
    for (int i = 0; i <= METRICS_LATENCY_BUCKETS; i++)
        s.latency_buckets[i] = i < 3 ? 0 : 7;
    s.promised = 3;
    s.pages = 2;
    char *t = metrics_render_prometheus(&s);
    CHECK(strstr(t, "herald_requests_total{protocol=\"HTTP/2\",status=\"2xx\"} 7\n") != NULL);
    CHECK(strstr(t, "herald_request_duration_seconds_bucket{le=\"+Inf\"} 7\n") != NULL);
    CHECK(strstr(t, "herald_request_duration_seconds_count 7\n") != NULL);
    CHECK(strstr(t, "herald_pushes_promised_total 3\n") != NULL);
    CHECK(strstr(t, "herald_learned_pages 2\n") != NULL);
    char *save = NULL, *prev = NULL;
    int types = 0;
    for (char *line = strtok_r(t, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# TYPE ", 7) == 0) {
            types++;
            char name[128], type[32];
            CHECK(sscanf(line + 7, "%127s %31s", name, type) == 2);
            CHECK(strncmp(name, "herald_", 7) == 0);
            size_t n = strlen(name);
            bool total = n > 6 && strcmp(name + n - 6, "_total") == 0;
            CHECK(total == (strcmp(type, "counter") == 0));
            char help[160];
            snprintf(help, sizeof(help), "# HELP %s ", name);
            CHECK(prev != NULL && strncmp(prev, help, strlen(help)) == 0);
        } else if (line[0] != '#') {
            CHECK(strncmp(line, "herald_", 7) == 0);
        }
        prev = line;
    }
    CHECK(types >= 20);
    free(t);
}

static void test_collect_empty(void)
{
    uint64_t t0 = uv_hrtime();
    metrics_init();
    uv_sleep(20);
    metrics_snapshot_t s;
    metrics_collect(NULL, NULL, &s);
    uint64_t t1 = uv_hrtime();
    CHECK(s.requests_total == 0);
    CHECK(s.latency_buckets[METRICS_LATENCY_BUCKETS] == 0);
    /* uptime counts from metrics_init(), in seconds: at least the 20 ms
     * slept, at most what passed around init and collect */
    CHECK(s.uptime_s >= 0.020);
    CHECK(s.uptime_s <= (double)(t1 - t0) / 1e9);
    CHECK(metrics_latency_bound(0) < metrics_latency_bound(METRICS_LATENCY_BUCKETS - 1));
}

int main(void)
{
    test_render();
    test_collect_empty();
    return TESTUTIL_SUMMARY();
}
