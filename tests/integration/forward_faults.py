#!/usr/bin/python3
"""Origin faults: origin down → 502, stalled → 504, cut or killed
mid-body → h2 RST_STREAM(INTERNAL_ERROR) / h1 connection closed (never a
clean short response), malformed status line → 502, huge headers → 502, bad
chunking → reset, stale pooled connections retried without 502s."""

import os
import time

import harness

T = harness.Tests("forward_faults", need=["curl"], python_modules=["h2"])
INTERNAL_ERROR = 2
CURL_H2_STREAM = 92   # curl: HTTP/2 stream not closed cleanly
CURL_PARTIAL = 18     # curl: transfer closed with outstanding data
CURL_RECV = 56        # curl: failure receiving network data

o = T.origin()
h = T.herald(o, args=["--origin-timeout=1"])


def h2c(*a):
    return T.curl(["--http2-prior-knowledge"] + list(a[:-1]), a[-1], timeout=10)


def h1(*a):
    return T.curl(["--http1.1"] + list(a[:-1]), a[-1], timeout=10)


@T.case("origin down (connection refused) → 502, h2 and h1")
def _():
    dead = harness.free_port()
    hd = T.herald(origin_url="http://127.0.0.1:%d" % dead, name="herald-dead", check=False)
    for f in (h2c, h1):
        r = f(hd.url + "/index.html")
        T.eq((r.returncode, r.status), (0, 502), "rc, status")
    T.check(hd.alive(), "herald exited")
    hd.stop()


@T.case("origin stalled → 504 after --origin-timeout (1 s)")
def _():
    for f in (h2c, h1):
        t0 = time.monotonic()
        r = f(h.url + "/_stall")
        took = time.monotonic() - t0
        T.eq((r.returncode, r.status), (0, 504), "rc, status")
        T.check(0.8 < took < 8, "504 after %.2f s (origin timeout is 1 s)" % took)


@T.case("origin closes mid-body → h2 RST_STREAM(INTERNAL_ERROR)")
def _():
    c = harness.H2(h.port)
    r = c.request("GET", "/_cut?n=200000", timeout=10)
    c.close()
    T.eq(r["status"], 200, "status")
    T.check(not r["ended"], "stream ended cleanly after %d of 200000 bytes" % r["body_len"])
    T.check(r["reset"] == INTERNAL_ERROR or r["goaway"] is not None,
            "expected RST_STREAM INTERNAL_ERROR, got reset=%r goaway=%r eof=%r" % (
                r["reset"], r["goaway"], r["eof"]))
    T.check(r["body_len"] < 200000, "full body received")


@T.case("origin closes mid-body → curl h2 exit 92, h1 exit 18")
def _():
    r = h2c(h.url + "/_cut?n=200000")
    T.check(r.returncode == CURL_H2_STREAM, "h2: curl exit %r (want 92), status %d" % (
        r.returncode, r.status))
    r = h1(h.url + "/_cut?n=200000")
    T.check(r.returncode in (CURL_PARTIAL, CURL_RECV),
            "h1: curl exit %r (want 18), status %d, %d bytes" % (r.returncode, r.status,
                                                                 len(r.body)))


@T.case("origin killed mid-body → h2 stream reset, herald survives")
def _():
    ok = T.origin(oid="victim-%d" % os.getpid())
    hk = T.herald(ok, name="herald-kill")
    c = harness.H2(hk.port)
    sid = c.send_request("GET", "/_bytes?n=%d" % (500 << 20))
    c.pump(10, lambda: c.streams[sid]["body_len"] > (1 << 20))
    T.check(c.streams[sid]["body_len"] > 0, "no body before the kill")
    ok.kill()
    c.pump(15, c.done(sid))
    r = c.result(sid)
    c.close()
    T.check(not r["ended"], "stream ended cleanly after %d bytes" % r["body_len"])
    T.check(r["reset"] == INTERNAL_ERROR or r["goaway"] is not None,
            "expected RST_STREAM INTERNAL_ERROR, got reset=%r goaway=%r eof=%r" % (
                r["reset"], r["goaway"], r["eof"]))
    T.check(hk.alive(), "herald died")
    r = T.curl(["--http2-prior-knowledge"], hk.url + "/")
    T.eq(r.status, 502, "status after the origin died")
    hk.stop()


@T.case("malformed origin status line → 502, h2 and h1")
def _():
    for f in (h2c, h1):
        r = f(h.url + "/_malformed")
        T.eq((r.returncode, r.status), (0, 502), "rc, status")


@T.case("huge origin response headers (100 KiB) → 502")
def _():
    for f in (h2c, h1):
        r = f(h.url + "/_hugeheaders?kb=100")
        T.eq((r.returncode, r.status), (0, 502), "rc, status")


@T.case("bad chunking from origin → h2 reset / h1 close, never a clean 200")
def _():
    c = harness.H2(h.port)
    r = c.request("GET", "/_badchunk", timeout=10)
    c.close()
    if r["status"] != 502:
        T.eq(r["status"], 200, "status")
        T.check(not r["ended"], "stream ended cleanly with %r" % r["body"])
        T.check(r["reset"] == INTERNAL_ERROR or r["goaway"] is not None,
                "no reset: reset=%r goaway=%r eof=%r" % (r["reset"], r["goaway"], r["eof"]))
    r = h1(h.url + "/_badchunk")
    T.check(r.status == 502 or r.returncode in (CURL_PARTIAL, CURL_RECV),
            "h1: curl exit %r, status %d, body %r" % (r.returncode, r.status, r.body[:40]))


@T.case("herald still serves after the faults")
def _():
    T.check(h.alive(), "herald exited")
    r = h2c(h.url + "/index.html")
    T.eq((r.returncode, r.status), (0, 200), "rc, status")


@T.case("stale pooled connection (origin keep-alive 0.2 s) retried: no 502")
def _():
    os_ = T.origin(args=["--keepalive-timeout", "0.2"], oid="stale-%d" % os.getpid())
    hs = T.herald(os_, name="herald-stale", args=["--origin-idle-timeout=30"])
    bad = []
    # Requests spaced around the origin's keep-alive timeout so that some land
    # on a pooled connection the origin is closing or has just closed.
    for i, gap in enumerate([0.05, 0.19, 0.2, 0.21, 0.25, 0.3, 0.2, 0.22, 0.18, 0.35] * 2):
        r = T.curl(["--http2-prior-knowledge"] if i % 2 else ["--http1.1"],
                   hs.url + "/css/site.css")
        if r.status != 200:
            bad.append((i, gap, r.status, r.returncode))
        time.sleep(gap)
    T.check(not bad, "failed requests (i, gap, status, rc): %r" % bad)
    closes = len(set(e["conn"] for e in os_.events("request")))
    T.check(closes > 1, "origin saw one connection only: the race was never provoked")
    hs.stop()
    retries = open(hs.err_path, errors="replace").read().count("retrying")
    print("# stale pool: %d origin connections, %d retries logged by herald" % (closes, retries))


@T.case("origin closes after each response (/_closeafter): next request not 502")
def _():
    bad = []
    c = harness.H2(h.port)
    for i in range(20):
        for path in ("/_closeafter", "/css/item.css"):
            r = c.request("GET", path, timeout=10)
            if r["status"] != 200 or not r["ended"]:
                bad.append((i, path, r["status"], r["reset"]))
        if c.goaway is not None or c.eof:
            break
    c.close()
    T.check(not bad, "failed (round, path, status, reset): %r" % bad[:5])
    retries = open(h.err_path, errors="replace").read().count("retrying")
    print("# /_closeafter: %d retries logged by herald so far" % retries)


@T.case("request on a pooled connection the origin then drops (/_dropnext): retried, 200")
def _():
    before = len(o.events("dropped"))
    bad = []
    for i in range(10):
        args = ["--http2-prior-knowledge"] if i % 2 else ["--http1.1"]
        r = T.curl(args, h.url + "/_dropnext")
        T.eq(r.status, 200, "/_dropnext status")
        r = T.curl(args, h.url + "/css/site.css?i=%d" % i)
        if r.status != 200:
            bad.append((i, r.status, r.returncode))
    dropped = len(o.events("dropped")) - before
    T.check(dropped > 0, "the origin never dropped a request: the pool was not reused")
    T.check(not bad, "GET after a dropped pooled connection failed (i, status, rc): %r (%d drops)"
            % (bad, dropped))
    print("# /_dropnext: %d requests dropped by the origin, all retried" % dropped)


T.finish()
