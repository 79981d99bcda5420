"""Helpers for the learning/delivery tests (learn_*.py): a test site, the
expected asset sets derived from the demo's files, an nghttp -v parser, an
event-recording HTTP/2 client on python3-h2 that accepts pushes, and a
browser-like visit (page, then its assets on the same connection with
Referer).  What a test expects always comes from what the client observed
(frames, bodies) and from the origin's log, never from herald's counters."""

import hashlib
import os
import re
import shutil
import socket
import time

import harness

FIXTURES = os.path.join(harness.HERE, "fixtures", "learn")
DEMO = os.path.join(harness.SRC, "examples", "demo")

# The demo index page: what a browser loads for it, by hand, checked against
# the files by check_demo_refs().  REQUIRED must be delivered on a learned
# visit; OPTIONAL may be (srcset's larger candidate, the icon) or not.
DEMO_INDEX = {
    "/css/site.css": "html",             # link rel=stylesheet
    "/css/item.css": "html",
    "/css/typography.css": "/css/site.css",   # @import, CSS only
    "/js/config.js": "html",             # blocking head script
    "/js/app.js": "html",                # deferred
    "/fonts/open-sans-regular.woff2": "/css/typography.css",  # font, CSS only
    "/img/bg.png": "/css/site.css",      # background, CSS only
    "/img/logo.svg": "html",
    "/img/hero-320.png": "html",
    "/img/item-1.png": "html",
    "/img/item-2.png": "html",
    "/img/item-3.png": "html",
}
DEMO_INDEX_OPTIONAL = {"/img/hero-640.png", "/img/icon.svg"}
# What nghttp -a fetches by itself (it reads HTML only, not CSS).
DEMO_INDEX_HTML = sorted(p for p, src in DEMO_INDEX.items() if src == "html")
CSS_ONLY = sorted(p for p, src in DEMO_INDEX.items() if src != "html")
# The item pages' shared template.
DEMO_ITEM_COMMON = ["/css/site.css", "/css/item.css", "/js/config.js", "/js/app.js",
                    "/img/logo.svg"]


def check_demo_refs(T, root=DEMO):
    """Every expected asset exists and is named where DEMO_INDEX says."""
    for path, src in DEMO_INDEX.items():
        T.check(os.path.isfile(os.path.join(root, path.lstrip("/"))), "missing file " + path)
        where = "index.html" if src == "html" else src.lstrip("/")
        with open(os.path.join(root, where), encoding="utf-8") as f:
            text = f.read()
        base = os.path.basename(path)
        T.check(base in text, "%s is not named in %s" % (path, where))


def make_site(T):
    """A copy of examples/demo plus tests/integration/fixtures/learn in the
    test's temp dir (tests may change files there)."""
    root = os.path.join(T.dir, "site")
    shutil.copytree(DEMO, root)
    for d, _, files in os.walk(FIXTURES):
        rel = os.path.relpath(d, FIXTURES)
        os.makedirs(os.path.join(root, rel), exist_ok=True)
        for f in files:
            shutil.copy(os.path.join(d, f), os.path.join(root, rel, f))
    return root


def file_sha(root, path):
    with open(os.path.join(root, path.split("?")[0].lstrip("/")), "rb") as f:
        b = f.read()
    return len(b), hashlib.sha256(b).hexdigest()


def settle(port):
    """Waits until the herald on port has committed the visits of closed
    connections (see Client.close): a later visit then sees what this one
    taught, on a loaded machine too."""
    h = harness.herald_at(port)
    if h is not None:
        h.settle()


def port_of(url):
    return int(url.split("//", 1)[1].split("/", 1)[0].rpartition(":")[2])

# ---------------------------------------------------------------- nghttp -v

FRAME = re.compile(r"^\[\s*([\d.]+)\] recv (\w+) frame <length=(\d+), flags=0x([0-9a-f]+), "
                   r"stream_id=(\d+)>")
HDR = re.compile(r"^\[\s*([\d.]+)\] recv \(stream_id=(\d+)\) (.*?): (.*)$")
PROMISED = re.compile(r"promised_stream_id=(\d+)")


class Ng:
    """nghttp -v output as an ordered list of received frames:
    {"t", "type" (HEADERS/PUSH_PROMISE/DATA/RST_STREAM/...), "sid", "len",
    "headers" [(k, v)], "promised"}."""

    def __init__(self, text):
        self.text = text
        self.frames = []
        pending = []
        last = None
        for line in text.splitlines():
            m = HDR.match(line)
            if m:
                pending.append((m.group(3), m.group(4)))
                continue
            m = FRAME.match(line)
            if m:
                last = {"t": float(m.group(1)), "type": m.group(2), "len": int(m.group(3)),
                        "flags": int(m.group(4), 16), "sid": int(m.group(5)),
                        "headers": pending, "promised": None}
                pending = []
                self.frames.append(last)
                continue
            m = PROMISED.search(line)
            if m and last is not None and last["type"] == "PUSH_PROMISE":
                last["promised"] = int(m.group(1))
        # the page: the first stream we opened (odd), whose final HEADERS we got
        self.page_sid = min([f["sid"] for f in self.frames if f["sid"] % 2 == 1 and
                             f["type"] == "HEADERS"] or [0])

    def pushes(self):
        """{promised_stream_id: path} in promise order."""
        return {f["promised"]: dict(f["headers"]).get(":path") for f in self.frames
                if f["type"] == "PUSH_PROMISE"}

    def push_paths(self):
        return sorted(self.pushes().values())

    def index_of(self, pred):
        for i, f in enumerate(self.frames):
            if pred(f):
                return i
        return None

    def final_headers_index(self, sid):
        """Index of the non-1xx HEADERS of stream sid."""
        return self.index_of(lambda f: f["type"] == "HEADERS" and f["sid"] == sid and
                             not dict(f["headers"]).get(":status", "200").startswith("1"))

    def informational(self, sid):
        """1xx header blocks of stream sid, in order, with their frame index."""
        return [(i, f["headers"]) for i, f in enumerate(self.frames)
                if f["type"] == "HEADERS" and f["sid"] == sid and
                dict(f["headers"]).get(":status", "").startswith("1")]

    def body_len(self, sid):
        return sum(f["len"] for f in self.frames if f["type"] == "DATA" and f["sid"] == sid)

    def status(self, sid):
        i = self.final_headers_index(sid)
        return dict(self.frames[i]["headers"]).get(":status") if i is not None else None


def nghttp(T, url, args=(), timeout=30):
    r = T.run(["nghttp", "-nv", "-t", str(timeout)] + list(args) + [url], timeout=timeout + 5)
    T.check(r.returncode == 0, "nghttp %s failed: %s" % (" ".join(args), r.stderr[-300:]))
    settle(port_of(url))  # see Client.close
    return Ng(r.stdout)


def link_targets(values):
    """URLs of rel=preload links in Link header values."""
    out = []
    for v in values:
        for part in re.split(r",(?=\s*<)", v):
            m = re.match(r"\s*<([^>]*)>(.*)", part)
            if m and re.search(r"rel\s*=\s*\"?[^;]*preload", m.group(2)):
                u = m.group(1)
                u = re.sub(r"^https?://[^/]+", "", u)
                out.append(u)
    return out


# ------------------------------------------------------- h2 event client

class Client:
    """An HTTP/2 client that records every event in order (with times) and
    accepts pushes unless push=False.  events: dicts with "kind" in
    push/info/headers/data/end/reset and "sid" (and "parent", "path",
    "status", "headers", "len")."""

    def __init__(self, port, host="127.0.0.1", push=True, tls=False, timeout=10,
                 max_streams=100):
        import h2.config
        import h2.connection
        import h2.settings
        self.sock = harness.h2_socket(host, port, tls, timeout)
        self.port = port
        self.scheme = "https" if tls else "http"
        self.authority = "%s:%d" % (host, port)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.ENABLE_PUSH: 1 if push else 0,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams})
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window((1 << 30) - 65535)
        self.flush()
        self.t0 = time.monotonic()
        self.events = []
        self.streams = {}   # sid -> {"path", "status", "headers", "body", "ended", "reset", "pushed"}
        self.cancel = set()  # paths whose pushes we reset at once
        self.eof = False

    def flush(self):
        d = self.conn.data_to_send()
        if d:
            self.sock.sendall(d)

    def close(self):
        """Ends the connection, then waits until herald has committed its
        visits: herald commits a visit when its learning window ends or its
        connection is gone, and a real "later visit" never races the
        previous one's close."""
        self._close()
        settle(self.port)

    def _close(self):
        try:
            self.conn.close_connection()
            self.flush()
        except Exception:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def _st(self, sid, path=None, pushed=False):
        return self.streams.setdefault(sid, {"path": path, "status": None, "headers": [],
                                             "info": [], "body": b"", "ended": False,
                                             "reset": None, "pushed": pushed})

    def send(self, path, headers=()):
        sid = self.conn.get_next_available_stream_id()
        hs = [(":method", "GET"), (":scheme", self.scheme), (":authority", self.authority),
              (":path", path)] + list(headers)
        self.conn.send_headers(sid, hs, end_stream=True)
        self.flush()
        self._st(sid, path)
        return sid

    def ev(self, **kw):
        kw["t"] = time.monotonic() - self.t0
        self.events.append(kw)

    def pump(self, until, timeout=10):
        import h2.errors
        import h2.events
        end = time.monotonic() + timeout
        while not until():
            left = end - time.monotonic()
            if left <= 0 or self.eof:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                return False
            except OSError:
                data = b""
            if not data:
                self.eof = True
                return False
            try:
                events = self.conn.receive_data(data)
            except Exception as ex:  # e.g. a PUSH_PROMISE to a client with push disabled
                self.eof = True
                raise harness.Failure("HTTP/2 protocol error from the server: %r" % ex)
            for e in events:
                if isinstance(e, h2.events.PushedStreamReceived):
                    path = dict(e.headers).get(":path")
                    st = self._st(e.pushed_stream_id, path, True)
                    st["promise_headers"] = e.headers
                    self.ev(kind="push", sid=e.pushed_stream_id, parent=e.parent_stream_id,
                            path=path, headers=e.headers)
                    if path in self.cancel:
                        self.conn.reset_stream(e.pushed_stream_id, h2.errors.ErrorCodes.CANCEL)
                        st["reset"] = "cancelled"
                        self.ev(kind="cancel", sid=e.pushed_stream_id, path=path)
                elif isinstance(e, h2.events.InformationalResponseReceived):
                    self._st(e.stream_id)["info"].append(e.headers)
                    self.ev(kind="info", sid=e.stream_id, headers=e.headers)
                elif isinstance(e, h2.events.ResponseReceived):
                    st = self._st(e.stream_id)
                    st["headers"] = e.headers
                    st["status"] = int(dict(e.headers)[":status"])
                    self.ev(kind="headers", sid=e.stream_id, status=st["status"])
                elif isinstance(e, h2.events.DataReceived):
                    st = self._st(e.stream_id)
                    st["body"] += e.data
                    self.ev(kind="data", sid=e.stream_id, len=len(e.data), data=e.data[:256])
                    if e.flow_controlled_length:
                        try:
                            self.conn.acknowledge_received_data(e.flow_controlled_length,
                                                                e.stream_id)
                        except Exception:
                            pass
                elif isinstance(e, h2.events.StreamEnded):
                    self._st(e.stream_id)["ended"] = True
                    self.ev(kind="end", sid=e.stream_id)
                elif isinstance(e, h2.events.StreamReset):
                    st = self._st(e.stream_id)
                    if st["reset"] is None:
                        st["reset"] = int(e.error_code)
                    self.ev(kind="reset", sid=e.stream_id, code=int(e.error_code))
                elif isinstance(e, h2.events.ConnectionTerminated):
                    self.ev(kind="goaway", code=int(e.error_code))
                    self.eof = True
            try:
                self.flush()
            except OSError:
                self.eof = True
        return True

    def done(self, sid):
        st = self.streams[sid]
        return st["ended"] or st["reset"] is not None

    def all_done(self):
        return all(self.done(s) for s in self.streams)

    def get(self, path, headers=(), timeout=10, wait_pushes=True):
        """GET path; waits for it (and, by default, every open pushed stream)."""
        sid = self.send(path, headers)
        self.pump(lambda: self.done(sid), timeout)
        if wait_pushes:
            self.pump(self.all_done, timeout)
        return sid

    def pushes(self, parent=None):
        """[(promised sid, path)] in promise order."""
        return [(e["sid"], e["path"]) for e in self.events if e["kind"] == "push" and
                (parent is None or e["parent"] == parent)]

    def push_paths(self, parent=None):
        return sorted(p for _, p in self.pushes(parent))

    def index(self, kind, sid):
        for i, e in enumerate(self.events):
            if e["kind"] == kind and e.get("sid") == sid:
                return i
        return None

    def header(self, sid, name):
        return [v for k, v in self.streams[sid]["headers"] if k.lower() == name]

    def max_active_pushes(self):
        """Most pushed streams open at once (HEADERS received, not ended)."""
        pushed = {e["sid"] for e in self.events if e["kind"] == "push"}
        active, most = set(), 0
        for e in self.events:
            if e.get("sid") not in pushed:
                continue
            if e["kind"] == "headers":
                active.add(e["sid"])
            elif e["kind"] in ("end", "reset", "cancel"):
                active.discard(e["sid"])
            most = max(most, len(active))
        return most

    def url(self, path):
        return "%s://%s%s" % (self.scheme, self.authority, path)


def page_pushes(T, hh, page="/"):
    """The paths herald pushes with page (a 200) on a fresh connection to hh, sorted."""
    c = Client(hh.port)
    try:
        sid = c.get(page, [("accept", "text/html")])
        T.eq(c.streams[sid]["status"], 200, "page status")
        return c.push_paths(sid)
    finally:
        c.close()


def browse(c, page, assets, extra_headers=(), timeout=10):
    """A browser-like visit on client c: the page, then each asset the page
    (or, for (path, via) pairs, the asset via) references, with Referer,
    skipping what was pushed.  assets: list of path or (path, via_path).
    Returns the page's stream id."""
    sid = c.get(page, [("accept", "text/html"), ("sec-fetch-mode", "navigate")] +
                list(extra_headers), timeout)
    pushed = set(c.push_paths())
    for a in assets:
        path, via = (a, page) if isinstance(a, str) else a
        if path in pushed:
            continue
        c.get(path, [("referer", c.url(via)), ("sec-fetch-mode", "no-cors")] +
              list(extra_headers), timeout, wait_pushes=False)
    return sid


# The demo index as a browser fetches it: HTML assets, then CSS ones with the
# stylesheet that names them as Referer.
def demo_browse_list(page="/"):
    out = []
    for p, src in DEMO_INDEX.items():
        out.append(p if src == "html" else (p, src))
    return out


def origin_requests(o, since=0.0):
    """(target, t) of requests the origin saw after time since."""
    return [(e["target"], e["t"]) for e in o.events("request") if e["t"] >= since]
