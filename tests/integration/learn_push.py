#!/usr/bin/python3
"""Learning + delivery with nghttp: nghttp -nva against herald in front of
the demo site.  The first visit has no PUSH_PROMISE; the second (a new
connection) has them for what every browser fetches from the markup (CSS,
JS, images that are not srcset alternates) and the @imported stylesheet,
but not yet for what only CSS rules decide (the font, the background
image): nghttp reads HTML only, so it cannot confirm those, and herald
waits for a client that fetches what it renders.  After one browser-like
visit fetched them, the third visit has them all, each before the page's
response HEADERS, with correct bodies; with --no-push a visit gets one 103
carrying the Link lines instead.  The expected set is the hand-written
learnlib.DEMO_INDEX, checked against the demo's files."""

import learnlib as L

import harness

T = harness.Tests("learn_push", need=["nghttp"], python_modules=["h2"])
site = L.make_site(T)
o = T.origin(site)
h = T.herald(o, ["--x-herald-header=on"])
URL = h.url + "/"
REQ = set(L.DEMO_INDEX)
ALLOWED = REQ | L.DEMO_INDEX_OPTIONAL
state = {}


@T.case("expected asset set matches the demo's HTML and CSS files")
def _():
    L.check_demo_refs(T, site)


@T.case("first visit (nghttp -nva): page 200, no PUSH_PROMISE, no 103")
def _():
    ng = L.nghttp(T, URL, ["-a"])
    state["v1"] = ng
    T.eq(ng.status(ng.page_sid), "200", "page status")
    T.eq(ng.pushes(), {}, "pushes on the first visit")
    T.eq(ng.informational(ng.page_sid), [], "1xx on the first visit")
    got = {t for t, _ in L.origin_requests(o)}
    missing = set(L.DEMO_INDEX_HTML) - got
    T.check(not missing, "nghttp -a did not fetch %s" % sorted(missing))


@T.case("second visit (nghttp -nva): markup assets and the @import pushed, not CSS-only ones")
def _():
    ng = L.nghttp(T, URL, ["-a"])
    paths = set(ng.push_paths())
    strong = set(L.DEMO_INDEX_HTML) | {"/css/typography.css"}
    missing = strong - paths
    T.check(not missing, "not pushed: %s (pushed: %s)" % (sorted(missing), sorted(paths)))
    weak = {p for p, src in L.DEMO_INDEX.items() if p not in strong}
    early = paths & (weak | {"/img/hero-640.png"})
    T.check(not early, "pushed before any browser fetched them: %s" % sorted(early))


@T.case("a browser-like visit fetches what CSS names (font, background)")
def _():
    c = L.Client(h.port)
    try:
        L.browse(c, "/", L.demo_browse_list())
        got = {t for t, _ in L.origin_requests(o) if t in L.CSS_ONLY}
        T.check({"/fonts/open-sans-regular.woff2", "/img/bg.png"} <= got,
                "the browser-like visit did not fetch the CSS-only assets: %s" % sorted(got))
    finally:
        c.close()


@T.case("third visit (new connection): PUSH_PROMISE for CSS, JS, CSS-only font and images")
def _():
    ng = L.nghttp(T, URL, ["-a"])
    state["v2"] = ng
    paths = ng.push_paths()
    T.eq(ng.status(ng.page_sid), "200", "page status")
    missing = REQ - set(paths)
    T.check(not missing, "not pushed: %s (pushed: %s)" % (sorted(missing), paths))
    extra = set(paths) - ALLOWED
    T.check(not extra, "pushed what the page does not use: %s" % sorted(extra))
    T.eq(len(paths), len(set(paths)), "each asset promised once (%s)" % paths)


@T.case("third visit: every PUSH_PROMISE precedes the page's response HEADERS")
def _():
    ng = state.get("v2")
    T.check(ng and ng.pushes(), "no second visit with pushes")
    hi = ng.final_headers_index(ng.page_sid)
    T.check(hi is not None, "no page HEADERS")
    late = [dict(f["headers"]).get(":path") for f in ng.frames[hi:]
            if f["type"] == "PUSH_PROMISE" and f["sid"] == ng.page_sid]
    T.check(not late, "promised after the page's HEADERS: %s" % late)
    others = [f["sid"] for f in ng.frames if f["type"] == "PUSH_PROMISE" and
              f["sid"] != ng.page_sid]
    T.check(not others, "PUSH_PROMISE on other streams than the page's: %s" % others)


@T.case("third visit: pushed responses are 200 with the origin files' lengths")
def _():
    ng = state.get("v2")
    T.check(ng and ng.pushes(), "no second visit with pushes")
    bad = []
    for sid, path in ng.pushes().items():
        n, _ = L.file_sha(site, path)
        if ng.status(sid) != "200" or ng.body_len(sid) != n:
            bad.append("%s: status %s, %d bytes (file %d)" % (path, ng.status(sid),
                                                              ng.body_len(sid), n))
    T.check(not bad, "; ".join(bad))


@T.case("learned h2 visit: pushed bodies byte-identical (sha256); promises carry the parent's headers")
def _():
    c = L.Client(h.port)
    parent = [("accept", "text/html"), ("accept-encoding", "identity"),
              ("accept-language", "fr-CH"), ("user-agent", "learn-push/1"),
              ("cookie", "session=abc")]
    try:
        sid = c.get("/", parent)
        T.eq(c.streams[sid]["status"], 200, "page status")
        pushed = c.pushes(sid)
        T.check(set(p for _, p in pushed) >= REQ, "pushed only %s" % sorted(p for _, p in pushed))
        bad = []
        for psid, path in pushed:
            st = c.streams[psid]
            n, sha = L.file_sha(site, path)
            import hashlib
            if st["status"] != 200 or hashlib.sha256(st["body"]).hexdigest() != sha:
                bad.append("%s: status %s, %d bytes" % (path, st["status"], len(st["body"])))
            hs = dict(st.get("promise_headers", []))
            if hs.get(":method") != "GET" or hs.get(":authority") != c.authority:
                bad.append("%s: promise headers %s" % (path, hs))
            for k, v in parent[1:]:
                if hs.get(k) != v:
                    bad.append("%s: promise %s is %r, the page's %r" % (path, k, hs.get(k), v))
        T.check(not bad, "; ".join(bad))
    finally:
        c.close()


@T.case("client SETTINGS_MAX_CONCURRENT_STREAMS=2: at most 2 pushed streams open, all delivered")
def _():
    c = L.Client(h.port, max_streams=2)
    try:
        sid = c.get("/", timeout=15)
        T.eq(c.streams[sid]["status"], 200, "page status")
        got = c.push_paths(sid)
        T.check(REQ <= set(got), "pushed only %s" % got)
        most = c.max_active_pushes()
        T.check(most <= 2, "%d pushed streams open at once" % most)
        short = [p for s, p in c.pushes(sid) if not c.streams[s]["ended"] or
                 len(c.streams[s]["body"]) != L.file_sha(site, p)[0]]
        T.check(not short, "pushes not completed: %s" % short)
    finally:
        c.close()


@T.case("a learned visit with --no-push: one 103 with the Link preloads before the 200")
def _():
    ng = L.nghttp(T, URL, ["-a", "--no-push"])
    T.eq(ng.pushes(), {}, "pushes with push disabled")
    info = ng.informational(ng.page_sid)
    T.check(info, "no 1xx on the page stream")
    hi = ng.final_headers_index(ng.page_sid)
    T.check(all(i < hi for i, _ in info), "103 after the final HEADERS")
    T.eq([dict(hs).get(":status") for _, hs in info], ["103"], "1xx statuses")
    links = L.link_targets([v for k, v in info[0][1] if k == "link"])
    missing = REQ - set(links)
    T.check(not missing, "103 lacks %s (links: %s)" % (sorted(missing), links))
    extra = set(links) - ALLOWED
    T.check(not extra, "103 names what the page does not use: %s" % sorted(extra))
    T.eq(ng.status(ng.page_sid), "200", "page status")


T.finish()
