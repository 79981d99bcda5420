#!/usr/bin/python3
"""HTTP/2 conformance regressions: one case for each h2spec case herald
once failed, rebuilt here with raw frames (h2spec itself is not run: nothing
may be downloaded in CI), plus the behaviour around them that must not
break, and pushes whose origin fetch fails.

- RFC 9113 section 5.1.1: HEADERS on a client stream id lower than one
  already opened, that was never opened itself, is a connection error of
  type PROTOCOL_ERROR (h2spec http2/5.1.1/2). Trailers and DATA the client
  sent on a stream before herald's RST_STREAM for it reached it are legal
  (section 5.4.2, 8.7): no GOAWAY for those.
- RFC 9113 section 3.4: an invalid connection preface is a connection error;
  an `,h2c` listener closes the TCP connection (h2spec http2/3.5/2), while
  the mixed cleartext port answers bytes that are not the preface as
  HTTP/1.1 (400 for a malformed request line, RFC 9112 section 3).
- A pushed stream whose origin answers 4xx/5xx or cannot be reached is reset
  with RST_STREAM(CANCEL): the client never sees an error response it did not
  ask for. The origin's status is still learned, so a later visit does not
  promise the asset again."""

import socket
import struct
import time

import harness
import learnlib as L

T = harness.Tests("forward_conform", need=["curl", "openssl"], python_modules=["h2", "hpack"])
import hpack  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PUSH_PROMISE, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x5, 0x7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
PROTOCOL_ERROR, CANCEL = 0x1, 0x8

site = L.make_site(T)
o = T.origin(site)
H2C_PORT = harness.free_port()
h = T.herald(o, ["--listen=127.0.0.1:%d,h2c" % H2C_PORT], tls=True)
if not harness.wait_listen(H2C_PORT, proc=h.p):
    T.setup_failed(harness.Failure("the ,h2c listener did not listen"))
# A second herald whose clients may open one stream at a time: a client that
# opens two before it acknowledged that setting has the second refused
# (RST_STREAM(REFUSED_STREAM)) while it still sends on it.
h1s = T.herald(o, ["--max-concurrent-streams=1"], name="herald-one-stream")

# Every HTTP/2 port of herald under test: (name, port, tls).
H2_PORTS = [("h2c-only", H2C_PORT, False), ("TLS", h.tls_port, True), ("mixed", h.port, False)]


def frame(ftype, flags, sid, payload=b""):
    return struct.pack("!I", len(payload))[1:] + struct.pack("!BBI", ftype, flags, sid) + payload


class Raw:
    """A hand-driven HTTP/2 client: sends any frame on any stream id (python3-h2
    refuses to send what a server must reject) and records every frame the
    server sends as (type, flags, stream id, payload). ack_settings=False
    leaves the server's SETTINGS unacknowledged, as from a client that sent
    its first requests before they arrived."""

    def __init__(self, port, tls=False, ack_settings=True):
        self.s = harness.h2_socket("127.0.0.1", port, tls, timeout=10)
        self.port = port
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = b""
        self.frames = []
        self.head = {}  # stream id -> the first header block herald sent on it, decoded
        self.eof = False
        self.ack_settings = ack_settings
        # SETTINGS_ENABLE_PUSH = 0: nothing but answers to our own requests
        self.send(PREFACE + frame(SETTINGS, 0, 0, struct.pack("!HI", 0x2, 0)))
        self.read_until(lambda: any(f[0] == SETTINGS and not f[1] & ACK for f in self.frames))

    def send(self, data):
        self.s.sendall(data)

    def headers(self, sid, path, method="GET", extra=(), end_stream=True):
        block = self.enc.encode([(":method", method), (":scheme", "http"),
                                 (":authority", "127.0.0.1:%d" % self.port),
                                 (":path", path)] + list(extra))
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid, block))

    def trailers(self, sid, fields):
        self.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, self.enc.encode(list(fields))))

    def data(self, sid, payload, end_stream=False):
        self.send(frame(DATA, END_STREAM if end_stream else 0, sid, payload))

    def read_until(self, cond, timeout=10):
        """Reads frames until cond() or EOF or timeout; returns cond()."""
        end = time.monotonic() + timeout
        while not cond() and not self.eof:
            left = end - time.monotonic()
            if left <= 0:
                break
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                d = b""
            if not d:
                self.eof = True
                break
            self.buf += d
            while len(self.buf) >= 9:
                ln = struct.unpack("!I", b"\0" + self.buf[:3])[0]
                if len(self.buf) < 9 + ln:
                    break
                ftype, flags = self.buf[3], self.buf[4]
                sid = struct.unpack("!I", self.buf[5:9])[0] & 0x7FFFFFFF
                payload = self.buf[9:9 + ln]
                self.frames.append((ftype, flags, sid, payload))
                self.buf = self.buf[9 + ln:]
                if ftype == HEADERS:  # herald's blocks are small: END_HEADERS, no padding
                    hs = self.dec.decode(payload)  # in order: the decoder's table must follow
                    self.head.setdefault(sid, dict(hs))
                if ftype == SETTINGS and not flags & ACK and self.ack_settings:
                    self.send(frame(SETTINGS, ACK, 0))
        return cond()

    def goaway(self):
        """(last stream id, error code) of the first GOAWAY, or None."""
        for ftype, _, _, p in self.frames:
            if ftype == GOAWAY:
                return struct.unpack("!I", p[:4])[0] & 0x7FFFFFFF, struct.unpack("!I", p[4:8])[0]
        return None

    def ended(self, sid):
        return any(f[2] == sid and f[0] in (DATA, HEADERS) and f[1] & END_STREAM
                   for f in self.frames) or self.reset(sid) is not None

    def reset(self, sid):
        for ftype, _, s, p in self.frames:
            if ftype == RST_STREAM and s == sid:
                return struct.unpack("!I", p[:4])[0]
        return None

    def status(self, sid):
        """:status of the first HEADERS on sid, or None."""
        return self.head.get(sid, {}).get(":status")

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def read_all(port, payload, timeout=10):
    """Connects, sends payload, reads to EOF; returns (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
        got, end = b"", time.monotonic() + timeout
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                d = s.recv(65536)
            except socket.timeout:
                return got, False
            except ConnectionResetError:
                return got, True
            if not d:
                return got, True
            got += d
        return got, False
    finally:
        s.close()


# ---------------------------------------------------------------- 5.1.1

for name, port, tls in H2_PORTS:
    @T.case("%s: HEADERS on a lower stream id never opened -> GOAWAY(PROTOCOL_ERROR)" % name)
    def _(port=port, tls=tls):
        c = Raw(port, tls)
        try:
            c.headers(5, "/_bytes?n=100")
            c.headers(3, "/_bytes?n=100")
            c.read_until(lambda: c.goaway() is not None and c.eof)
            T.check(c.goaway() is not None, "no GOAWAY; frames: %s" % [f[:3] for f in c.frames])
            T.eq(c.goaway()[1], PROTOCOL_ERROR, "GOAWAY error code")
            T.check(c.eof, "connection not closed after GOAWAY")
        finally:
            c.close()


@T.case("h2c-only: ids jumped over stay never-opened after more streams (1, 7, then 3)")
def _():
    c = Raw(H2C_PORT)
    try:
        c.headers(1, "/_bytes?n=10")
        c.headers(7, "/_bytes?n=10")
        c.read_until(lambda: c.ended(1) and c.ended(7))
        T.check(c.goaway() is None, "GOAWAY before the bad stream: %s" % (c.goaway(),))
        T.eq((c.status(1), c.status(7)), ("200", "200"), "statuses of streams 1 and 7")
        c.headers(3, "/_bytes?n=10")
        c.read_until(lambda: c.goaway() is not None and c.eof)
        T.eq(c.goaway(), (7, PROTOCOL_ERROR), "GOAWAY (last stream, code)")
    finally:
        c.close()


# ------------------------------------------- frames after herald's RST_STREAM

for name, port, tls in H2_PORTS[:2]:
    @T.case("%s: DATA and trailers after herald's RST_STREAM(PROTOCOL_ERROR): no GOAWAY" % name)
    def _(port=port, tls=tls):
        c = Raw(port, tls)
        try:
            # more DATA than content-length announced: malformed (RFC 9113
            # section 8.1.1), a stream error herald answers with RST_STREAM
            c.headers(1, "/_sink", "POST", [("content-length", "3")], end_stream=False)
            c.data(1, b"abcdefgh")
            T.check(c.read_until(lambda: c.reset(1) is not None), "stream 1 not reset")
            T.eq(c.reset(1), PROTOCOL_ERROR, "RST_STREAM code on stream 1")
            c.headers(3, "/_bytes?n=100")
            T.check(c.read_until(lambda: c.ended(3)), "stream 3 not answered")
            # what the client had in flight on stream 1 before the reset reached it
            c.data(1, b"more body")
            c.trailers(1, [("x-checksum", "abc")])
            c.headers(5, "/_bytes?n=100")
            c.read_until(lambda: c.ended(5) or c.goaway() is not None)
            T.check(c.goaway() is None, "GOAWAY %s after frames on a reset stream" % (
                c.goaway(),))
            T.eq(c.status(5), "200", "status of stream 5")
        finally:
            c.close()


@T.case("trailers after RST_STREAM(REFUSED_STREAM) (over MAX_CONCURRENT_STREAMS): no GOAWAY")
def _():
    c = Raw(h1s.port, ack_settings=False)
    try:
        c.headers(1, "/_sink", "POST", end_stream=False)  # stays open: holds the one slot
        c.headers(3, "/_sink", "POST", end_stream=False)
        T.check(c.read_until(lambda: c.reset(3) is not None), "stream 3 not refused")
        T.eq(c.reset(3), 0x7, "RST_STREAM code on stream 3 (REFUSED_STREAM)")
        c.data(3, b"body sent before the refusal arrived")
        c.trailers(3, [("x-checksum", "abc")])
        c.data(1, b"abc", end_stream=True)
        c.read_until(lambda: c.ended(1) or c.goaway() is not None)
        T.check(c.goaway() is None, "GOAWAY %s after frames on a refused stream" % (c.goaway(),))
        T.eq(c.status(1), "200", "status of stream 1")
    finally:
        c.close()


# ---------------------------------------------------------------- preface

@T.case("h2c-only: an invalid preface closes the connection without HTTP/1.1 bytes")
def _():
    got, closed = read_all(H2C_PORT, b"INVALID CONNECTION PREFACE\r\n\r\n")
    T.check(closed, "connection still open")
    T.check(not got.startswith(b"HTTP/"), "answered as HTTP/1.x: %r" % got[:40])


@T.case("h2c-only: an HTTP/1.1 request is not served (connection closed)")
def _():
    got, closed = read_all(H2C_PORT, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    T.check(closed, "connection still open")
    T.check(b"HTTP/1.1" not in got, "answered as HTTP/1.1: %r" % got[:40])


@T.case("h2c-only: curl --http2-prior-knowledge gets the origin's file")
def _():
    r = T.curl(["--http2-prior-knowledge"], "http://127.0.0.1:%d/css/site.css" % H2C_PORT)
    T.eq((r.status, r.version), (200, "2"), "status, version")
    with open(site + "/css/site.css", "rb") as f:
        T.eq(r.body, f.read(), "body")


@T.case("mixed port: an invalid preface is an HTTP/1.1 request: 400, then closed")
def _():
    got, closed = read_all(h.port, b"INVALID CONNECTION PREFACE\r\n\r\n")
    T.check(got.startswith(b"HTTP/1.1 400 "), "expected an HTTP/1.1 400, got %r" % got[:40])
    T.check(closed, "connection still open")


@T.case("mixed port: HTTP/1.1 and h2 prior knowledge are both served")
def _():
    r1 = T.curl(["--http1.1"], h.url + "/css/site.css")
    r2 = T.curl(["--http2-prior-knowledge"], h.url + "/css/site.css")
    T.eq((r1.status, r1.version, r2.status, r2.version), (200, "1.1", 200, "2"),
         "status and version over HTTP/1.1 and h2c")


# ---------------------------------------------------------------- pushes

BROKEN = {"/css/item.css": 500, "/img/item-1.png": 404}


def push_visit(port):
    c = L.Client(port)
    try:
        sid = c.get("/", [("accept", "text/html")])
        return c, sid
    finally:
        c.close()


def check_cancelled(c, paths):
    """Every push of paths was reset with CANCEL and got no response HEADERS."""
    pushed = dict((p, s) for s, p in c.pushes())
    missing = [p for p in paths if p not in pushed]
    T.check(not missing, "not promised: %s (promised: %s)" % (missing, sorted(pushed)))
    bad = []
    for p in paths:
        st = c.streams[pushed[p]]
        if st["status"] is not None or st["reset"] != CANCEL:
            bad.append("%s: status %s, reset %s" % (p, st["status"], st["reset"]))
    T.check(not bad, "; ".join(bad))


@T.case("push: origin answers 500 / 404 for a learned asset -> RST_STREAM(CANCEL), no HEADERS")
def _():
    c, sid = push_visit(h.port)  # first visit: learned from the HTML
    T.eq(c.streams[sid]["status"], 200, "first visit status")
    c, sid = push_visit(h.port)
    T.check(set(BROKEN) <= set(c.push_paths()), "second visit did not push %s (pushed %s)" % (
        sorted(BROKEN), c.push_paths()))
    for path, code in BROKEN.items():
        st, _, _ = T.h1(o.port, "GET", "/_set_status?path=%s&code=%d" % (path, code))
        T.eq(st, 200, "origin control /_set_status")
    c, sid = push_visit(h.port)
    T.eq(c.streams[sid]["status"], 200, "page status")
    check_cancelled(c, BROKEN)
    ok = [p for s, p in c.pushes() if p not in BROKEN]
    T.check(ok, "no other push")
    bad = [p for s, p in c.pushes() if p not in BROKEN and c.streams[s]["status"] != 200]
    T.check(not bad, "other pushes not 200: %s" % bad)
    served = {e["target"] for e in o.events("response") if e["status"] in BROKEN.values()}
    T.check(set(BROKEN) <= served, "origin did not answer the error statuses: %s" % served)


@T.case("push: an asset whose pushed fetch failed is not promised on the next visit")
def _():
    c, sid = push_visit(h.port)
    T.eq(c.streams[sid]["status"], 200, "page status")
    T.check(c.push_paths(), "nothing pushed at all")
    again = set(BROKEN) & set(c.push_paths())
    T.check(not again, "promised again: %s" % sorted(again))


@T.case("push: origin unreachable -> page 502, every promised push RST_STREAM(CANCEL)")
def _():
    for path in BROKEN:
        T.h1(o.port, "GET", "/_set_status?path=%s&code=0" % path)
    c, sid = push_visit(h.port)  # the site answers normally again: relearn
    T.eq(c.streams[sid]["status"], 200, "page status")
    o.stop()
    c, sid = push_visit(h.port)
    T.eq(c.streams[sid]["status"], 502, "page status with the origin down")
    T.check(c.pushes(), "nothing promised with the origin down")
    check_cancelled(c, [p for _, p in c.pushes()])


T.finish()
