#!/usr/bin/python3
"""State on disk under SIGKILL: herald starts from a large
generated snapshot (so a write takes a while) with a short --state-interval;
each round an admin pin makes the map dirty, the test waits for the write's
temp file, stops herald (SIGSTOP) and checks in /proc/PID/task/*/syscall
that a thread is inside write(2) or fsync(2) on that temp file, so the
SIGKILL that follows lands mid-write by construction (when the stop caught
the writer elsewhere, herald continues and the round tries again). Every
restart must load a valid, complete map: never a torn file, never one
moved aside. Bounded by rounds; the time bounds only catch a hang."""

import glob
import json
import os
import platform
import signal
import time

import adminlib as A
import harness

ROUNDS = 50
PAGES, EDGES = 600, 24
TRIES = 200  # stops per round that may miss the write before the round fails

# syscall numbers (asm/unistd_64.h, asm-generic/unistd.h) of what a snapshot
# write does to its temp file between open and close
WRITE_CALLS = {
    "x86_64": {1: "write", 18: "pwrite64", 20: "writev", 74: "fsync", 75: "fdatasync"},
    "aarch64": {64: "write", 66: "writev", 68: "pwrite64", 82: "fsync", 83: "fdatasync"},
}.get(platform.machine())

T = harness.Tests("admin_sigkill")
o = T.origin()
STATE = os.path.join(T.dir, "state.json")


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


S = {"mid": 0, "rounds": 0, "bytes": 0, "stops": 0, "calls": {}}


def stopped(pid):
    """True once every thread of pid is in the stopped state (T)."""
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                if f.read().rpartition(")")[2].split()[0] not in ("T", "t"):
                    return False
    except OSError:
        return False
    return True


def writer_call(pid, tmp_paths):
    """The name of the write/fsync call a thread of (stopped) pid is in on one
    of tmp_paths, or None."""
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/syscall" % (pid, tid)) as f:
                fields = f.read().split()
        except OSError:
            continue
        if len(fields) < 2 or not fields[0].lstrip("-").isdigit():
            continue  # "running"
        name = WRITE_CALLS.get(int(fields[0]))
        if name is None:
            continue
        try:
            target = os.readlink("/proc/%d/fd/%d" % (pid, int(fields[1], 16)))
        except (OSError, ValueError):
            continue
        if os.path.realpath(target) in tmp_paths:
            return name
    return None


@T.case("%d SIGKILLs inside snapshot writes (write/fsync of the temp file); every restart "
        "loads the map" % ROUNDS)
def _():
    if WRITE_CALLS is None:
        raise harness.Skip("syscall numbers unknown on %s" % platform.machine())
    make_snapshot()
    S["bytes"] = os.path.getsize(STATE)
    port, aport = harness.free_port(), harness.free_port()
    argv = [harness.herald_bin(), "--origin=" + o.url, "--listen=127.0.0.1:%d" % port,
            "--workers=%d" % harness.workers(1), "--admin=127.0.0.1:%d" % aport,
            "--state=" + STATE, "--state-interval=0.05", "--log-level=info"]
    for r in range(ROUNDS):
        p = T.spawn("herald-%d" % r, argv)
        T.check(harness.wait_listen(aport, proc=p.p, timeout=60),
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
        call = None
        for attempt in range(TRIES):
            # dirty the map; a write follows within --state-interval
            ino = os.stat(STATE).st_ino
            st, _, _ = A.call(H, "POST", "/maps/pin?page=%s&asset=%s" % (
                A.q("site.example/page/%d" % (r % PAGES)),
                A.q("http://site.example/pin-%d-%d.js" % (r, attempt))))
            T.eq(st, 200, "pin")
            # until the temp file shows, or the write finished unseen (rename: new inode)
            end = time.monotonic() + 30
            while not glob.glob(pat) and os.stat(STATE).st_ino == ino:
                T.check(time.monotonic() < end, "round %d: no write within 30 s" % r)
                time.sleep(0.0005)
            if not glob.glob(pat):
                continue
            os.kill(p.pid, signal.SIGSTOP)
            S["stops"] += 1
            end = time.monotonic() + 30
            while not stopped(p.pid):
                T.check(time.monotonic() < end, "round %d: herald did not stop" % r)
                time.sleep(0.0005)
            call = writer_call(p.pid, {os.path.realpath(t) for t in glob.glob(pat)})
            if call is not None:
                break
            os.kill(p.pid, signal.SIGCONT)  # stopped outside the write: let it finish
        T.check(call is not None, "round %d: no stop caught the writer in %d tries" % (r, TRIES))
        os.kill(p.pid, signal.SIGKILL)
        p.p.wait(30)
        S["calls"][call] = S["calls"].get(call, 0) + 1
        left = glob.glob(pat)
        T.check(left, "round %d: killed inside %s, but no temp file was left" % (r, call))
        S["mid"] += 1
        for t in left:
            os.unlink(t)
        S["rounds"] += 1
        T.check(not glob.glob(STATE + ".corrupt-*"), "a snapshot was set aside")
        with open(STATE) as f:
            doc = json.load(f)  # the file on disk is always whole
        T.eq(len(doc["pages"]), PAGES, "round %d: pages in the file" % r)
    print("# %d rounds, snapshot %d bytes, %d stops, kills inside %s" % (
        S["rounds"], S["bytes"], S["stops"], S["calls"]), flush=True)


T.finish()
