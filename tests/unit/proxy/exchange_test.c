/*
 * exchange.c: the access log line of a fixed exchange, and the lifetime of
 * an exchange that never reached upstream.
 */
#include "proxy/exchange.h"

#include <stdlib.h>
#include <string.h>

#include "tests/unit/testutil.h"

static exchange_t *fixed(void)
{
    exchange_t *ex = exchange_create(NULL, NULL, NULL, NULL);
    ex->proto = EXCHANGE_HTTP2;
    ex->method = "GET";
    ex->path = "/x";
    strcpy(ex->client_addr, "127.0.0.1");
    ex->status = 200;
    ex->bytes_to_client = 1234;
    ex->resp_body_bytes = 1234;
    ex->req_body_bytes = 0;
    ex->wall_start_us = 1795555800LL * 1000000; /* 2026-11-24 21:30:00 UTC */
    ex->t_start = 1000000000ULL;
    ex->t_upstream_sent = ex->t_start + 2000000; /* +2 ms */
    ex->t_end = ex->t_start + 12000000;          /* +12 ms */
    headers_add(&ex->req_headers, &ex->pool, "referer", 7, "https://example.com/", 20);
    headers_add(&ex->req_headers, &ex->pool, "User-Agent", 10, "curl/7.88", 9);
    return ex;
}

static void test_format(void)
{
    exchange_t *ex = fixed();
    char line[1024];
    size_t n = exchange_log_format(ex, ex->t_start + 20000000, line, sizeof(line));
    line[n] = '\0';
    CHECK_STREQ(line, "127.0.0.1 - - [24/Nov/2026:21:30:00 +0000] \"GET /x HTTP/2\" 200 1234 "
                      "\"https://example.com/\" \"curl/7.88\" rt=0.020 ut=0.010 up_bytes=1234 "
                      "req_bytes=0\n");

    /* no origin reached, no headers, hostile bytes escaped */
    ex->t_upstream_sent = 0;
    ex->proto = EXCHANGE_HTTP11;
    ex->status = 502;
    ex->bytes_to_client = 0;
    ex->resp_body_bytes = 0;
    ex->req_body_bytes = 7;
    ex->path = "/a\"b c";
    ex->req_headers = (headers_t){0};
    headers_add(&ex->req_headers, &ex->pool, "user-agent", 10, "x\"\n\\", 4);
    n = exchange_log_format(ex, 0, line, sizeof(line));
    line[n] = '\0';
    CHECK_STREQ(line, "127.0.0.1 - - [24/Nov/2026:21:30:00 +0000] \"GET /a\\x22b\\x20c HTTP/1.1\" "
                      "502 0 \"-\" \"x\\x22\\x0A\\x5C\" rt=0.012 ut=- up_bytes=0 req_bytes=7\n");

    /* truncation still ends the line */
    char small[16];
    n = exchange_log_format(ex, 0, small, sizeof(small));
    CHECK_INTEQ(n, sizeof(small));
    CHECK(small[n - 1] == '\n');

    ex->logged = true;          /* nothing to write at destroy */
    exchange_frontend_done(ex); /* never started: freed here (ASan checks) */
}

int main(void)
{
    test_format();
    return TESTUTIL_SUMMARY();
}
