#!/usr/bin/python3
"""Upgrades: WebSocket echo tunnelled through herald's HTTP/1.1
frontend (cleartext and TLS), other Upgrade tokens → 501, WebSocket over
HTTP/2 (extended CONNECT) → 501 or refused, never forwarded."""

import os
import ssl

import harness

T = harness.Tests("forward_ws", need=["curl", "openssl"], python_modules=["websocket", "h2"])
import websocket  # noqa: E402  (after the module check)

o = T.origin()
h = T.herald(o, tls=True)


def echo_session(url, **kw):
    w = websocket.create_connection(url, timeout=10, **kw)
    try:
        T.eq(w.getheaders().get("x-origin-id"), o.id, "x-origin-id on the 101")
        w.send("hello herald")
        T.eq(w.recv(), "hello herald", "text echo")
        blob = os.urandom(100000)
        w.send_binary(blob)
        T.eq(w.recv(), blob, "100 kB binary echo")
        for i in range(20):
            w.send("msg %d" % i)
        got = [w.recv() for _ in range(20)]
        T.eq(got, ["msg %d" % i for i in range(20)], "20 messages in order")
        w.ping(b"p")
        w.send("after ping")
        T.eq(w.recv(), "after ping", "echo after ping")
    finally:
        w.close()


@T.case("WebSocket echo through the h1 tunnel")
def _():
    echo_session("ws://127.0.0.1:%d/_ws" % h.port)
    T.check(any(e.get("event") == "request" and e["target"] == "/_ws" for e in o.events()),
            "origin never saw the upgrade")


@T.case("WebSocket echo over TLS (ALPN http/1.1)")
def _():
    echo_session("wss://127.0.0.1:%d/_ws" % h.tls_port, sslopt={"cert_reqs": ssl.CERT_NONE})


@T.case("herald serves normally after WebSocket sessions")
def _():
    r = T.curl(["--http2-prior-knowledge"], h.url + "/index.html")
    T.eq((r.returncode, r.status), (0, 200), "rc, status")


@T.case("other Upgrade (h1) → 501, not forwarded")
def _():
    before = len(o.events("request"))
    r = T.curl(["--http1.1", "-H", "Connection: Upgrade", "-H", "Upgrade: foo/1"],
               h.url + "/_echo?upgrade=foo")
    T.eq(r.status, 501, "status")
    T.check(not any(e["target"] == "/_echo?upgrade=foo" for e in o.events("request")[before:]),
            "the upgrade request reached the origin")


@T.case("WebSocket over h2 (extended CONNECT) → 501 or refused")
def _():
    c = harness.H2(h.port)
    c.pump(1, lambda: False)  # take the server's SETTINGS
    from h2.settings import SettingCodes
    enabled = c.conn.remote_settings.get(SettingCodes.ENABLE_CONNECT_PROTOCOL, 0)
    try:
        r = c.request("CONNECT", "/_ws", headers=[(":protocol", "websocket"),
                                                  ("sec-websocket-version", "13")], timeout=5)
    except Exception as e:
        # h2 refuses :protocol when the server did not enable it: refused.
        T.check(not enabled, "client could not send extended CONNECT: %r" % e)
        return
    finally:
        c.close()
    T.check(r["status"] == 501 or r["reset"] is not None or r["goaway"] is not None,
            "extended CONNECT: status %r reset %r goaway %r" % (r["status"], r["reset"],
                                                                r["goaway"]))
    T.check(not any(e["target"] == "/_ws" and e["method"] == "CONNECT"
                    for e in o.events("request")), "CONNECT reached the origin")


T.finish()
