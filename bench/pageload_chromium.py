#!/usr/bin/python3
"""bench/pageload_chromium.py: one cold headless-Chromium navigation, timed
with the Navigation and Resource Timing APIs (used by bench/pageload).

  pageload_chromium.py URL --spki BASE64 [--critical /a.css,...]

A fresh --user-data-dir per navigation (empty cache, no cookies, no open
connections); the proxy's self-signed certificate is trusted with
--ignore-certificate-errors-spki-list (plain --ignore-certificate-errors
makes Chromium ignore 103 Early Hints).  Prints one JSON line: times in ms
relative to the navigation's requestStart (so TCP+TLS setup is excluded, as
in the floor formulas) and, for reference, relative to navigation start:
html (responseEnd), 103 arrival (firstInterimResponseStart), each critical
asset's responseEnd and initiatorType ("early-hints" = preloaded from a 103),
done = HTML and every critical asset arrived.

Chromium reports an asset preloaded from a 103 with Resource Timing taken
when the renderer adopts it (after the HTML's headers), not when its bytes
arrived; so with --relay-log (bench/relay.py --log) it also prints net_done:
the last server->client packet the relay delivered before onload, relative
to the same requestStart (wall clock matched through performance.timeOrigin).
"""
import argparse, json, shutil, sys, tempfile, time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

JS = """
const nav = performance.getEntriesByType('navigation')[0].toJSON();
const res = performance.getEntriesByType('resource').map(e => e.toJSON());
return JSON.stringify({nav, res, origin: performance.timeOrigin});
"""


def net_done(relay_log, t_from, t_to):
    """Last server->client packet the relay delivered in [t_from, t_to] (wall clock, s)."""
    last = None
    try:
        with open(relay_log) as f:
            for line in f:
                f = line.split()
                if len(f) != 4 or f[2] != "down":
                    continue  # TLS record lines (--tls-records), client->server packets
                t = float(f[0])
                if t_from <= t <= t_to:
                    last = t if last is None else max(last, t)
    except OSError:
        return None
    return last


def run(url, spki, critical, timeout=30, relay_log=None, settle=0.5):
    tmp = tempfile.mkdtemp(prefix="pl-chrome-")
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run",
              "--disable-dev-shm-usage", "--user-data-dir=" + tmp,
              "--ignore-certificate-errors-spki-list=" + spki]:
        o.add_argument(a)
    d = None
    try:
        d = webdriver.Chrome(options=o, service=Service("/usr/bin/chromedriver"))
        d.set_page_load_timeout(timeout)
        # let the browser finish starting up (no connection to the site yet), then navigate
        d.get("about:blank")
        time.sleep(settle)
        d.get(url)
        # resources still loading after onload (late font) - give them a moment
        for _ in range(50):
            data = json.loads(d.execute_script(JS))
            names = {r["name"].split("://", 1)[1].split("/", 1)[1] for r in data["res"]}
            if all(c.lstrip("/") in names for c in critical):
                break
            d.execute_script("return new Promise(r => setTimeout(r, 100))")
        t_end = time.time()
    finally:
        if d:
            d.quit()
        shutil.rmtree(tmp, ignore_errors=True)
    nav = data["nav"]
    rs = nav["requestStart"]
    out = {"url": url, "protocol": nav.get("nextHopProtocol"), "html": nav["responseEnd"] - rs,
           "html_headers": nav["responseStart"] - rs, "request_start": rs,
           "hint_103": (nav["firstInterimResponseStart"] - rs) if nav.get("firstInterimResponseStart") else None,
           "assets": {}}
    for r in data["res"]:
        path = "/" + r["name"].split("://", 1)[1].split("/", 1)[1]
        if path in critical:
            out["assets"][path] = {"t": r["responseEnd"] - rs, "start": r["startTime"] - rs,
                                   "initiator": r["initiatorType"], "bytes": r.get("encodedBodySize"),
                                   "protocol": r.get("nextHopProtocol")}
    if relay_log:
        abs_rs = (data["origin"] + rs) / 1000.0
        last = net_done(relay_log, abs_rs, t_end)
        out["net_done"] = round((last - abs_rs) * 1000, 2) if last else None
    out["early_hints"] = sum(1 for a in out["assets"].values() if a["initiator"] == "early-hints")
    missing = [c for c in critical if c not in out["assets"]]
    if missing:
        out["error"] = "missing " + ",".join(missing)
        out["done"] = None
    else:
        out["done"] = max([out["html"]] + [a["t"] for a in out["assets"].values()])
    for k in ("html", "html_headers", "done", "hint_103"):
        if out.get(k) is not None:
            out[k] = round(out[k], 2)
    for a in out["assets"].values():
        a["t"], a["start"] = round(a["t"], 2), round(a["start"], 2)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--spki", required=True)
    ap.add_argument("--critical", default="")
    ap.add_argument("--relay-log")
    a = ap.parse_args()
    print(json.dumps(run(a.url, a.spki, [c for c in a.critical.split(",") if c], relay_log=a.relay_log)))


if __name__ == "__main__":
    main()
