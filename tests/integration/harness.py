"""Shared helpers for herald's integration tests (plain Python, no pytest).

A test script does:

    import harness
    T = harness.Tests("forward_basic", need=["curl", "nghttp"])
    o = T.origin()                 # tests/origin.py on a fresh port
    h = T.herald(o)                # herald in front of it, identity checked

    @T.case("GET over curl h2c")
    def _():
        r = T.run(["curl", "-s", "--http2-prior-knowledge", h.url + "/"])
        T.check(r.returncode == 0, "curl failed: %s" % r.stderr)

    T.finish()                     # exit 0 (all ok), 1 (a case failed)

Every case prints "ok N - name" or "not ok N - name: reason".  A missing tool
makes the whole script exit 77 with a message naming it.  Processes started
here are stopped by PID when the script ends, whatever happens.

Environment: HERALD_BIN (the binary, set by meson), HERALD_SRC (repo root),
HERALD_BUILD (build dir: temp dirs go under it).  HERALD_PROXY=nghttpx runs
the same tests against nghttpx as a stand-in, to check that a test can pass
(herald-specific checks such as Via then fail, as they should).
HERALD_WORKERS=N starts every herald with --workers=N whatever the test asks
(a ThreadSanitizer run uses 2, so that workers really share the map and the
counters; see tests/README.md).

Every herald started here also gets an admin listener on a fresh loopback
port (unless the test gives its own --admin), so that h.settle() can wait
for herald to finish with the visits of closed connections instead of
sleeping.
"""

import atexit
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

SRC = os.environ.get("HERALD_SRC") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get("HERALD_BUILD", "")
PY = "/usr/bin/python3"
ORIGIN = os.path.join(SRC, "tests", "origin.py")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(SRC, "tests"))


class Failure(Exception):
    pass


class Skip(Exception):
    pass


def herald_bin():
    b = os.environ.get("HERALD_BIN")
    if b:
        return b
    for d in ("build-tests", "build"):
        p = os.path.join(SRC, d, "proxy", "herald")
        if os.path.exists(p):
            return p
    return None


def workers(n):
    """The --workers value for a herald a test starts: n, unless HERALD_WORKERS
    says otherwise."""
    w = os.environ.get("HERALD_WORKERS", "")
    return int(w) if w.isdigit() and int(w) > 0 else n


def sanitized():
    """True when herald is built with AddressSanitizer or ThreadSanitizer:
    its RSS means nothing then (quarantine keeps freed memory; shadow
    memory), so RSS bounds are not checked."""
    b = herald_bin()
    if os.environ.get("HERALD_PROXY", "herald") != "herald" or not b:
        return False
    try:
        with open(b, "rb") as f:
            data = f.read()
            return b"__asan_init" in data or b"__tsan_init" in data
    except OSError:
        return False


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_listen(port, host="127.0.0.1", timeout=10.0, proc=None):
    """Polls connect() until something listens on host:port; False on timeout
    or when proc exits first."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            s.connect((host, port))
            return True
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    return False


def rss_kib(pid):
    """Resident set size of pid in KiB (VmRSS), 0 when unknown."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def threads_rss_kib(pid):
    return rss_kib(pid)


def pattern_sha256(n):
    """sha256 of the body origin.py sends for /_bytes?n=N."""
    import origin
    h = hashlib.sha256()
    for b in origin.pattern(n):
        h.update(b)
    return h.hexdigest()


class Proc:
    """A process we started; stopped by PID at exit."""

    def __init__(self, name, argv, log_dir, env=None):
        self.name = name
        self.argv = argv
        self.out_path = os.path.join(log_dir, name + ".out")
        self.err_path = os.path.join(log_dir, name + ".err")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen(argv, stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL,
                                  env=env)
        self.pid = self.p.pid
        self.exit_code = None

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Sends sig, waits up to timeout, then SIGKILL; returns the exit code."""
        if self.p.poll() is None:
            try:
                self.p.send_signal(sig)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
            except OSError:
                pass
        self.exit_code = self.p.returncode
        return self.exit_code

    def kill(self):
        return self.stop(signal.SIGKILL, 5)

    def stderr_tail(self, n=15):
        try:
            with open(self.err_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""


class Origin(Proc):
    def __init__(self, T, root, args, oid, host="127.0.0.1"):
        self.id = oid
        self.host = host
        self.log = os.path.join(T.dir, oid + ".jsonl")
        argv = [PY, ORIGIN, "--root", root, "--listen", "%s:0" % (
            "[%s]" % host if ":" in host else host), "--id", oid, "--log", self.log] + list(args)
        Proc.__init__(self, oid, argv, T.dir)
        end = time.monotonic() + 10
        self.port = None
        while time.monotonic() < end and self.alive():
            with open(self.out_path) as f:
                line = f.readline()
            if line.startswith("PORT "):
                self.port = int(line.split()[1])
                break
            time.sleep(0.02)
        if not self.port:
            raise Failure("origin did not start: " + self.stderr_tail())
        hp = "[%s]" % host if ":" in host else host
        self.url = "http://%s:%d" % (hp, self.port)

    def events(self, event=None):
        """The origin's JSON-lines log, optionally only one event kind."""
        out = []
        try:
            with open(self.log) as f:
                for line in f:
                    try:
                        r = json.loads(line)
                    except ValueError:
                        continue
                    if event is None or r.get("event") == event:
                        out.append(r)
        except OSError:
            pass
        return out


# Every herald started through Tests.herald, by its cleartext and TLS ports.
HERALDS = {}


def herald_at(port):
    """The Herald listening on port (started by Tests.herald), or None."""
    return HERALDS.get(port)


def option_of(args, name):
    """The value of the last name=VALUE in args, or None."""
    v = None
    for a in args:
        if a.startswith(name + "="):
            v = a.split("=", 1)[1]
    return v


def admin_port_of(args):
    """The port of --admin=ADDR:PORT in args, or of an admin line in a
    --config file; None when neither is there."""
    a = option_of(args, "--admin")
    conf = option_of(args, "--config")
    if a is None and conf is not None:
        try:
            with open(conf) as f:
                for line in f:
                    k, sep, v = line.partition("=")
                    if sep and k.strip() == "admin":
                        a = v.strip()
        except OSError:
            pass
    if a is None:
        return None
    return int(a.rpartition(":")[2])


harness_workers = workers


class Herald(Proc):
    def __init__(self, T, origin_url, args, tls, ipv6, workers, name, check_origin):
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.port6 = free_port("::1") if ipv6 else None
        self.access_log = os.path.join(T.dir, name + ".access.log")
        self.admin_port = self.token = None
        self.workers = harness_workers(workers)
        kind = os.environ.get("HERALD_PROXY", "herald")
        # The signal that drains: SIGTERM for herald (nghttpx uses SIGQUIT).
        self.drain_signal = signal.SIGQUIT if kind == "nghttpx" else signal.SIGTERM
        if kind == "nghttpx":
            ou = origin_url.split("//", 1)[1]
            oh, _, op = ou.rpartition(":")
            argv = ["nghttpx", "-f127.0.0.1,%d;no-tls" % self.port,
                    "-b%s,%s" % (oh.strip("[]"), op), "--workers=%d" % workers,
                    "--no-ocsp", "--conf=/dev/null", "--errorlog-file=" + os.path.join(
                        T.dir, name + ".nghttpx.err"), "--add-x-forwarded-for",
                    "--strip-incoming-x-forwarded-for"]
            if tls:
                argv.append("-f127.0.0.1,%d" % self.tls_port)
            if ipv6:
                argv.append("-f::1,%d;no-tls" % self.port6)
            if tls:
                argv += [T.cert()[0], T.cert()[1]]
            for a in args:
                if a.startswith("--origin-timeout="):
                    argv.append("--backend-read-timeout=" + a.split("=", 1)[1])
        else:
            b = herald_bin()
            if not b or not os.path.exists(b):
                raise Skip("herald binary not built (HERALD_BIN unset, no build-tests/proxy/herald)")
            argv = [b, "--origin=" + origin_url, "--listen=127.0.0.1:%d" % self.port,
                    "--workers=%d" % self.workers, "--log-level=info",
                    "--access-log=" + self.access_log]
            self.admin_port = admin_port_of(args)
            if self.admin_port is None:
                self.admin_port = free_port()
                argv.append("--admin=127.0.0.1:%d" % self.admin_port)
            self.token = option_of(args, "--admin-token")
            if tls:
                key, cert = T.cert()
                argv += ["--listen=127.0.0.1:%d,tls" % self.tls_port,
                         "--tls-cert=" + cert, "--tls-key=" + key]
            if ipv6:
                argv.append("--listen=[::1]:%d" % self.port6)
            argv += list(args)
        Proc.__init__(self, name, argv, T.dir)
        ok = wait_listen(self.port, proc=self.p)
        if ok and tls:
            ok = wait_listen(self.tls_port, proc=self.p)
        if ok and ipv6:
            ok = wait_listen(self.port6, "::1", proc=self.p)
        if not ok:
            self.stop()
            raise Failure("%s did not listen (exit %s): %s" % (name, self.p.returncode,
                                                              self.stderr_tail()))
        self.url = "http://127.0.0.1:%d" % self.port
        self.tls_url = "https://127.0.0.1:%d" % self.tls_port if tls else None
        self.url6 = "http://[::1]:%d" % self.port6 if ipv6 else None
        HERALDS[self.port] = self
        if self.tls_port:
            HERALDS[self.tls_port] = self
        if check_origin is not None:
            T.check_identity(self, check_origin)

    def stats(self, timeout=10):
        """herald's admin /stats as a dict (None without an admin port, e.g.
        when the proxy is not herald)."""
        if self.admin_port is None:
            return None
        return admin_stats(self.admin_port, self.token, timeout)

    def settle(self, timeout=20):
        """See settle() below."""
        if self.admin_port is not None:
            settle(self.admin_port, self.token, timeout, self)


def admin_stats(admin_port, token=None, timeout=10):
    """GET /stats of the admin listener on admin_port, as a dict."""
    c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=timeout)
    try:
        c.request("GET", "/stats", headers={"Authorization": "Bearer " + token} if token else {})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise Failure("admin /stats answered %d: %r" % (r.status, body[:200]))
        return json.loads(body)
    finally:
        c.close()


def settle(admin_port, token=None, timeout=20, proc=None):
    """Waits until herald (admin listener on admin_port) has finished with
    every visit it opened: committed it and fetched what its CSS imports,
    which a "later visit" must not race. A visit ends once its learning
    window is over or its connection is gone, so call this after closing
    the client. Raises Failure when that takes longer than timeout (a hang,
    not slowness)."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        if proc is not None and not proc.alive():
            raise Failure("%s exited while settling: %s" % (proc.name, proc.stderr_tail()))
        last = admin_stats(admin_port, token)
        if last["learning"]["visits_open"] == 0:
            return
        time.sleep(0.01)
    raise Failure("visits still open after %ds: %r" % (timeout, last.get("learning")))


class Result:
    def __init__(self, argv, rc, out, err, elapsed):
        self.argv, self.returncode, self.stdout, self.stderr = argv, rc, out, err
        self.elapsed = elapsed

    def __repr__(self):
        return "rc=%s stderr=%s" % (self.returncode, self.stderr[-300:].strip())


class Tests:
    def __init__(self, name, need=(), python_modules=()):
        self.name = name
        self.n = 0
        self.failed = 0
        self.procs = []
        base = BUILD if BUILD and os.path.isdir(BUILD) else None
        if base:
            base = os.path.join(base, "tests-tmp")
            os.makedirs(base, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix=name + "-", dir=base)
        self._cert = None
        self.deadline = time.monotonic() + 110
        atexit.register(self.cleanup)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: sys.exit(1))
        for tool in need:
            if shutil.which(tool) is None:
                self.skip_all("%s not installed" % tool)
        for m in python_modules:
            try:
                __import__(m)
            except ImportError:
                self.skip_all("python module %s not installed (python3-%s)" % (m, m))
        if os.environ.get("HERALD_PROXY", "herald") == "herald":
            b = herald_bin()
            if not b or not os.path.exists(b):
                self.skip_all("herald binary not built (HERALD_BIN unset)")
        print("# %s: temp dir %s" % (name, self.dir), flush=True)

    # ---- processes
    def skip_all(self, why):
        print("1..0 # SKIP %s: %s" % (self.name, why), flush=True)
        sys.exit(77)

    def origin(self, root=None, args=(), oid=None, host="127.0.0.1"):
        oid = oid or "origin-%d-%d" % (os.getpid(), len(self.procs))
        try:
            o = Origin(self, root or os.path.join(SRC, "examples", "demo"), args, oid, host)
        except Failure as e:
            if self.n:
                raise
            self.setup_failed(e)
        self.procs.append(o)
        return o

    def herald(self, origin=None, args=(), tls=False, ipv6=False, workers=1, origin_url=None,
               name=None, check=True):
        """Starts herald in front of origin (an Origin, or origin_url) on fresh
        ports; checks that our origin answers through it unless check=False."""
        name = name or "herald-%d" % len(self.procs)
        url = origin_url or origin.url
        try:
            h = Herald(self, url, args, tls, ipv6, workers, name,
                       origin if (check and origin is not None) else None)
        except Failure as e:
            if self.n:
                raise
            self.setup_failed(e)
        self.procs.append(h)
        return h

    def setup_failed(self, e):
        """A failure before the first case: report it as one failed case."""
        self.n += 1
        self.failed += 1
        print("not ok %d - setup: %s" % (self.n, e), flush=True)
        self.finish()

    def spawn(self, name, argv, env=None):
        p = Proc(name, argv, self.dir, env)
        self.procs.append(p)
        return p

    def cleanup(self):
        for p in reversed(self.procs):
            try:
                p.stop(timeout=5)
            except Exception:
                pass
        self.procs = []
        if self.failed == 0 and os.environ.get("HERALD_KEEP_TMP") is None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def cert(self):
        """(key, cert) paths of a self-signed certificate for localhost/127.0.0.1."""
        if self._cert:
            return self._cert
        if shutil.which("openssl") is None:
            self.skip_all("openssl not installed")
        key = os.path.join(self.dir, "key.pem")
        cert = os.path.join(self.dir, "cert.pem")
        r = self.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                      "-days", "2", "-subj", "/CN=localhost", "-addext",
                      "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"], timeout=20)
        if r.returncode != 0:
            raise Failure("openssl req failed: %s" % r.stderr)
        self._cert = (key, cert)
        return self._cert

    # ---- clients
    def run(self, argv, timeout=30, input=None, env=None):
        """Runs a client; returncode is "timeout" when it overran."""
        t0 = time.monotonic()
        try:
            r = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=env)
            rc, out, err = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = "timeout", e.stdout or b"", e.stderr or b""
        dec = lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else (b or "")
        return Result(argv, rc, dec(out), dec(err), time.monotonic() - t0)

    def curl(self, args, url, timeout=30):
        """Runs curl; the Result also has status, version, headers (final
        block, [(k, v)]), blocks (every header block, 1xx included) and body."""
        self.seq = getattr(self, "seq", 0) + 1
        hf = os.path.join(self.dir, "curl-%d.h" % self.seq)
        bf = os.path.join(self.dir, "curl-%d.b" % self.seq)
        r = self.run(["curl", "-sS", "-D", hf, "-o", bf, "-w", "%{http_code} %{http_version}",
                      "--max-time", str(timeout)] + list(args) + [url], timeout=timeout + 5)
        parts = r.stdout.split()
        r.status = int(parts[0]) if parts and parts[0].isdigit() else 0
        r.version = parts[1] if len(parts) > 1 else ""
        r.blocks = []
        try:
            with open(hf, "rb") as f:
                raw = f.read().decode("latin-1")
        except OSError:
            raw = ""
        for line in raw.split("\n"):
            line = line.rstrip("\r")
            if line.startswith("HTTP/"):
                r.blocks.append({"status": line, "headers": []})
            elif ":" in line and r.blocks:
                k, _, v = line.partition(":")
                r.blocks[-1]["headers"].append((k.strip(), v.strip()))
        r.headers = r.blocks[-1]["headers"] if r.blocks else []
        try:
            with open(bf, "rb") as f:
                r.body = f.read()
        except OSError:
            r.body = b""
        if "-I" in args or "--head" in args:
            # curl -I writes the header block to -o as well: keep what follows it.
            blocks = r.body.split(b"\r\n\r\n")
            r.body = blocks[-1] if len(blocks) > 1 else r.body
        for p in (hf, bf):
            if os.path.exists(p):
                os.unlink(p)
        return r

    def h1(self, port, method, path, headers=None, body=None, host="127.0.0.1", timeout=10,
           tls=False):
        """One HTTP/1.1 request with http.client; returns (status, headers list, body)."""
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
        else:
            c = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, r.getheaders(), data
        finally:
            c.close()

    def check_identity(self, h, o):
        """Our herald answers with our origin behind it (x-origin-id)."""
        end = time.monotonic() + 5
        last = None
        while time.monotonic() < end:
            try:
                st, hs, _ = self.h1(h.port, "GET", getattr(o, "probe", "/_status?code=204"),
                                    timeout=5)
                ids = [v for k, v in hs if k.lower() == "x-origin-id"]
                if ids == [o.id]:
                    return
                last = "status %d, x-origin-id %s" % (st, ids)
            except Exception as e:
                last = repr(e)
            time.sleep(0.1)
        raise Failure("identity check: expected x-origin-id %s through port %d, got %s" % (
            o.id, h.port, last))

    # ---- cases
    def check(self, cond, msg):
        if not cond:
            raise Failure(msg)

    def eq(self, got, want, what):
        if got != want:
            raise Failure("%s: expected %r, got %r" % (what, want, got))

    def case(self, name):
        def deco(fn):
            self.n += 1
            n = self.n
            if time.monotonic() > self.deadline:
                self.failed += 1
                print("not ok %d - %s: script time budget exhausted" % (n, name), flush=True)
                return fn
            t0 = time.monotonic()
            try:
                fn()
                print("ok %d - %s (%.2fs)" % (n, name, time.monotonic() - t0), flush=True)
            except Skip as e:
                print("ok %d - %s # SKIP %s" % (n, name, e), flush=True)
            except Failure as e:
                self.failed += 1
                print("not ok %d - %s: %s" % (n, name, e), flush=True)
            except Exception as e:
                self.failed += 1
                tb = traceback.format_exc().strip().splitlines()
                print("not ok %d - %s: %r\n#   %s" % (n, name, e, "\n#   ".join(tb[-6:])),
                      flush=True)
            return fn
        return deco

    def finish(self):
        print("1..%d" % self.n, flush=True)
        for p in self.procs:
            rc = p.p.poll()
            if isinstance(p, Herald) and p.exit_code is None and rc is not None:
                self.failed += 1
                print("# %s died on its own: %s" % (p.name, "signal %d" % -rc if rc < 0 else
                                                   "exit %d" % rc), flush=True)
        if self.failed:
            for p in self.procs:
                tail = p.stderr_tail(8)
                if tail and isinstance(p, Herald):
                    print("# %s stderr (tail):\n#   %s" % (p.name, tail.replace("\n", "\n#   ")))
        self.cleanup()
        sys.exit(1 if self.failed else 0)


def header(hs, name):
    """All values of header name (case-insensitive) in a [(k, v)] list."""
    return [v for k, v in hs if k.lower() == name.lower()]


def echo_headers(js):
    """Lower-cased {name: [values]} from an /_echo JSON document."""
    out = {}
    for k, v in js["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def h2_socket(host, port, tls=False, timeout=10):
    """A connected socket for an HTTP/2 client: TLS with ALPN h2 (certificate
    not checked: tests use a self-signed one) or cleartext for prior knowledge."""
    s = socket.create_connection((host, port), timeout=timeout)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        s = ctx.wrap_socket(s, server_hostname=host)
    return s


class H2:
    """A raw HTTP/2 client on python3-h2 for precise protocol checks.

    r = H2(port).request("GET", "/x") returns a dict: status, headers,
    informational (list of 1xx header lists), body_len, body_sha256, body
    (first 64 KiB), reset (RST_STREAM error code or None), goaway (error code
    or None), ended (END_STREAM seen), eof (peer closed the connection)."""

    def __init__(self, port, host="127.0.0.1", tls=False, settings=None, timeout=10):
        import h2.config
        import h2.connection
        self.sock = h2_socket(host, port, tls, timeout)
        self.host, self.port = host, port
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.goaway = None
        self.eof = False
        self.streams = {}

    def flush(self):
        d = self.conn.data_to_send()
        if d:
            self.sock.sendall(d)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_request(self, method, path, headers=(), body=None, authority=None, open_=False):
        """open_=True leaves the request open after body (the caller sends the rest)."""
        sid = self.conn.get_next_available_stream_id()
        hs = [(":method", method), (":scheme", "http"),
              (":authority", authority or "%s:%d" % (self.host, self.port)), (":path", path)]
        hs += list(headers)
        self.conn.send_headers(sid, hs, end_stream=body is None and not open_)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=not open_)
        self.flush()
        self.streams[sid] = {"status": None, "headers": [], "informational": [], "body_len": 0,
                             "sha": hashlib.sha256(), "body": b"", "reset": None, "ended": False,
                             "first_byte": None, "t0": time.monotonic()}
        return sid

    def pump(self, timeout=10, until=None, consume=True):
        """Reads and handles events until until() is true, the connection
        ends, or timeout; consume=False leaves flow-control windows shut."""
        import h2.events
        end = time.monotonic() + timeout
        while not (until and until()):
            left = end - time.monotonic()
            if left <= 0 or self.eof:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return
            except OSError:
                data = b""
            if not data:
                self.eof = True
                return
            try:
                events = self.conn.receive_data(data)
            except Exception as e:  # a protocol error on our side ends the exchange
                self.eof = True
                self.error = repr(e)
                return
            for ev in events:
                st = self.streams.get(getattr(ev, "stream_id", None))
                if isinstance(ev, h2.events.InformationalResponseReceived) and st:
                    st["informational"].append(ev.headers)
                elif isinstance(ev, h2.events.ResponseReceived) and st:
                    st["headers"] = ev.headers
                    st["status"] = int(dict(ev.headers)[":status"])
                elif isinstance(ev, h2.events.DataReceived) and st:
                    if st["first_byte"] is None:
                        st["first_byte"] = time.monotonic()
                    st["body_len"] += len(ev.data)
                    st["sha"].update(ev.data)
                    if len(st["body"]) < 65536:
                        st["body"] += ev.data[:65536 - len(st["body"])]
                    if consume:
                        self.conn.acknowledge_received_data(ev.flow_controlled_length,
                                                            ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and st:
                    st["ended"] = True
                elif isinstance(ev, h2.events.StreamReset) and st:
                    st["reset"] = int(ev.error_code)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.goaway = int(ev.error_code)
            try:
                self.flush()
            except OSError:
                self.eof = True

    def done(self, sid):
        st = self.streams[sid]
        return lambda: st["ended"] or st["reset"] is not None or self.goaway is not None

    def result(self, sid):
        st = dict(self.streams[sid])
        st["body_sha256"] = st.pop("sha").hexdigest()
        st["goaway"] = self.goaway
        st["eof"] = self.eof
        return st

    def request(self, method, path, headers=(), body=None, timeout=10, authority=None):
        sid = self.send_request(method, path, headers, body, authority)
        self.pump(timeout, self.done(sid))
        return self.result(sid)
