#!/usr/bin/python3
"""Memory comes back: after a burst of idle HTTP/2 connections (cleartext
and TLS) is closed, herald's RSS returns close to what it was before the
burst, instead of keeping the freed buffers resident. The bound is coarse
(it catches memory kept for good, not a few pages); the test waits for
herald's connection count to reach 0 (admin /stats), then for RSS to fall
under the bound, never for a fixed time. Under a sanitizer RSS means
nothing (shadow memory, quarantine): the bound is not checked there."""

import socket
import ssl
import time

import harness

H2C, TLS = 300, 200
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"

T = harness.Tests("forward_memory", need=["openssl"])
o = T.origin()
h = T.herald(o, tls=True)


def open_h2(port, ctx=None):
    """An idle HTTP/2 connection: preface and SETTINGS sent, herald's SETTINGS read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    if ctx is not None:
        s = ctx.wrap_socket(s, server_hostname="localhost")
    s.sendall(PREFACE)
    head = b""
    while len(head) < 9:
        b = s.recv(9 - len(head))
        T.check(b, "herald closed a new connection")
        head += b
    T.eq(head[3], 4, "first frame type (SETTINGS)")
    return s


def wait_count(n, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if h.stats()["active_connections"] == n:
            return
        time.sleep(0.02)
    raise harness.Failure("herald never counted %d connections (has %d)" % (
        n, h.stats()["active_connections"]))


def burst(ctx):
    socks = [open_h2(h.port) for _ in range(H2C)]
    socks += [open_h2(h.tls_port, ctx) for _ in range(TLS)]
    wait_count(len(socks))
    rss = harness.rss_kib(h.pid)
    for s in socks:
        s.close()
    wait_count(0)
    return rss


@T.case("%d h2c + %d TLS idle connections opened and closed, twice: RSS comes back" % (H2C, TLS))
def _():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    # warm up: code and tables a TLS handshake and an h2 session touch are resident from here
    open_h2(h.port).close()
    open_h2(h.tls_port, ctx).close()
    wait_count(0)
    base = harness.rss_kib(h.pid)
    peak = burst(ctx)
    if harness.sanitized():
        raise harness.Skip("sanitizer build: RSS is not herald's own (burst peak %d KiB)" % peak)
    grew = peak - base
    T.check(grew >= 4096, "the burst grew RSS by %d KiB only: nothing to measure" % grew)
    # coarse: a quarter of what the burst took, plus 2 MiB of slack
    bound = base + grew // 4 + 2048
    end = time.monotonic() + 20
    while harness.rss_kib(h.pid) > bound and time.monotonic() < end:
        time.sleep(0.05)
    after = harness.rss_kib(h.pid)
    T.check(after <= bound, "RSS %d KiB before, %d KiB with %d connections, still %d KiB after "
            "they closed (bound %d)" % (base, peak, H2C + TLS, after, bound))
    # a second burst: what the first left must not add up
    burst(ctx)
    end = time.monotonic() + 20
    while harness.rss_kib(h.pid) > bound and time.monotonic() < end:
        time.sleep(0.05)
    after2 = harness.rss_kib(h.pid)
    T.check(after2 <= bound, "after a second burst RSS is %d KiB (bound %d, base %d)" % (
        after2, bound, base))
    print("# RSS KiB: base %d, with %d connections %d, after %d, after a second burst %d" % (
        base, H2C + TLS, peak, after, after2), flush=True)


T.finish()
