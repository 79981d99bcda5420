#!/usr/bin/python3
"""Cache-digest cookie: a learned visit sets herald_cd on the page
response; a later visit carrying that cookie gets no pushes for unchanged
assets; once one asset's ETag changes at the origin (and herald has seen the
new one), the same old cookie gets just that asset pushed again."""

import urllib.request

import learnlib as L

import harness

T = harness.Tests("learn_digest", python_modules=["h2"])
site = L.make_site(T)
o = T.origin(site)
h = T.herald(o)
CHANGED = "/css/item.css"
state = {}


def cookie_of(c, sid):
    for v in c.header(sid, "set-cookie"):
        if v.strip().lower().startswith("herald_cd="):
            return v
    return None


def visit(cookie=None):
    c = L.Client(h.port)
    try:
        hs = [("cookie", cookie)] if cookie else []
        sid = L.browse(c, "/", L.demo_browse_list(), hs)
        return c, sid
    finally:
        c.close()


@T.case("learning visit, then a learned visit sets the herald_cd cookie after pushes")
def _():
    visit()
    c, sid = visit()
    T.check(set(c.push_paths(sid)) >= set(L.DEMO_INDEX), "learned visit pushed only %s" %
            c.push_paths(sid))
    sc = cookie_of(c, sid)
    T.check(sc, "no Set-Cookie herald_cd on the page response: %s" % c.header(sid, "set-cookie"))
    attrs = [a.strip().lower() for a in sc.split(";")[1:]]
    T.check("httponly" in attrs, "herald_cd lacks HttpOnly: %s" % sc)
    T.check("samesite=lax" in attrs, "herald_cd lacks SameSite=Lax: %s" % sc)
    T.check("secure" not in attrs, "herald_cd is Secure on cleartext h2c: %s" % sc)
    state["cookie"] = sc.split(";")[0].strip()


@T.case("a visit carrying the cookie gets no pushes for unchanged assets")
def _():
    T.check("cookie" in state, "no cookie from the previous visit")
    c, sid = visit(state["cookie"])
    T.eq(c.streams[sid]["status"], 200, "page status")
    T.eq(c.push_paths(sid), [], "pushes despite the digest cookie")


@T.case("a changed ETag at the origin makes just that asset pushed again")
def _():
    T.check("cookie" in state, "no cookie from the previous visit")
    r = urllib.request.urlopen(o.url + "/_set_etag?path=%s&etag=v2-changed" % CHANGED, timeout=5)
    T.eq(r.status, 200, "origin /_set_etag")
    # another client loads the page: herald sees the new ETag pass through
    c, sid = visit()
    et = [c.header(s, "etag") for s, p in c.pushes(sid) if p == CHANGED]
    T.check(et == [['"v2-changed"']] or not et, "pushed %s with ETag %s" % (CHANGED, et))
    # the holder of the old cookie now gets exactly the changed asset
    c, sid = visit(state["cookie"])
    T.eq(c.push_paths(sid), [CHANGED], "pushes to the old cookie's holder")
    new = cookie_of(c, sid)
    T.check(new, "no updated herald_cd after the push")
    state["cookie2"] = new.split(";")[0].strip()


@T.case("the updated cookie covers the changed asset again: no pushes")
def _():
    T.check("cookie2" in state, "no updated cookie")
    c, sid = visit(state["cookie2"])
    T.eq(c.push_paths(sid), [], "pushes with the updated cookie")


@T.case("over TLS the herald_cd cookie is also Secure")
def _():
    ht = T.herald(o, tls=True, name="herald-tls")
    sc = None
    for _ in range(2):
        c = L.Client(ht.tls_port, tls=True)
        try:
            sid = L.browse(c, "/", L.demo_browse_list())
            sc = cookie_of(c, sid)
        finally:
            c.close()
    T.check(sc, "no herald_cd on the learned TLS visit")
    attrs = [a.strip().lower() for a in sc.split(";")[1:]]
    T.check("secure" in attrs and "httponly" in attrs, "attributes: %s" % sc)


T.finish()
