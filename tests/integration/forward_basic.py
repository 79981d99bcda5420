#!/usr/bin/python3
"""Forwarding basics: GET, HEAD and POST through herald with real
clients (nghttp h2c and TLS, curl h2c / h2 over TLS / HTTP/1.1, Node's http2),
header mapping both ways, multiple Set-Cookie, IPv6 listener.  Expected
values come from the demo files on disk and from the origin's /_echo."""

import hashlib
import json
import os
import re

import harness
from harness import echo_headers, header

T = harness.Tests("forward_basic", need=["curl", "nghttp", "node", "openssl"])
DEMO = os.path.join(harness.SRC, "examples", "demo")
INDEX = open(os.path.join(DEMO, "index.html"), "rb").read()
CSS = open(os.path.join(DEMO, "css", "site.css"), "rb").read()
POST = os.path.join(T.dir, "post.bin")
with open(POST, "wb") as f:
    f.write(os.urandom(1 << 20) + b"end")
POST_SHA = hashlib.sha256(open(POST, "rb").read()).hexdigest()
POST_LEN = os.path.getsize(POST)
NODE = os.path.join(harness.HERE, "h2client.js")

o = T.origin()
h = T.herald(o, tls=True, ipv6=True)


def nghttp_status(url, extra=()):
    """(status, body) of one nghttp request; status from the -v frame dump."""
    r = T.run(["nghttp", "-v"] + list(extra) + [url], timeout=20)
    T.check(r.returncode == 0, "nghttp failed: %r" % r)
    m = re.findall(r":status: (\d+)", r.stdout)
    T.check(m, "no :status in nghttp output")
    return int(m[-1]), r


def echo(r):
    try:
        return json.loads(r.body if isinstance(r.body, (bytes, str)) else r)
    except ValueError:
        raise harness.Failure("not JSON from /_echo: %r" % (r.body[:200],))


def origin_id(hs):
    T.eq(header(hs, "x-origin-id"), [o.id], "x-origin-id")


@T.case("nghttp h2c GET / returns the file")
def _():
    r = T.run(["nghttp", h.url + "/index.html"], timeout=20)
    T.check(r.returncode == 0, "nghttp failed: %r" % r)
    T.eq(r.stdout.encode(), INDEX, "body")
    st, _ = nghttp_status(h.url + "/css/site.css")
    T.eq(st, 200, "status")


@T.case("nghttp h2c POST 1 MiB to /_sink")
def _():
    r = T.run(["nghttp", "-d", POST, h.url + "/_sink"], timeout=30)
    T.check(r.returncode == 0, "nghttp failed: %r" % r)
    js = json.loads(r.stdout)
    T.eq((js["len"], js["sha256"]), (POST_LEN, POST_SHA), "body received by origin")


@T.case("nghttp over TLS (ALPN h2) GET /_echo")
def _():
    st, r = nghttp_status(h.tls_url + "/_echo")
    T.eq(st, 200, "status")
    T.check("h2 is negotiated" in r.stdout or "ALPN" not in r.stdout, "h2 not negotiated")
    line = [l for l in r.stdout.splitlines() if l.startswith('{"method"')]
    T.check(line, "no /_echo body in nghttp output")
    js = json.loads(line[0])
    T.eq(js["method"], "GET", "method")
    T.eq(echo_headers(js).get("x-forwarded-proto"), ["https"], "X-Forwarded-Proto over TLS")


@T.case("curl --http2-prior-knowledge GET and HEAD")
def _():
    r = T.curl(["--http2-prior-knowledge"], h.url + "/index.html")
    T.eq((r.returncode, r.status, r.version), (0, 200, "2"), "rc, status, version")
    T.eq(r.body, INDEX, "body")
    origin_id(r.headers)
    r = T.curl(["--http2-prior-knowledge", "-I"], h.url + "/css/site.css")
    T.eq((r.returncode, r.status, r.version), (0, 200, "2"), "HEAD rc, status, version")
    T.eq(r.body, b"", "HEAD body")
    T.eq(header(r.headers, "content-length"), [str(len(CSS))], "HEAD content-length")


@T.case("curl --http2-prior-knowledge POST 1 MiB to /_echo")
def _():
    r = T.curl(["--http2-prior-knowledge", "--data-binary", "@" + POST], h.url + "/_echo?p=1")
    T.eq((r.returncode, r.status), (0, 200), "rc, status")
    js = echo(r)
    T.eq((js["method"], js["target"]), ("POST", "/_echo?p=1"), "method, target")
    T.eq((js["body_len"], js["body_sha256"]), (POST_LEN, POST_SHA), "body at origin")


@T.case("curl --http2 over TLS: GET, HEAD, POST")
def _():
    r = T.curl(["--http2", "-k"], h.tls_url + "/index.html")
    T.eq((r.returncode, r.status, r.version), (0, 200, "2"), "rc, status, version")
    T.eq(r.body, INDEX, "body")
    r = T.curl(["--http2", "-k", "-I"], h.tls_url + "/index.html")
    T.eq((r.returncode, r.status, r.body), (0, 200, b""), "HEAD")
    r = T.curl(["--http2", "-k", "--data-binary", "@" + POST], h.tls_url + "/_sink")
    T.eq((r.returncode, r.status), (0, 200), "POST rc, status")
    js = echo(r)
    T.eq((js["len"], js["sha256"]), (POST_LEN, POST_SHA), "POST body at origin")


@T.case("curl --http1.1 cleartext: GET, HEAD, POST, chunked POST")
def _():
    r = T.curl(["--http1.1"], h.url + "/index.html")
    T.eq((r.returncode, r.status, r.version), (0, 200, "1.1"), "rc, status, version")
    T.eq(r.body, INDEX, "body")
    origin_id(r.headers)
    r = T.curl(["--http1.1", "-I"], h.url + "/index.html")
    T.eq((r.returncode, r.status, r.body), (0, 200, b""), "HEAD")
    T.eq(header(r.headers, "content-length"), [str(len(INDEX))], "HEAD content-length")
    r = T.curl(["--http1.1", "--data-binary", "@" + POST], h.url + "/_sink")
    js = echo(r)
    T.eq((js["len"], js["sha256"]), (POST_LEN, POST_SHA), "POST body at origin")
    r = T.curl(["--http1.1", "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + POST],
               h.url + "/_sink")
    js = echo(r)
    T.eq((js["len"], js["sha256"]), (POST_LEN, POST_SHA), "chunked POST body at origin")


@T.case("curl --http1.1 over TLS (ALPN http/1.1)")
def _():
    r = T.curl(["--http1.1", "-k"], h.tls_url + "/_echo")
    T.eq((r.returncode, r.status, r.version), (0, 200, "1.1"), "rc, status, version")
    T.eq(echo_headers(echo(r)).get("x-forwarded-proto"), ["https"], "X-Forwarded-Proto")


@T.case("Node http2 client: GET and POST, h2c and TLS")
def _():
    for base in (h.url, h.tls_url):
        r = T.run(["node", NODE, base + "/index.html"], timeout=20)
        T.check(r.returncode == 0, "node GET failed: %r %s" % (r, r.stdout))
        js = json.loads(r.stdout)
        T.eq((js["status"], js["body_len"], js["body_sha256"]),
             (200, len(INDEX), hashlib.sha256(INDEX).hexdigest()), "GET " + base)
        r = T.run(["node", NODE, base + "/_sink", "POST", POST], timeout=20)
        T.check(r.returncode == 0, "node POST failed: %r %s" % (r, r.stdout))
        js = json.loads(json.loads(r.stdout)["body"])
        T.eq((js["len"], js["sha256"]), (POST_LEN, POST_SHA), "POST " + base)


@T.case("request hop-by-hop headers removed (h1 client)")
def _():
    r = T.curl(["--http1.1", "-H", "Connection: keep-alive, X-Secret", "-H", "X-Secret: 1",
                "-H", "Keep-Alive: timeout=5", "-H", "Proxy-Connection: keep-alive",
                "-H", "TE: trailers", "-H", "X-Kept: yes"], h.url + "/_echo")
    T.eq(r.status, 200, "status")
    hs = echo_headers(echo(r))
    for k in ("x-secret", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"):
        T.check(k not in hs, "%s reached the origin: %r" % (k, hs.get(k)))
    T.check("x-secret" not in " ".join(hs.get("connection", [])).lower(),
            "Connection still names X-Secret: %r" % hs.get("connection"))
    T.check(hs.get("te") in (None, ["trailers"]), "TE: %r" % hs.get("te"))
    T.eq(hs.get("x-kept"), ["yes"], "end-to-end header")


@T.case("response hop-by-hop headers removed (h1 and h2 clients)")
def _():
    for args in (["--http1.1"], ["--http2-prior-knowledge"]):
        r = T.curl(args, h.url + "/_hop")
        T.eq((r.returncode, r.status, r.body), (0, 200, b"hop\n"), "%s response" % args[0])
        names = [k.lower() for k, _ in r.headers]
        for k in ("x-private", "keep-alive", "proxy-connection", "upgrade", "transfer-encoding"):
            T.check(k not in names, "%s: %s passed to the client" % (args[0], k))
        conn = " ".join(header(r.headers, "connection")).lower()
        T.check("x-private" not in conn, "%s: Connection names X-Private" % args[0])
        T.eq(header(r.headers, "x-end-to-end"), ["kept"], "end-to-end header")


@T.case("h2 response header names lower-cased, however long (RFC 9113 §8.2.1)")
def _():
    # the origin spells them in mixed case; 12 names of 300 characters
    r = T.curl(["--http2-prior-knowledge"], h.url + "/_hugeheaders?kb=12&name=300")
    T.eq((r.returncode, r.status, r.body), (0, 200, b"huge\n"), "response")
    got = [(k, v) for k, v in r.headers if k.lower().startswith("x-huge-")]
    want = [(("x-huge-%d-" % i).ljust(300, "n"), "h%d" % i + "h" * 998) for i in range(12)]
    T.eq(got, want, "names lower-cased, values intact, in order")


@T.case("h2 response header names: only A-Z lower-cased, every other token character kept")
def _():
    # RFC 9110 §5.6.2 tchar, with the letters in both cases
    name = "X-Tc_!#$%&'*+.^`|~AZaz09"
    o2 = T.origin(args=["--header", "/css/site.css=%s: v" % name])
    h2 = T.herald(o2, name="herald-tchar")
    r = T.curl(["--http2-prior-knowledge"], h2.url + "/css/site.css")
    T.eq((r.returncode, r.status), (0, 200), "response")
    T.eq([(k, v) for k, v in r.headers if k.startswith("x-tc")],
         [("x-tc_!#$%&'*+.^`|~azaz09", "v")], "name")
    h2.stop()
    o2.stop()


@T.case("X-Forwarded-For/-Proto replaced, Via names herald")
def _():
    r = T.curl(["--http2-prior-knowledge", "-H", "X-Forwarded-For: 6.6.6.6",
                "-H", "X-Forwarded-Proto: gopher"], h.url + "/_echo")
    hs = echo_headers(echo(r))
    T.eq(hs.get("x-forwarded-for"), ["127.0.0.1"], "X-Forwarded-For")
    T.eq(hs.get("x-forwarded-proto"), ["http"], "X-Forwarded-Proto")
    T.check(any("herald" in v.lower() for v in hs.get("via", [])), "Via: %r" % hs.get("via"))
    r = T.curl(["--http1.1"], h.url + "/_echo")
    hs = echo_headers(echo(r))
    T.eq(hs.get("x-forwarded-for"), ["127.0.0.1"], "X-Forwarded-For (h1)")
    T.check(any("herald" in v.lower() for v in hs.get("via", [])), "Via (h1): %r" % hs.get("via"))


@T.case("Host from :authority (h2) and from Host (h1)")
def _():
    r = T.curl(["--http2-prior-knowledge", "-H", "Host: shop.example:8080"], h.url + "/_echo")
    hs = echo_headers(echo(r))
    T.eq(hs.get("host"), ["shop.example:8080"], "Host from :authority")
    r = T.curl(["--http1.1", "-H", "Host: other.example"], h.url + "/_echo")
    T.eq(echo_headers(echo(r)).get("host"), ["other.example"], "Host (h1)")
    r = T.curl(["--http2-prior-knowledge"], h.url + "/_echo")
    T.eq(echo_headers(echo(r)).get("host"), ["127.0.0.1:%d" % h.port], "Host (default)")


@T.case("--origin-host overrides Host")
def _():
    h2 = T.herald(o, args=["--origin-host=backend.internal"], name="herald-originhost")
    for args in (["--http2-prior-knowledge"], ["--http1.1"]):
        r = T.curl(args + ["-H", "Host: shop.example"], h2.url + "/_echo")
        T.eq(echo_headers(echo(r)).get("host"), ["backend.internal"], "Host " + args[0])
    h2.stop()


@T.case("multiple Set-Cookie preserved (h2 and h1)")
def _():
    want = ["a=1; Path=/", "b=2; Path=/; HttpOnly",
            "c=3, with comma; Expires=Wed, 21 Oct 2037 07:28:00 GMT"]
    for args in (["--http2-prior-knowledge"], ["--http1.1"]):
        r = T.curl(args, h.url + "/_cookies")
        T.eq(r.status, 200, "status")
        T.eq(header(r.headers, "set-cookie"), want, "Set-Cookie " + args[0])
    r = T.curl(["--http2", "-k"], h.tls_url + "/_cookies")
    T.eq(header(r.headers, "set-cookie"), want, "Set-Cookie over TLS")


@T.case("ETag and If-None-Match pass through (304)")
def _():
    r = T.curl(["--http2-prior-knowledge"], h.url + "/css/site.css")
    etag = header(r.headers, "etag")
    T.check(len(etag) == 1, "no ETag: %r" % r.headers)
    r = T.curl(["--http2-prior-knowledge", "-H", "If-None-Match: " + etag[0]],
               h.url + "/css/site.css")
    T.eq((r.status, r.body), (304, b""), "conditional GET")


@T.case("redirect and 404 pass through")
def _():
    r = T.curl(["--http2-prior-knowledge"], h.url + "/_redirect?to=/item/1/&code=301")
    T.eq(r.status, 301, "status")
    T.eq(header(r.headers, "location"), ["/item/1/"], "Location")
    r = T.curl(["--http1.1"], h.url + "/no/such/file")
    T.eq(r.status, 404, "status")


@T.case("IPv6 listener [::1]")
def _():
    r = T.curl(["--http2-prior-knowledge", "-g"], h.url6 + "/_echo")
    T.eq((r.returncode, r.status, r.version), (0, 200, "2"), "rc, status, version")
    hs = echo_headers(echo(r))
    T.eq(hs.get("x-forwarded-for"), ["::1"], "X-Forwarded-For over IPv6")
    r = T.curl(["--http1.1", "-g"], h.url6 + "/index.html")
    T.eq((r.status, r.body), (200, INDEX), "h1 over IPv6")


@T.case("access log written")
def _():
    if os.environ.get("HERALD_PROXY", "herald") != "herald":
        raise harness.Skip("herald only")
    T.check(os.path.exists(h.access_log) and os.path.getsize(h.access_log) > 0,
            "access log %s empty or missing" % h.access_log)
    text = open(h.access_log).read()
    T.check("/_echo" in text, "no /_echo line in the access log")


T.finish()
