#!/usr/bin/python3
"""Learning from follow-up requests, and templates.

- /jsapp/ (tests/integration/fixtures/learn) names only a stylesheet and a
  deferred script in its HTML; the stylesheet @imports another that names a
  font and a background, and the script loads /jsapp/data.json with fetch()
  and inserts /jsapp/late.js.  A browser-like client (page, then each asset on
  the same connection with Referer: the page, or the stylesheet that names
  it) teaches herald all of them; the next visit from a new client gets them
  pushed (or, with push disabled, named in the 103).
- Template: learned on /item/1/ and /item/2/, the first visit ever to
  /item/3/ gets the item pages' plan pushed.
- An XHTML page (application/xhtml+xml, as gitweb sends it to browsers)
  is learned like an HTML one."""

import learnlib as L

import harness

T = harness.Tests("learn_followup", python_modules=["h2"])
site = L.make_site(T)
o = T.origin(site)
h = T.herald(o, ["--x-herald-header=on"])

CSS_ONLY = [("/css/typography.css", "/css/site.css"), ("/img/bg.png", "/css/site.css"),
            ("/fonts/open-sans-regular.woff2", "/css/typography.css")]
JSAPP = ["/css/site.css", "/jsapp/app.js"] + CSS_ONLY + [
    ("/jsapp/data.json", "/jsapp/app.js"), ("/jsapp/late.js", "/jsapp/app.js")]
state = {}


def fresh_visit(page, assets, push=True):
    c = L.Client(h.port, push=push)
    try:
        sid = L.browse(c, page, assets)
        return c, sid
    finally:
        c.close()


@T.case("fixture: /jsapp/ HTML names neither the CSS-only nor the JS-only assets")
def _():
    html = open(site + "/jsapp/index.html").read()
    for p in ["typography.css", "bg.png", "woff2", "data.json", "late.js"]:
        T.check(p not in html, "%s is named in jsapp/index.html" % p)
    js = open(site + "/jsapp/app.js").read()
    T.check("/jsapp/data.json" in js and "/jsapp/late.js" in js, "app.js lost its loads")


@T.case("first visit of /jsapp/: nothing pushed; every follow-up served 200")
def _():
    c, sid = fresh_visit("/jsapp/", JSAPP)
    T.eq(c.push_paths(), [], "pushes on the first visit")
    bad = [(st["path"], st["status"]) for st in c.streams.values() if st["status"] != 200]
    T.check(not bad, "not 200: %s" % bad)
    state["learned"] = True


@T.case("next visit: assets reachable only through CSS (@import, font, background) pushed")
def _():
    c, sid = fresh_visit("/jsapp/", JSAPP)
    state["v2"] = c.push_paths(sid)
    missing = {p for p, _ in CSS_ONLY} - set(state["v2"])
    T.check(not missing, "not pushed: %s (pushed %s; x-herald %s)" % (
        sorted(missing), state["v2"], c.header(sid, "x-herald")))


@T.case("next visit: the script inserted by JS (/jsapp/late.js) pushed")
def _():
    T.check("v2" in state, "no second visit")
    T.check("/jsapp/late.js" in state["v2"], "not pushed (pushed %s)" % state["v2"])


@T.case("next visit: the fetch()ed /jsapp/data.json pushed")
def _():
    T.check("v2" in state, "no second visit")
    T.check("/jsapp/data.json" in state["v2"], "not pushed (pushed %s)" % state["v2"])


@T.case("next visit without push: the 103 names the CSS-only and JS-only assets")
def _():
    c, sid = fresh_visit("/jsapp/", JSAPP, push=False)
    T.eq(c.push_paths(), [], "pushes to a client with push disabled")
    info = c.streams[sid]["info"]
    T.eq([dict(i).get(":status") for i in info], ["103"], "1xx on the page")
    links = L.link_targets([v for k, v in info[0] if k == "link"])
    want = {"/css/typography.css", "/fonts/open-sans-regular.woff2", "/jsapp/late.js"}
    T.check(want <= set(links), "103 lacks %s (links %s)" % (sorted(want - set(links)), links))


def fresh_visit_on(hh, page):
    c = L.Client(hh.port)
    try:
        return c, c.get(page, [("accept", "text/html")])
    finally:
        c.close()


@T.case("ten visits that fetch nothing else (HTTP/1.1, page only) do not dilute follow-ups")
def _():
    for _ in range(10):
        st, _, _ = T.h1(h.port, "GET", "/jsapp/")
        T.eq(st, 200, "page-only visit")
    c, sid = fresh_visit("/jsapp/", JSAPP)
    got = c.push_paths(sid)
    want = {"/jsapp/late.js", "/jsapp/data.json", "/css/typography.css", "/img/bg.png",
            "/fonts/open-sans-regular.woff2"}
    T.check(want <= set(got), "no longer pushed: %s (pushed %s)" % (sorted(want - set(got)), got))


@T.case("a visit whose requests carry Authorization teaches nothing")
def _():
    ha = T.herald(o, name="herald-auth")
    auth = [("authorization", "Basic dXNlcjpwYXNz")]
    c = L.Client(ha.port)
    try:
        L.browse(c, "/jsapp/", JSAPP, auth)
    finally:
        c.close()
    c, sid = fresh_visit_on(ha, "/jsapp/")
    T.eq(c.push_paths(sid), [], "pushes learned from an Authorization visit")


def item_assets(n):
    return ["/css/site.css", "/css/item.css", "/js/config.js", "/js/app.js", "/img/logo.svg",
            "/img/icon.svg", "/img/item-%d.png" % n] + CSS_ONLY


@T.case("template: learned on /item/1/ and /item/2/, first visit to /item/3/ gets the plan")
def _():
    for n in (1, 2):
        fresh_visit("/item/%d/" % n, item_assets(n))
    seen = [t for t, _ in L.origin_requests(o)]
    T.check("/item/3/" not in seen, "/item/3/ was requested before")
    c = L.Client(h.port)
    try:
        sid = c.get("/item/3/", [("accept", "text/html")])
        T.eq(c.streams[sid]["status"], 200, "/item/3/ status")
        got = c.push_paths(sid)
        missing = set(L.DEMO_ITEM_COMMON) - set(got)
        T.check(not missing, "not pushed: %s (pushed %s; x-herald %s)" % (
            sorted(missing), got, c.header(sid, "x-herald")))
        hi = c.index("headers", sid)
        late = [e["path"] for e in c.events[hi:] if e["kind"] == "push"]
        T.check(not late, "promised after the page's HEADERS: %s" % late)
    finally:
        c.close()


@T.case("an XHTML page (application/xhtml+xml) is learned and its stylesheet pushed")
def _():
    import os
    import shutil
    shutil.copy(os.path.join(site, "index.html"), os.path.join(site, "page.xhtml"))
    fresh_visit("/page.xhtml", ["/css/site.css"])
    resp = [e for e in o.events("response") if e["target"] == "/page.xhtml"]
    T.check(resp, "the origin never served the XHTML page")
    c = L.Client(h.port)
    try:
        sid = c.get("/page.xhtml", [("accept", "application/xhtml+xml,text/html")])
        T.eq(dict(c.streams[sid]["headers"]).get("content-type"), "application/xhtml+xml",
             "the page's type")
        got = c.push_paths(sid)
        T.check("/css/site.css" in got, "not pushed: /css/site.css (pushed %s)" % got)
    finally:
        c.close()


T.finish()
