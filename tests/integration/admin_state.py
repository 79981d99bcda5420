#!/usr/bin/python3
"""State on disk: --state survives a restart (learn through two
nghttp visits, SIGTERM, start again with the same file: the FIRST visit
after the restart is pushed, pins and bans kept); it is saved every
--state-interval when changed (without a shutdown); a corrupt, truncated or
future-version file is moved aside as FILE.corrupt-<time> with a clear log
line and herald starts empty."""

import glob
import json
import os
import time

import adminlib as A
import harness

T = harness.Tests("admin_state", need=["nghttp"], python_modules=["h2"])
o = T.origin()
STATE = os.path.join(T.dir, "state.json")
ARGS = ["--state=" + STATE, "--state-interval=0.2"]
S = {}


@T.case("learn through two visits; the periodic save writes the file")
def _():
    h = A.herald(T, o, ARGS, name="first")
    S["h"] = h
    S["page"] = A.learn(T, h)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            with open(STATE) as f:
                doc = json.load(f)
            if doc["pages"] and doc["pages"][0]["visits_total"] >= 2:
                break
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.1)
    else:
        raise harness.Failure("no periodic save with the learned page")
    T.eq(doc["version"], 2, "version")
    # the file is renamed on the thread pool, the count taken on the loop after:
    # wait for the count rather than read it once
    end = time.monotonic() + 5
    while True:
        st, j, _ = A.call(h, "GET", "/stats")
        if j["state"]["saves"] >= 1 or time.monotonic() > end:
            break
        time.sleep(0.05)
    T.check(j["state"]["saves"] >= 1 and j["state"]["file"] == STATE, "state stats %s" % j)


@T.case("ban an asset, SIGTERM: saved on shutdown")
def _():
    h = S["h"]
    img = "http://127.0.0.1:%d/img/logo.svg" % h.port
    st, j, _ = A.call(h, "POST", "/maps/ban?page=%s&asset=%s" % (A.q(A.page_key(h)), A.q(img)))
    T.eq(st, 200, "ban")
    T.eq(h.stop(), 0, "exit code")
    with open(h.err_path) as f:
        T.check("state: saved to" in f.read(), "no shutdown save in the log")
    with open(STATE) as f:
        doc = json.load(f)
    states = {e["url"]: e["state"] for e in doc["pages"][0]["edges"]}
    T.eq(states.get(img), "banned", "ban in the file")


@T.case("restart with the same --state: the first visit is pushed (PUSH_PROMISE), ban kept")
def _():
    # Same listen port, so the page key (authority) is the same.
    old = S["h"]
    h = T.herald(o, ["--admin=127.0.0.1:%d" % old.admin_port] + ARGS +
                 ["--listen=127.0.0.1:%d" % old.port], name="second")
    h.admin_port = old.admin_port
    h.url, h.port = old.url, old.port  # the old port is the second listener
    harness.HERALDS[old.port] = h  # visits through it settle on this herald
    T.check(harness.wait_listen(old.port, proc=h.p), "old port not listening")
    harness.wait_listen(h.admin_port, proc=h.p)
    with open(h.err_path) as f:
        T.check("state: loaded 1 pages" in f.read(), "no load line")
    paths = A.pushes(T, h)
    T.check(len(paths) >= 5, "first visit after restart pushed %s" % paths)
    T.check("/css/site.css" in paths, "css not pushed: %s" % paths)
    T.check("/img/logo.svg" not in paths, "banned asset pushed: %s" % paths)
    S["h2"] = h


def start_with(content, name):
    for p in glob.glob(STATE + ".corrupt-*"):
        os.unlink(p)
    with open(STATE, "wb") as f:
        f.write(content)
    # no identity probe: herald would learn its page, and the map must be empty
    h = A.herald(T, o, ARGS, name=name, check=False)
    st, j, _ = A.call(h, "GET", "/maps")
    T.eq((st, j["total"]), (200, 0), "starts empty")
    aside = glob.glob(STATE + ".corrupt-*")
    T.eq(len(aside), 1, "moved aside: %s" % aside)
    with open(aside[0], "rb") as f:
        T.eq(f.read(), content, "the bad file kept as it was")
    with open(h.err_path) as f:
        log = f.read()
    T.check("unusable" in log and ".corrupt-" in log, "log line: %s" % log[-400:])
    h.stop()


@T.case("truncated snapshot: moved aside, clear log line, herald starts empty")
def _():
    if "h2" in S:
        S["h2"].stop()
    with open(STATE, "rb") as f:
        good = f.read()
    start_with(good[: len(good) // 2], "truncated")


@T.case("corrupt snapshot (not JSON): moved aside, starts empty")
def _():
    start_with(b"\x00\x01garbage{{{", "corrupt")


@T.case("future-version snapshot: moved aside, starts empty")
def _():
    start_with(b'{"version":99,"pages":[]}', "future")


T.finish()
