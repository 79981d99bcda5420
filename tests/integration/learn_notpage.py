#!/usr/bin/python3
"""Requests that do not say what they want (no Sec-Fetch-*, Accept absent:
curl, API clients, load generators) and carry no Referer are taken for page
requests and open a visit.  A URL that answered one of them with a 2xx that
is not HTML is remembered: the next such request for it opens no visit.  A
browser's navigation (Sec-Fetch-*) is never judged by that memory, an error
is not remembered, and a URL that answers with HTML again is forgotten.

What the origin serves (its Content-Type) is set by the test through the
origin itself; herald's counters (visits_opened_total,
requests_not_page_total in /metrics) show whether a visit was opened."""

import http.client

import learnlib as L

import harness

T = harness.Tests("learn_notpage")
site = L.make_site(T)
o = T.origin(site)
h = T.herald(o)

NAV = {"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate", "Accept": "text/html"}


def metrics():
    c = http.client.HTTPConnection("127.0.0.1", h.admin_port, timeout=10)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()
    out = {}
    for line in text.splitlines():
        if line.startswith("herald_visits_opened_total ") or \
                line.startswith("herald_requests_not_page_total "):
            name, value = line.split()
            out[name[len("herald_"):]] = int(float(value))
    T.check(len(out) == 2, "counters missing from /metrics: %s" % out)
    return out


def get(path, headers=None, status=200):
    """One request on a new connection; returns (visits opened, requests not page) it caused."""
    before = metrics()
    st, hs, _ = T.h1(h.port, "GET", path, headers=headers)
    T.eq(st, status, "status of %s" % path)
    after = metrics()
    return (after["visits_opened_total"] - before["visits_opened_total"],
            after["requests_not_page_total"] - before["requests_not_page_total"])


def origin_ctype(path):
    st, hs, _ = T.h1(o.port, "GET", path)
    T.eq(st, 200, "origin status of %s" % path)
    return harness.header(hs, "content-type")[0]


@T.case("an image answered once: the next request for it opens no visit")
def _():
    T.check(origin_ctype("/img/item-1.png").startswith("image/png"), "fixture is a PNG")
    T.eq(get("/img/item-1.png"), (1, 0), "first request (unknown URL)")
    T.eq(get("/img/item-1.png"), (0, 1), "second request")
    T.eq(get("/img/item-1.png"), (0, 1), "third request")
    T.eq(get("/img/item-1.png?v=2"), (1, 0), "another query is another URL")


@T.case("a page opens a visit every time")
def _():
    T.check(origin_ctype("/").startswith("text/html"), "fixture is HTML")
    for i in range(3):
        T.eq(get("/"), (1, 0), "request %d of /" % (i + 1))


@T.case("a browser's navigation to a remembered URL opens a visit")
def _():
    get("/img/item-3.png")
    T.eq(get("/img/item-3.png"), (0, 1), "remembered")
    T.eq(get("/img/item-3.png", NAV), (1, 0), "with Sec-Fetch-Dest: document")


@T.case("an error is not remembered")
def _():
    for i in range(2):
        T.eq(get("/no-such-file.png", status=404), (1, 0), "404, request %d" % (i + 1))


@T.case("a URL that answers with HTML again is forgotten")
def _():
    path = "/img/item-2.png"
    get(path)
    T.eq(get(path), (0, 1), "remembered")
    st, _, _ = T.h1(o.port, "GET", "/_set_type?path=%s&type=text/html" % path)
    T.eq(st, 200, "origin switch")
    T.eq(origin_ctype(path), "text/html", "origin now serves HTML")
    T.eq(get(path), (0, 1), "still remembered until it answers")
    T.eq(get(path), (1, 0), "after an HTML answer")
    T.eq(get(path), (1, 0), "and again")


T.finish()
