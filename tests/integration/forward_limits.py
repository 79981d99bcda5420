#!/usr/bin/python3
"""Client limits: a client that stops sending its request gets a
408 (or loses its stream) after --header-timeout / --body-timeout, on
HTTP/1.1 and per stream on HTTP/2, while other requests on the same HTTP/2
connection go on; a client held back by herald's own flow control (the
origin is slow to read) is not stalling and its upload completes.  Expected
statuses and frames come from RFC 9110 §15.5.9 (408) and RFC 9113 §8.1
(a complete response, then RST_STREAM NO_ERROR)."""

import socket
import struct
import time

import harness

T = harness.Tests("forward_limits", need=["curl"], python_modules=["h2", "hpack"])
import hpack  # noqa: E402

HEADER_T, BODY_T = 1.0, 1.0
BOUND = 6.0  # generous: catches a timeout that never fires, not a timing test
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, SETTINGS, GOAWAY = 0x1, 0x4, 0x7

o = T.origin()
h = T.herald(o, args=["--header-timeout=%g" % HEADER_T, "--body-timeout=%g" % BODY_T])


def stalled(data):
    """Sends data on a fresh connection, then nothing; returns (the bytes
    herald sent, seconds until it closed the connection)."""
    s = socket.create_connection(("127.0.0.1", h.port), timeout=BOUND + 5)
    t0 = time.monotonic()
    s.sendall(data)
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except OSError:
        pass
    s.close()
    return got, time.monotonic() - t0


@T.case("h1: a request head left unfinished gets 408 and a close")
def _():
    got, took = stalled(b"GET /index.html HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    T.check(got.startswith(b"HTTP/1.1 408 "), "no 408: %r" % got[:80])
    T.check(HEADER_T * 0.8 <= took <= BOUND, "closed after %.2fs" % took)


@T.case("h1: a request body that stops gets 408 and the origin request is dropped")
def _():
    got, took = stalled(b"POST /_sink?tag=h1stall HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 1000\r\n\r\n" + b"x" * 100)
    T.check(got.startswith(b"HTTP/1.1 408 ") or got == b"",
            "expected 408 (or a close if the origin already answered): %r" % got[:80])
    T.check(BODY_T * 0.8 <= took <= BOUND, "closed after %.2fs" % took)
    time.sleep(0.3)
    done = [e for e in o.events("response") if "h1stall" in e["target"]]
    T.check(not done, "origin completed a request whose body never arrived: %r" % done)


@T.case("h2: a stalled request body gets 408 + RST_STREAM(NO_ERROR); its neighbour is served")
def _():
    c = harness.H2(h.port, timeout=BOUND + 5)
    t0 = time.monotonic()
    sid = c.send_request("POST", "/_sink?tag=h2stall", [("content-length", "1000")],
                         body=b"y" * 100, open_=True)
    # the neighbour, while the stall is on
    r = c.request("GET", "/index.html", timeout=BOUND)
    T.eq(r["status"], 200, "neighbour status during the stall")
    c.pump(BOUND, c.done(sid))
    took = time.monotonic() - t0
    st = c.result(sid)
    T.eq(st["status"], 408, "stalled stream status")
    T.check(st["ended"], "408 did not end the stream")
    c.pump(1.0, lambda: c.streams[sid]["reset"] is not None)
    T.eq(c.streams[sid]["reset"], 0, "RST_STREAM code after the 408 (NO_ERROR)")
    T.check(BODY_T * 0.8 <= took <= BOUND, "408 after %.2fs" % took)
    r = c.request("GET", "/index.html", timeout=BOUND)
    T.eq((r["status"], r["goaway"]), (200, None), "connection usable after the 408")
    c.close()
    time.sleep(0.3)
    done = [e for e in o.events("response") if "h2stall" in e["target"]]
    T.check(not done, "origin completed a request whose body never arrived: %r" % done)


@T.case("h2: a header block left unfinished ends the connection with GOAWAY")
def _():
    enc = hpack.Encoder()
    block = enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"),
                        (":path", "/index.html")])
    hdr = struct.pack("!I", len(block))[1:] + struct.pack("!BBI", HEADERS, 0, 1)  # no END_HEADERS
    got, took = stalled(PREFACE + b"\0\0\0" + bytes([SETTINGS, 0]) + b"\0\0\0\0" + hdr + block)
    goaway = None
    i = 0
    while i + 9 <= len(got):
        ln = struct.unpack("!I", b"\0" + got[i:i + 3])[0]
        if got[i + 3] == GOAWAY:
            goaway = struct.unpack("!I", got[i + 13:i + 17])[0]
        i += 9 + ln
    T.check(goaway is not None, "no GOAWAY before the close (%d bytes read)" % len(got))
    T.check(HEADER_T * 0.8 <= took <= BOUND, "closed after %.2fs" % took)


@T.case("h2: an upload held back by flow control (slow origin) is not a stall")
def _():
    body = bytes(range(256)) * (16 * 4096)  # 16 MiB: more than socket buffers and windows
    c = harness.H2(h.port, timeout=30)
    sid = c.send_request("POST", "/_sink?think_ms=%d" % int(BODY_T * 3000),
                         [("content-length", str(len(body)))], open_=True)
    off, deadline = 0, time.monotonic() + 30
    while off < len(body) and time.monotonic() < deadline and c.streams[sid]["reset"] is None:
        room = min(c.conn.local_flow_control_window(sid), c.conn.outbound_flow_control_window,
                   c.conn.max_outbound_frame_size)
        if room > 0:
            n = min(room, len(body) - off)
            c.conn.send_data(sid, body[off:off + n], end_stream=off + n == len(body))
            c.flush()
            off += n
        else:
            c.pump(1.0, lambda: min(c.conn.local_flow_control_window(sid),
                                    c.conn.outbound_flow_control_window) > 0)
    c.pump(30, c.done(sid))
    st = c.result(sid)
    c.close()
    T.eq(st["status"], 200, "status of the held-back upload")
    T.check(b'"len": %d' % len(body) in st["body"], "origin did not get the whole body: %r" %
            st["body"][:120])


@T.case("h2: after a hold, the body clock starts when the window reopens")
def _():
    # The origin takes the body after 2.5 body timeouts; herald's scans find
    # the client held back at 1 and 2 timeouts. The client then waits 0.7 of
    # a timeout after the window reopens before it sends again: less than
    # the timeout it is allowed from that moment (RFC 9113 flow control: it
    # may not send before), so the upload must complete.
    body = bytes(range(256)) * (16 * 4096)
    c = harness.H2(h.port, timeout=30)
    sid = c.send_request("POST", "/_sink?think_ms=%d" % int(BODY_T * 2500),
                         [("content-length", str(len(body)))], open_=True)
    off, deadline, held_since, waited = 0, time.monotonic() + 30, None, False
    while off < len(body) and time.monotonic() < deadline and c.streams[sid]["reset"] is None:
        room = min(c.conn.local_flow_control_window(sid), c.conn.outbound_flow_control_window,
                   c.conn.max_outbound_frame_size)
        if room > 0:
            if held_since is not None and not waited and time.monotonic() - held_since > BODY_T:
                waited = True
                time.sleep(BODY_T * 0.7)
            held_since = None
            n = min(room, len(body) - off)
            c.conn.send_data(sid, body[off:off + n], end_stream=off + n == len(body))
            c.flush()
            off += n
        else:
            if held_since is None:
                held_since = time.monotonic()
            c.pump(1.0, lambda: min(c.conn.local_flow_control_window(sid),
                                    c.conn.outbound_flow_control_window) > 0)
    c.pump(30, c.done(sid))
    st = c.result(sid)
    c.close()
    T.check(waited, "the client was never held back for a whole body timeout")
    T.eq(st["status"], 200, "status of the upload that waited after the hold")
    T.check(b'"len": %d' % len(body) in st["body"], "origin did not get the whole body: %r" %
            st["body"][:120])


T.finish()
