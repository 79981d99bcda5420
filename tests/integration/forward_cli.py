#!/usr/bin/python3
"""Command line and config file: bad flags and bad config lines
exit 2 with a message naming them, --help lists every option with its
default, flags override the config file, TLS key problems fail at start-up,
and a fresh port is answered by our herald and our origin."""

import os
import socket
import time

import harness
from harness import echo_headers

if os.environ.get("HERALD_PROXY", "herald") != "herald":
    print("1..0 # SKIP forward_cli tests herald's own command line")
    raise SystemExit(77)

T = harness.Tests("forward_cli", need=["curl", "openssl"])
BIN = harness.herald_bin()
OPTIONS = ["--origin", "--listen", "--tls-cert", "--tls-key", "--workers", "--config",
           "--log-level", "--access-log", "--origin-timeout", "--idle-timeout", "--origin-host",
           "--origin-idle-timeout", "--trust-forwarded"]

o = T.origin()


def herald_run(args, timeout=5):
    """Runs herald expecting it to exit by itself (bad input)."""
    return T.run([BIN] + args, timeout=timeout)


def base_args():
    return ["--origin=" + o.url, "--listen=127.0.0.1:%d" % harness.free_port(), "--workers=1"]


def expect_exit2(args, mention):
    r = herald_run(args)
    T.check(r.returncode == 2, "%s: exit %r, want 2 (stderr: %s)" % (args, r.returncode,
                                                                     r.stderr.strip()[:200]))
    msg = (r.stderr + r.stdout).lower()
    T.check(msg.strip(), "%s: exit 2 without a message" % args)
    T.check(mention.lower() in msg, "%s: message does not name %r: %s" % (
        args, mention, msg.strip()[:300]))


@T.case("unknown flag → exit 2 naming it")
def _():
    expect_exit2(base_args() + ["--no-such-flag=1"], "no-such-flag")


@T.case("bad values → exit 2 naming the option")
def _():
    for bad, name in [("--workers=lots", "workers"), ("--log-level=loud", "log-level"),
                      ("--trust-forwarded=maybe", "trust-forwarded"),
                      ("--origin-timeout=-3", "origin-timeout"),
                      ("--idle-timeout=soon", "idle-timeout")]:
        expect_exit2(base_args() + [bad], name)


@T.case("bad --origin / --listen → exit 2")
def _():
    expect_exit2(["--origin=ftp://127.0.0.1:21", "--listen=127.0.0.1:%d" % harness.free_port()],
                 "origin")
    expect_exit2(["--origin=" + o.url, "--listen=not-an-address"], "listen")
    expect_exit2(["--origin=" + o.url, "--listen=127.0.0.1:99999"], "listen")


@T.case("config file with a bad line → exit 2 naming the line")
def _():
    cfg = os.path.join(T.dir, "bad.conf")
    with open(cfg, "w") as f:
        f.write("# herald test config\norigin = %s\n\nworkers = 1\nno-such-option = 7\n" % o.url)
    r = herald_run(["--config=" + cfg, "--listen=127.0.0.1:%d" % harness.free_port()])
    T.eq(r.returncode, 2, "exit code (stderr: %s)" % r.stderr.strip()[:200])
    msg = r.stderr + r.stdout
    T.check("no-such-option" in msg, "message does not name the option: %s" % msg.strip())
    T.check(":5" in msg or "line 5" in msg, "message does not give line 5: %s" % msg.strip())
    with open(cfg, "w") as f:
        f.write("origin = %s\nworkers = many\n" % o.url)
    r = herald_run(["--config=" + cfg, "--listen=127.0.0.1:%d" % harness.free_port()])
    T.eq(r.returncode, 2, "bad value: exit code")
    msg = r.stderr + r.stdout
    T.check(":2" in msg or "line 2" in msg, "bad value: message lacks line 2: %s" % msg.strip())


@T.case("missing config file → exit 2")
def _():
    expect_exit2(["--config=/nonexistent/herald.conf"], "herald.conf")


@T.case("--help lists every option with defaults, exit 0")
def _():
    r = herald_run(["--help"])
    T.eq(r.returncode, 0, "exit code")
    text = r.stdout + r.stderr
    missing = [x for x in OPTIONS if x not in text]
    T.check(not missing, "--help does not list %s" % missing)
    T.check("default" in text.lower(), "--help shows no defaults")


@T.case("config file works; command-line flags override it")
def _():
    port = harness.free_port()
    cfg = os.path.join(T.dir, "good.conf")
    with open(cfg, "w") as f:
        f.write("# comment\norigin = %s\nlisten = 127.0.0.1:%d\nworkers = 1\n"
                "origin-host = from-config\n" % (o.url, port))
    hc = T.spawn("herald-config", [BIN, "--config=" + cfg])
    T.check(harness.wait_listen(port, proc=hc.p), "herald from config did not listen: " +
            hc.stderr_tail())
    r = T.curl(["--http2-prior-knowledge"], "http://127.0.0.1:%d/_echo" % port)
    T.eq(echo_headers(__import__("json").loads(r.body)).get("host"), ["from-config"],
         "Host from config")
    hc.stop()
    h2 = T.herald(o, args=["--config=" + cfg, "--origin-host=from-flag"], name="herald-override")
    r = T.curl(["--http2-prior-knowledge"], h2.url + "/_echo")
    T.eq(echo_headers(__import__("json").loads(r.body)).get("host"), ["from-flag"],
         "flag overrides config")
    h2.stop()


@T.case("--log-level=debug prints debug lines in the build under test")
def _():
    hd = T.herald(o, args=["--log-level=debug"], name="herald-debug")
    r = T.curl(["--http2-prior-knowledge"], hd.url + "/_echo")
    T.eq(r.status, 200, "status")
    hd.stop()
    with open(hd.err_path, encoding="utf-8", errors="replace") as f:
        err = f.read()
    T.check(" debug: " in err, "no debug line in herald's stderr: %r" % err[-500:])


@T.case("unreadable or mismatched TLS key/cert → clear start-up error")
def _():
    key, cert = T.cert()
    tls = "--listen=127.0.0.1:%d,tls" % harness.free_port()
    r = herald_run(["--origin=" + o.url, tls, "--tls-cert=/nonexistent/cert.pem",
                    "--tls-key=" + key])
    T.check(r.returncode not in (0, "timeout"), "missing cert: exit %r" % r.returncode)
    T.check("cert" in (r.stderr + r.stdout).lower(), "missing cert: no message naming it")
    other = os.path.join(T.dir, "other.key")
    T.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-out", other])
    r = herald_run(["--origin=" + o.url, tls, "--tls-cert=" + cert, "--tls-key=" + other])
    T.check(r.returncode not in (0, "timeout"), "mismatched key: exit %r" % r.returncode)
    T.check((r.stderr + r.stdout).strip(), "mismatched key: no message")


@T.case("port held by another (non-SO_REUSEPORT) socket → start-up fails")
def _():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        r = herald_run(["--origin=" + o.url, "--listen=127.0.0.1:%d" % port, "--workers=1"])
        T.check(r.returncode not in (0, "timeout"), "herald exit %r while the port was taken" %
                r.returncode)
    finally:
        s.close()


@T.case("SIGTERM the moment herald listens: it drains and exits 0, never dies of it")
def _():
    # herald used to install its SIGTERM handler after opening its listeners
    # and admin port: a SIGTERM in between killed it (half of such starts).
    for i in range(20):
        port = harness.free_port()
        p = T.spawn("herald-early-%d" % i, [BIN, "--origin=" + o.url,
                                            "--listen=127.0.0.1:%d" % port, "--workers=2"])
        end = time.monotonic() + 20  # polled tightly: the signal follows the first answer
        while p.alive() and time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.0002)
        T.check(p.alive(), "start %d: herald exited: %s" % (i, p.stderr_tail()))
        T.eq(p.stop(), 0, "start %d: exit status after SIGTERM" % i)


@T.case("fresh ports: each herald answers with its own origin")
def _():
    o2 = T.origin(oid="second-%d" % os.getpid())
    ha = T.herald(o, name="herald-a")       # identity checked inside
    hb = T.herald(o2, name="herald-b", workers=2)
    for hh, oo in ((ha, o), (hb, o2)):
        for _ in range(4):
            st, hs, _ = T.h1(hh.port, "GET", "/_status?code=204")
            T.eq(harness.header(hs, "x-origin-id"), [oo.id], "x-origin-id via port %d" % hh.port)
    ha.stop()
    hb.stop()
    T.eq((ha.exit_code, hb.exit_code), (0, 0), "exit codes after SIGTERM")


T.finish()
