#!/usr/bin/python3
"""Poisoning and volatile URLs.

"1,000 requests with a forged Referer from one client move a page's plan by
at most one visit's weight", made precise: two herald instances learn the
demo index from the same five clean browser-like visits; then one client
visits the page once and, on that connection, requests a junk URL (a real,
cacheable 200 the page never uses) with Referer: the page -- once on
herald A, 1,000 times on herald B.  A fresh client's next visit must get the
same plan (the same pushes) from A and B, and B must not push the junk URL.

A page whose HTML names a URL with a per-visit timestamp
(/_tspage: /js/config.js?ts=<ns>) never has that URL pushed across five
browser-like visits, while its stable stylesheet is (the page is planned)."""

import re

import learnlib as L

import harness

T = harness.Tests("learn_poison", python_modules=["h2"])
site = L.make_site(T)
o = T.origin(site)
hA = T.herald(o, name="herald-A")
hB = T.herald(o, name="herald-B")
hC = T.herald(o, name="herald-C")
JUNK = "/fonts/OPEN-SANS-LICENSE.txt"
state = {}


def clean_visits(hh, n=5, extra=()):
    for _ in range(n):
        c = L.Client(hh.port)
        try:
            L.browse(c, "/", L.demo_browse_list() + list(extra))
        finally:
            c.close()


def attack(hh, n):
    c = L.Client(hh.port)
    try:
        L.browse(c, "/", L.demo_browse_list())
        ref = [("referer", c.url("/")), ("sec-fetch-mode", "no-cors")]
        left = n
        while left:
            k = min(left, 50)
            sids = [c.send(JUNK, ref) for _ in range(k)]
            c.pump(lambda: all(c.done(s) for s in sids), 20)
            T.check(all(c.done(s) for s in sids), "junk requests did not complete")
            bad = [c.streams[s]["status"] for s in sids if c.streams[s]["status"] != 200]
            T.check(not bad, "junk answered %s" % bad[:3])
            left -= k
    finally:
        c.close()


@T.case("junk URL is a real cacheable 200 the demo page does not name")
def _():
    st, hs, _ = T.h1(o.port, "GET", JUNK)
    T.eq(st, 200, "junk status")
    T.check(JUNK.rsplit("/", 1)[1] not in open(site + "/index.html").read(), "page names junk")


@T.case("five clean visits, then one junk request (A) vs 1,000 (B) with a forged Referer")
def _():
    clean_visits(hA)
    clean_visits(hB)
    attack(hA, 1)
    attack(hB, 1000)
    n = len([1 for t, _ in L.origin_requests(o) if t == JUNK])
    T.check(n >= 1001, "origin served the junk URL only %d times" % n)
    state["done"] = True


@T.case("the 1,000 requests weigh no more than one: the next plans of A and B are equal")
def _():
    T.check(state.get("done"), "attack did not run")
    a, b = L.page_pushes(T, hA), L.page_pushes(T, hB)
    print("# plan A (1 forged request): %s\n# plan B (1,000): %s" % (a, b))
    state["b"] = b
    T.check(set(L.DEMO_INDEX) <= set(a), "A's plan lacks %s" % sorted(set(L.DEMO_INDEX) - set(a)))
    T.eq(b, a, "plan after 1,000 forged requests vs after one")


@T.case("the junk URL is not pushed after 1,000 forged requests")
def _():
    T.check("b" in state, "no plan from B")
    T.check(set(L.DEMO_INDEX) <= set(state["b"]), "B's plan lacks the page's assets: %s" %
            state["b"])
    T.check(JUNK not in state["b"], "pushed %s" % JUNK)


@T.case("control: the same URL requested once per visit by six visits is pushed")
def _():
    clean_visits(hC, 6, [JUNK])
    c = L.page_pushes(T, hC)
    T.check(JUNK in c, "real per-visit evidence did not plan %s: the poisoning check "
            "above proves nothing (plan %s)" % (JUNK, c))


@T.case("a per-visit timestamped URL is never pushed across five visits; the page is planned")
def _():
    css_pushed = 0
    for i in range(5):
        c = L.Client(hA.port)
        try:
            sid = c.get("/_tspage", [("accept", "text/html")])
            html = c.streams[sid]["body"].decode()
            m = re.search(r'src="([^"]+\?ts=\d+)"', html)
            T.check(m, "no timestamped script in /_tspage")
            pushed = c.push_paths(sid)
            ts = [p for p in pushed if "ts=" in p]
            T.check(not ts, "visit %d pushed timestamped URLs %s" % (i + 1, ts))
            css_pushed += "/css/site.css" in pushed
            for p in [m.group(1), "/css/site.css"]:
                if p not in pushed:
                    c.get(p, [("referer", c.url("/_tspage"))], wait_pushes=False)
        finally:
            c.close()
    T.check(css_pushed >= 4, "the page's stylesheet was pushed on only %d of visits 2-5" %
            css_pushed)


T.finish()
