"""Helpers for the admin tests: herald with --admin on a fresh
port, JSON calls, and learning the demo page through two nghttp visits."""

import http.client
import json
import os
import time
import urllib.parse

import harness

q = lambda s: urllib.parse.quote(s, safe="")


def herald(T, o, args=(), name=None, token=None, workers=1, check=True):
    """Herald with --admin on a fresh loopback port; h.admin is ADDR:PORT.
    check=False skips the identity probe (a request herald would learn)."""
    port = harness.free_port()
    a = ["--admin=127.0.0.1:%d" % port, "--learn-window=0.3"] + list(args)
    if token:
        a.append("--admin-token=" + token)
    h = T.herald(o, a, name=name, workers=workers, check=check)
    T.check(harness.wait_listen(port, proc=h.p), "admin port %d never listened" % port)
    h.admin = "127.0.0.1:%d" % port
    h.admin_port = port
    return h


def call(h, method, path, body=None, token=None, headers=None, timeout=20):
    """(status, parsed JSON or text, headers dict) of one admin request."""
    c = http.client.HTTPConnection("127.0.0.1", h.admin_port, timeout=timeout)
    hs = dict(headers or {})
    if token:
        hs["Authorization"] = "Bearer " + token
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=hs)
    r = c.getresponse()
    raw = r.read()
    c.close()
    hd = {k.lower(): v for k, v in r.getheaders()}
    if hd.get("content-type", "").startswith("application/json"):
        return r.status, json.loads(raw), hd
    return r.status, raw.decode("utf-8", "replace"), hd


def page_key(h, path="/"):
    return "127.0.0.1:%d%s" % (h.port, path)


def learn(T, h, path="/", visits=2, timeout=20):
    """Visit path with nghttp -nva `visits` times (each visit's evidence is
    committed when its connection closes) and wait until /maps shows it."""
    key = page_key(h, path)
    for _ in range(visits):
        r = T.run(["nghttp", "-nva", "-t", "20", h.url + path], timeout=25)
        T.check(r.returncode == 0, "nghttp failed: %s" % r.stderr[-300:])
        h.settle()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st, j, _ = call(h, "GET", "/maps/page?page=" + q(key), token=getattr(h, "token", None))
        if st == 200 and j.get("visits_total", 0) >= visits and j.get("edges"):
            return j
        time.sleep(0.2)
    raise harness.Failure("page %s never learned" % key)


def pushes(T, h, path="/"):
    """The :path values PUSH_PROMISEd on one nghttp -nva visit."""
    import learnlib
    return learnlib.nghttp(T, h.url + path, ["-a"]).push_paths()
