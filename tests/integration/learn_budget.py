#!/usr/bin/python3
"""Push byte budget: budget = min(think time x bandwidth estimate,
--push-budget) bounds the pushed DATA sent ahead of the page's HTML; the
rest of the plan is still promised and follows the HTML.  The origin thinks
600 ms over the page; three heralds differ only in --bandwidth-hint (100k vs
10g bits/s) or --push-budget (2k).  What counts is what the client saw: the
bytes of pushed DATA frames received before the page's response HEADERS."""

import hashlib

import learnlib as L

import harness

THINK = 600
T = harness.Tests("learn_budget", python_modules=["h2"])
site = L.make_site(T)
o = T.origin(site, ["--think", "/=%d" % THINK])
slow = T.herald(o, ["--bandwidth-hint=100k"], name="herald-100k")
fast = T.herald(o, ["--bandwidth-hint=10g"], name="herald-10g")
capped = T.herald(o, ["--bandwidth-hint=10g", "--push-budget=2k"], name="herald-cap2k")
res = {}
FRAME = 16384  # one DATA frame of slack over a budget


def measure(hh):
    for _ in range(2):  # learn the page and its think time
        c = L.Client(hh.port)
        try:
            L.browse(c, "/", L.demo_browse_list())
        finally:
            c.close()
    c = L.Client(hh.port)
    try:
        sid = c.get("/", [("accept", "text/html")], timeout=15)
        pushed = {s for s, _ in c.pushes(sid)}
        hi = c.index("headers", sid)
        T.check(hi is not None, "no page HEADERS")
        ahead = sum(e["len"] for e in c.events[:hi] if e["kind"] == "data" and e["sid"] in pushed)
        total = sum(len(c.streams[s]["body"]) for s in pushed)
        bad = []
        for s, p in c.pushes(sid):
            n, sha = L.file_sha(site, p)
            if hashlib.sha256(c.streams[s]["body"]).hexdigest() != sha:
                bad.append(p)
        print("# %s: %d of %d pushed bytes before the page's HEADERS" % (hh.name, ahead, total))
        return {"ahead": ahead, "total": total, "paths": c.push_paths(sid), "bad": bad}
    finally:
        c.close()


@T.case("bandwidth hint 10g: (nearly) the whole plan is sent ahead of the HTML")
def _():
    r = res["fast"] = measure(fast)
    T.check(set(L.DEMO_INDEX) <= set(r["paths"]), "pushed only %s" % r["paths"])
    T.check(not r["bad"], "wrong pushed bodies: %s" % r["bad"])
    T.check(r["ahead"] >= 40000, "only %d of %d pushed bytes ahead of the HTML" % (
        r["ahead"], r["total"]))


@T.case("bandwidth hint 100k (7.5 KB in 600 ms): fewer bytes ahead, the rest still pushed")
def _():
    r = res["slow"] = measure(slow)
    T.check(set(L.DEMO_INDEX) <= set(r["paths"]), "the rest of the plan was not promised: %s" %
            r["paths"])
    T.check(not r["bad"], "wrong pushed bodies: %s" % r["bad"])
    budget = 100000 / 8 * THINK / 1000.0
    T.check(r["ahead"] <= budget + FRAME, "%d bytes ahead of the HTML, budget %d" % (
        r["ahead"], budget))
    T.check("fast" in res and r["ahead"] < res["fast"]["ahead"],
            "changing the bandwidth did not change the bytes ahead: %d (100k) vs %s (10g)" % (
                r["ahead"], res.get("fast", {}).get("ahead")))


@T.case("--push-budget=2k caps the bytes ahead of the HTML")
def _():
    r = measure(capped)
    T.check(set(L.DEMO_INDEX) <= set(r["paths"]), "the rest of the plan was not promised: %s" %
            r["paths"])
    T.check(r["ahead"] <= 2048 + FRAME, "%d bytes ahead with --push-budget=2k" % r["ahead"])
    T.check("fast" in res and r["ahead"] < res["fast"]["ahead"],
            "the cap changed nothing: %d vs %s" % (r["ahead"], res.get("fast", {}).get("ahead")))


T.finish()
