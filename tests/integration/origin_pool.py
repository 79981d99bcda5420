#!/usr/bin/python3
"""The origin pool in front of a legacy backend: origins that serve at most
N connections (tests/origin.py --max-conns N refuses and logs any more),
herald with --origin-max-connections=N and two workers sharing the budget.
Connections are counted at the origin (its log), never from herald's
counters; statuses come from h2load, curl and python3-h2."""

import hashlib
import json
import os

import harness
import poollib as P

T = harness.Tests("origin_pool", need=["h2load"], python_modules=["h2"])
N = 8


def stats(h):
    st, _, body = T.h1(h.admin_port, "GET", "/stats")
    T.eq(st, 200, "GET /stats")
    return json.loads(body)["origin"]


def quiet_fds(h, o):
    """herald's descriptors once its origin connections (counted at the
    origin) and client connections are gone: the baseline."""
    T.check(P.wait_for(lambda: P.origin_conns(o)["open"] == 0, 10), "origin connections stay")
    return P.fds(h.pid)


def herald(o, cap, queue, *args):
    aport = harness.free_port()
    h = T.herald(o, workers=2, args=["--origin-max-connections=%d" % cap,
                                     "--origin-queue=%d" % queue,
                                     "--admin=127.0.0.1:%d" % aport] + list(args))
    h.admin_port = aport
    return h


oa = T.origin(args=["--max-conns", str(N)])
ha = herald(oa, N, 500 - N, "--origin-idle-timeout=30")


@T.case("500 concurrent streams on 5 connections, origin serving at most %d: all 200, "
        "never more than %d origin connections, no 502" % (N, N))
def _():
    r = P.h2load(T, ha.url + "/_think?ms=20", 5, 100, n=500)
    T.eq((r.get("succeeded"), r.get("s2xx"), r.get("s5xx")), (500, 500, 0),
         "h2load succeeded, 2xx, 5xx (%s)" % r["raw"][-400:])
    c = P.origin_conns(oa)
    T.eq(c["refused"], 0, "connections the origin refused (over %d)" % N)
    T.check(c["peak"] <= N, "the origin saw %d connections at once" % c["peak"])
    # the identity check's request opened one; the load at most N - 1 more
    T.check(c["opened"] <= N, "the origin accepted %d connections" % c["opened"])
    with open(ha.access_log) as f:
        codes = [line.split('"')[2].split()[0] for line in f if "/_think" in line]
    T.eq(len(codes), 500, "access log lines")
    T.eq([x for x in codes if x != "200"], [], "non-200 statuses in the access log")
    s = stats(ha)
    T.eq((s["max"], s["queue_max"], s["queue_full"]), (N, 500 - N, 0), "/stats max, queue")
    T.check(s["waited"] > 0 and s["wait_s_total"] > 0, "/stats: nobody waited? %s" % s)


@T.case("the same load again: no new origin connection (idle ones are kept, none reopened)")
def _():
    before = P.origin_conns(oa)
    r = P.h2load(T, ha.url + "/_think?ms=20", 5, 100, n=500)
    T.eq((r.get("succeeded"), r.get("s2xx")), (500, 500), "h2load (%s)" % r["raw"][-300:])
    after = P.origin_conns(oa)
    T.eq(after["opened"], before["opened"], "connections the origin accepted")
    T.eq(after["refused"], 0, "connections refused")


@T.case("/metrics: the queue gauges and counters")
def _():
    st, _, body = T.h1(ha.admin_port, "GET", "/metrics")
    text = body.decode()
    for line in ("herald_origin_connections_max %d" % N, "herald_origin_queue_length 0",
                 "herald_origin_queue_max %d" % (500 - N), "herald_origin_queue_rejected_total 0",
                 "herald_origin_queue_timeouts_total 0"):
        T.check(line + "\n" in text, "no line %r in /metrics" % line)
    T.check("herald_origin_queue_wait_seconds_count " in text, "no queue wait summary")


ob = T.origin(args=["--max-conns", "1"])
hb = herald(ob, 1, 2, "--origin-timeout=3")


@T.case("queue full: 503 with Retry-After, the rest served in order")
def _():
    c = harness.H2(hb.port)
    sids = [c.send_request("GET", "/_think?ms=200&n=%d" % i) for i in range(5)]
    c.pump(20, lambda: all(c.done(s)() for s in sids))
    res = [c.result(s) for s in sids]
    c.close()
    T.eq([r["status"] for r in res], [200, 200, 200, 503, 503], "statuses")
    for r in res[3:]:
        T.eq(harness.header(r["headers"], "retry-after"), ["1"], "503's retry-after")
    T.eq(stats(hb)["queue_full"], 2, "/stats queue_full")
    T.eq(P.origin_conns(ob)["refused"], 0, "connections the origin refused")
    reqs = [e["target"] for e in ob.events("request") if "&n=" in e["target"]]
    T.eq(reqs, ["/_think?ms=200&n=%d" % i for i in range(3)], "origin's request order")


@T.case("origin-timeout counts from the enqueue: 504 for a request that waited")
def _():
    # each takes 1.8 s at the origin: the second has waited 1.8 s of its 3
    c = harness.H2(hb.port)
    sids = [c.send_request("GET", "/_think?ms=1800&k=%d" % i) for i in range(2)]
    c.pump(20, lambda: all(c.done(s)() for s in sids))
    T.eq([c.result(s)["status"] for s in sids], [200, 504], "statuses")
    c.close()


oc = T.origin(args=["--max-conns", "4", "--close-after", "3"])
hc = herald(oc, 4, 1000, "--origin-idle-timeout=1")
base_c = quiet_fds(hc, oc)


@T.case("a backend that closes keep-alive connections after 3 requests: all 200")
def _():
    r = P.h2load(T, hc.url + "/index.html", 4, 25, n=400)
    T.eq((r.get("succeeded"), r.get("s2xx")), (400, 400), "h2load (%s)" % r["raw"][-300:])
    c = P.origin_conns(oc)
    T.eq(c["refused"], 0, "connections refused")
    T.check(c["peak"] <= 4, "the origin saw %d at once" % c["peak"])
    T.check(c["opened"] >= 400 // 3, "origin closed after 3? only %d opened" % c["opened"])
    T.check(P.wait_for(lambda: P.fds(hc.pid) <= base_c, 10),
            "herald's descriptors: %d, %d at the start" % (P.fds(hc.pid), base_c))


od = T.origin(args=["--max-conns", "4", "--drop-after", "2"])
hd = herald(od, 4, 1000, "--origin-idle-timeout=1")
base_d = quiet_fds(hd, od)


@T.case("a backend that silently drops keep-alive connections after 2: retried, all 200")
def _():
    r = P.h2load(T, hd.url + "/index.html", 4, 25, n=400)
    T.eq((r.get("succeeded"), r.get("s2xx")), (400, 400), "h2load (%s)" % r["raw"][-300:])
    c = P.origin_conns(od)
    T.eq(c["refused"], 0, "connections refused")
    T.check(c["peak"] <= 4, "the origin saw %d at once" % c["peak"])
    T.check(len(od.events("drop")) >= 400 // 2 - 4, "origin dropped only %d" %
            len(od.events("drop")))
    T.check(P.wait_for(lambda: P.fds(hd.pid) <= base_d, 10),
            "herald's descriptors: %d, %d at the start" % (P.fds(hd.pid), base_d))


oe = T.origin(args=["--max-conns", "4"])
he = herald(oe, 4, 1000, "--origin-idle-timeout=1")
base_e = quiet_fds(he, oe)


@T.case("a slow-reading origin: 24 uploads of 256 KiB through 4 connections, all intact")
def _():
    body = os.urandom(256 << 10)
    path = os.path.join(T.dir, "upload.bin")
    with open(path, "wb") as f:
        f.write(body)
    r = P.h2load(T, he.url + "/_sink?delay_ms=2", 4, 6, n=24, extra=["-d", path], timeout=90)
    T.eq((r.get("succeeded"), r.get("s2xx")), (24, 24), "h2load (%s)" % r["raw"][-300:])
    want = (len(body), hashlib.sha256(body).hexdigest())
    got = [(e["len"], e["sha256"]) for e in oe.events("sink")]
    T.eq(got, [want] * 24, "bodies as the origin read them")
    c = P.origin_conns(oe)
    T.eq(c["refused"], 0, "connections refused")
    T.check(c["peak"] <= 4, "the origin saw %d at once" % c["peak"])
    T.check(P.wait_for(lambda: P.fds(he.pid) <= base_e, 10),
            "herald's descriptors: %d, %d at the start" % (P.fds(he.pid), base_e))


T.finish()
