#!/usr/bin/python3
"""Operations signals: SIGHUP re-reads the config file without
dropping connections (log level, push -> hints, admin token, TLS
certificate; the log names what was reloaded and what needs a restart), and
SIGUSR1 reopens the access log after logrotate moved it."""

import http.client
import os
import signal
import socket
import ssl
import time

import adminlib as A
import harness

T = harness.Tests("admin_reload", need=["nghttp", "openssl"], python_modules=["h2"])
o = T.origin()
CONF = os.path.join(T.dir, "herald.conf")
ALOG = os.path.join(T.dir, "access.log")
port, tport, aport = harness.free_port(), harness.free_port(), harness.free_port()
key, cert = T.cert()


def write_conf(**kw):
    base = {"origin": o.url, "listen": "127.0.0.1:%d" % port, "workers": "2",
            "log-level": "info", "access-log": ALOG, "admin": "127.0.0.1:%d" % aport,
            "push": "on", "hints": "on", "learn-window": "0.3", "tls-cert": cert,
            "tls-key": key}
    base.update(kw)
    with open(CONF, "w") as f:
        for k, v in base.items():
            if k == "listen":
                f.write("listen = %s\nlisten = 127.0.0.1:%d,tls\n" % (v, tport))
            else:
                f.write("%s = %s\n" % (k, v))


write_conf()
p = T.spawn("herald", [harness.herald_bin(), "--config=" + CONF])
if not (harness.wait_listen(port, proc=p.p) and harness.wait_listen(aport, proc=p.p)):
    T.setup_failed(harness.Failure("herald did not start: " + p.stderr_tail()))


class H:
    admin_port = aport
    url = "http://127.0.0.1:%d" % port
    token = None  # "after-hup" once the reload set it

    def settle(self):
        harness.settle(aport, self.token, proc=p)


h = H()
h.port = port
harness.HERALDS[port] = h  # learnlib.nghttp settles through it
S = {}


def log():
    with open(p.err_path) as f:
        return f.read()


def wait_log(text, timeout=5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in log():
            return True
        time.sleep(0.05)
    return False


def peer_cert_der():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tport), timeout=5))
    der = s.getpeercert(binary_form=True)
    return s, der


def pem_to_der(path):
    return ssl.PEM_cert_to_DER_cert(open(path).read())


@T.case("learn the page; a visit is pushed; open connections (h1 cleartext, TLS) kept aside")
def _():
    A.learn(T, h)
    T.check(len(A.pushes(T, h)) >= 5, "no pushes before the reload")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/css/site.css")
    r = c.getresponse()
    r.read()
    T.eq(r.status, 200, "h1 request")
    S["h1"] = c
    s, der = peer_cert_der()
    T.eq(der, pem_to_der(cert), "TLS cert before")
    S["tls"] = s


@T.case("SIGHUP: log-level=warn, push=off (hints instead), new token, new cert; restart-only options named")
def _():
    # a second certificate, written over the configured paths
    key2, cert2 = os.path.join(T.dir, "key2.pem"), os.path.join(T.dir, "cert2.pem")
    r = T.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
               "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key2, "-out", cert2,
               "-days", "2", "-subj", "/CN=reloaded"], timeout=20)
    T.eq(r.returncode, 0, "openssl")
    S["cert2"] = cert2
    write_conf(**{"log-level": "warn", "push": "off", "admin-token": "after-hup",
                  "workers": "3", "tls-cert": cert2, "tls-key": key2})
    os.kill(p.pid, signal.SIGHUP)
    T.check(wait_log("SIGHUP: reloaded"), "no reload line: %s" % log()[-500:])
    h.token = "after-hup"
    line = [ln for ln in log().splitlines() if "SIGHUP: reloaded" in ln][-1]
    for name in ("log-level", "push", "admin-token", "tls-cert", "tls-key"):
        T.check(name in line, "%s not named in %r" % (name, line))
    T.check("TLS certificate" in line, line)
    T.check(wait_log("need a restart (not applied): workers"), "restart-only option not named")


@T.case("after SIGHUP: the old h1 and TLS connections still work")
def _():
    c = S["h1"]
    c.request("GET", "/css/site.css")
    r = c.getresponse()
    r.read()
    T.eq(r.status, 200, "same h1 connection after HUP")
    s = S["tls"]
    s.sendall(b"GET /js/app.js HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    T.check(data.startswith(b"HTTP/1.1 200"), "old TLS connection: %r" % data[:60])
    c.close()


@T.case("after SIGHUP: new TLS connections get the new certificate")
def _():
    s, der = peer_cert_der()
    s.close()
    T.eq(der, pem_to_der(S["cert2"]), "new cert")


@T.case("after SIGHUP: push off -> a 103 with the plan, no PUSH_PROMISE; info lines gone")
def _():
    import learnlib as L
    ng = L.nghttp(T, h.url + "/", ["-a"])
    T.eq(ng.pushes(), {}, "pushes after push=off")
    T.check(ng.informational(ng.page_sid), "no 103 after push=off")
    # log-level=warn: the admin's info line for a pin is no longer written
    st, _, _ = A.call(h, "POST", "/maps/pin?page=a&asset=http%3A%2F%2Fa%2Fx.js", token="after-hup")
    T.eq(st, 200, "pin")
    # herald logs the pin before it answers: had the line been written, it would be there now
    T.check("admin: pinned" not in log(), "info line logged at log-level=warn")


@T.case("after SIGHUP: the admin token is required")
def _():
    st, _, _ = A.call(h, "GET", "/stats")
    T.eq(st, 401, "without token")
    st, _, _ = A.call(h, "GET", "/stats", token="after-hup")
    T.eq(st, 200, "with token")


@T.case("a broken config on SIGHUP: nothing reloaded, herald keeps running")
def _():
    with open(CONF, "a") as f:
        f.write("no-such-option = 1\n")
    os.kill(p.pid, signal.SIGHUP)
    T.check(wait_log("nothing reloaded"), "no refusal line")
    st, _, _ = A.call(h, "GET", "/stats", token="after-hup")
    T.eq(st, 200, "still serving with the old token")


@T.case("SIGUSR1 reopens the access log after it was moved away")
def _():
    moved = ALOG + ".1"
    os.rename(ALOG, moved)
    os.kill(p.pid, signal.SIGUSR1)
    # (log-level=warn now: the reopen line is not written) the reopen creates the file
    end = time.monotonic() + 10
    while not os.path.exists(ALOG) and time.monotonic() < end:
        time.sleep(0.01)
    T.check(os.path.exists(ALOG), "SIGUSR1 did not create a new access log")
    r = T.curl([], h.url + "/js/app.js?after-usr1")
    T.eq(r.status, 200, "request")
    end = time.monotonic() + 3
    while time.monotonic() < end and not (os.path.exists(ALOG) and "after-usr1" in open(ALOG).read()):
        time.sleep(0.05)
    T.check(os.path.exists(ALOG) and "after-usr1" in open(ALOG).read(), "line not in new log")
    T.check("after-usr1" not in open(moved).read(), "line went to the rotated file")


T.finish()
