#!/usr/bin/python3
"""Pacing pushes to a path herald cannot see from its socket: a relay of our
own (slowpath.py) sits between the client and herald, reads herald's socket
at loopback speed and hands the bytes on to the client at RATE bytes/s.
herald runs without --bandwidth-hint: it must measure the path (PINGs behind
its data) and remember it per client network.

The page's origin thinks THINK ms; its plan (ten 24 KB images) is far more
than either path carries in that time. On a learned visit the pushed DATA the
client receives before the page's HEADERS - herald's bytes ahead of the HTML -
should be what the path carries while the origin thinks, RATE x THINK, within
a factor of 1.5, for a slow and a fast path (4x apart). Each path reaches
herald from a client network of its own (the relay binds to 127.0.1.1 and
127.0.2.1), so one herald keeps both estimates apart; /stats shows them.
A second herald with --trust-forwarded=on keys its memory by the client
address in X-Forwarded-For; the first (off) ignores that header."""

import os
import re
import time

import adminlib as A
import harness
import learnlib as L

THINK = 400  # ms
SLOW, FAST = 64000, 256000  # bytes/s
IMAGES, IMAGE_SIZE = 10, 24000
T = harness.Tests("learn_pace", python_modules=["h2"])


def make_site():
    root = os.path.join(T.dir, "site")
    os.makedirs(os.path.join(root, "img"))
    body = "".join('<img src="/img/%d.png" alt="">\n' % i for i in range(IMAGES))
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<!doctype html><html><head><title>pace</title></head><body>\n%s"
                "<!-- %s -->\n</body></html>\n" % (body, "x" * 8000))
    for i in range(IMAGES):
        with open(os.path.join(root, "img", "%d.png" % i), "wb") as f:
            f.write(bytes((i * 31 + k) % 251 for k in range(IMAGE_SIZE)))
    return root


site = make_site()
o = T.origin(site, ["--think", "/=%d" % THINK])
h = A.herald(T, o, name="herald")
hx = A.herald(T, o, ["--trust-forwarded=on"], name="herald-xff")
ASSETS = ["/img/%d.png" % i for i in range(IMAGES)]


def relay(hh, rate, bind):
    p = T.spawn("slowpath-%s" % bind, [harness.PY, os.path.join(harness.HERE, "slowpath.py"),
                                       "--to", "127.0.0.1:%d" % hh.port, "--rate", str(rate),
                                       "--delay-ms", "10", "--bind", bind])
    end = time.monotonic() + 10
    while time.monotonic() < end:
        with open(p.out_path) as f:
            m = re.match(r"PORT (\d+)", f.readline())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    raise harness.Failure("slowpath did not start: " + p.stderr_tail())


def visit(port, headers=()):
    """A browser-like visit (page, then the images it did not get pushed)."""
    c = L.Client(port, timeout=30)
    try:
        L.browse(c, "/", ASSETS, extra_headers=headers, timeout=30)
    finally:
        c.close()


def ahead(port, headers=()):
    """Pushed DATA bytes received before the page's HEADERS on a fresh connection."""
    c = L.Client(port, timeout=30)
    try:
        sid = c.send("/", [("accept", "text/html"), ("sec-fetch-mode", "navigate")] + list(headers))
        T.check(c.pump(lambda: c.streams[sid]["status"] is not None, 30), "no page HEADERS")
        pushed = {s for s, _ in c.pushes(sid)}
        hi = c.index("headers", sid)
        n = sum(e["len"] for e in c.events[:hi] if e["kind"] == "data" and e["sid"] in pushed)
        return n, len(pushed)
    finally:
        c.close()


def known(hh):
    st, j, _ = A.call(hh, "GET", "/stats")
    T.eq(st, 200, "GET /stats")
    return {k["network"]: k for k in j["pace"]["known"]}, j["pace"]


res = {}


def measure(rate, bind):
    port = relay(h, rate, bind)
    # The second visit already pushes; both teach herald the page and the path.
    # X-Forwarded-For is not trusted on this herald: it must change nothing.
    xff = [("x-forwarded-for", "203.0.113.5")]
    for _ in range(2):
        visit(port, xff)
    n, npushed = ahead(port, xff)
    want = rate * THINK / 1000.0
    print("# %d B/s from %s: %d pushed bytes ahead of the HTML (rate x think = %d), %d pushes"
          % (rate, bind, n, want, npushed))
    T.check(npushed >= IMAGES, "only %d of %d images were pushed" % (npushed, IMAGES))
    T.check(want / 1.5 <= n <= want * 1.5,
            "%d bytes ahead of the HTML on a %d B/s path with %d ms think time: want %d "
            "within a factor of 1.5" % (n, rate, THINK, want))
    res[rate] = n


@T.case("slow path (%d B/s): the bytes ahead of the HTML are what it carries in the think time"
        % SLOW)
def _():
    measure(SLOW, "127.0.1.1")


@T.case("fast path (%d B/s), another client network: the bytes ahead follow the rate" % FAST)
def _():
    measure(FAST, "127.0.2.1")
    T.check(SLOW in res and res[FAST] > 2 * res[SLOW],
            "4x the rate, but %s vs %s bytes ahead" % (res.get(FAST), res.get(SLOW)))


@T.case("/stats: each client network's estimate is its path's rate; X-Forwarded-For untrusted")
def _():
    nets, pace = known(h)
    for net, rate in (("127.0.1.0/24", SLOW), ("127.0.2.0/24", FAST)):
        T.check(net in nets, "/stats does not know %s: %s" % (net, sorted(nets)))
        if net in nets:
            got = nets[net]["rate_bits_s"] / 8
            T.check(rate / 1.5 <= got <= rate * 1.5,
                    "%s: %.0f B/s estimated, the path runs at %d" % (net, got, rate))
            T.check(nets[net]["rtt_ms"] >= 20, "%s: RTT %.1f ms, the path has 20" % (
                net, nets[net]["rtt_ms"]))
    T.check("203.0.113.0/24" not in nets, "an untrusted X-Forwarded-For keyed the memory")
    T.check(pace["networks"] >= 2 and pace["pings"] > 0 and pace["samples"] > 0,
            "/stats pace counters: %s" % {k: v for k, v in pace.items() if k != "known"})
    st, text, _ = A.call(h, "GET", "/metrics")
    m = re.search(r"^herald_pace_networks (\d+)$", text, re.M)
    T.check(m is not None and int(m.group(1)) >= 2, "herald_pace_networks in /metrics")


@T.case("--trust-forwarded=on: the client network is the one X-Forwarded-For names")
def _():
    port = relay(hx, FAST, "127.0.3.1")
    for _ in range(2):  # the second visit's pushes make a burst the PINGs can time
        visit(port, [("x-forwarded-for", "203.0.113.5, 198.51.100.7")])
    nets, _ = known(hx)
    T.check("198.51.100.0/24" in nets, "not keyed by the rightmost X-Forwarded-For address: %s"
            % sorted(nets))
    T.check("127.0.3.0/24" not in nets and "203.0.113.0/24" not in nets,
            "keyed by the wrong address: %s" % sorted(nets))


T.finish()
