#!/usr/bin/python3
"""State on disk under SIGKILL (issue 5): herald starts from a large
generated snapshot (so a write takes a while) with a short --state-interval;
each round an admin pin makes the map dirty, the test waits for the write's
temp file and kills herald with SIGKILL at a random moment inside the write.
Every restart must load a valid, complete map (never a torn file, never
moved aside), and a good share of the kills must have landed mid-write
(the temp file was left behind by the kill)."""

import glob
import json
import os
import random
import signal
import time

import adminlib as A
import harness

ROUNDS = 50
PAGES, EDGES = 600, 24

T = harness.Tests("admin_sigkill")
o = T.origin()
STATE = os.path.join(T.dir, "state.json")
rng = random.Random(int(os.environ.get("HERALD_SEED", "5")))


def make_snapshot():
    pages = []
    for p in range(PAGES):
        edges = []
        for e in range(EDGES):
            url = "http://site.example/p%d/asset-%d-%s.css" % (p, e, "x" * 40)
            edges.append({"key": url, "url": url, "kind": "style", "as": "style",
                          "order": e, "sources": ["html"], "blocking": True, "hits": 3.5,
                          "visits": 4.0, "hit_visits": 4, "first_seen_ms": 1700000000000,
                          "last_seen_ms": 1700000001000, "state": "learned", "size": 1000 + e,
                          "status": 200, "content_type": "text/css", "etag": "\"e%d\"" % e,
                          "cacheable": True})
        pages.append({"key": "site.example/page/%d" % p, "visits": 4.0, "visits_total": 4,
                      "last_visit_ms": 1700000001000, "think_ms": 50.0, "html_size": 20000,
                      "status": 200, "edges": edges})
    with open(STATE, "w") as f:
        json.dump({"version": 1, "pages": pages}, f)


S = {"mid": 0, "rounds": 0, "bytes": 0}


@T.case("%d SIGKILLs at random moments during snapshot writes; every restart loads the map"
        % ROUNDS)
def _():
    make_snapshot()
    S["bytes"] = os.path.getsize(STATE)
    port, aport = harness.free_port(), harness.free_port()
    argv = [harness.herald_bin(), "--origin=" + o.url, "--listen=127.0.0.1:%d" % port,
            "--workers=1", "--admin=127.0.0.1:%d" % aport, "--state=" + STATE,
            "--state-interval=0.05", "--log-level=info"]
    dur = []  # observed write durations (temp file seen -> gone)
    for r in range(ROUNDS):
        if time.monotonic() > T.deadline - 10:
            break
        p = T.spawn("herald-%d" % r, argv)
        T.check(harness.wait_listen(aport, proc=p.p, timeout=20),
                "round %d: no admin port: %s" % (r, p.stderr_tail()))

        class H:
            admin_port = aport
        st, j, _ = A.call(H, "GET", "/stats")
        T.eq(j["map"]["pages"], PAGES, "round %d: pages loaded" % r)
        T.check(j["map"]["edges"] >= PAGES * EDGES, "round %d: edges %d" % (r, j["map"]["edges"]))
        with open(p.err_path) as f:
            log = f.read()
        T.check("unusable" not in log, "round %d: snapshot set aside: %s" % (r, log[-300:]))
        pat = "%s.tmp.%d.*" % (STATE, p.pid)  # snapshot_write_file's temp name
        tmp_exists = lambda: bool(glob.glob(pat))
        end = time.monotonic() + 10
        for attempt in range(10):
            # dirty the map; a write follows within --state-interval
            ino = os.stat(STATE).st_ino
            st, _, _ = A.call(H, "POST", "/maps/pin?page=%s&asset=%s" % (
                A.q("site.example/page/%d" % (r % PAGES)),
                A.q("http://site.example/pin-%d-%d.js" % (r, attempt))))
            T.eq(st, 200, "pin")
            # until the temp file shows, or the write finished unseen (rename: new inode)
            while not tmp_exists() and os.stat(STATE).st_ino == ino and time.monotonic() < end:
                time.sleep(0.0005)
            if tmp_exists():
                break
        T.check(tmp_exists(), "round %d: no temp file seen in 10 writes" % r)
        t0 = time.monotonic()
        if r < 3:  # learn how long a write takes
            while tmp_exists() and time.monotonic() < t0 + 10:
                time.sleep(0.001)
            dur.append(time.monotonic() - t0)
            # one more dirtying pin for the kill of this round
            A.call(H, "POST", "/maps/pin?page=%s&asset=%s" % (
                A.q("site.example/page/0"), A.q("http://site.example/again-%d.js" % r)))
            while not tmp_exists() and time.monotonic() < end + 5:
                time.sleep(0.001)
            t0 = time.monotonic()
        w = max(dur) if dur else 0.2
        time.sleep(rng.uniform(0, w * 0.8))  # inside the write, mostly
        os.kill(p.pid, signal.SIGKILL)
        p.p.wait(5)
        if tmp_exists():
            S["mid"] += 1
            for t in glob.glob(pat):
                os.unlink(t)
        S["rounds"] += 1
        T.check(not glob.glob(STATE + ".corrupt-*"), "a snapshot was set aside")
        with open(STATE) as f:
            doc = json.load(f)  # the file on disk is always whole
        T.eq(len(doc["pages"]), PAGES, "round %d: pages in the file" % r)
    print("# %d rounds, snapshot %d bytes, write %.3fs, %d kills landed mid-write" % (
        S["rounds"], S["bytes"], max(dur) if dur else 0, S["mid"]), flush=True)
    T.check(S["rounds"] >= ROUNDS, "only %d rounds in the time budget" % S["rounds"])


@T.case("a good share of the kills landed mid-write (temp file present at the kill)")
def _():
    T.check(S["mid"] >= S["rounds"] // 3, "only %d of %d" % (S["mid"], S["rounds"]))


T.finish()
