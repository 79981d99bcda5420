#!/usr/bin/python3
"""The seed's extras, each behind a switch:

- Redirect push: /redir/ (tests/integration/fixtures/learn) names
  /img/moved.png, which the origin answers with a cacheable 301 to
  /img/item-2.png.  Once learned, a visit gets the redirect pushed together
  with its target; with --push-redirects=off the redirect is not pushed.
- SSE push: an origin event stream carrying the comment line
  ": herald-push /css/item.css" before its second event makes herald push
  that resource on the same connection before it forwards that event, and
  the comment line never reaches the client; with --sse-push=off no push.
- Origin Link: rel=preload on the final response is pushed for what the
  plan does not cover; a link marked nopush never is."""

import hashlib

import learnlib as L

import harness

T = harness.Tests("learn_extras", python_modules=["h2"])
site = L.make_site(T)
MOVED, TARGET = "/img/moved.png", "/img/item-2.png"
o = T.origin(site, ["--redirect", "%s=%s" % (MOVED, TARGET)])
h = T.herald(o)
h_off = T.herald(o, ["--push-redirects=off", "--sse-push=off"], name="herald-off")
REDIR = ["/css/item.css", MOVED, TARGET]


def visit(hh, page, assets, push=True):
    c = L.Client(hh.port, push=push)
    try:
        return c, L.browse(c, page, assets)
    finally:
        c.close()


@T.case("origin fixture: /img/moved.png is a cacheable 301 to /img/item-2.png")
def _():
    st, hs, _ = T.h1(o.port, "GET", MOVED)
    T.eq(st, 301, "status")
    T.eq(harness.header(hs, "location"), [TARGET], "Location")


@T.case("redirect push: the learned visit pushes the 301 together with its target")
def _():
    visit(h, "/redir/", REDIR)
    c, sid = visit(h, "/redir/", REDIR)
    pushed = dict((p, s) for s, p in c.pushes(sid))
    T.check(MOVED in pushed, "redirect not pushed (pushed %s)" % sorted(pushed))
    T.check(TARGET in pushed, "redirect target not pushed (pushed %s)" % sorted(pushed))
    st = c.streams[pushed[MOVED]]
    T.eq(st["status"], 301, "pushed redirect status")
    T.eq([v for k, v in st["headers"] if k == "location"], [TARGET], "pushed Location")
    n, sha = L.file_sha(site, TARGET)
    tgt = c.streams[pushed[TARGET]]
    T.eq((tgt["status"], hashlib.sha256(tgt["body"]).hexdigest()), (200, sha), "target body")


@T.case("--push-redirects=off: the redirect is not pushed")
def _():
    visit(h_off, "/redir/", REDIR)
    c, sid = visit(h_off, "/redir/", REDIR)
    T.check(c.push_paths(sid), "nothing pushed at all on the learned visit (item.css expected)")
    T.check(MOVED not in c.push_paths(sid), "pushed %s" % c.push_paths(sid))


SSE = "/_sse?n=3&interval_ms=300&push=/css/item.css&push_at=1"


@T.case("SSE push: the comment line makes herald push before the next event, unforwarded")
def _():
    c = L.Client(h.port)
    try:
        sid = c.get(SSE, [("accept", "text/event-stream")], timeout=10)
        st = c.streams[sid]
        T.eq(st["status"], 200, "SSE status")
        T.check(st["ended"], "SSE stream did not end")
        body = st["body"].decode("utf-8", "replace")
        T.check("herald-push" not in body, "the comment line reached the client: %r" % body)
        T.eq(body.count("event: tick"), 3, "events received (%r)" % body)
        pushed = c.pushes(sid)
        T.eq([p for _, p in pushed], ["/css/item.css"], "pushes on the SSE stream")
        pi = c.index("push", pushed[0][0])
        ev1 = next(i for i, e in enumerate(c.events) if e["kind"] == "data" and
                   e["sid"] == sid and b"id: 1\n" in e["data"])
        T.check(pi < ev1, "PUSH_PROMISE came after event 1 was forwarded")
        ev0 = next(i for i, e in enumerate(c.events) if e["kind"] == "data" and
                   e["sid"] == sid and b"id: 0\n" in e["data"])
        T.check(ev0 < pi, "PUSH_PROMISE came before event 0 (before the comment line existed)")
        n, sha = L.file_sha(site, "/css/item.css")
        ps = c.streams[pushed[0][0]]
        T.eq((ps["status"], hashlib.sha256(ps["body"]).hexdigest()), (200, sha), "pushed body")
    finally:
        c.close()


@T.case("--sse-push=off: no push from the comment line")
def _():
    c = L.Client(h_off.port)
    try:
        sid = c.get(SSE, [("accept", "text/event-stream")], timeout=10)
        T.eq(c.streams[sid]["status"], 200, "SSE status")
        T.eq(c.pushes(sid), [], "pushes with --sse-push=off")
        T.eq(c.streams[sid]["body"].decode().count("event: tick"), 3, "events received")
    finally:
        c.close()


# Origin Link: rel=preload on the final response: honoured
# the same way for what the plan did not cover, nopush respected.
oL = T.origin(site, ["--link", "/=</jsapp/late.js>; rel=preload; as=script",
                     "--link", "/=</jsapp/data.json>; rel=preload; as=fetch; nopush"], oid="origin-link")
hL = T.herald(oL, name="herald-link")


@T.case("origin Link: rel=preload on a first visit's response is pushed (not the nopush one)")
def _():
    got = L.page_pushes(T, hL)
    T.check("/jsapp/late.js" in got, "not pushed (pushed %s)" % got)
    T.check("/jsapp/data.json" not in got, "pushed a nopush link")


@T.case("a Link marked nopush is never pushed on later visits either")
def _():
    for _ in range(2):
        got = L.page_pushes(T, hL)
        T.check(got, "nothing pushed on a learned visit")
        T.check("/jsapp/data.json" not in got, "pushed the nopush link: %s" % got)


T.finish()
