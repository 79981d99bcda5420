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
        # Chromium (156) now and then receives the 103 (its net-log shows the
        # HEADERS frame) and still does not use it; such a navigation is
        # retried with another fresh profile, up to 5 in all (nghttpx forwarding an
        # origin 103 shows the same: 1 navigation in 10 ignores it).  A navigation
        # whose net-log shows no 103 fails at once: that one is herald's.
        notes = []
        for attempt in range(5):
            nl = os.path.join(T.dir, "netlog-%d.json" % attempt)
            res, nav = navigate(url, spki, T.dir, nl)
            try:
                with open(nl, encoding="utf-8", errors="replace") as f:
                    got103 = f.read().count(":status: 103")
            except OSError:
                got103 = -1
            by = {}
            for e in res:
                by.setdefault(path_of(e["name"]), []).append(e["initiatorType"])
            missing = [p for p in CRITICAL if "early-hints" not in by.get(p, [])]
            print("# navigation %d: %d 103 frame(s) in Chromium's net-log, %d early-hints "
                  "event(s), page x-herald %r, CSS/JS not early-hints: %s" % (
                      attempt + 2, got103, nav["early_hints_events"], nav["x_herald"], missing))
            if not missing:
                return
            T.check(got103 != 0, "Chromium received no 103 at all (entries: %s; page x-herald "
                    "%r)" % ({p: by.get(p) for p in CRITICAL}, nav["x_herald"]))
            notes.append({p: by.get(p) for p in CRITICAL})
        raise harness.Failure("5 navigations received a 103 but never used it: %s" % notes)

    T.finish()


if __name__ == "__main__":
    main()
