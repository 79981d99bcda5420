#!/usr/bin/python3
"""A fleet of three herald instances sharing one learned map through a real
redis-server (started here on a free loopback port, appendonly yes).

All clients use the same :authority, as behind a load balancer, and name
their address in X-Forwarded-For (--trust-forwarded=on), so each visit has
its own client as the fleet's poisoning bound sees it.  What a visit must
get comes from the demo's files (learnlib.DEMO_INDEX, checked against the
HTML and CSS), never from herald's counters; herald's /maps and /metrics
only say when a condition holds.  Each wait polls with a bound of about
5 s (generous for a 0.2 s sync interval) and prints the measured time."""

import json
import re
import subprocess
import os
import time
import urllib.parse

import learnlib as L

import harness

T = harness.Tests("fleet_redis", need=["nghttp", "h2load", "redis-server"],
                  python_modules=["h2"])
T.deadline = time.monotonic() + 240  # three instances, restarts and a load run
AUTH = "fleet.test"
KEY = AUTH + "/"
REQ = set(L.DEMO_INDEX)
ALLOWED = REQ | L.DEMO_INDEX_OPTIONAL
BOUND = 5.0
q = lambda s: urllib.parse.quote(s, safe="")
times = {}

# herald built without hiredis refuses the option: then there is nothing to test
probe = T.run([harness.herald_bin(), "--origin=http://127.0.0.1:9", "--listen=127.0.0.1:%d" %
               harness.free_port(), "--shared-map=bogus://x"], timeout=10)
if "without hiredis" in probe.stderr:
    T.skip_all("herald was built without hiredis")


class Redis(harness.Proc):
    def __init__(self, port=None):
        self.port = port or harness.free_port()
        d = os.path.join(T.dir, "redis-data")
        os.makedirs(d, exist_ok=True)
        harness.Proc.__init__(self, "redis", [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", d,
            "--appendonly", "yes", "--save", "", "--daemonize", "no"], T.dir)
        T.procs.append(self)
        if not harness.wait_listen(self.port, proc=self.p):
            raise harness.Failure("redis-server did not listen: " + self.stderr_tail())


redis = Redis()
site = L.make_site(T)
o = T.origin(site)


def start(i, extra=(), name=None):
    state = os.path.join(T.dir, "state-%d.json" % i)
    return T.herald(o, ["--shared-map=redis://127.0.0.1:%d" % redis.port,
                        "--shared-map-interval=0.2", "--explore=0", "--trust-forwarded=on",
                        "--learn-window=0.3", "--state=" + state] + list(extra),
                    name=name or "herald-%d" % i)


H = [start(1), start(2), start(3)]


def admin(h, method, path):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", h.admin_port, timeout=10)
    try:
        c.request(method, path)
        r = c.getresponse()
        raw = r.read()
        if r.getheader("content-type", "").startswith("application/json"):
            return r.status, json.loads(raw)
        return r.status, raw.decode("utf-8", "replace")
    finally:
        c.close()


def edges(h, key=KEY):
    """{path: edge} of /maps/page for key on h ({} when unknown)."""
    st, j = admin(h, "GET", "/maps/page?page=" + q(key))
    if st != 200:
        return {}
    return {urllib.parse.urlsplit(e["url"]).path: e for e in j.get("edges", [])}


def visits_total(h, key=KEY):
    st, j = admin(h, "GET", "/maps/page?page=" + q(key))
    return j.get("visits_total", 0) if st == 200 else 0


def metric(h, name):
    st, text = admin(h, "GET", "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait(what, cond, bound=BOUND):
    """Polls cond() until true; records and prints the time it took."""
    t0 = time.monotonic()
    while True:
        v = cond()
        if v:
            dt = time.monotonic() - t0
            times[what] = dt
            print("# %s: %.3f s" % (what, dt), flush=True)
            return v
        if time.monotonic() - t0 > bound:
            raise harness.Failure("%s: not within %.0f s" % (what, bound))
        time.sleep(0.02)


def browse(h, client, page="/", push=True):
    """A browser-like visit of page through h by client (X-Forwarded-For):
    the index with its assets, an item page with its template's."""
    assets = L.demo_browse_list() if page == "/" else L.DEMO_ITEM_COMMON
    c = L.Client(h.port, push=push)
    c.authority = AUTH
    try:
        sid = L.browse(c, page, assets, [("x-forwarded-for", client)])
        return set(c.push_paths(sid))
    finally:
        c.close()


def ng(h, client, no_push=False):
    args = ["-a", "-H", ":authority: " + AUTH, "-H", "x-forwarded-for: " + client]
    if no_push:
        args.append("--no-push")
    return L.nghttp(T, h.url + "/", args)


def log_batches():
    """(instance, seq) of every batch in Redis's log, read with redis-cli."""
    r = subprocess.run(["redis-cli", "-p", str(redis.port), "--json", "XRANGE",
                        "herald:v1:log", "-", "+"], capture_output=True, text=True, timeout=10)
    out = []
    for _, fields in json.loads(r.stdout or "[]"):
        f = dict(zip(fields[::2], fields[1::2])) if isinstance(fields, list) else fields
        out.append((f["i"], f["s"]))
    return out


def caught_up():
    """Every instance sent what it committed and read the whole log."""
    r = subprocess.run(["redis-cli", "-p", str(redis.port), "XREVRANGE", "herald:v1:log", "+",
                        "-", "COUNT", "1"], capture_output=True, text=True, timeout=10)
    last = r.stdout.split("\n")[0].strip()
    for h in H:
        s = h.stats()["shared_map"]
        if s["open_records"] or s["queued_batches"] or s["log_id"] != last:
            return False
    return True

def rcli(*args):
    r = subprocess.run(["redis-cli", "-p", str(redis.port)] + list(args), capture_output=True,
                       text=True, timeout=10)
    T.eq(r.returncode, 0, "redis-cli " + " ".join(args[:2]))
    return r.stdout.strip()


@T.case("expected asset set matches the demo's HTML and CSS files")
def _():
    L.check_demo_refs(T, site)


@T.case("learned through instance 1: the first visit through 2 is pushed, through 3 hinted")
def _():
    for h in H[1:]:
        T.eq(edges(h), {}, "page known to %s before any visit" % h.name)
    browse(H[0], "198.51.100.1")
    wait("learned on instance 1", lambda: REQ <= set(edges(H[0])))
    t0 = time.monotonic()
    for h in H[1:]:
        wait("instance 1 -> %s" % h.name, lambda: REQ <= set(edges(h)))
    times["convergence"] = time.monotonic() - t0
    print("# convergence (1 -> 2 and 3): %.3f s" % times["convergence"], flush=True)
    v = ng(H[1], "198.51.100.2")
    T.eq(v.status(v.page_sid), "200", "page status on 2")
    strong = set(L.DEMO_INDEX_HTML) | {"/css/typography.css"}
    got = set(v.push_paths())
    T.check(strong <= got, "2 did not push %s (pushed %s)" % (sorted(strong - got), sorted(got)))
    T.check(got <= ALLOWED, "2 pushed what the page does not use: %s" % sorted(got - ALLOWED))
    v = ng(H[2], "198.51.100.3", no_push=True)
    T.eq(v.pushes(), {}, "pushes to a --no-push client")
    info = v.informational(v.page_sid)
    T.check(info, "no 103 from instance 3")
    links = set(L.link_targets([val for _, hs in info for k, val in hs if k == "link"]))
    T.check(set(L.DEMO_INDEX_HTML) <= links,
            "103 lacks %s" % sorted(set(L.DEMO_INDEX_HTML) - links))


CSS = "/css/item.css"
JS = "/js/app.js"


@T.case("a pin through 3's admin and a ban through 1's show in every /maps/page and delivery")
def _():
    url = "http://%s%s" % (AUTH, CSS)
    st, _ = admin(H[2], "POST", "/maps/pin?page=%s&asset=%s" % (q(KEY), q(url)))
    T.eq(st, 200, "pin through instance 3")
    ban = "http://%s%s" % (AUTH, JS)
    st, _ = admin(H[0], "POST", "/maps/ban?page=%s&asset=%s" % (q(KEY), q(ban)))
    T.eq(st, 200, "ban through instance 1")
    pinned = urllib.parse.urlsplit(url).path
    for h in H:
        wait("pin and ban reach %s" % h.name,
             lambda: (edges(h).get(pinned, {}).get("state"),
                      edges(h).get(JS, {}).get("state")) == ("pinned", "banned"))
    for i, h in enumerate(H):
        got = set(ng(h, "198.51.100.%d" % (10 + i)).push_paths())
        T.check(JS not in got, "%s pushed the banned %s" % (h.name, JS))
        T.check(pinned in got, "%s did not push the pinned %s" % (h.name, pinned))


@T.case("steering published on the channel alone (no stream entry) reaches every instance "
        "through its subscription")
def _():
    # a message as another instance would publish it, but only on the
    # channel: nothing in the steer stream or the pins hash to read
    logo = "/img/logo.svg"
    for h in H:
        wait("%s subscribed" % h.name, lambda: h.stats()["shared_map"]["subscribed"])
    base = {"v": 1, "inst": "0ddba11c0ffee000", "t": int(time.time() * 1000), "page": KEY,
            "asset": "http://%s%s" % (AUTH, logo)}
    xlen = rcli("XLEN", "herald:v1:steer")
    for seq, op, state in ((1, "ban", "banned"), (2, "learned", "learned")):
        msg = dict(base, op=op, seq=seq)
        n = rcli("PUBLISH", "herald:v1:steer:chan", "1-%d %s" % (seq, json.dumps(msg)))
        T.eq(n, "3", "subscribers of the steer channel")
        for h in H:
            wait("published %s reaches %s" % (op, h.name),
                 lambda: edges(h).get(logo, {}).get("state") == state)
    T.eq(rcli("XLEN", "herald:v1:steer"), xlen, "steer stream entries (published alone)")


@T.case("the subscriptions cut (CLIENT KILL TYPE pubsub) while a pin is made: every instance "
        "resubscribes and resyncs it from the stream")
def _():
    subs = {h.name: h.stats()["shared_map"]["subscribes"] for h in H}
    css = "/css/site.css"
    url = "http://%s%s" % (AUTH, css)
    killed = rcli("CLIENT", "KILL", "TYPE", "pubsub")
    T.eq(killed, "3", "subscriber connections killed")
    st, _ = admin(H[0], "POST", "/maps/pin?page=%s&asset=%s" % (q(KEY), q(url)))
    T.eq(st, 200, "pin through instance 1")
    for h in H:
        wait("%s resubscribed" % h.name,
             lambda: h.stats()["shared_map"]["subscribes"] > subs[h.name] and
             h.stats()["shared_map"]["subscribed"])
        wait("pin made while unsubscribed reaches %s" % h.name,
             lambda: edges(h).get(css, {}).get("state") == "pinned")
    st, _ = admin(H[0], "POST", "/maps/unpin?page=%s&asset=%s" % (q(KEY), q(url)))
    T.eq(st, 200, "unpin through instance 1")
    for h in H:
        wait("unpin reaches %s" % h.name,
             lambda: edges(h).get(css, {}).get("state") != "pinned")


@T.case("Redis killed under h2load through all three: 0 failed, up 0; restarted: resync")
def _():
    global redis
    wait("every instance caught up before the load", caught_up)
    before = {h.name: visits_total(h) for h in H}
    # navigations of the index and its stylesheet, by a client whose visit
    # of the index counted already in this window (case 2): each load
    # visit is a commit that the fleet's bound must keep from counting
    loads = [T.spawn("h2load-%d" % i, ["h2load", "-D", "3", "-c", "2", "-m", "4",
                                         "-H", ":authority: " + AUTH, "-H", "accept: text/html",
                                         "-H", "x-forwarded-for: 198.51.100.1",
                                         h.url + "/", h.url + "/css/site.css"])
             for i, h in enumerate(H)]
    time.sleep(0.3)
    port = redis.port
    redis.kill()
    for h in H:
        wait("%s sees Redis down" % h.name, lambda: metric(h, "herald_shared_map_up") == 0)
        st, j = admin(h, "GET", "/healthz")
        T.eq((st, j.get("status")), (200, "degraded"), "/healthz while Redis is down")
    for p in loads:
        p.p.wait(60)
        out = open(p.out_path).read()
        T.check(re.search(r"requests: \d+ total, \d+ started, [1-9]\d* done, \d+ succeeded, "
                          r"0 failed, 0 errored, 0 timeout", out),
                "h2load through %s: %s" % (p.name, [ln for ln in out.splitlines()
                                                    if "requests:" in ln]))
    # a page learned on 2 while Redis is away reaches the others after it returns
    browse(H[1], "198.51.100.40", "/item/1/")
    ikey = AUTH + "/item/1/"
    T.check(edges(H[1], ikey), "instance 2 did not learn /item/1/ locally")
    redis = Redis(port)
    for h in H:
        wait("%s resynced after Redis restart" % h.name,
             lambda: metric(h, "herald_shared_map_up") == 1, bound=10)
    for h in (H[0], H[2]):
        wait("page learned while Redis was away reaches %s" % h.name,
             lambda: edges(h, ikey), bound=10)
    # nothing counted twice: the load's visits were all the one client's,
    # so each instance's count of the index is unchanged, and /item/1/
    # counts once everywhere
    for h in H:
        h.settle()
    wait("every instance caught up after the restart", caught_up)
    for h in H:
        T.eq(visits_total(h), before[h.name], "%s visits of the index" % h.name)
        T.eq(visits_total(h, ikey), 1, "%s visits of /item/1/" % h.name)
    seen = log_batches()
    T.eq(len(seen), len(set(seen)), "batches in the Redis log (instance, seq) appended once")



@T.case("an instance restarted with an empty state file plans from Redis on its first visit")
def _():
    h = H[1]
    h.stop()
    st = os.path.join(T.dir, "state-2.json")
    if os.path.exists(st):
        os.unlink(st)
    t0 = time.monotonic()
    H[1] = start(2, name="herald-2-restarted")
    print("# restart with empty state to listening: %.3f s" % (time.monotonic() - t0),
          flush=True)
    v = ng(H[1], "198.51.100.50")
    got = set(v.push_paths())
    strong = set(L.DEMO_INDEX_HTML) - {JS}
    T.check(strong <= got, "restarted instance did not push %s (pushed %s)" %
            (sorted(strong - got), sorted(got)))
    T.check(JS not in got, "the ban did not survive the restart")


@T.case("one client through all three instances moves a plan by at most one visit's weight")
def _():
    key = AUTH + "/item/2/"
    for h in H:
        T.eq(visits_total(h, key), 0, "%s knows /item/2/ already" % h.name)
    for _ in range(2):
        for h in H:
            browse(h, "203.0.113.77", "/item/2/")
    wait("every instance caught up with the log", caught_up)
    # the six visits are the same client: each map counts one
    for h in H:
        T.eq(visits_total(h, key), 1, "%s: visits of /item/2/ by one client" % h.name)
    # a second client still counts
    browse(H[0], "203.0.113.78", "/item/2/")
    for h in H:
        wait("a second client counts on %s" % h.name, lambda: visits_total(h, key) == 2)


@T.case("one client's visits reach two instances before either folded the other's: every "
        "instance counts the same one (Redis's client marks)")
def _():
    import threading
    page, key = "/item/3/", AUTH + "/item/3/"
    client = "203.0.113.88"
    extra = {0: "/img/item-1.png", 1: "/img/item-2.png"}  # neither named by the page
    for h in H:
        T.eq(visits_total(h, key), 0, "%s knows /item/3/ already" % h.name)
    wait("every instance caught up before the visits", caught_up)
    # Redis takes no write for a moment (reads go on): both visits are
    # committed before either instance's batch reaches the log, so neither
    # instance can have folded the other's; 1 s stays under herald's
    # command timeout, so no instance takes Redis for gone
    rcli("CLIENT", "PAUSE", "1000", "WRITE")
    errs = []

    def visit(i):
        try:
            c = L.Client(H[i].port, push=False)
            c.authority = AUTH
            try:
                L.browse(c, page, L.DEMO_ITEM_COMMON + [extra[i]],
                         [("x-forwarded-for", client)])
            finally:
                c.close()
        except Exception as e:  # reported below
            errs.append(repr(e))
    ts = [threading.Thread(target=visit, args=(i,)) for i in (0, 1)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    T.eq(errs, [], "visits")
    for h in H[:2]:
        wait("%s committed its visit" % h.name,
             lambda: h.stats()["shared_map"]["open_records"] or
             h.stats()["shared_map"]["queued_batches"] or visits_total(h, key), bound=10)
    wait("every instance caught up with the log", caught_up, bound=10)
    for h in H:
        wait("%s counted a visit of /item/3/" % h.name, lambda: visits_total(h, key) == 1)
    # which visit counted is Redis's choice; that it is the same one
    # everywhere shows in the follow-up only that visit fetched
    got = [(extra[0] in edges(h, key), extra[1] in edges(h, key)) for h in H]
    print("# /item/3/ follow-ups per instance (item-1, item-2): %s" % got, flush=True)
    T.check(got[0] in ((True, False), (False, True)),
            "%s: not exactly one visit's follow-up: %s" % (H[0].name, got[0]))
    T.eq(got[1:], [got[0]] * 2, "the counted visit's follow-up on every instance")


@T.case("hostile values in Redis are rejected with a log line, nothing of them applied")
def _():
    before = {h.name: h.stats()["shared_map"]["rejected"] for h in H}
    pages = {h.name: h.stats()["map"]["pages"] for h in H}
    evil = [["XADD", "herald:v1:log", "*", "i", "evil", "s", "1", "b",
             '{"v":1,"inst":"evil","seq":1,"t":1,"str":["x"],"rec":[{"r":"visit","p":9}]}'],
            ["XADD", "herald:v1:log", "*", "i", "evil", "s", "2", "b", "not json {"],
            ["PUBLISH", "herald:v1:steer:chan", '1-1 {"v":1,"op":"pin","inst":"evil"}'],
            ["PUBLISH", "herald:v1:steer:chan", "no stream id"]]
    for cmd in evil:
        r = subprocess.run(["redis-cli", "-p", str(redis.port)] + cmd, capture_output=True,
                           text=True, timeout=10)
        T.eq(r.returncode, 0, "redis-cli " + " ".join(cmd[:2]))
    for h in H:
        wait("%s rejects the hostile values" % h.name,
             lambda: h.stats()["shared_map"]["rejected"] >= before[h.name] + 4)
        err = open(h.err_path).read()
        T.check("rejected batch" in err and "rejected steering message" in err and
                "rejected published steering message" in err,
                "%s logged no rejection" % h.name)
        T.eq(h.stats()["map"]["pages"], pages[h.name], "%s pages after hostile values" % h.name)
        T.eq(metric(h, "herald_shared_map_up"), 1, "%s still synced" % h.name)


@T.case("Redis lost its data (FLUSHALL): the map and pins are uploaded again, a new instance "
        "plans from them")
def _():
    rcli("FLUSHALL")
    ban = "%s\nhttp://%s%s" % (KEY, AUTH, JS)
    wait("map and pins back in Redis", lambda: rcli("EXISTS", "herald:v1:base") == "1" and
         '"ban"' in rcli("HGET", "herald:v1:pins", ban))
    for h in H:
        wait("%s follows the new copy" % h.name,
             lambda: h.stats()["shared_map"]["epoch_changes"] >= 1)
    h = H[2]
    h.stop()
    st = os.path.join(T.dir, "state-3.json")
    if os.path.exists(st):
        os.unlink(st)
    H[2] = start(3, name="herald-3-restarted")
    got = set(ng(H[2], "198.51.100.60").push_paths())
    strong = set(L.DEMO_INDEX_HTML) - {JS}
    T.check(strong <= got, "new instance did not push %s (pushed %s)" %
            (sorted(strong - got), sorted(got)))
    T.check(JS not in got, "the ban was lost with Redis's data")


def rcli_at(port, password, *args):
    r = subprocess.run(["redis-cli", "-p", str(port), "-a", password, "--no-auth-warning"] +
                       list(args), capture_output=True, text=True, timeout=10)
    return r.stdout.strip()


@T.case("a bad --shared-map is refused with a message; a password file unlocks a Redis")
def _():
    for url, want in (("rediss://127.0.0.1:1", "not supported"),
                      ("redis://127.0.0.1:99999", "bad port"), ("unix://relative", "absolute")):
        r = T.run([harness.herald_bin(), "--origin=" + o.url, "--listen=127.0.0.1:%d" %
                   harness.free_port(), "--shared-map=" + url], timeout=10)
        T.eq(r.returncode, 2, "exit status for --shared-map=" + url)
        T.check(want in r.stderr, "%s: no '%s' in %r" % (url, want, r.stderr[-200:]))
    port = harness.free_port()
    d = os.path.join(T.dir, "redis-auth")
    os.makedirs(d, exist_ok=True)
    p = T.spawn("redis-auth", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--dir", d, "--save", "", "--requirepass", "s3cret word"])
    T.check(harness.wait_listen(port, proc=p.p), "redis-auth did not listen")
    pw = os.path.join(T.dir, "redis-password")
    with open(pw, "w") as f:
        f.write("s3cret word\n")
    url = "--shared-map=redis://127.0.0.1:%d/2" % port
    good = T.herald(o, [url, "--shared-map-password-file=" + pw], name="herald-auth")
    wait("herald-auth connects with the password",
         lambda: metric(good, "herald_shared_map_up") == 1)
    T.eq(rcli_at(port, "s3cret word", "-n", "2", "EXISTS", "herald:v1:epoch"), "1",
         "epoch in database 2")
    bad = T.herald(o, [url], name="herald-noauth")
    T.eq(metric(bad, "herald_shared_map_up"), 0, "up without the password")
    st, j = admin(bad, "GET", "/healthz")
    T.eq((st, j.get("status")), (200, "degraded"), "/healthz without the password")
    r = T.curl(["-H", "host: " + AUTH], bad.url + "/")
    T.eq(r.status, 200, "a request through an instance whose Redis refuses it")
    T.check("AUTH" in open(bad.err_path).read(), "the refusal is not logged")



@T.case("convergence times and Redis commands per second per instance")
def _():
    c0 = [h.stats()["shared_map"]["commands"] for h in H]
    t0 = time.monotonic()
    time.sleep(2)
    dt = time.monotonic() - t0
    rates = [(h.stats()["shared_map"]["commands"] - c) / dt for h, c in zip(H, c0)]
    print("# Redis commands/s per idle instance (interval 0.2 s): %s" %
          ", ".join("%.1f" % r for r in rates), flush=True)
    T.check(all(r < 100 for r in rates), "an idle instance busy with Redis: %s" % rates)
    print("# measured: " + json.dumps({k: round(v, 3) for k, v in times.items()}), flush=True)


T.finish()
