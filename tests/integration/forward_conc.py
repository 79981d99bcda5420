#!/usr/bin/python3
"""Concurrency: stalled or slow clients and a stalled origin
request never delay another client, nor another stream of the same h2
connection; SIGTERM drains in-flight requests, sends GOAWAY, refuses new
connections and exits 0.  The bounds are generous: they catch hangs, they
are not timing tests."""

import socket
import subprocess
import time

import harness

T = harness.Tests("forward_conc", need=["curl"], python_modules=["h2"])
BOUND = 2.0

o = T.origin()
h = T.herald(o)


def wait_origin(prefix, n=1, timeout=10):
    """Waits until the origin has received n requests whose target starts
    with prefix (its log is written when a request arrives)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len([e for e in o.events("request") if e["target"].startswith(prefix)]) >= n:
            return
        time.sleep(0.01)
    raise harness.Failure("the origin never saw %d request(s) for %s" % (n, prefix))


def wait_connections(hh, n, timeout=10):
    """Waits until herald counts at least n open client connections."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if hh.stats()["active_connections"] >= n:
            return
        time.sleep(0.01)
    raise harness.Failure("herald never had %d client connections" % n)


def prompt(what):
    """A fresh client's request is served within BOUND seconds."""
    for args in (["--http2-prior-knowledge"], ["--http1.1"]):
        r = T.curl(args + ["--max-time", "10"], h.url + "/index.html")
        T.eq((r.returncode, r.status), (0, 200), "%s %s: rc, status" % (what, args[0]))
        T.check(r.elapsed < BOUND, "%s %s: took %.2f s" % (what, args[0], r.elapsed))


@T.case("h2 client that stops reading a big response: others served promptly")
def _():
    c = harness.H2(h.port)
    sid = c.send_request("GET", "/_bytes?n=%d" % (200 << 20))
    c.pump(3, lambda: c.streams[sid]["body_len"] > 0, consume=False)
    T.check(c.streams[sid]["body_len"] > 0, "stalled client got no data at all")
    # From here on the client never reads its socket again.
    prompt("while an h2 client is stalled")
    c.close()


@T.case("h1 client that stops reading a big response: others served promptly")
def _():
    s = socket.create_connection(("127.0.0.1", h.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /_bytes?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (200 << 20))
    s.settimeout(10)
    T.check(s.recv(1), "no response bytes")  # the response flows; never read again
    prompt("while an h1 client is stalled")
    s.close()


@T.case("slowloris (half a request header) and an idle connection: others served")
def _():
    socks = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", h.port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(s)
    socks.append(socket.create_connection(("127.0.0.1", h.port)))  # sends nothing
    s = socket.create_connection(("127.0.0.1", h.port))
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # preface, then silence
    socks.append(s)
    wait_connections(h, len(socks))
    prompt("with slow clients connected")
    for s in socks:
        s.close()


@T.case("request to a stalled origin path: others served promptly")
def _():
    c = harness.H2(h.port)
    c.send_request("GET", "/_stall")
    wait_origin("/_stall")
    prompt("while /_stall is pending")
    c.close()


@T.case("same h2 connection: a stream with a full window does not block another")
def _():
    c = harness.H2(h.port)
    # Open the connection window wide; the stream windows stay at 64 KiB and
    # the big stream's data is never acknowledged.
    c.conn.increment_flow_control_window(1 << 30)
    c.flush()
    big = c.send_request("GET", "/_bytes?n=%d" % (50 << 20))
    c.pump(3, lambda: c.streams[big]["body_len"] >= 65535, consume=False)
    T.check(c.streams[big]["body_len"] > 0, "no data on the big stream")
    t0 = time.monotonic()
    small = c.send_request("GET", "/index.html")
    c.pump(10, c.done(small), consume=False)
    took = time.monotonic() - t0
    r = c.result(small)
    c.close()
    T.eq((r["status"], r["ended"]), (200, True), "small stream status, ended")
    T.check(took < BOUND, "small stream took %.2f s" % took)
    T.check(c.streams[big]["body_len"] <= 65535 + 16384,
            "big stream got %d bytes past its window" % c.streams[big]["body_len"])


@T.case("SIGTERM drains in-flight requests, GOAWAY, refuses new, exits 0")
def _():
    hd = T.herald(o, name="herald-drain")
    idle = harness.H2(hd.port)
    idle.request("GET", "/_status?code=204")
    inflight = []
    for args in (["--http2-prior-knowledge"], ["--http1.1"]):
        p = subprocess.Popen(["curl", "-sSN", "--max-time", "20"] + args +
                             [hd.url + "/_sse?n=6&interval_ms=400"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        inflight.append(p)
    big = subprocess.Popen(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                            "%{size_download}", hd.url + "/_bytes?think_ms=1000&n=1000000"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_origin("/_sse?n=6", 2)
    wait_origin("/_bytes?think_ms=1000")
    hd.p.send_signal(hd.drain_signal)
    t0 = time.monotonic()
    # every worker has closed its listeners once it logs that it drains
    end = time.monotonic() + 10
    draining = lambda: open(hd.err_path).read().count("draining") >= hd.workers + 1
    while not draining() and time.monotonic() < end:
        time.sleep(0.01)
    T.check(draining(), "herald's workers never logged that they drain")
    # New connections are refused (or closed unanswered) once draining.
    r = T.curl(["--http1.1", "--max-time", "3"], hd.url + "/index.html")
    T.check(r.returncode != 0 and r.status != 200, "new request served during drain: %d" % (
        r.status))
    idle.pump(3, lambda: idle.goaway is not None or idle.eof)
    T.check(idle.goaway == 0 or idle.eof, "idle h2 connection got no GOAWAY (goaway=%r)" % (
        idle.goaway))
    idle.close()
    for p, name in zip(inflight, ("h2", "h1")):
        out, err = p.communicate(timeout=20)
        events = out.count(b"data: ")
        T.eq((p.returncode, events), (0, 6), "%s SSE during drain: rc, events (%s)" % (
            name, err.decode().strip()))
    out, err = big.communicate(timeout=20)
    T.eq((big.returncode, out), (0, b"1000000"), "1 MB download during drain")
    try:
        rc = hd.p.wait(15)
    except subprocess.TimeoutExpired:
        rc = "still running after 15 s"
    hd.exit_code = rc
    T.eq(rc, 0, "herald exit code after SIGTERM")
    T.check(time.monotonic() - t0 < 15, "drain took too long")


T.finish()
