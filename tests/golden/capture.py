#!/usr/bin/python3
"""Record what headless Chromium requests while loading a golden page.

usage: capture.py DIR [PAGE]   (PAGE defaults to index.html)

Serves DIR on 127.0.0.1 (http.server in a thread), loads PAGE in a fresh
headless Chromium (1280x800, DPR 1) driven over the DevTools protocol, waits
for the load event and two quiet seconds, and prints one line per request:

    <resource type> <url> <initiator>

with the server's origin rewritten to http://localhost (herald-scan's default
base). The page itself is left out. The output is raw material for a
<name>.expected file: review it by hand (see SOURCES.md).
"""
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import websocket  # python3-websocket (Debian)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory):
    handler = functools.partial(QuietHandler, directory=directory)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


class Cdp:
    def __init__(self, url):
        self.ws = websocket.create_connection(url, timeout=30)
        self.next_id = 0
        self.events = []

    def call(self, method, session=None, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def pump(self, seconds):
        end = time.time() + seconds
        self.ws.settimeout(0.2)
        while time.time() < end:
            try:
                self.events.append(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                pass
        self.ws.settimeout(30)


def capture(directory, page):
    httpd = serve(directory)
    origin = f"http://127.0.0.1:{httpd.server_address[1]}"
    profile = tempfile.mkdtemp(prefix="herald-capture-")
    port = free_port()
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--force-device-scale-factor=1",
         f"--user-data-dir={profile}", "--window-size=1280,800",
         f"--remote-debugging-port={port}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ws_url = None
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version",
                                            timeout=2) as r:
                    ws_url = json.load(r)["webSocketDebuggerUrl"]
                break
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        if not ws_url:
            raise RuntimeError("chromium did not start")
        cdp = Cdp(ws_url)
        target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
        session = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        cdp.call("Network.enable", session)
        cdp.call("Network.setCacheDisabled", session, cacheDisabled=True)
        cdp.call("Page.enable", session)
        cdp.call("Emulation.setDeviceMetricsOverride", session, width=1280, height=800,
                 deviceScaleFactor=1, mobile=False)
        cdp.call("Page.navigate", session, url=f"{origin}/{page}")
        loaded = time.time() + 20
        while time.time() < loaded:
            cdp.pump(0.5)
            if any(e.get("method") == "Page.loadEventFired" for e in cdp.events):
                break
        cdp.pump(2.0)
        seen = set()
        out = []
        for e in cdp.events:
            if e.get("method") != "Network.requestWillBeSent":
                continue
            p = e["params"]
            url = p["request"]["url"]
            if url.startswith("data:") or url == f"{origin}/{page}":
                continue
            url = url.replace(origin, "http://localhost")
            kind = p.get("type", "Other").lower()
            initiator = p.get("initiator", {}).get("type", "other")
            if (kind, url) in seen:
                continue
            seen.add((kind, url))
            out.append(f"{kind} {url} {initiator}")
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        httpd.shutdown()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    page = sys.argv[2] if len(sys.argv) > 2 else "index.html"
    for line in capture(sys.argv[1], page):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
