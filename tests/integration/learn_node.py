#!/usr/bin/python3
"""Node's http2 client and herald's pushes: on a learned visit Node
receives the pushed streams and uses them (bodies equal the origin's files;
it does not request them again), and cancelling one pushed stream
(RST_STREAM CANCEL in session.on('stream')) makes the test origin see that
pushed request aborted (its log's "abort" entry), long before the asset's
think time would have ended."""

import json
import os
import time

import learnlib as L

import harness

FONT = "/fonts/open-sans-regular.woff2"
THINK = 3000  # ms the origin spends before answering the font

T = harness.Tests("learn_node", need=["node"], python_modules=["h2"])
NODE = os.path.join(harness.HERE, "learn_node.js")
site = L.make_site(T)
o = T.origin(site, ["--think", "%s=%d" % (FONT, THINK)])
# A bandwidth hint this high puts the whole plan in the push budget, so every
# pushed fetch starts at once (a push still waiting for the page to end when
# the client resets it never reaches the origin: nothing to abort there).
h = T.herald(o, ["--bandwidth-hint=10g"])
URL = h.url + "/"


def node(*args):
    r = T.run(["node", NODE, URL] + list(args), timeout=30)
    h.settle()  # the visit is committed once its connection is gone
    T.check(r.stdout.strip(), "node printed nothing: %r" % r)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    T.check(r.returncode == 0 and "error" not in out, "node: %s" % out.get("error", r))
    return out


gets = []
for p in L.DEMO_INDEX:
    gets += ["--get", p]


@T.case("first visit: node fetches the page and its assets, nothing pushed")
def _():
    out = node(*gets)
    T.eq(out["status"], 200, "page status")
    T.eq(out["pushes"], [], "pushes on the first visit")
    T.check(all(g["status"] == 200 for g in out["gets"]), "asset fetches: %s" % out["gets"])


@T.case("learned visit: node receives pushed streams with the files' bytes and uses them")
def _():
    t0 = time.time()
    out = node(*gets)
    T.eq(out["status"], 200, "page status")
    paths = {p["path"] for p in out["pushes"]}
    missing = set(L.DEMO_INDEX) - paths
    T.check(not missing, "not pushed: %s (pushed %s)" % (sorted(missing), sorted(paths)))
    bad = []
    for p in out["pushes"]:
        n, sha = L.file_sha(site, p["path"])
        if p["status"] != 200 or not p["ended"] or p.get("sha256") != sha:
            bad.append("%s: status %s len %d ended %s" % (p["path"], p["status"], p["len"],
                                                          p["ended"]))
    T.check(not bad, "; ".join(bad))
    asked = [g["path"] for g in out["gets"]]
    T.check(not (set(asked) & paths), "node requested pushed assets: %s" % (set(asked) & paths))
    # each pushed asset reached the origin once (herald's push fetch), not twice
    seen = [t for t, ts in L.origin_requests(o, t0)]
    dup = sorted(p for p in paths if seen.count(p) > 1)
    T.check(not dup, "origin saw these pushed assets more than once: %s" % dup)


@T.case("cancelling a pushed stream aborts its origin request at once")
def _():
    t0 = time.time()
    # cancel 500 ms after the promise: herald's fetch has reached the origin,
    # which is still in its think time
    out = node("--cancel", FONT, "--cancel-after", "500")
    T.eq(out["status"], 200, "page status")
    T.check(any(p["path"] == FONT and p["cancelled"] for p in out["pushes"]),
            "the font was not pushed, nothing to cancel (pushed %s)" %
            [p["path"] for p in out["pushes"]])
    end = time.monotonic() + THINK / 1000.0 + 2
    ab = []
    while time.monotonic() < end:
        ab = [e for e in o.events("abort") if e["target"] == FONT and e["t"] >= t0]
        if ab:
            break
        time.sleep(0.05)
    reqs = [e for e in o.events("request") if e["target"] == FONT and e["t"] >= t0]
    T.check(reqs, "herald never asked the origin for the pushed font")
    resp = [e for e in o.events("response") if e["target"] == FONT and e["t"] >= t0]
    T.check(ab, "origin saw no abort for %s (responses: %s)" % (FONT, resp))
    dt = ab[0]["t"] - reqs[0]["t"]
    T.check(dt < THINK / 1000.0 - 0.5, "abort came %.2fs after the request (think %d ms)" % (
        dt, THINK))
    tc = [p.get("t_cancel") for p in out["pushes"] if p["path"] == FONT][0]
    T.check(tc, "node did not record its cancel")
    T.check(ab[0]["t"] - tc / 1000.0 < 1.0, "abort came %.2fs after the RST_STREAM" % (
        ab[0]["t"] - tc / 1000.0))


T.finish()
