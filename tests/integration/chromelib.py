"""Headless Chromium for the integration tests: navigations over TLS with
herald's self-signed certificate trusted by its SPKI hash (so Chromium acts
on 103 Early Hints; with plain --ignore-certificate-errors it ignores them),
or with --ignore-certificate-errors (then it ignores them), a fresh
--user-data-dir per call, driven through chromedriver (python3-selenium).

With Early Hints expected (spki given), Chromium reaches the proxy through
bench/relay.py with a round-trip time of RTT_MS, as any real client does:
on bare loopback the 103 can arrive before Chromium's network stack has
finished sending the request, and Chromium 156 then drops it (its net-log
shows the 103 frame before HTTP_TRANSACTION_SEND_REQUEST ends, and no
early-hints event follows).  Chromium keeps the URL's authority (the relay is
reached by --host-resolver-rules), so the proxy sees the same host:port as
every other client of the test."""

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse

RTT_MS = 20
RELAY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "bench", "relay.py")


def start_relay(host, port, rtt_ms, log_dir):
    """bench/relay.py in front of host:port (no bandwidth cap); returns
    (process, relay port).  Stop it with stop_relay (by its PID)."""
    err = open(os.path.join(log_dir, "relay-%d.err" % port), "ab")
    p = subprocess.Popen(["/usr/bin/python3", RELAY, "--to", "%s:%d" % (host, port),
                          "--rtt-ms", str(rtt_ms), "--listen", host + ":0"],
                         stdout=subprocess.PIPE, stderr=err)
    err.close()
    line = p.stdout.readline().decode()
    if not line.startswith("PORT "):
        stop_relay(p)
        raise RuntimeError("relay did not start: %r" % line)
    return p, int(line.split()[1])


def stop_relay(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if p.stdout:
        p.stdout.close()


def spki_hash(cert):
    """base64 SHA-256 of the certificate's SubjectPublicKeyInfo."""
    der = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=der,
                         capture_output=True, check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def path_of(name):
    return "/" + name.split("://", 1)[1].split("/", 1)[1]


def navigate(urls, base_dir, spki=None, netlog=None, settle_ms=300, rtt_ms=RTT_MS):
    """Loads each of `urls` in turn in one fresh headless Chromium profile
    (a string is one URL); returns, for the last one, the resource entries
    [{name, initiatorType, ...}] and a dict about the navigation
    (nextHopProtocol, early_hints_events, x_herald).  spki None: the
    certificate errors are ignored, and so are Early Hints.  With spki, the
    path to the first URL's host:port has a round-trip time of rtt_ms
    (0: bare loopback)."""
    if isinstance(urls, str):
        urls = [urls]
    relay = None
    if spki and rtt_ms:
        u = urllib.parse.urlsplit(urls[0])
        relay, rport = start_relay(u.hostname, u.port, rtt_ms, base_dir)
    try:
        return _navigate(urls, base_dir, spki, netlog, settle_ms,
                         "MAP %s:%d %s:%d" % (u.hostname, u.port, u.hostname, rport)
                         if relay else None)
    finally:
        if relay:
            stop_relay(relay)


@contextlib.contextmanager
def browser(url, base_dir, spki, rtt_ms=RTT_MS):
    """A fresh headless Chromium profile (a selenium driver) for scripted
    steps (clicks); the path to url's host:port has a round-trip time of
    rtt_ms through the relay, as in navigate().  The profile is removed and
    the relay stopped when the block ends."""
    u = urllib.parse.urlsplit(url)
    relay, rport = start_relay(u.hostname, u.port, rtt_ms, base_dir)
    try:
        d, udd = _driver(base_dir, spki, None,
                         "MAP %s:%d %s:%d" % (u.hostname, u.port, u.hostname, rport))
        try:
            d.set_page_load_timeout(30)
            yield d
        finally:
            d.quit()
            shutil.rmtree(udd, ignore_errors=True)
    finally:
        stop_relay(relay)


def wait_loaded(d, settle_ms=0):
    """Waits for the current document's load event (plus settle_ms)."""
    d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        if (document.readyState === 'complete') setTimeout(done, %d);
        else addEventListener('load', () => setTimeout(done, %d));""" % (settle_ms, settle_ms))


@contextlib.contextmanager
def page_browser(base_dir, window_size="1200,1400"):
    """A fresh headless Chromium profile (a selenium driver) on bare loopback,
    certificate errors ignored (so no Early Hints), for pages herald serves
    itself such as the admin page; the profile is removed when the block ends."""
    d, udd = _driver(base_dir, None, None, None, ["--window-size=" + window_size])
    try:
        d.set_page_load_timeout(30)
        yield d
    finally:
        d.quit()
        shutil.rmtree(udd, ignore_errors=True)


def _driver(base_dir, spki, netlog, resolver_rules, extra=()):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    udd = tempfile.mkdtemp(prefix="udd-", dir=base_dir)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            "--disable-dev-shm-usage", "--user-data-dir=" + udd] + list(extra)
    args.append("--ignore-certificate-errors-spki-list=" + spki if spki else
                "--ignore-certificate-errors")
    if resolver_rules:
        args.append("--host-resolver-rules=" + resolver_rules)
    if netlog:
        args += ["--log-net-log=" + netlog, "--net-log-capture-mode=Everything"]
    for a in args:
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    svc = Service("/usr/bin/chromedriver", log_output=os.path.join(base_dir, "chromedriver.log"))
    return webdriver.Chrome(options=opts, service=svc), udd


def _navigate(urls, base_dir, spki, netlog, settle_ms, resolver_rules):
    d, udd = _driver(base_dir, spki, netlog, resolver_rules)
    try:
        d.set_page_load_timeout(30)
        for u in urls:
            d.get(u)
            wait_loaded(d, settle_ms)
        res = d.execute_script("""
            return performance.getEntriesByType('resource').map(e => ({
              name: e.name, initiatorType: e.initiatorType, transferSize: e.transferSize,
              startTime: e.startTime, responseEnd: e.responseEnd,
              nextHopProtocol: e.nextHopProtocol}));""")
        nav = d.execute_script("""
            const n = performance.getEntriesByType('navigation')[0];
            return {nextHopProtocol: n.nextHopProtocol, responseStart: n.responseStart};""")
        # diagnostics: did Chromium's network stack see a 103, and the page's x-herald
        nav["early_hints_events"] = 0
        nav["x_herald"] = None
        try:
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


def netlog_103s(path):
    """How many 103 header blocks Chromium's net-log shows (-1: unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().count(":status: 103")
    except OSError:
        return -1
