#!/usr/bin/python3
"""Next pages in a real browser: headless Chromium over TLS (herald's
certificate trusted by its SPKI hash), fresh profiles.  Three profiles each
open page A and click through to B, to a logout link, to a page answered
with Set-Cookie and to a URL carrying a per-profile token.  A fourth profile
opening A then prefetches B (the origin sees B requested with
`Sec-Purpose: prefetch`) before any click, and clicking to B commits with no
further request for B reaching herald (herald caches nothing: every request
it gets goes to the origin).  The logout, Set-Cookie and token URLs are
never in the rule set nor prefetched; the rule set is JSON of the shape
Chromium's Speculation Rules take; an origin's own Speculation-Rules header
is left alone; with --speculation=off nothing is added and the rule-set path
goes to the origin."""

import json
import os
import shutil
import time

import adminlib as AL
import chromelib as C

import harness

T = harness.Tests("learn_speculation", need=["chromium", "chromedriver", "openssl", "curl"],
                  python_modules=["selenium", "h2"])

A = "/nav/a.html"
B = "/nav/b.html"
RULES = "/.well-known/herald/speculation.json"

PAGE_A = """<!doctype html><html><head><title>A</title>
<link rel="stylesheet" href="/nav/site.css"></head><body>
<p><a id="b" href="/nav/b.html">B</a></p>
<p><a id="logout" href="/nav/logout.html">log out</a></p>
<p><a id="ck" href="/nav/cookie.html">cookie</a></p>
<p><a id="tok" href="/nav/t.html">token</a></p>
<script>
document.getElementById('tok').href =
  '/nav/t.html?token=' + Math.random().toString(36).slice(2);
</script>
</body></html>
"""


def page(title):
    return ("<!doctype html><html><head><title>%s</title>"
            "<link rel=\"stylesheet\" href=\"/nav/site.css\"></head>"
            "<body><p>%s</p><a id=\"a\" href=\"/nav/a.html\">A</a></body></html>\n" % (
                title, title))


def make_site():
    root = os.path.join(T.dir, "site")
    os.makedirs(os.path.join(root, "nav"))
    files = {"a.html": PAGE_A, "b.html": page("B"), "logout.html": page("bye"),
             "cookie.html": page("cookie"), "t.html": page("token"),
             "own.html": page("own rules"), "site.css": "body { color: #333 }\n",
             "inline.html": page("inline rules").replace(
                 "</body>", '<script type="speculationrules">{"prefetch": [{"source": "list", '
                 '"urls": ["/nav/b.html"]}]}</script></body>')}
    for name, body in files.items():
        with open(os.path.join(root, "nav", name), "w") as f:
            f.write(body)
    return root


def requests_for(o, path, since=0):
    """The origin's logged requests for path (query ignored), from index since."""
    out = []
    for r in o.events("request")[since:]:
        if r["target"].split("?")[0] == path:
            out.append({k.lower(): v for k, v in r["headers"]})
    return out


def purpose(h):
    return h.get("sec-purpose", "")


def click_to(d, elem_id, path):
    d.find_element("id", elem_id).click()
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if d.execute_script("return location.pathname") == path:
            C.wait_loaded(d)
            return
        time.sleep(0.05)
    raise harness.Failure("click on #%s did not reach %s" % (elem_id, path))


def train(h, url):
    """One fresh profile: A -> B, A -> logout, A -> cookie page, A -> token URL."""
    with C.browser(url, T.dir, T.spki) as d:
        for elem, path in (("b", B), ("logout", "/nav/logout.html"),
                           ("ck", "/nav/cookie.html"), ("tok", "/nav/t.html")):
            d.get(url + A)
            C.wait_loaded(d)
            click_to(d, elem, path)
    h.settle()


def curl_head(h, path, extra=()):
    r = T.run(["curl", "-sk", "--http2", "-D", "-", "-o", "/dev/null"] + list(extra) +
              [h.tls_url + path])
    T.eq(r.returncode, 0, "curl exit status")
    return [ln.strip() for ln in r.stdout.splitlines()]


def main():
    root = make_site()
    o = T.origin(root, ["--header", "/nav/cookie.html=Set-Cookie: sid=1; Path=/",
                        "--header", '/nav/own.html=Speculation-Rules: "/own-rules.json"'])
    h = T.herald(o, ["--speculation=prefetch"], tls=True)
    T.spki = C.spki_hash(T.cert()[1])
    url = h.tls_url

    @T.case("three profiles click A -> B (and to logout, Set-Cookie, token URLs)")
    def _():
        for _ in range(3):
            train(h, url)
        T.check(len(requests_for(o, B)) >= 3, "B reached the origin %d times" %
                len(requests_for(o, B)))

    @T.case("the rule set of A is JSON of the documented shape, naming B only")
    def _():
        r = T.run(["curl", "-sk", "--http2", "-D", os.path.join(T.dir, "rules.h"),
                   url + RULES + "?page=" + A])
        T.eq(r.returncode, 0, "curl exit status")
        with open(os.path.join(T.dir, "rules.h")) as f:
            head = f.read().lower()
        T.check("content-type: application/speculationrules+json" in head,
                "rule set media type: %r" % head)
        rules = json.loads(r.stdout)
        T.eq(sorted(rules.keys()), ["prefetch"], "rule set keys")
        urls = []
        for rule in rules["prefetch"]:
            T.eq(rule.get("source"), "list", "rule source")
            T.check(rule.get("eagerness") in ("immediate", "moderate"),
                    "eagerness %r" % rule.get("eagerness"))
            T.check(all(isinstance(u, str) for u in rule["urls"]), "urls are strings")
            urls += rule["urls"]
        T.eq(urls, [B], "URLs of A's rule set")
        T.eq(requests_for(o, RULES), [], "rule-set requests that reached the origin")

    @T.case("A's response names the rule set; an origin Speculation-Rules is left alone")
    def _():
        hs = curl_head(h, A, ["-H", "sec-fetch-mode: navigate", "-H", "sec-fetch-dest: document"])
        sr = [x for x in hs if x.lower().startswith("speculation-rules:")]
        T.eq(sr, ['speculation-rules: "%s?page=/nav/a.html"' % RULES], "A's header")
        hs = curl_head(h, "/nav/own.html", ["-H", "sec-fetch-mode: navigate",
                                            "-H", "sec-fetch-dest: document"])
        sr = [x for x in hs if x.lower().startswith("speculation-rules:")]
        T.eq(sr, ['speculation-rules: "/own-rules.json"'], "own.html's header")

    @T.case("a page with inline speculation rules gets no header")
    def _():
        nav = ["-H", "sec-fetch-mode: navigate", "-H", "sec-fetch-dest: document"]
        for _ in range(3):  # three sessions see the page (scanned) and go on to B
            curl_head(h, "/nav/inline.html", nav)
            h.settle()
            curl_head(h, B, nav + ["-H", "referer: %s/nav/inline.html" % url])
            h.settle()
        rules = json.loads(T.run(["curl", "-sk", url + RULES + "?page=/nav/inline.html"]).stdout)
        T.eq([u for r in rules["prefetch"] for u in r["urls"]], [B],
             "inline.html's next pages (else this case cannot tell)")
        hs = curl_head(h, "/nav/inline.html", nav)
        T.eq([x for x in hs if x.lower().startswith("speculation-rules:")], [],
             "inline.html's Speculation-Rules")

    @T.case("a new profile on A prefetches B before any click; the click needs no request")
    def _():
        with C.browser(url, T.dir, T.spki) as d:
            before = len(o.events("request"))
            d.get(url + A)
            C.wait_loaded(d)
            end = time.monotonic() + 20
            pre = []
            while time.monotonic() < end and not pre:
                pre = [x for x in requests_for(o, B, before) if purpose(x) == "prefetch"]
                time.sleep(0.05)
            T.check(pre, "no prefetch of B reached the origin (requests for B: %r)" %
                    requests_for(o, B, before))
            T.eq(pre[0].get("sec-fetch-mode"), "navigate", "prefetch's Sec-Fetch-Mode")
            mark = len(o.events("request"))
            click_to(d, "b", B)
            d.execute_script("return document.title")
            T.eq(requests_for(o, B, mark), [], "requests for B after the click")
            for p in ("/nav/logout.html", "/nav/cookie.html", "/nav/t.html"):
                T.eq([x for x in requests_for(o, p, before) if purpose(x) == "prefetch"], [],
                     "prefetches of " + p)
        h.settle()

    @T.case("a prefetch of B gets no 103; a navigation to B does")
    def _():
        nav = ["--http2", "-k", "-H", "sec-fetch-mode: navigate", "-H", "sec-fetch-dest: document",
               "-H", "referer: %s%s" % (url, A)]
        r = T.curl(nav, url + B)
        T.eq(r.status, 200, "navigation status")
        T.check(any("103" in b["status"] for b in r.blocks),
                "the navigation to B got no 103 (so this case cannot tell): %r" % r.blocks)
        r = T.curl(nav + ["-H", "sec-purpose: prefetch"], url + B)
        T.eq(r.status, 200, "prefetch status")
        T.eq([b["status"] for b in r.blocks if "103" in b["status"]], [], "103s on the prefetch")
        h.settle()

    @T.case("admin: A's next pages with probabilities; a ban takes B out of the rule set")
    def _():
        key = [p["key"] for p in AL.call(h, "GET", "/maps?q=a.html")[1]["pages"]
               if p["key"].endswith("/nav/a.html")]
        T.eq(len(key), 1, "A's page key in /maps")
        st, page, _ = AL.call(h, "GET", "/maps/page?page=" + AL.q(key[0]))
        T.eq(st, 200, "/maps/page status")
        nx = {x["url"].split("/", 3)[3]: x for x in page.get("next", [])}
        T.check("nav/b.html" in nx, "B is not among A's next pages: %r" % list(nx))
        # each profile went from A to B (a profile may open more than one
        # connection, each a session: P is not exactly 1)
        T.check(0.3 <= nx["nav/b.html"]["probability"] <= 1.0,
                "P(B | A) = %r" % nx["nav/b.html"]["probability"])
        T.eq(nx["nav/b.html"]["verdict"], "likely", "B's verdict")
        T.check(nx["nav/logout.html"]["verdict"] == "denied", "logout: %r" % nx["nav/logout.html"])
        burl = nx["nav/b.html"]["url"]
        st, _, _ = AL.call(h, "POST", "/maps/ban?page=%s&next=%s" % (AL.q(key[0]), AL.q(burl)))
        T.eq(st, 200, "ban status")
        rules = json.loads(T.run(["curl", "-sk", url + RULES + "?page=" + A]).stdout)
        T.eq(rules, {"prefetch": []}, "A's rule set with B banned")
        st, _, _ = AL.call(h, "POST", "/maps/unpin?page=%s&next=%s" % (AL.q(key[0]), AL.q(burl)))
        T.eq(st, 200, "unpin status")
        rules = json.loads(T.run(["curl", "-sk", url + RULES + "?page=" + A]).stdout)
        T.eq([u for r in rules["prefetch"] for u in r["urls"]], [B], "A's rule set after unpin")

    @T.case("admin page in Chromium: A's next pages shown; ban on B's row bans it")
    def _():
        key = [p["key"] for p in AL.call(h, "GET", "/maps?q=a.html")[1]["pages"]
               if p["key"].endswith("/nav/a.html")][0]
        d, udd = C._driver(T.dir, None, None, None)
        try:
            d.set_page_load_timeout(30)
            d.get("http://127.0.0.1:%d/" % h.admin_port)

            def wait(js, what):
                end = time.monotonic() + 10
                while time.monotonic() < end:
                    v = d.execute_script(js)
                    if v:
                        return v
                    time.sleep(0.1)
                raise harness.Failure("timed out waiting for " + what)

            wait("return document.body.getAttribute('data-loaded')", "the page list")
            rows = d.execute_script("""
                const s = [...document.querySelectorAll('section.page')]
                    .find(x => x.dataset.page === arguments[0]);
                return s ? [...s.querySelectorAll('tr.next')].map(r => r.dataset.next) : null;""",
                                    key)
            T.check(rows is not None, "A's section not shown")
            burl = [u for u in rows if u.endswith(B)]
            T.eq(len(burl), 1, "B's row among A's next pages %r" % rows)
            d.execute_script("""
                const s = [...document.querySelectorAll('section.page')]
                    .find(x => x.dataset.page === arguments[0]);
                [...s.querySelectorAll('tr.next')].find(r => r.dataset.next === arguments[1])
                    .querySelector('button.ban').click();""", key, burl[0])
            wait("""return [...document.querySelectorAll('tr.next')].some(r =>
                r.dataset.next === %r && r.classList.contains('banned'))""" % burl[0],
                 "B's row to show banned")
        finally:
            d.quit()
            shutil.rmtree(udd, ignore_errors=True)
        _, page, _ = AL.call(h, "GET", "/maps/page?page=" + AL.q(key))
        T.eq([x["state"] for x in page["next"] if x["url"] == burl[0]], ["banned"],
             "B's state in /maps/page")
        st, _, _ = AL.call(h, "POST", "/maps/unpin?page=%s&next=%s" % (AL.q(key), AL.q(burl[0])))
        T.eq(st, 200, "unpin status")

    @T.case("metrics count headers, rule sets and prefetches")
    def _():
        r = T.run(["curl", "-s", "http://127.0.0.1:%d/metrics" % h.admin_port])
        m = {}
        for ln in r.stdout.splitlines():
            if ln.startswith("herald_speculation_"):
                k, v = ln.split()
                m[k] = float(v)
        for k in ("headers", "rule_sets", "prefetches"):
            T.check(m.get("herald_speculation_%s_total" % k, 0) >= 1,
                    "herald_speculation_%s_total: %r" % (k, m))

    @T.case("HTTP/1.1: the rule set keeps the connection (pipelined HEAD, GET, origin GET)")
    def _():
        import socket
        sk = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        sk.sendall(("HEAD %s?page=%s HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET %s?page=%s HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (
                        RULES, A, RULES, A, B)).encode())
        data = b""
        end = time.monotonic() + 10
        while time.monotonic() < end:
            x = sk.recv(65536)
            if not x:
                break
            data += x
        sk.close()
        text = data.decode("latin-1")
        T.eq(text.count("HTTP/1.1 200 OK"), 3, "responses on one connection: %r" % text[:600])
        T.eq(text.count('{"prefetch":'), 1, "rule-set bodies (HEAD has none)")
        T.check("x-origin-id" in text.split('{"prefetch":', 1)[1], "B came from the origin")

    @T.case("prefetches are limited per client over its connections (--speculation-max=1: 2 at once)")
    def _():
        lim = T.herald(o, ["--speculation=prefetch", "--speculation-max=1"])
        before = len(requests_for(o, B))
        # two connections of one client, five prefetches each
        conns = [harness.H2(lim.port), harness.H2(lim.port)]
        t0 = time.monotonic()
        sids = [(c, c.send_request("GET", B, [("sec-fetch-mode", "navigate"),
                                              ("sec-fetch-dest", "document"),
                                              ("sec-purpose", "prefetch")]))
                for c in conns for _ in range(5)]
        for c in conns:
            c.pump(20, lambda: all(x.done(s)() for x, s in sids if x is c))
        elapsed = time.monotonic() - t0
        for c in conns:
            c.close()
        st = [c.result(s)["status"] for c, s in sids]
        ok, refused = st.count(200), st.count(503)
        T.eq(ok + refused, 10, "answers 200 or 503 (%r)" % st)
        # a burst of 2, then one a second
        T.check(2 <= ok <= 2 + int(elapsed) + 1, "%d prefetches passed in %.1fs" % (ok, elapsed))
        T.eq(len(requests_for(o, B)) - before, ok, "prefetches that reached the origin")
        lim.settle()

    @T.case("with --speculation=off nothing is added and the rule-set path is the origin's")
    def _():
        off = T.herald(o, ["--speculation=off"], tls=True)
        for _ in range(3):  # A -> B by three connections (sessions)
            curl_head(off, B, ["-H", "sec-fetch-mode: navigate", "-H", "sec-fetch-dest: document",
                               "-H", "referer: %s%s" % (off.tls_url, A)])
        off.settle()
        hs = curl_head(off, A, ["-H", "sec-fetch-mode: navigate",
                                "-H", "sec-fetch-dest: document"])
        T.eq([x for x in hs if x.lower().startswith("speculation-rules:")], [], "A's header")
        n = len(requests_for(o, RULES))
        curl_head(off, RULES + "?page=" + A)
        T.eq(len(requests_for(o, RULES)), n + 1, "rule-set requests reaching the origin")

    T.finish()


if __name__ == "__main__":
    main()
