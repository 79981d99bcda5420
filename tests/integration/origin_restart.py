#!/usr/bin/python3
"""The origin dies under load (kill -9) and comes back on the same port:
while it is down clients get 502 or 503 at once (not after origin-timeout),
service returns as soon as it listens again, and afterwards herald's
descriptors and memory are back where they started. The time bounds are
coarse: they catch a hang or a back-off, they are not timing tests."""

import json
import signal
import time

import harness
import poollib as P

T = harness.Tests("origin_restart", need=["h2load"])
PORT = harness.free_port()
ARGS = ["--listen", "127.0.0.1:%d" % PORT, "--max-conns", "8"]
S = {"origin": T.origin(args=ARGS)}
aport = harness.free_port()
h = T.herald(S["origin"], workers=2, args=["--origin-max-connections=8", "--origin-queue=1000",
                                           "--origin-idle-timeout=1",
                                           "--admin=127.0.0.1:%d" % aport])


def probe():
    """(status, seconds) of one fresh HTTP/1.1 request through herald."""
    t0 = time.monotonic()
    try:
        st, _, _ = T.h1(h.port, "GET", "/index.html", timeout=30)
    except Exception:
        st = 0
    return st, time.monotonic() - t0


T.check(P.wait_for(lambda: P.origin_conns(S["origin"])["open"] == 0, 10), "origin connections")
base_fds = P.fds(h.pid)
base_rss = harness.rss_kib(h.pid)


@T.case("kill -9 of the origin under load: 502/503 at once while it is down")
def _():
    o = S["origin"]
    S["load"] = T.spawn("h2load", ["h2load", "-c", "4", "-m", "10", "-D", "6",
                                   h.url + "/_think?ms=5"])
    T.check(P.wait_for(lambda: len(o.events("response")) >= 200, 20),
            "the load never reached the origin")
    o.p.send_signal(signal.SIGKILL)
    o.p.wait(5)
    S["killed"] = time.monotonic()
    for _ in range(5):
        st, took = probe()
        T.check(st in (502, 503), "status %d while the origin is down" % st)
        T.check(took < 2.0, "took %.2f s to answer while the origin is down" % took)


@T.case("the origin restarts on the same port: served again at once")
def _():
    S["origin"] = o = T.origin(args=ARGS)  # listening once it printed its port
    back = time.monotonic()
    while True:
        st, _ = probe()
        if st == 200 or time.monotonic() - back > 10:
            break
    took = time.monotonic() - back
    print("# first 200 %.3f s after the origin listened again" % took)
    T.eq(st, 200, "status after the restart")
    T.check(took < 3.0, "service came back %.2f s after the origin" % took)
    T.check(S["load"].p.wait(30) is not None, "h2load did not end")
    c = P.origin_conns(o)
    T.eq(c["refused"], 0, "connections the restarted origin refused")
    T.check(c["peak"] <= 8, "the restarted origin saw %d at once" % c["peak"])
    st, _, body = T.h1(aport, "GET", "/stats")
    s = json.loads(body)["origin"]
    T.eq(s["queued"], 0, "/stats origin.queued after the load")


@T.case("afterwards: descriptors and memory back to where they started")
def _():
    T.check(P.wait_for(lambda: P.fds(h.pid) <= base_fds, 15),
            "herald's descriptors: %d, %d at the start" % (P.fds(h.pid), base_fds))
    if not harness.sanitized():
        rss = harness.rss_kib(h.pid)
        T.check(rss < base_rss + 48 * 1024, "RSS %d KiB, %d KiB at the start" % (rss, base_rss))


T.finish()
