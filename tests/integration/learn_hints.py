#!/usr/bin/python3
"""Early Hints policy and the delivery switches, on a learned demo
index:
- h2 without push: one 103 for navigations only (Sec-Fetch-Mode: navigate or
  none), not for a cors fetch of the same page;
- HTTP/1.1: no 103 by default; with --hints-h1=on a 103 carrying the Link
  preloads; never to HTTP/1.0;
- --push=off --hints=off: nghttp -nva (push-capable) and a no-push client
  get neither PUSH_PROMISE nor 103;
- --push=off alone: a push-capable client gets the 103 instead of pushes."""

import socket
import time

import learnlib as L

import harness

T = harness.Tests("learn_hints", need=["nghttp"], python_modules=["h2"])
site = L.make_site(T)
o = T.origin(site)
h = T.herald(o, name="herald-default")
h1on = T.herald(o, ["--hints-h1=on"], name="herald-hints-h1")
off = T.herald(o, ["--push=off", "--hints=off"], name="herald-off")
nopush = T.herald(o, ["--push=off"], name="herald-nopush")
REQ = set(L.DEMO_INDEX)


def learn(hh):
    c = L.Client(hh.port)
    try:
        L.browse(c, "/", L.demo_browse_list())
    finally:
        c.close()


def h2_page(hh, push, headers):
    c = L.Client(hh.port, push=push)
    try:
        sid = c.get("/", headers)
        st = c.streams[sid]
        return st["status"], [dict(i).get(":status") for i in st["info"]], st["info"], \
            c.push_paths(sid)
    finally:
        c.close()


def raw_h1(port, version, timeout=10):
    """GET / over HTTP/1.x with Connection: close; returns the status lines
    of every header block and the raw text."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(("GET / %s\r\nHost: 127.0.0.1:%d\r\nAccept: text/html\r\n"
                   "Connection: close\r\n\r\n" % (version, port)).encode())
        data = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            d = s.recv(65536)
            if not d:
                break
            data += d
    finally:
        s.close()
    text = data.decode("latin-1")
    statuses, rest = [], text
    while rest.startswith("HTTP/"):
        head, _, rest = rest.partition("\r\n\r\n")
        statuses.append(head.split("\r\n")[0])
        if not head.split(" ")[1].startswith("1"):
            break
    return statuses, text


@T.case("learning visit on each herald (browser-like h2 client)")
def _():
    for hh in (h, h1on, off, nopush):
        learn(hh)


@T.case("h2 without push, navigation: one 103 naming the learned assets")
def _():
    st, info, blocks, pushes = h2_page(h, False, [("sec-fetch-mode", "navigate")])
    T.eq((st, info, pushes), (200, ["103"], []), "status, 1xx, pushes")
    links = L.link_targets([v for k, v in blocks[0] if k == "link"])
    T.check(REQ <= set(links), "103 lacks %s" % sorted(REQ - set(links)))


@T.case("h2 without push, no Sec-Fetch-Mode: 103 too")
def _():
    st, info, _, _ = h2_page(h, False, [])
    T.eq((st, info), (200, ["103"]), "status, 1xx")


@T.case("h2 without push, Sec-Fetch-Mode: cors (not a navigation): no 103")
def _():
    st, info, _, _ = h2_page(h, False, [("sec-fetch-mode", "cors")])
    T.eq((st, info), (200, []), "status, 1xx")


@T.case("HTTP/1.1 client, default --hints-h1=off: no 103")
def _():
    statuses, text = raw_h1(h.port, "HTTP/1.1")
    T.eq(statuses, ["HTTP/1.1 200 OK"], "status lines")


@T.case("HTTP/1.1 client, --hints-h1=on: a 103 with the Link preloads, then the 200")
def _():
    statuses, text = raw_h1(h1on.port, "HTTP/1.1")
    T.check(len(statuses) == 2 and statuses[0].startswith("HTTP/1.1 103") and
            statuses[1].startswith("HTTP/1.1 200"), "status lines %s" % statuses)
    head = text.split("\r\n\r\n", 1)[0]
    links = L.link_targets([ln.split(":", 1)[1] for ln in head.split("\r\n")[1:]
                            if ln.lower().startswith("link:")])
    T.check(REQ <= set(links), "103 lacks %s" % sorted(REQ - set(links)))


@T.case("HTTP/1.0 client, --hints-h1=on: never a 103")
def _():
    statuses, text = raw_h1(h1on.port, "HTTP/1.0")
    T.eq(len(statuses), 1, "header blocks (%s)" % statuses)
    T.check(" 200" in statuses[0], "status line %s" % statuses)


@T.case("--push=off --hints=off: nghttp -nva gets no PUSH_PROMISE and no 103")
def _():
    ng = L.nghttp(T, off.url + "/", ["-a"])
    T.eq(ng.status(ng.page_sid), "200", "page status")
    T.eq(ng.pushes(), {}, "pushes")
    T.eq(ng.informational(ng.page_sid), [], "1xx")


@T.case("--push=off --hints=off: a no-push h2 navigation gets no 103")
def _():
    st, info, _, pushes = h2_page(off, False, [("sec-fetch-mode", "navigate")])
    T.eq((st, info, pushes), (200, [], []), "status, 1xx, pushes")


@T.case("--push=off: a push-capable client gets the 103 instead of pushes")
def _():
    st, info, blocks, pushes = h2_page(nopush, True, [("sec-fetch-mode", "navigate")])
    T.eq((st, info, pushes), (200, ["103"], []), "status, 1xx, pushes")


LATE = "/jsapp/late.js"
o103 = T.origin(site, ["--early-hints-path", "/", "--link", "/=</css/site.css>; rel=preload; as=style",
                       "--link", "/=<%s>; rel=preload; as=script" % LATE], oid="origin-103")
h103 = T.herald(o103, name="herald-origin103")


def h2_info_links(hh):
    c = L.Client(hh.port, push=False)
    try:
        sid = c.get("/", [("sec-fetch-mode", "navigate")])
        st = c.streams[sid]
        return st["status"], [L.link_targets([v for k, v in i if k == "link"]) for i in st["info"]]
    finally:
        c.close()


@T.case("origin 103: forwarded on a first visit; its links are learned for the next")
def _():
    st, infos = h2_info_links(h103)
    T.eq(st, 200, "status")
    T.check(infos and LATE in infos[0], "the origin's 103 was not forwarded: %s" % infos)
    learn(h103)
    st, infos = h2_info_links(h103)
    T.check(infos, "no 103 on the learned visit")
    T.check(REQ | {LATE} <= set(infos[0]), "herald's 103 lacks %s" % sorted(
        (REQ | {LATE}) - set(infos[0])))
    again = [u for later in infos[1:] for u in later if u in infos[0]]
    T.check(not again, "the origin's later 103 repeated links already sent: %s" % again)


T.finish()
