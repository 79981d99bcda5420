/*
 * headers.c: lists, and the client <-> origin header mapping. Expected heads
 * follow RFC 9110 §7.6.1 (Connection and the fields it names are hop-by-hop),
 * §7.6.3 (Via), §10.1.4 (TE), RFC 9113 §8.2.3 (cookie crumbs), RFC 7230
 * §3.3 (Content-Length / chunked) and §6.7 (Upgrade).
 */
#include "alloc.h"
#include "headers.h"

#include <stdio.h>
#include <string.h>

#include "testutil.h"

static mempool_t mp;

static void add(headers_t *h, const char *n, const char *v)
{
    headers_add(h, &mp, n, strlen(n), v, strlen(v));
}

static headers_request_t base(const headers_t *h)
{
    return (headers_request_t){
        .method = "GET",
        .path = "/x?y=1",
        .authority = "example.com",
        .scheme = "https",
        .headers = h,
        .client_addr = "192.0.2.1",
        .via_proto = "1.1",
        .content_length = -1,
        .origin_hostport = "127.0.0.1:8080",
    };
}

static void check_head(const headers_request_t *in, const char *want, int line)
{
    headers_buf_t b;
    headers_buf_init(&b);
    headers_build_request(in, &b);
    testutil_checks++;
    if (b.p == NULL || strcmp(b.p, want) != 0) {
        testutil_failures++;
        fprintf(stderr, "headers_test.c:%d: head differs\n--- got\n%s--- want\n%s---\n", line,
                b.p ? b.p : "(null)", want);
    }
    headers_buf_dispose(&b);
}
#define CHECK_HEAD(in, want) check_head((in), (want), __LINE__)

static void test_lists(void)
{
    headers_t h = {0};
    for (int i = 0; i < 40; i++)
        add(&h, i == 33 ? "X-Thirty-Three" : "x-n", "v");
    CHECK_INTEQ(h.n, 40);
    const header_t *f = headers_find(&h, "x-thirty-three");
    CHECK(f != NULL && f == &h.v[33]);
    CHECK(headers_find(&h, "x-nope") == NULL);
    CHECK(headers_name_eq("Content-Type", 12, "content-type"));
    CHECK(!headers_name_eq("Content-Type", 12, "content-typ"));
    CHECK(!headers_name_eq("Content-Typ", 11, "content-type"));

    static const char name[] = "static-name";
    headers_add_ref(&h, &mp, name, 11, "val", 3);
    CHECK(h.v[40].name == name);
    /* copies are NUL-terminated */
    CHECK_STREQ(h.v[0].name, "x-n");
    CHECK_INTEQ(h.v[0].value_len, 1);
}

static void test_tokens(void)
{
    const char *v = " close ,\tFoo,, bar-baz ";
    CHECK(headers_has_token(v, strlen(v), "close"));
    CHECK(headers_has_token(v, strlen(v), "foo"));
    CHECK(headers_has_token(v, strlen(v), "BAR-BAZ"));
    CHECK(!headers_has_token(v, strlen(v), "bar"));
    CHECK(!headers_has_token("", 0, "close"));
    CHECK(!headers_has_token("closed", 6, "close"));
}

/* RFC 9110 §7.6.1: "Connection: close, foo" -> foo is hop-by-hop as well. */
/* RFC 6265 §4.2.1 cookie-string: "name=value" pairs joined by "; ". */
static void test_cookie_value(void)
{
    size_t n = 99;
    const char *v = "a=1; herald-digest=AbC; b=2";
    const char *r = headers_cookie_value(v, strlen(v), "herald-digest", &n);
    CHECK(r == v + 19);
    CHECK_INTEQ(n, 3);
    r = headers_cookie_value(v, strlen(v), "a", &n);
    CHECK(r == v + 2 && n == 1);
    r = headers_cookie_value(v, strlen(v), "b", &n);
    CHECK(r == v + 26 && n == 1);
    CHECK(headers_cookie_value(v, strlen(v), "herald", &n) == NULL); /* a prefix is not a name */
    CHECK(headers_cookie_value(v, strlen(v), "digest", &n) == NULL); /* nor a suffix */
    v = "x=;y=2;;x=3";                                               /* no spaces; empty value */
    r = headers_cookie_value(v, strlen(v), "x", &n);
    CHECK(r == v + 2 && n == 0);
    r = headers_cookie_value(v, strlen(v), "y", &n);
    CHECK(r == v + 5 && n == 1);
    CHECK(headers_cookie_value("", 0, "x", &n) == NULL);
    CHECK(headers_cookie_value("x", 1, "x", &n) == NULL);
    /* the length bounds the search: the pair after it is not read */
    v = "a=1; b=2";
    CHECK(headers_cookie_value(v, 4, "b", &n) == NULL);
    r = headers_cookie_value(v, 2, "a", &n);
    CHECK(r == v + 2 && n == 0);
}

static void test_request_hop_by_hop(void)
{
    headers_t h = {0};
    add(&h, "Host", "client.example");
    add(&h, "Connection", "close, Foo");
    add(&h, "Foo", "must go");
    add(&h, "Keep-Alive", "timeout=5");
    add(&h, "Proxy-Connection", "keep-alive");
    add(&h, "Upgrade", "h2c");
    add(&h, "HTTP2-Settings", "AAMAAABkAAQAAP__");
    add(&h, "TE", "trailers, deflate");
    add(&h, "Transfer-Encoding", "chunked");
    add(&h, "Accept", "*/*");
    add(&h, "X-Keep", "yes");
    headers_request_t in = base(&h);
    in.authority = "client.example";
    CHECK_HEAD(&in, "GET /x?y=1 HTTP/1.1\r\n"
                    "Host: client.example\r\n"
                    "Accept: */*\r\n"
                    "X-Keep: yes\r\n"
                    "TE: trailers\r\n"
                    "X-Forwarded-For: 192.0.2.1\r\n"
                    "X-Forwarded-Proto: https\r\n"
                    "Via: 1.1 herald\r\n"
                    "\r\n");

    /* Connection names a field however long its name is (RFC 9110 §7.6.1) */
    headers_t hl = {0};
    char longname[100];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    add(&hl, "Connection", longname);
    add(&hl, longname, "must go");
    in = base(&hl);
    CHECK_HEAD(&in, "GET /x?y=1 HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "X-Forwarded-For: 192.0.2.1\r\n"
                    "X-Forwarded-Proto: https\r\n"
                    "Via: 1.1 herald\r\n"
                    "\r\n");

    /* TE without trailers goes entirely */
    headers_t h2 = {0};
    add(&h2, "te", "gzip");
    in = base(&h2);
    CHECK_HEAD(&in, "GET /x?y=1 HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "X-Forwarded-For: 192.0.2.1\r\n"
                    "X-Forwarded-Proto: https\r\n"
                    "Via: 1.1 herald\r\n"
                    "\r\n");
}

/* RFC 9113 §8.2.3: cookie crumbs are joined with "; " for HTTP/1.1. */
static void test_request_h2_cookies_and_forwarded(void)
{
    headers_t h = {0};
    add(&h, "cookie", "a=1");
    add(&h, "user-agent", "nghttp2");
    add(&h, "cookie", "b=2");
    add(&h, "cookie", "c=3");
    add(&h, "x-forwarded-for", "198.51.100.7");
    add(&h, "x-forwarded-proto", "http");
    add(&h, "via", "1.1 lb");
    headers_request_t in = base(&h);
    in.via_proto = "2";
    /* untrusted: incoming X-Forwarded-* replaced, Via joined */
    CHECK_HEAD(&in, "GET /x?y=1 HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "user-agent: nghttp2\r\n"
                    "Cookie: a=1; b=2; c=3\r\n"
                    "X-Forwarded-For: 192.0.2.1\r\n"
                    "X-Forwarded-Proto: https\r\n"
                    "Via: 1.1 lb, 2 herald\r\n"
                    "\r\n");
    /* trusted: appended to (For), kept (Proto) */
    add(&h, "X-Forwarded-For", "203.0.113.9, 10.0.0.1");
    in.trust_forwarded = true;
    CHECK_HEAD(&in, "GET /x?y=1 HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "user-agent: nghttp2\r\n"
                    "Cookie: a=1; b=2; c=3\r\n"
                    "X-Forwarded-For: 198.51.100.7, 203.0.113.9, 10.0.0.1, 192.0.2.1\r\n"
                    "X-Forwarded-Proto: http\r\n"
                    "Via: 1.1 lb, 2 herald\r\n"
                    "\r\n");
}

static void test_request_host(void)
{
    headers_t h = {0};
    headers_request_t in = base(&h);
    /* HTTP/1.0 without Host: the origin's own host:port */
    in.authority = "";
    in.via_proto = "1.0";
    in.scheme = "http";
    CHECK_HEAD(&in, "GET /x?y=1 HTTP/1.1\r\n"
                    "Host: 127.0.0.1:8080\r\n"
                    "X-Forwarded-For: 192.0.2.1\r\n"
                    "X-Forwarded-Proto: http\r\n"
                    "Via: 1.0 herald\r\n"
                    "\r\n");
    /* --origin-host wins over :authority */
    in = base(&h);
    in.host_override = "internal.example:8080";
    CHECK_HEAD(&in, "GET /x?y=1 HTTP/1.1\r\n"
                    "Host: internal.example:8080\r\n"
                    "X-Forwarded-For: 192.0.2.1\r\n"
                    "X-Forwarded-Proto: https\r\n"
                    "Via: 1.1 herald\r\n"
                    "\r\n");
}

static void test_request_body_framing(void)
{
    headers_t h = {0};
    add(&h, "Content-Length", "999"); /* the frontend's number is the truth */
    add(&h, "content-type", "text/plain");
    headers_request_t in = base(&h);
    in.method = "POST";
    in.has_body = true;
    in.content_length = 5;
    CHECK_HEAD(&in, "POST /x?y=1 HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "content-type: text/plain\r\n"
                    "X-Forwarded-For: 192.0.2.1\r\n"
                    "X-Forwarded-Proto: https\r\n"
                    "Via: 1.1 herald\r\n"
                    "Content-Length: 5\r\n"
                    "\r\n");
    /* h2 body without content-length: chunked to the origin */
    in.content_length = -1;
    CHECK_HEAD(&in, "POST /x?y=1 HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "content-type: text/plain\r\n"
                    "X-Forwarded-For: 192.0.2.1\r\n"
                    "X-Forwarded-Proto: https\r\n"
                    "Via: 1.1 herald\r\n"
                    "Transfer-Encoding: chunked\r\n"
                    "\r\n");
    /* h2 POST with END_STREAM on HEADERS: an empty body, said explicitly */
    in.has_body = false;
    CHECK_HEAD(&in, "POST /x?y=1 HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "content-type: text/plain\r\n"
                    "X-Forwarded-For: 192.0.2.1\r\n"
                    "X-Forwarded-Proto: https\r\n"
                    "Via: 1.1 herald\r\n"
                    "Content-Length: 0\r\n"
                    "\r\n");
}

static void test_request_websocket(void)
{
    headers_t h = {0};
    add(&h, "Host", "ws.example");
    add(&h, "Connection", "Upgrade");
    add(&h, "Upgrade", "websocket");
    add(&h, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    add(&h, "Sec-WebSocket-Version", "13");
    headers_request_t in = base(&h);
    in.path = "/chat";
    in.authority = "ws.example";
    in.scheme = "http";
    in.websocket = true;
    CHECK_HEAD(&in, "GET /chat HTTP/1.1\r\n"
                    "Host: ws.example\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n"
                    "X-Forwarded-For: 192.0.2.1\r\n"
                    "X-Forwarded-Proto: http\r\n"
                    "Via: 1.1 herald\r\n"
                    "Connection: upgrade\r\n"
                    "Upgrade: websocket\r\n"
                    "\r\n");
}

static int count(const headers_t *h, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < h->n; i++)
        n += headers_name_eq(h->v[i].name, h->v[i].name_len, name);
    return n;
}

/* RFC 9110 §7.6.1: every Connection field counts, not only the first; a
 * list with a field per option (past eight options, too) as well. */
static void test_connection_fields(void)
{
    for (int fields = 1; fields <= 10; fields++) {
        headers_t in = {0}, out = {0};
        char name[16];
        add(&in, "Content-Type", "text/html");
        for (int i = 0; i < fields; i++) {
            snprintf(name, sizeof(name), "X-Opt%d", i);
            add(&in, "Connection", name);
        }
        for (int i = 0; i < fields; i++) {
            snprintf(name, sizeof(name), "x-opt%d", i);
            add(&in, name, "hop");
        }
        add(&in, "X-Opt", "not named: a prefix of the options only");
        headers_filter_response(&in, &out, &mp, "1.1", false);
        CHECK_INTEQ(out.n, 3); /* Content-Type, X-Opt, Via */
        CHECK_STREQ(out.v[1].name, "X-Opt");
        for (int i = 0; i < fields; i++) {
            snprintf(name, sizeof(name), "x-opt%d", i);
            CHECK(headers_find(&out, name) == NULL);
        }

        /* the request side: the same fields, and TE named by the last one */
        headers_t req = {0};
        for (int i = 0; i < fields; i++) {
            snprintf(name, sizeof(name), "X-Opt%d", i);
            add(&req, "Connection", name);
            add(&req, name, "hop");
        }
        add(&req, "Connection", "te");
        add(&req, "TE", "trailers");
        add(&req, "X-Opt", "kept");
        headers_request_t r = base(&req);
        CHECK_HEAD(&r, "GET /x?y=1 HTTP/1.1\r\n"
                       "Host: example.com\r\n"
                       "X-Opt: kept\r\n"
                       "X-Forwarded-For: 192.0.2.1\r\n"
                       "X-Forwarded-Proto: https\r\n"
                       "Via: 1.1 herald\r\n"
                       "\r\n");
    }
}

static void test_response_filter(void)
{
    headers_t in = {0}, out = {0};
    add(&in, "Content-Type", "text/html");
    add(&in, "Connection", "close, X-Private");
    add(&in, "X-Private", "secret");
    add(&in, "Keep-Alive", "timeout=5, max=100");
    add(&in, "Transfer-Encoding", "chunked");
    add(&in, "Set-Cookie", "a=1; Path=/");
    add(&in, "Set-Cookie", "b=2, c=3; Expires=Wed, 21 Oct 2026 07:28:00 GMT");
    add(&in, "Upgrade", "h2c");
    add(&in, "Via", "1.0 cache");
    add(&in, "Content-Length", "10");
    headers_filter_response(&in, &out, &mp, "1.1", false);
    CHECK_INTEQ(out.n, 5);
    CHECK_INTEQ(count(&out, "set-cookie"), 2);
    CHECK(headers_find(&out, "x-private") == NULL);
    CHECK(headers_find(&out, "connection") == NULL);
    CHECK(headers_find(&out, "keep-alive") == NULL);
    CHECK(headers_find(&out, "transfer-encoding") == NULL);
    CHECK(headers_find(&out, "upgrade") == NULL);
    CHECK_STREQ(headers_find(&out, "content-length")->value, "10");
    CHECK_STREQ(out.v[1].value, "a=1; Path=/");
    CHECK_STREQ(out.v[2].value, "b=2, c=3; Expires=Wed, 21 Oct 2026 07:28:00 GMT");
    CHECK_STREQ(headers_find(&out, "via")->value, "1.0 cache, 1.1 herald");

    /* 101 to a websocket request: Upgrade kept, Connection: upgrade said */
    headers_t ws = {0}, wout = {0};
    add(&ws, "Upgrade", "websocket");
    add(&ws, "Connection", "Upgrade");
    add(&ws, "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    headers_filter_response(&ws, &wout, &mp, "1.1", true);
    CHECK_STREQ(headers_find(&wout, "upgrade")->value, "websocket");
    CHECK_STREQ(headers_find(&wout, "connection")->value, "upgrade");
    CHECK_INTEQ(count(&wout, "connection"), 1);
    CHECK(headers_find(&wout, "sec-websocket-accept") != NULL);
    CHECK_STREQ(headers_find(&wout, "via")->value, "1.1 herald");
}

/* A buffer on caller memory moves to the heap intact when outgrown; growth doubles. */
static void test_buf_growth(void)
{
    char mem[8];
    headers_buf_t b;
    headers_buf_init_on(&b, mem, sizeof(mem));
    headers_buf_append(&b, "abc", 3);
    CHECK(b.p == mem && !b.heap);
    for (int i = 0; i < 40; i++)
        headers_buf_append(&b, "0123456789", 10);
    CHECK(b.heap && b.p != mem);
    CHECK_INTEQ((int)b.len, 403);
    CHECK(memcmp(b.p, "abc0123456789", 13) == 0 && b.p[403] == '\0');
    CHECK(b.cap >= 404 && b.cap % 1024 == 0);
    headers_buf_dispose(&b);

    size_t cap = 0;
    char *p = alloc_grow(NULL, &cap, 5, 64);
    CHECK(p != NULL && cap == 64);
    CHECK(alloc_grow(p, &cap, 64, 64) == p && cap == 64);
    p = alloc_grow(p, &cap, 300, 64);
    CHECK(cap == 512);
    free(p);
}

int main(void)
{
    mempool_init(&mp);
    test_buf_growth();
    test_lists();
    test_tokens();
    test_cookie_value();
    test_request_hop_by_hop();
    test_request_h2_cookies_and_forwarded();
    test_request_host();
    test_request_body_framing();
    test_request_websocket();
    test_response_filter();
    test_connection_fields();
    mempool_dispose(&mp);
    return TESTUTIL_SUMMARY();
}
