#!/usr/bin/python3
"""Admin API: every endpoint against herald in
front of the demo site after two nghttp visits taught it the home page,
including the errors (401 without/with a wrong token, 404 unknown page or
edge, 400 malformed import with the map untouched, 413 oversized body, 405,
exit 2 on a non-loopback --admin without a token) and /healthz turning 503
when the origin goes away."""

import json
import re
import socket

import adminlib as A
import harness

T = harness.Tests("admin_api", need=["nghttp", "curl"])
o = T.origin()
h = A.herald(T, o)
KEY = A.page_key(h)
CSS = "http://127.0.0.1:%d/css/site.css" % h.port
IMG = "http://127.0.0.1:%d/img/logo.svg" % h.port
S = {}


def call(method, path, body=None, **kw):
    return A.call(h, method, path, body, **kw)


@T.case("learn the home page through two nghttp visits")
def _():
    S["page"] = A.learn(T, h)


@T.case("GET /healthz: 200 while the origin is up")
def _():
    st, j, _ = call("GET", "/healthz")
    T.eq(st, 200, "status")
    T.eq(j.get("status"), "ok", "body %s" % j)


@T.case("GET /maps: the page with its counters; paging and ?q= filter")
def _():
    st, j, _ = call("GET", "/maps")
    T.eq(st, 200, "status")
    T.eq(j["total"], 1, "total")
    p = j["pages"][0]
    T.eq(p["key"], KEY, "key")
    for k in ("template_key", "visits_total", "edge_count", "last_visit_ms", "think_ms",
              "bytes_pushed", "hints_sent"):
        T.check(k in p, "page lacks %s: %s" % (k, p))
    T.check(p["edge_count"] >= 5, "edge_count %s" % p["edge_count"])
    st, j, _ = call("GET", "/maps?offset=1&limit=10")
    T.eq((st, j["total"], j["pages"]), (200, 1, []), "offset past the end")
    st, j, _ = call("GET", "/maps?q=" + A.q("no-such-thing"))
    T.eq((st, j["total"]), (200, 0), "filter with no match")
    st, j, _ = call("GET", "/maps?q=" + A.q("127.0.0.1"))
    T.eq((st, j["total"]), (200, 1), "filter matching")
    st, j, _ = call("GET", "/maps?limit=abc")
    T.eq(st, 400, "bad limit")


@T.case("GET /maps/page: edges with url, kind, confidence, bytes, type, status, etag, counters, state")
def _():
    st, j, _ = call("GET", "/maps/page?page=" + A.q(KEY))
    T.eq(st, 200, "status")
    urls = {e["url"]: e for e in j["edges"]}
    T.check(CSS in urls, "no %s in %s" % (CSS, sorted(urls)))
    e = urls[CSS]
    for k in ("kind", "confidence", "size", "content_type", "status", "etag", "promised",
              "completed", "cancelled", "state"):
        T.check(k in e, "edge lacks %s: %s" % (k, e))
    T.eq((e["kind"], e["state"], e["status"]), ("style", "learned", 200), "css edge")
    T.check(e["size"] > 0 and e["confidence"] > 0.5, "size/confidence %s" % e)


@T.case("GET /maps/page&format=link: the plan as Link header lines")
def _():
    st, text, hd = call("GET", "/maps/page?page=%s&format=link" % A.q(KEY))
    T.eq(st, 200, "status")
    T.check(hd["content-type"].startswith("text/plain"), "type %s" % hd["content-type"])
    lines = text.strip().splitlines()
    T.check(lines and all(re.match(r"^Link: <[^>]+>; rel=preload", ln) for ln in lines),
            "lines: %s" % lines[:3])
    T.check(any("<%s>; rel=preload; as=style" % CSS in ln for ln in lines), "css missing")


@T.case("POST /maps/pin: a new asset is pinned and enters the plan")
def _():
    extra = "http://127.0.0.1:%d/img/extra.png" % h.port
    st, j, _ = call("POST", "/maps/pin?page=%s&asset=%s" % (A.q(KEY), A.q(extra)))
    T.eq((st, j.get("state")), (200, "pinned"), "pin %s" % j)
    st, j, _ = call("GET", "/maps/page?page=" + A.q(KEY))
    T.eq({e["url"]: e["state"] for e in j["edges"]}.get(extra), "pinned", "edge state")
    st, text, _ = call("GET", "/maps/page?page=%s&format=link" % A.q(KEY))
    T.check(extra in text, "pinned asset not in the plan")
    S["extra"] = extra


@T.case("POST /maps/ban: the asset leaves the plan, is not pushed, stays banned")
def _():
    st, j, _ = call("POST", "/maps/ban?page=%s&asset=%s" % (A.q(KEY), A.q(IMG)))
    T.eq((st, j.get("state")), (200, "banned"), "ban %s" % j)
    st, text, _ = call("GET", "/maps/page?page=%s&format=link" % A.q(KEY))
    T.check(IMG not in text, "banned asset still planned")
    paths = A.pushes(T, h)
    T.check(paths and "/img/logo.svg" not in paths, "pushed after ban: %s" % paths)
    st, j, _ = call("GET", "/maps/page?page=" + A.q(KEY))
    T.eq({e["url"]: e["state"] for e in j["edges"]}.get(IMG), "banned", "after a visit")


@T.case("DELETE /maps/page?asset=: forget one edge; 404 for unknown page/edge")
def _():
    st, j, _ = call("DELETE", "/maps/page?page=%s&asset=%s" % (A.q(KEY), A.q(S["extra"])))
    T.eq(st, 200, "forget edge %s" % j)
    st, j, _ = call("GET", "/maps/page?page=" + A.q(KEY))
    T.check(S["extra"] not in {e["url"] for e in j["edges"]}, "edge still there")
    st, j, _ = call("DELETE", "/maps/page?page=%s&asset=%s" % (A.q(KEY), A.q(S["extra"])))
    T.eq(st, 404, "forget a missing edge")
    st, j, _ = call("GET", "/maps/page?page=" + A.q("nowhere/x"))
    T.eq((st, "error" in j), (404, True), "unknown page")
    st, j, _ = call("DELETE", "/maps/page?page=" + A.q("nowhere/x"))
    T.eq(st, 404, "forget unknown page")
    st, j, _ = call("GET", "/maps/page")
    T.eq(st, 400, "missing page parameter")


@T.case("GET /export and POST /import?mode=merge|replace round-trip")
def _():
    st, doc, _ = call("GET", "/export")
    T.eq((st, doc.get("version")), (200, 2), "export (snapshot format version 2)")
    T.eq([p["key"] for p in doc["pages"]], [KEY], "pages")
    S["doc"] = doc
    other = json.loads(json.dumps(doc))
    other["pages"][0]["key"] = "127.0.0.1:%d/other" % h.port
    st, j, _ = call("POST", "/import?mode=merge", other)
    T.eq((st, j.get("pages")), (200, 2), "merge adds a page: %s" % j)
    st, j, _ = call("POST", "/import?mode=replace", doc)
    T.eq((st, j.get("pages")), (200, 1), "replace: %s" % j)
    st, back, _ = call("GET", "/export")
    T.eq([p["key"] for p in back["pages"]], [KEY], "after replace")
    st, j, _ = call("POST", "/import?mode=sideways", doc)
    T.eq(st, 400, "unknown mode")


@T.case("POST /import malformed: 400 with the reason, map untouched")
def _():
    st, before, _ = call("GET", "/export")
    for body, what in (("{\"version\":1,\"pages\":[{\"key\":", "truncated"),
                       ("{\"version\":99,\"pages\":[]}", "future version"),
                       ("{\"version\":1,\"pages\":[{\"key\":\"a\",\"edges\":[{\"key\":\"x\","
                        "\"hits\":5,\"visits\":1}]}]}", "hits > visits"),
                       ("[]", "not an object")):
        st, j, _ = call("POST", "/import?mode=replace", body)
        T.eq(st, 400, what)
        T.check(j.get("error"), "no reason for %s: %s" % (what, j))
    st, after, _ = call("GET", "/export")
    T.eq(after, before, "map changed by malformed imports")


@T.case("oversized body: 413 (declared length over the cap, nothing read)")
def _():
    s = socket.create_connection(("127.0.0.1", h.admin_port), timeout=10)
    s.sendall(b"POST /import HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n{")
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    s.close()
    T.check(data.startswith(b"HTTP/1.1 413 "), "got %r" % data[:80])


@T.case("GET /stats: JSON with requests, origin, delivery, map, state sections")
def _():
    st, j, _ = call("GET", "/stats")
    T.eq(st, 200, "status")
    for k in ("requests", "requests_total", "origin", "delivery", "map", "active_connections"):
        T.check(k in j, "stats lacks %s" % k)
    T.check(j["requests"]["HTTP/2"]["2xx"] > 0, "no h2 2xx counted: %s" % j["requests"])
    T.check(j["delivery"]["promised"] > 0, "no pushes counted: %s" % j["delivery"])
    T.eq(j["map"]["pages"], 1, "pages")


@T.case("GET /metrics: Prometheus text, herald_ names, counters end in _total, HELP/TYPE")
def _():
    st, text, hd = call("GET", "/metrics")
    T.eq(st, 200, "status")
    T.check(hd["content-type"].startswith("text/plain; version=0.0.4"), hd["content-type"])
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
    T.eq(set(types), helps, "every metric has HELP and TYPE")
    for name, t in types.items():
        T.check(name.startswith("herald_"), "name %s" % name)
        T.check((t == "counter") == name.endswith("_total"), "%s is a %s" % (name, t))
    for need in ("herald_requests_total", "herald_origin_errors_total",
                 "herald_origin_timeouts_total", "herald_origin_connections_open",
                 "herald_origin_reuses_total", "herald_pushes_promised_total",
                 "herald_pushes_completed_total", "herald_pushes_cancelled_total",
                 "herald_pushed_bytes_total", "herald_hints_sent_total",
                 "herald_digest_hits_total", "herald_learned_pages", "herald_learned_edges",
                 "herald_active_connections", "herald_request_duration_seconds"):
        T.check(need in types, "missing %s" % need)
    m = re.search(r'^herald_requests_total\{protocol="HTTP/2",status="2xx"\} (\d+)$', text, re.M)
    T.check(m and int(m.group(1)) > 0, "h2 2xx count")
    T.check(re.search(r'^herald_request_duration_seconds_bucket\{le="\+Inf"\} \d+$', text, re.M),
            "histogram +Inf bucket")
    for line in text.splitlines():
        T.check(line.startswith("#") or re.match(r"^herald_\w+(\{[^}]*\})? [0-9.e+-]+$", line),
                "bad line %r" % line)


@T.case("GET /: the HTML page, no external assets; 404 and 405")
def _():
    st, text, hd = call("GET", "/")
    T.eq(st, 200, "status")
    T.check(hd["content-type"].startswith("text/html"), "type")
    T.check(not re.search(r"(src|href)\s*=\s*\"?(https?:)?//", text), "external asset in page")
    T.check("fetch(" in text and "<style>" in text, "inline script/style")
    st, j, _ = call("GET", "/nope")
    T.eq(st, 404, "unknown endpoint")
    st, j, _ = call("POST", "/stats")
    T.eq(st, 405, "wrong method")


@T.case("token: 401 without or with a wrong token, 200 with it; GET / needs none")
def _():
    t = A.herald(T, o, token="tok-123", name="herald-token")
    for hs, want in (({}, 401), ({"Authorization": "Bearer nope"}, 401),
                     ({"Authorization": "Basic dG9rLTEyMw=="}, 401),
                     ({"Authorization": "Bearer tok-123"}, 200)):
        for path in ("/maps", "/stats", "/metrics", "/export"):
            st, j, hd = A.call(t, "GET", path, headers=hs)
            T.eq(st, want, "%s with %s" % (path, hs))
    st, j, hd = A.call(t, "GET", "/maps")
    T.check("bearer" in hd.get("www-authenticate", "").lower(), "WWW-Authenticate")
    st, _, _ = A.call(t, "POST", "/maps/ban?page=a&asset=b")
    T.eq(st, 401, "ban without token")
    st, _, _ = A.call(t, "GET", "/")
    T.eq(st, 200, "page without token")
    t.stop()


@T.case("non-loopback --admin without a token: exit 2 with a clear message")
def _():
    r = T.run([harness.herald_bin(), "--origin=" + o.url, "--listen=127.0.0.1:%d" %
               harness.free_port(), "--admin=0.0.0.0:%d" % harness.free_port()], timeout=10)
    T.eq(r.returncode, 2, "exit code")
    T.check("loopback" in r.stderr and "--admin-token" in r.stderr, "message: %s" % r.stderr)


@T.case("GET /healthz: 503 once the origin is gone")
def _():
    o.stop()
    st, j, _ = call("GET", "/healthz")
    T.eq(st, 503, "status %s" % j)


T.finish()
