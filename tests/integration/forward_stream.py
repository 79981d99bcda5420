#!/usr/bin/python3
"""Streaming: 100 MiB download and upload through herald with its
RSS growth bounded, SSE events arriving one by one, origin 103 forwarded to
h2 (non-final HEADERS) and h1 clients."""

import hashlib
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.parse

import harness
from harness import rss_kib

T = harness.Tests("forward_stream", need=["curl", "nghttp"])
MIB = 1 << 20
BIG = 100 * MIB
RSS_LIMIT_KIB = 16 * 1024
if harness.sanitized():
    print("# ASan build: RSS growth not checked")
    RSS_LIMIT_KIB = 1 << 40

o = T.origin()
h = T.herald(o)


class RssWatch:
    """Samples a PID's RSS every 20 ms in a thread; max_kib is the peak."""

    def __init__(self, pid):
        self.pid, self.max_kib, self.stop_ = pid, 0, False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop_:
            self.max_kib = max(self.max_kib, rss_kib(self.pid))
            time.sleep(0.02)

    def stop(self):
        self.stop_ = True
        self.t.join()
        return self.max_kib


def stream_to_hash(argv, timeout=60, feed=None):
    """Runs argv, hashing its stdout as it arrives (nothing kept in memory);
    feed(n) bytes of the origin pattern go to its stdin when given."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.PIPE if feed else subprocess.DEVNULL)
    if feed:
        def writer():
            import origin
            try:
                for b in origin.pattern(feed):
                    p.stdin.write(b)
                p.stdin.close()
            except OSError:
                pass
        threading.Thread(target=writer, daemon=True).start()
    killer = threading.Timer(timeout, p.kill)
    killer.start()
    hsh, n = hashlib.sha256(), 0
    while True:
        d = p.stdout.read(1 << 16)
        if not d:
            break
        n += len(d)
        hsh.update(d)
    rc = p.wait()
    killer.cancel()
    return rc, n, hsh.hexdigest(), p.stderr.read().decode("utf-8", "replace")


def warm_baseline():
    # A few small exchanges first so buffers and pools exist before measuring.
    for _ in range(3):
        T.curl(["--http2-prior-knowledge"], h.url + "/_bytes?n=300000")
    time.sleep(0.2)
    return rss_kib(h.pid)


def big(name, argv, feed=None, expect_sha=None, expect_len=BIG):
    base = warm_baseline()
    T.check(base > 0, "cannot read herald's RSS")
    w = RssWatch(h.pid)
    rc, n, sha, err = stream_to_hash(argv, feed=feed)
    peak = w.stop()
    return rc, n, sha, err, base, peak


BIG_SHA = harness.pattern_sha256(BIG)


@T.case("100 MiB download over h2c (Content-Length), RSS growth < 16 MiB")
def _():
    rc, n, sha, err, base, peak = big("dl", ["curl", "-sS", "--http2-prior-knowledge",
                                            h.url + "/_bytes?n=%d" % BIG])
    T.eq((rc, n), (0, BIG), "curl rc, bytes (%s)" % err.strip())
    T.eq(sha, BIG_SHA, "sha256")
    T.check(peak - base < RSS_LIMIT_KIB, "RSS grew %d KiB (from %d to %d)" % (
        peak - base, base, peak))


@T.case("100 MiB chunked download over HTTP/1.1, RSS growth < 16 MiB")
def _():
    rc, n, sha, err, base, peak = big("dl1", ["curl", "-sS", "--http1.1",
                                             h.url + "/_bytes?chunked=1&n=%d" % BIG])
    T.eq((rc, n), (0, BIG), "curl rc, bytes (%s)" % err.strip())
    T.eq(sha, BIG_SHA, "sha256")
    T.check(peak - base < RSS_LIMIT_KIB, "RSS grew %d KiB (from %d to %d)" % (
        peak - base, base, peak))


def upload(args):
    import json
    import origin
    base = warm_baseline()
    w = RssWatch(h.pid)
    p = subprocess.Popen(["curl", "-sS", "--max-time", "60"] + args + ["-T", "-",
                         h.url + "/_sink"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    killer = threading.Timer(70, p.kill)
    killer.start()
    try:
        for b in origin.pattern(BIG):
            p.stdin.write(b)
        p.stdin.close()
    except OSError:
        pass
    out = p.stdout.read()
    err = p.stderr.read()
    p.wait()
    killer.cancel()
    peak = w.stop()
    T.eq(p.returncode, 0, "curl rc (%s)" % err.decode().strip())
    js = json.loads(out)
    T.eq((js["len"], js["sha256"]), (BIG, BIG_SHA), "body at origin")
    T.check(peak - base < RSS_LIMIT_KIB, "RSS grew %d KiB (from %d to %d)" % (
        peak - base, base, peak))


@T.case("100 MiB upload over h2c, RSS growth < 16 MiB")
def _():
    upload(["--http2-prior-knowledge"])


@T.case("100 MiB upload over HTTP/1.1 (chunked), RSS growth < 16 MiB")
def _():
    upload(["--http1.1"])


def sse_lockstep(args, n=5):
    """Reads n SSE events through herald in lockstep with the origin: event
    i leaves the origin only after this client has received event i-1 (it
    then creates the gate file i). An event held back anywhere on the way
    stalls the exchange, which curl's time limit ends: fewer events."""
    gate = tempfile.mkdtemp(prefix="sse-gate-", dir=T.dir)
    p = subprocess.Popen(["curl", "-sSN", "--max-time", "20"] + args +
                         [h.url + "/_sse?n=%d&gate=%s" % (n, urllib.parse.quote(gate))],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = 0
    for line in p.stdout:
        if line.startswith(b"data: "):
            got += 1
            open(os.path.join(gate, str(got)), "w").close()
    p.wait()
    T.eq((p.returncode, got), (0, n), "curl rc, events received one by one")


@T.case("SSE events arrive one by one (h2c)")
def _():
    sse_lockstep(["--http2-prior-knowledge"])


@T.case("SSE events arrive one by one (HTTP/1.1)")
def _():
    sse_lockstep(["--http1.1"])


@T.case("origin 103 forwarded to h2 as non-final HEADERS (nghttp -v)")
def _():
    r = T.run(["nghttp", "-v", h.url + "/_think?ms=300&early_hints=1"], timeout=20)
    T.eq(r.returncode, 0, "nghttp rc")
    streams = {}
    for sid, st in re.findall(r"recv \(stream_id=(\d+)\) :status: (\d+)", r.stdout):
        streams.setdefault(sid, []).append(st)
    # The request's stream is the one ending in 200 (a proxy may also push).
    mine = [sid for sid, sts in streams.items() if sts[-1] == "200"]
    T.check(len(mine) == 1, "no single 200 stream: %r" % streams)
    T.eq(streams[mine[0]], ["103", "200"], "statuses on the request's stream")
    i103 = r.stdout.index("(stream_id=%s) :status: 103" % mine[0])
    i200 = r.stdout.index("(stream_id=%s) :status: 200" % mine[0])
    T.check("link: </_early.css>; rel=preload; as=style" in r.stdout[i103:i200].lower(),
            "103 lacks the origin's Link header")


@T.case("origin 103 forwarded to h1 client as-is (curl --http1.1 -v)")
def _():
    r = T.run(["curl", "-sv", "--http1.1", "-o", "/dev/null",
               h.url + "/_think?ms=300&early_hints=1"], timeout=20)
    T.eq(r.returncode, 0, "curl rc")
    T.check("< HTTP/1.1 103" in r.stderr, "no HTTP/1.1 103 seen:\n" + r.stderr[-800:])
    T.check(r.stderr.index("< HTTP/1.1 103") < r.stderr.index("< HTTP/1.1 200"), "103 after 200")
    T.check(re.search(r"< link: </_early.css>", r.stderr, re.I), "103 lacks Link")


@T.case("origin 103 forwarded to curl h2c")
def _():
    r = T.curl(["--http2-prior-knowledge"], h.url + "/_think?ms=200&early_hints=1")
    T.eq(r.status, 200, "status")
    T.eq([b["status"].split()[1] for b in r.blocks], ["103", "200"], "header blocks")


T.finish()
