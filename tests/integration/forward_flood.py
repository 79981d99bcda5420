#!/usr/bin/python3
"""Floods, raw HTTP/2 frames built with python3-h2's hpack: rapid
reset (HEADERS + RST_STREAM for thousands of streams) and a CONTINUATION flood
(HEADERS without END_HEADERS, then CONTINUATION frames without end).  herald
must send GOAWAY to the attacker while another client's requests, made all
along the attack, still succeed promptly."""

import socket
import struct
import threading
import time

import harness

T = harness.Tests("forward_flood", need=["curl"], python_modules=["h2", "hpack"])
import hpack  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, RST_STREAM, SETTINGS, GOAWAY, CONTINUATION = 0x1, 0x3, 0x4, 0x7, 0x9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
BOUND = 5.0  # generous: this catches a starved bystander, it is not a timing test

o = T.origin()
h = T.herald(o)


def frame(ftype, flags, sid, payload=b""):
    return struct.pack("!I", len(payload))[1:] + struct.pack("!BBI", ftype, flags, sid) + payload


class Attacker:
    """A raw h2 connection; a reader thread records the server's frames."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.sendall(PREFACE + frame(SETTINGS, 0, 0))
        self.goaway = None
        self.closed = False
        self.frames = 0
        self.t = threading.Thread(target=self.read, daemon=True)
        self.t.start()

    def read(self):
        buf = b""
        while True:
            try:
                d = self.s.recv(65536)
            except OSError:
                d = b""
            if not d:
                self.closed = True
                return
            buf += d
            while len(buf) >= 9:
                ln = struct.unpack("!I", b"\0" + buf[:3])[0]
                if len(buf) < 9 + ln:
                    break
                ftype, flags = buf[3], buf[4]
                payload = buf[9:9 + ln]
                buf = buf[9 + ln:]
                self.frames += 1
                if ftype == GOAWAY and self.goaway is None:
                    self.goaway = struct.unpack("!I", payload[4:8])[0]
                elif ftype == SETTINGS and not flags & ACK:
                    self.send(frame(SETTINGS, ACK, 0))

    def send(self, data):
        try:
            self.s.sendall(data)
            return True
        except OSError:
            return False

    def over(self):
        return self.goaway is not None or self.closed

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class Bystander:
    """Requests /index.html every 0.2 s on fresh connections during an attack."""

    def __init__(self):
        self.results = []
        self.stop_ = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop_:
            r = T.curl(["--http2-prior-knowledge", "--max-time", "10"], h.url + "/index.html")
            self.results.append((r.returncode, r.status, round(r.elapsed, 2)))
            time.sleep(0.2)

    def stop(self):
        self.stop_ = True
        self.t.join(15)
        return self.results


def end_attack(a, by):
    """Waits (bounded) for the attacker's GOAWAY or close, lets the bystander
    go on a little, stops it and returns its results."""
    deadline = time.monotonic() + 5
    while not a.over() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the bystander keeps going a little after the attack
    res = by.stop()
    a.close()
    return res


def check_bystander(res):
    T.check(len(res) >= 1, "bystander made no request")
    bad = [x for x in res if x[0] != 0 or x[1] != 200 or x[2] > BOUND]
    T.check(not bad, "bystander requests failed or slow (rc, status, s): %r" % bad[:5])


@T.case("rapid reset: attacker gets GOAWAY, bystander served")
def _():
    by = Bystander()
    a = Attacker(h.port)
    enc = hpack.Encoder()
    sid, t0 = 1, time.monotonic()
    while not a.over() and sid < 2 * 200000 and time.monotonic() - t0 < 20:
        batch = []
        for _ in range(200):
            block = enc.encode([(":method", "GET"), (":scheme", "http"),
                                (":authority", "127.0.0.1"), (":path", "/_think?ms=50")])
            batch.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, block))
            batch.append(frame(RST_STREAM, 0, sid, struct.pack("!I", 8)))  # CANCEL
            sid += 2
        if not a.send(b"".join(batch)):
            break
    res = end_attack(a, by)
    T.check(a.goaway is not None, "no GOAWAY after %d streams opened and reset (closed=%s)" % (
        sid // 2, a.closed))
    check_bystander(res)
    n_origin = len([e for e in o.events("request") if e["target"].startswith("/_think")])
    print("# rapid reset: GOAWAY code %s after %d streams sent; %d reached the origin; "
          "bystander (rc, status, s): %s" % (a.goaway, sid // 2, n_origin, res))


@T.case("CONTINUATION flood: attacker gets GOAWAY, bystander served")
def _():
    by = Bystander()
    a = Attacker(h.port)
    enc = hpack.Encoder()
    block = enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"),
                        (":path", "/index.html")])
    a.send(frame(HEADERS, END_STREAM, 1, block))  # no END_HEADERS
    n, t0 = 0, time.monotonic()
    while not a.over() and n < 200000 and time.monotonic() - t0 < 20:
        batch = []
        for _ in range(100):
            hb = enc.encode([hpack.NeverIndexedHeaderTuple("x-flood-%d" % n, "a" * 1000)])
            batch.append(frame(CONTINUATION, 0, 1, hb))
            n += 1
        if not a.send(b"".join(batch)):
            break
    res = end_attack(a, by)
    T.check(a.goaway is not None, "no GOAWAY after %d CONTINUATION frames (closed=%s)" % (
        n, a.closed))
    check_bystander(res)
    print("# continuation flood: GOAWAY code %s after %d frames" % (a.goaway, n))


@T.case("herald alive and serving after the floods")
def _():
    T.check(h.alive(), "herald exited")
    r = T.curl(["--http2-prior-knowledge"], h.url + "/index.html")
    T.eq((r.returncode, r.status), (0, 200), "rc, status")


T.finish()
