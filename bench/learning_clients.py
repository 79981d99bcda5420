"""bench/learning: the clients.  A cold headless Chromium visit recorded
through its DevTools Network events (selenium's performance log), and
nghttp visits (push, or --no-push for the 103) parsed from `nghttp -nv`.

The capture window of a Chromium visit: from navigation start to the load
event, then on until QUIET seconds pass with no new request (requests
started in that time count too), at most CAP seconds after the load event.
"""
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "integration"))

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
QUIET = 0.5
CAP = 3.0
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage"]


def spki_hash(cert):
    """base64 sha256 of the certificate's SubjectPublicKeyInfo (what
    --ignore-certificate-errors-spki-list takes)."""
    pem = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pem,
                         capture_output=True, check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def chromium_version():
    r = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True)
    return r.stdout.strip()


def origin_of(url):
    u = urllib.parse.urlsplit(url)
    return "%s://%s" % (u.scheme, u.netloc)


def local(url):
    """path?query of a URL (the part compared across origins)."""
    u = urllib.parse.urlsplit(url)
    return (u.path or "/") + ("?" + u.query if u.query else "")


def chromium_visit(url, tmp, cert_mode=None, spki=None, timeout=60):
    """One navigation by a fresh headless Chromium (new --user-data-dir,
    cache enabled).  cert_mode: None (plain http), "ignore"
    (--ignore-certificate-errors: Chromium then ignores 103) or "spki"
    (--ignore-certificate-errors-spki-list: Chromium acts on 103).
    Returns {"requests": [...], "early_hints": n, "load_ms", "t_start", ...};
    each request: url, type, method, initiator {type, url, line, stack_url},
    status, from_cache, encoded_len, started (s after navigation start),
    redirect_from, link_preload (its initiator is an early-hints/Link preload)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    udd = tempfile.mkdtemp(prefix="udd-", dir=tmp)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    flags = FLAGS + ["--user-data-dir=" + udd]
    if cert_mode == "ignore":
        flags.append("--ignore-certificate-errors")
    elif cert_mode == "spki":
        flags.append("--ignore-certificate-errors-spki-list=" + spki)
    for a in flags:
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    svc = Service(CHROMEDRIVER, log_output=os.path.join(tmp, "chromedriver.log"))
    t_begin = time.time()
    d = webdriver.Chrome(options=opts, service=svc)
    events = []
    try:
        d.set_page_load_timeout(timeout)
        d.get(url)  # returns at the load event (page load strategy "normal")
        t_load = time.monotonic()
        last_new = t_load
        while True:
            got = d.get_log("performance")
            for e in got:
                m = json.loads(e["message"])["message"]
                events.append(m)
                if m.get("method") == "Network.requestWillBeSent":
                    last_new = time.monotonic()
            now = time.monotonic()
            if now - last_new >= QUIET and now - t_load >= QUIET:
                break
            if now - t_load >= CAP:
                break
            time.sleep(0.1)
        nav = d.execute_script("""
            const n = performance.getEntriesByType('navigation')[0];
            return {protocol: n.nextHopProtocol, load_ms: n.loadEventStart,
                    response_start_ms: n.responseStart};""")
    finally:
        try:
            d.quit()
        finally:
            shutil.rmtree(udd, ignore_errors=True)
    return digest_events(events, url, nav, t_begin)


def digest_events(events, page_url, nav, t_begin):
    reqs = {}
    order = []
    main_loader = None
    t0 = None
    early_hints = 0
    for m in events:
        meth = m.get("method", "")
        p = m.get("params", {})
        if meth != "Network.requestWillBeSent" and p.get("requestId") not in reqs:
            if meth == "Network.responseReceivedEarlyHints" and main_loader is not None:
                early_hints += 1
            continue
        if meth == "Network.requestWillBeSent":
            rid = p["requestId"]
            if main_loader is None:
                # events of the browser's start page come first: begin at
                # the navigation to the page
                if p.get("type") != "Document" or p["request"]["url"] != page_url:
                    continue
                main_loader = p.get("loaderId")
                t0 = p.get("timestamp")
            ini = p.get("initiator") or {}
            stack_url = None
            st = ini.get("stack")
            while st and stack_url is None:
                for fr in st.get("callFrames", []):
                    if fr.get("url"):
                        stack_url = fr["url"]
                        break
                st = st.get("parent")
            r = {"id": rid, "url": p["request"]["url"], "method": p["request"].get("method"),
                 "type": p.get("type"),
                 "initiator": {"type": ini.get("type"), "url": ini.get("url"),
                               "line": ini.get("lineNumber"), "stack_url": stack_url},
                 "started": round((p.get("timestamp", t0) - t0), 4) if t0 else 0.0,
                 "status": None, "from_cache": False, "encoded_len": None,
                 "redirect_from": None}
            if rid in reqs and p.get("redirectResponse"):
                # the same id continues after a redirect: close the old hop
                old = reqs[rid]
                old["status"] = p["redirectResponse"].get("status")
                old["id"] = rid + "#r%d" % len(order)
                reqs[old["id"]] = old
                r["redirect_from"] = old["url"]
            reqs[rid] = r
            order.append(r)
        elif meth == "Network.requestServedFromCache":
            if p.get("requestId") in reqs:
                reqs[p["requestId"]]["from_cache"] = True
        elif meth == "Network.responseReceived":
            r = reqs.get(p.get("requestId"))
            if r is not None:
                resp = p.get("response", {})
                r["status"] = resp.get("status")
                r["protocol"] = resp.get("protocol")
                r["mime"] = resp.get("mimeType")
                if resp.get("fromDiskCache") or resp.get("fromPrefetchCache"):
                    r["from_cache"] = True
                if resp.get("fromEarlyHints"):
                    r["from_early_hints"] = True
        elif meth == "Network.loadingFinished":
            r = reqs.get(p.get("requestId"))
            if r is not None:
                r["encoded_len"] = p.get("encodedDataLength")
        elif meth == "Network.loadingFailed":
            r = reqs.get(p.get("requestId"))
            if r is not None:
                r["failed"] = p.get("errorText")
        elif meth == "Network.responseReceivedEarlyHints":
            early_hints += 1
    return {"page": page_url, "requests": order, "early_hints": early_hints, "nav": nav,
            "wall_start": t_begin, "events": len(events)}


def subresources(visit):
    """{path?query: request} of the visit's same-origin subresources that
    ended with status 200 (the page's own document excluded, and other
    documents: iframes are navigations of their own)."""
    origin = origin_of(visit["page"])
    out = {}
    for r in visit["requests"]:
        if not r["url"].startswith(("http://", "https://")) or origin_of(r["url"]) != origin:
            continue
        if r["type"] == "Document":
            continue
        if r["status"] != 200:
            continue
        out.setdefault(local(r["url"]), r)
    return out


# ------------------------------------------------------------------ nghttp
# nghttp -v output is read by the integration tests' parser (learnlib.Ng).

def link_preloads(values):
    """[(url, attrs)] of rel=preload/modulepreload links in Link header values."""
    out = []
    for v in values:
        for part in re.split(r",(?=\s*<)", v):
            m = re.match(r"\s*<([^>]*)>(.*)", part)
            if not m:
                continue
            attrs = {}
            for a in m.group(2).split(";"):
                a = a.strip()
                if not a:
                    continue
                k, _, val = a.partition("=")
                attrs[k.strip().lower()] = val.strip().strip('"')
            rels = attrs.get("rel", "").lower().split()
            if "preload" in rels or "modulepreload" in rels:
                out.append((m.group(1), attrs))
    return out


def nghttp_visit(url, push=True, cookie=None, timeout=60):
    """One nghttp -nv visit of the page (no subresources fetched).
    Returns {"pushes": [{"path", "bytes", "status", "reset"}], "hints":
    [{"url", "attrs"}], "status", "set_cookie": [...], "rc", ...}."""
    import learnlib
    argv = ["nghttp", "-nv", "-t", str(timeout)]
    if not push:
        argv.append("--no-push")
    if cookie:
        argv += ["-H", "cookie: " + cookie]
    argv.append(url)
    t = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10)
    ng = learnlib.Ng(r.stdout)
    sid = ng.page_sid
    hints = []
    for _, hs in ng.informational(sid):
        if dict(hs).get(":status") == "103":
            hints += [{"url": u, "attrs": a} for u, a in
                      link_preloads([v for k, v in hs if k.lower() == "link"])]
    fi = ng.final_headers_index(sid)
    final = ng.frames[fi]["headers"] if fi is not None else []
    status = dict(final).get(":status")
    pushes = []
    for psid, path in ng.pushes().items():
        st = ng.status(psid)
        pushes.append({"path": path, "bytes": ng.body_len(psid),
                       "status": int(st) if st and st.isdigit() else None,
                       "reset": any(f["type"] == "RST_STREAM" and f["sid"] == psid
                                    for f in ng.frames)})
    return {"argv": argv, "rc": r.returncode,
            "status": int(status) if status and status.isdigit() else None, "pushes": pushes,
            "hints": hints, "set_cookie": [v for k, v in final if k.lower() == "set-cookie"],
            "html_bytes": ng.body_len(sid), "secs": round(time.monotonic() - t, 3),
            "stderr": r.stderr[-500:] if r.returncode else ""}
