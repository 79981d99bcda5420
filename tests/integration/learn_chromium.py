#!/usr/bin/python3
"""Early Hints in a real browser (issue 4): headless Chromium over TLS (the
self-signed certificate trusted by its SPKI hash, never plain
--ignore-certificate-errors, which makes Chromium ignore Early Hints), a
fresh --user-data-dir per navigation.  The first navigation teaches herald
the page; on the second, the page's CSS and JS appear in
performance.getEntriesByType('resource') with initiatorType "early-hints"."""

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile

import learnlib as L

import harness

T = harness.Tests("learn_chromium", need=["chromium", "chromedriver", "openssl"],
                  python_modules=["selenium"])
CRITICAL = ["/css/site.css", "/css/item.css", "/js/config.js", "/js/app.js"]


def spki_hash(cert):
    der = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=der,
                         capture_output=True, check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def navigate(url, spki, base_dir, netlog=None):
    """One navigation in a fresh headless Chromium; returns the resource
    entries [{name, initiatorType, ...}] and the page's navigation entry."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    udd = tempfile.mkdtemp(prefix="udd-", dir=base_dir)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run",
              "--disable-dev-shm-usage", "--user-data-dir=" + udd,
              "--ignore-certificate-errors-spki-list=" + spki] + (
                  ["--log-net-log=" + netlog, "--net-log-capture-mode=Everything"] if netlog else []):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    svc = Service("/usr/bin/chromedriver", log_output=os.path.join(base_dir, "chromedriver.log"))
    d = webdriver.Chrome(options=opts, service=svc)
    try:
        d.set_page_load_timeout(30)
        d.get(url)
        d.execute_async_script("""
            const done = arguments[arguments.length - 1];
            if (document.readyState === 'complete') setTimeout(done, 300);
            else addEventListener('load', () => setTimeout(done, 300));""")
        res = d.execute_script("""
            return performance.getEntriesByType('resource').map(e => ({
              name: e.name, initiatorType: e.initiatorType, transferSize: e.transferSize,
              startTime: e.startTime, responseEnd: e.responseEnd,
              nextHopProtocol: e.nextHopProtocol}));""")
        nav = d.execute_script("""
            const n = performance.getEntriesByType('navigation')[0];
            return {nextHopProtocol: n.nextHopProtocol, responseStart: n.responseStart};""")
        # diagnostics only: did Chromium's network stack see a 103, and the
        # page's x-herald header
        nav["early_hints_events"] = 0
        nav["x_herald"] = None
        try:
            import json
            for entry in d.get_log("performance"):
                m = json.loads(entry["message"])["message"]
                if m.get("method") == "Network.responseReceivedEarlyHints":
                    nav["early_hints_events"] += 1
                elif m.get("method") == "Network.responseReceived" and \
                        m["params"].get("type") == "Document":
                    hs = {k.lower(): v for k, v in m["params"]["response"]["headers"].items()}
                    nav["x_herald"] = hs.get("x-herald")
        except Exception as e:
            nav["log_error"] = repr(e)
        return res, nav
    finally:
        d.quit()
        shutil.rmtree(udd, ignore_errors=True)


def path_of(name):
    return "/" + name.split("://", 1)[1].split("/", 1)[1]


def main():
    site = L.make_site(T)
    o = T.origin(site, ["--think", "/=400"])
    h = T.herald(o, ["--x-herald-header=on"], tls=True)
    spki = spki_hash(T.cert()[1])
    url = h.tls_url + "/"
    state = {}

    @T.case("first navigation over h2+TLS: no early-hints entries")
    def _():
        res, nav = navigate(url, spki, T.dir)
        T.eq(nav["nextHopProtocol"], "h2", "navigation protocol")
        eh = [path_of(e["name"]) for e in res if e["initiatorType"] == "early-hints"]
        T.eq(eh, [], "early-hints entries on the first navigation")
        got = {path_of(e["name"]) for e in res}
        T.check(set(CRITICAL) <= got, "Chromium did not load %s" % sorted(set(CRITICAL) - got))
        state["ok"] = True

    @T.case("second navigation (fresh profile): CSS and JS have initiatorType early-hints")
    def _():
        T.check(state.get("ok"), "first navigation failed")
        res, nav = navigate(url, spki, T.dir)
        print("# second navigation: Chromium saw %d 103(s); page x-herald %r" % (
            nav["early_hints_events"], nav["x_herald"]))
        by = {}
        for e in res:
            by.setdefault(path_of(e["name"]), []).append(e["initiatorType"])
        missing = [p for p in CRITICAL if "early-hints" not in by.get(p, [])]
        if missing:
            # tell "herald sent no 103" from "Chromium did not use it"
            c = L.Client(h.tls_port, tls=True, push=False)
            try:
                sid = c.get("/", [("sec-fetch-mode", "navigate"), ("accept", "text/html")])
                info = [L.link_targets([v for k, v in i if k == "link"])
                        for i in c.streams[sid]["info"]]
            finally:
                c.close()
        T.check(not missing, "not early-hints: %s (entries: %s; Chromium saw %d 103(s), "
                "page x-herald %r; an h2 TLS probe right after got 1xx links %s)" % (
                    missing, {p: by.get(p) for p in CRITICAL}, nav["early_hints_events"],
                    nav["x_herald"], info if missing else None))

    T.finish()


if __name__ == "__main__":
    main()
