#!/usr/bin/python3
"""Descriptors: herald raises its soft RLIMIT_NOFILE to the hard limit and
logs it; out of descriptors (EMFILE in accept) it stops accepting for a
moment, says so once, does not spin, keeps serving the connections it has,
and serves the clients that waited in the backlog once descriptors free up.
The CPU bound is coarse: a spinning accept loop burns the whole window."""

import socket
import time

import harness
import poollib as P

T = harness.Tests("forward_fdlimit", need=["prlimit"])
o = T.origin()


def start(limit, name):
    port = harness.free_port()
    p = T.spawn(name, ["prlimit", "--nofile=%s" % limit, "--", harness.herald_bin(),
                       "--origin=" + o.url, "--listen=127.0.0.1:%d" % port, "--workers=1",
                       "--origin-idle-timeout=60", "--log-level=info"])
    T.check(harness.wait_listen(port, proc=p.p), "%s did not start: %s" % (name, p.stderr_tail()))
    return p, port


def log(p):
    with open(p.err_path) as f:
        return f.read()


@T.case("RLIMIT_NOFILE: the soft limit goes up to the hard one, and the log says so")
def _():
    p, _ = start("256:4096", "herald-raise")
    with open("/proc/%d/limits" % p.pid) as f:
        line = [x for x in f if x.startswith("Max open files")][0]
    T.eq(line.split()[3:5], ["4096", "4096"], "soft and hard limit")
    T.check("open files limit 4096" in log(p), "no limit in the log: %s" % log(p)[-300:])
    p.stop()


@T.case("EMFILE in accept: paused and logged once, no spinning, the backlog served after")
def _():
    p, port = start("4096:4096", "herald-emfile")
    # a keep-alive client with a warm origin connection behind it
    keep = socket.create_connection(("127.0.0.1", port), timeout=10)
    req = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"

    def roundtrip(s):
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        n = int([l.split(b":")[1] for l in head.split(b"\r\n")
                 if l.lower().startswith(b"content-length:")][0])
        while len(body) < n:
            body += s.recv(65536)
        return head.split(b"\r\n")[0]

    T.eq(roundtrip(keep), b"HTTP/1.1 200 OK", "first response")
    # leave herald 8 descriptors to spare
    T.run(["prlimit", "--pid", str(p.pid), "--nofile=%d:%d" % ((P.fds(p.pid) + 8,) * 2)])
    flood = []
    for _ in range(40):
        flood.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    T.check(P.wait_for(lambda: "Too many open files" in log(p), 10),
            "no EMFILE line in the log: %s" % log(p)[-300:])
    cpu0, t0 = P.cpu_s(p.pid), time.monotonic()
    while time.monotonic() - t0 < 2.0:  # more clients keep coming meanwhile
        flood.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        time.sleep(0.05)
    cpu = P.cpu_s(p.pid) - cpu0
    T.check(cpu < 0.5, "herald used %.2f s of CPU in 2 s without descriptors" % cpu)
    T.eq(log(p).count("Too many open files"), 1, "EMFILE log lines")
    # the connection it has is served (its origin connection is idle in the pool)
    T.eq(roundtrip(keep), b"HTTP/1.1 200 OK", "response while out of descriptors")
    # a client that arrives now waits in the backlog, and is served once the flood is gone
    late = socket.create_connection(("127.0.0.1", port), timeout=15)
    late.sendall(req)
    for s in flood:
        s.close()
    late.settimeout(15)
    first = late.recv(65536).split(b"\r\n")[0]
    T.eq(first, b"HTTP/1.1 200 OK", "the late client's response")
    T.check(P.wait_for(lambda: "accepting connections again" in log(p), 5),
            "no recovery line in the log")
    late.close()
    keep.close()
    p.stop()


T.finish()
