#!/usr/bin/python3
"""Learning from clean visits, with real browsers, on a fixture of our own
(/clean/, written by this test): headless Chromium over TLS (trusted by
SPKI, so it acts on herald's 103), nghttp for push, a python3-h2 client
without push for the 103 a browser gets.

What Chromium fetched on its first, cold visit is the ground truth.  Then:
- icons for CSS selectors that match nothing are not planned after two
  visits, the matched one is; five more visits under herald's own hints
  never fetch them (herald never hinted them);
- a Vary: Cookie stylesheet is pushed to nghttp, and hinted to Chromium
  (the page sets no cookie) and then used, not fetched twice, also when the
  page request carries a cookie;
- an image served with Set-Cookie is hinted, never pushed, except in a 103
  that hints a Vary: Cookie asset (its cookie would change that asset's
  request: measured by bench/hint_reuse);
- of a srcset, one candidate is planned: the one Chromium fetched;
- a versioned script URL is replaced after one visit that names the new one;
- in a navigation that acted on the 103, no hinted URL (a font preloaded
  with crossorigin, a module script, a CORS image, a markup preload)
  reached the origin twice."""

import os
import re
import shutil
import struct
import time
import zlib

import adminlib as A
import chromelib as C
import learnlib as L

import harness

T = harness.Tests("learn_clean", need=["chromium", "chromedriver", "openssl", "nghttp"],
                  python_modules=["selenium", "h2"])

PAGE = "/clean/"
ICONS_USED = ["/clean/icons/used.png"]
ICONS_UNUSED = ["/clean/icons/unused-a.png", "/clean/icons/unused-b.png"]
HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>clean visits</title>
<link rel="stylesheet" href="/clean/site.css">
<link rel="stylesheet" href="/clean/theme.css">
<link rel="preload" href="/clean/fonts/f.woff2" as="font" type="font/woff2" crossorigin>
<script src="/clean/app.js?ver=%(ver)s"></script>
<script type="module" src="/clean/mod.js"></script>
</head><body>
<div class="used-icon">x</div>
<p class="t">Text in the preloaded font.</p>
<img src="/clean/session.png" width="8" height="8" alt="">
<img src="/clean/hero-1x.png" srcset="/clean/hero-1x.png 1x, /clean/hero-2x.png 2x" alt="">
<img src="/clean/cors.png" crossorigin="anonymous" width="8" height="8" alt="">
</body></html>
"""
SITE_CSS = """@font-face{font-family:F;src:url(fonts/f.woff2) format("woff2")}
.t{font-family:F,sans-serif}
.used-icon{background:url(icons/used.png) no-repeat;padding-left:20px}
.unused-a{background:url(icons/unused-a.png)}
a[href$=".pdf"].unused-b{background:url(icons/unused-b.png)}
"""


def png(rgb):
    """An 8x8 PNG of one colour."""
    raw = b"".join(b"\x00" + bytes(rgb) * 8 for _ in range(8))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_site(ver):
    root = os.path.join(T.dir, "site")
    d = os.path.join(root, "clean")
    os.makedirs(os.path.join(d, "icons"), exist_ok=True)
    os.makedirs(os.path.join(d, "fonts"), exist_ok=True)
    files = {
        "index.html": HTML % {"ver": ver},
        "login.html": "<!doctype html><title>login</title><p>signed in</p>",
        "site.css": SITE_CSS,
        "theme.css": "body{color:#123}",
        "app.js": "window.appLoaded = 1;",
        "mod.js": "export const m = 1; document.body.dataset.mod = '1';",
    }
    for name, text in files.items():
        with open(os.path.join(d, name), "w", encoding="utf-8") as f:
            f.write(text)
    for i, name in enumerate(["icons/used.png", "icons/unused-a.png", "icons/unused-b.png",
                              "session.png", "hero-1x.png", "hero-2x.png", "cors.png"]):
        with open(os.path.join(d, name), "wb") as f:
            f.write(png((40 * i % 256, 100, 200)))
    shutil.copy(os.path.join(L.DEMO, "fonts", "open-sans-regular.woff2"),
                os.path.join(d, "fonts", "f.woff2"))
    return root


site = make_site("1")
o = T.origin(site, [
    "--think", PAGE + "=400",
    "--header", "/clean/theme.css=Vary: Cookie, Accept-Encoding",
    "--header", "/clean/session.png=Set-Cookie: mid=1; Path=/clean/session.png",
    "--header", "/clean/login.html=Set-Cookie: sid=abc; Path=/",
    "--header", "/clean/cors.png=Access-Control-Allow-Origin: *",
])
admin_port = harness.free_port()
h = T.herald(o, ["--x-herald-header=on", "--explore=0", "--learn-window=2",
                 "--admin=127.0.0.1:%d" % admin_port], tls=True)
h.admin_port = admin_port
T.check(harness.wait_listen(admin_port, proc=h.p), "admin never listened")
spki = C.spki_hash(T.cert()[1])
URL = h.tls_url + PAGE
KEY = "127.0.0.1:%d%s" % (h.tls_port, PAGE)
state = {}


def committed():
    st, j, _ = A.call(h, "GET", "/stats")
    return j["map"]["visits_committed"] if st == 200 else -1


def wait_committed(n, timeout=20):
    """Waits until herald has committed n visits (a condition, not a sleep)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if committed() >= n:
            return
        time.sleep(0.05)
    raise harness.Failure("herald committed %d visits, not %d" % (committed(), n))


def served_200(t0):
    """Targets the origin answered 200 since t0 (time.time())."""
    return {e["target"] for e in o.events("response") if e["t"] >= t0 and e["status"] == 200}


def browse(urls, hints=True, netlog=None):
    """One fresh-profile Chromium run, its visits committed; returns
    (entries, nav, targets the origin answered 200 meanwhile)."""
    before = committed()
    t0 = time.time()
    res, nav = C.navigate([h.tls_url + u for u in urls], T.dir, spki if hints else None, netlog)
    wait_committed(before + len(urls))
    return res, nav, served_200(t0)


def hinted_paths(cookie=None):
    """The preload targets of the 103 a no-push h2 navigation gets now
    (that visit is committed before this returns)."""
    before = committed()
    c = L.Client(h.tls_port, push=False, tls=True)
    try:
        hs = [("accept", "text/html"), ("sec-fetch-mode", "navigate")]
        if cookie:
            hs.append(("cookie", cookie))
        sid = c.get(PAGE, hs)
        T.eq(c.streams[sid]["status"], 200, "page status")
        info = c.streams[sid]["info"]
        links = [v for block in info for k, v in block if k == "link"]
    finally:
        c._close()
    wait_committed(before + 1)
    return set(L.link_targets(links))


def edge_verdicts():
    st, j, _ = A.call(h, "GET", "/maps/page?page=" + A.q(KEY))
    T.eq(st, 200, "admin /maps/page")
    return {re.sub(r"^https?://[^/]+", "", e["url"]): e for e in j["edges"]}


@T.case("first visit, a cold Chromium: the ground truth (used icon, 1x candidate, font, module)")
def _():
    res, nav, got = browse([PAGE])
    state["truth"] = got
    T.eq(nav["nextHopProtocol"], "h2", "protocol")
    must = {"/clean/site.css", "/clean/theme.css", "/clean/fonts/f.woff2", "/clean/app.js?ver=1",
            "/clean/mod.js", "/clean/icons/used.png", "/clean/session.png",
            "/clean/hero-1x.png", "/clean/cors.png"}
    T.check(must <= got, "Chromium did not fetch %s (got %s)" % (sorted(must - got), sorted(got)))
    T.check(not (set(ICONS_UNUSED) | {"/clean/hero-2x.png"}) & got,
            "Chromium fetched an unused icon or the 2x candidate: %s" % sorted(got))


@T.case("second visit (Chromium acting on the 103): unmatched icons rejected, used one planned")
def _():
    T.check(state.get("truth"), "no ground truth")
    res, nav, got = browse([PAGE])
    T.check(not set(ICONS_UNUSED) & got, "unused icons fetched: %s" % sorted(got))
    ev = edge_verdicts()
    for p in ICONS_UNUSED + ["/clean/hero-2x.png"]:
        T.eq(ev.get(p, {}).get("verdict"), "rejected", "verdict of %s" % p)
    for p in ICONS_USED + ["/clean/hero-1x.png", "/clean/fonts/f.woff2"]:
        T.check(ev.get(p, {}).get("verdict") in ("confirmed", "strong"),
                "%s not planned: %s" % (p, ev.get(p)))


@T.case("a browser's 103: what Chromium fetched, minus the cookie-setting image")
def _():
    truth = state.get("truth") or set()
    links = hinted_paths()
    want = truth - {PAGE, "/clean/session.png"}
    T.eq(sorted(links), sorted(want), "103 preloads against Chromium's own requests")
    heroes = [p for p in links if "hero-" in p]
    T.eq(heroes, ["/clean/hero-1x.png"], "one srcset candidate, the one Chromium fetched")


@T.case("nghttp (push): the Vary: Cookie sheet pushed; the Set-Cookie image hinted, not pushed")
def _():
    before = committed()
    ng = L.nghttp(T, URL)
    wait_committed(before + 1)
    pushed = set(ng.push_paths())
    T.check("/clean/theme.css" in pushed, "theme.css not pushed: %s" % sorted(pushed))
    T.check("/clean/session.png" not in pushed, "the Set-Cookie image was pushed")
    info = ng.informational(ng.page_sid)
    links = set(L.link_targets([v for _, hs in info for k, v in hs if k == "link"]))
    T.check("/clean/session.png" in links, "the Set-Cookie image is not in the 103: %s" % links)
    T.check(not (pushed & links), "pushed and hinted both: %s" % sorted(pushed & links))


@T.case("Chromium with a cookie: the Vary: Cookie sheet is hinted and used; no URL fetched twice")
def _():
    links = hinted_paths(cookie="sid=abc")
    T.check("/clean/theme.css" in links, "a navigation with a cookie gets no hint of theme.css")
    T.check("/clean/session.png" not in links, "the cookie-setting image is hinted with it")
    notes = []
    for attempt in range(5):
        nl = os.path.join(T.dir, "netlog-cookie-%d.json" % attempt)
        t0 = time.time()
        res, nav, _ = browse(["/clean/login.html", PAGE], netlog=nl)
        # the page's navigation starts after the login page's: count from its request
        reqs = L.origin_requests(o, t0)
        page_t = max(t for p, t in reqs if p == PAGE)
        counts = {}
        for p, t in reqs:
            if t >= page_t and p != PAGE:
                counts[p] = counts.get(p, 0) + 1
        eh = {C.path_of(e["name"]) for e in res if e["initiatorType"] == "early-hints"}
        got103 = C.netlog_103s(nl)
        print("# navigation %d: %d 103(s), early-hints entries %s, origin counts %s" % (
            attempt, got103, sorted(eh), counts))
        if "/clean/theme.css" not in eh:
            T.check(got103 != 0, "Chromium received no 103 (x-herald %r)" % nav["x_herald"])
            notes.append(sorted(eh))
            continue  # Chromium now and then ignores a 103 it received: retry
        twice = {p: n for p, n in counts.items() if n > 1}
        T.check(not twice, "fetched twice in one navigation: %s" % twice)
        for p in ["/clean/fonts/f.woff2", "/clean/mod.js", "/clean/cors.png"]:
            T.check(p in eh, "%s was not used from the 103 (entries %s)" % (p, sorted(eh)))
        return
    raise harness.Failure("5 navigations received a 103 but never used theme.css: %s" % notes)


@T.case("five more Chromium visits under herald's hints: the unused icons stay out")
def _():
    for i in range(5):
        res, nav, got = browse([PAGE])
        T.check(not set(ICONS_UNUSED) & got, "visit %d fetched %s" % (i, sorted(got)))
    ev = edge_verdicts()
    for p in ICONS_UNUSED:
        T.eq(ev.get(p, {}).get("verdict"), "rejected", "verdict of %s" % p)
    T.check(not set(ICONS_UNUSED) & hinted_paths(), "an unused icon is hinted")


@T.case("a new version of the script URL replaces the old after one visit")
def _():
    with open(os.path.join(site, "clean", "index.html"), "w", encoding="utf-8") as f:
        f.write(HTML % {"ver": "2"})
    before = committed()
    ng = L.nghttp(T, URL, ["--no-push"])  # any visit whose HTML herald scans
    T.eq(ng.status(ng.page_sid), "200", "page status")
    wait_committed(before + 1)
    links = hinted_paths()
    T.check("/clean/app.js?ver=2" in links, "ver=2 not hinted: %s" % sorted(links))
    T.check("/clean/app.js?ver=1" not in links, "ver=1 still hinted")
    T.eq(edge_verdicts().get("/clean/app.js?ver=1", {}).get("verdict"), "superseded",
         "old version's verdict")


T.finish()
