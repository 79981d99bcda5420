#!/usr/bin/python3
"""Output path: the bodies of concurrent h2 streams on one connection arrive
byte-exact, over h2c and TLS, while the client reads slower than herald
writes (writes that end inside a body slice, a write in flight while more
output queues behind it), and across TLS record sizing's switch from
one-packet records to full ones after the first MiB. Sizes straddle the
16 KiB blocks body bytes are queued in (16375 bytes and a frame header fill
one)."""

import time

import harness

T = harness.Tests("forward_output", python_modules=["h2"])
SIZES = [3 << 20, (1 << 20) + 12345, 777777, 16375, 16376, 5]

o = T.origin()
h = T.herald(o, tls=True)


def fetch_all(port, tls):
    import h2.settings
    c = harness.H2(port, tls=tls, timeout=30,
                   settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 8 << 20})
    # Wide windows: herald's output is bounded by the socket, not by us.
    c.conn.increment_flow_control_window(1 << 30)
    c.flush()
    sids = [c.send_request("GET", "/_bytes?n=%d" % n) for n in SIZES]
    time.sleep(0.5)  # not reading: herald's socket fills, its writes go partial
    c.pump(60, lambda: all(c.done(s)() for s in sids))
    res = [c.result(s) for s in sids]
    c.close()
    return res


def check(res, what):
    for n, r in zip(SIZES, res):
        T.eq((r["status"], r["ended"], r["reset"]), (200, True, None),
             "%s %d bytes: status, ended, reset" % (what, n))
        T.eq((r["body_len"], r["body_sha256"]), (n, harness.pattern_sha256(n)),
             "%s %d bytes: length, sha256" % (what, n))


@T.case("h2c: concurrent big bodies, slow reader, all byte-exact")
def _():
    check(fetch_all(h.port, False), "h2c")


@T.case("TLS: concurrent big bodies, slow reader, all byte-exact")
def _():
    check(fetch_all(h.tls_port, True), "TLS")


T.finish()
