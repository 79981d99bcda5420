#!/usr/bin/python3
"""The timeline of a page's last delivered visit (GET /maps/timeline and the
admin page). The demo origin thinks THINK ms before it answers the home
page; herald (two workers) learns it through two nghttp visits, then a
third nghttp visit (push accepted, assets not fetched) gets the plan pushed
and a fourth (--no-push) gets it as one 103.
What the timeline says is checked against independent records:

- the pushed paths are those nghttp saw PUSH_PROMISEd, each push's bytes
  the file's size on disk, and nghttp received every push's END_STREAM
  before the page's HEADERS (the pushes went out in the think time);
- the origin's own log: herald fetched each push after promising it (the
  origin's request time lies between fetch_ms and fetched_ms), every push
  finished before the origin could have answered the page (its request
  time + THINK), and the response head is not earlier than that.

The 103's links are the timeline's hint items, sent within the think time.

Then the admin page in headless Chromium draws the timeline: one SVG per
page, one bar per item plus the page's own, the think time shaded from 0
to the head's position; the screenshot goes to the build directory."""

import os
import re
import time

import adminlib as A
import chromelib as C
import harness
import learnlib as L

THINK = 1000  # ms the origin waits before it answers "/"
SLACK = 3     # ms: the two clocks' resolution (herald's "at" is whole ms)

T = harness.Tests("admin_timeline", need=["nghttp", "chromium", "chromedriver"],
                  python_modules=["selenium"])
o = T.origin(args=["--think", "/=%d" % THINK])
h = A.herald(T, o, workers=2)
KEY = A.page_key(h)
S = {}


def fetch_timeline(since_ms, timeout=20):
    """The page's timeline once one recorded at or after since_ms is stored."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st, j, _ = A.call(h, "GET", "/maps/timeline?page=" + A.q(KEY))
        if st == 200 and j["at"] >= since_ms - SLACK:
            return j
        time.sleep(0.1)
    raise harness.Failure("no timeline of %s recorded after %d" % (KEY, since_ms))


@T.case("API: no timeline for an unknown page, 400 without ?page, 405 on POST")
def _():
    st, j, _ = A.call(h, "GET", "/maps/timeline?page=" + A.q("nowhere.test/"))
    T.eq(st, 404, "unknown page")
    T.eq(A.call(h, "GET", "/maps/timeline")[0], 400, "no page")
    T.eq(A.call(h, "POST", "/maps/timeline?page=" + A.q(KEY))[0], 405, "POST")


@T.case("learn the home page (origin think time %d ms)" % THINK)
def _():
    S["page"] = A.learn(T, h)


@T.case("pushed visit: timeline matches nghttp's frames, the files and the origin's log")
def _():
    before = time.time() * 1000
    ng = L.nghttp(T, h.url + "/", [])
    pushes = ng.pushes()  # {sid: path}
    T.check(len(pushes) >= 5, "nghttp saw only %d pushes" % len(pushes))
    tl = fetch_timeline(before)
    S["tl"] = tl
    items = [i for i in tl["items"] if i["via"] == "push"]
    T.eq(sorted(i["url"] for i in items), sorted(pushes.values()), "pushed paths")
    T.eq(tl["status"], 200, "page status")
    T.eq(tl["dropped"], 0, "dropped items")

    # the client: each push ended before the page's response head
    head_idx = ng.final_headers_index(ng.page_sid)
    T.check(head_idx is not None, "no page HEADERS")
    for sid, path in pushes.items():
        end = ng.index_of(lambda f, sid=sid: f["sid"] == sid and f["flags"] & 1 and
                          f["type"] in ("DATA", "HEADERS"))
        T.check(end is not None and end < head_idx,
                "%s: END_STREAM frame %s, page HEADERS frame %s" % (path, end, head_idx))

    # the files on disk
    for i in items:
        size = os.path.getsize(os.path.join(L.DEMO, i["url"].split("?")[0].lstrip("/")))
        T.eq((i["outcome"], i["bytes"]), ("completed", size), i["url"])
        T.check(0 <= i["at_ms"] <= i["fetch_ms"] <= i["first_byte_ms"] <= i["fetched_ms"]
                <= i["end_ms"], "%s: times out of order: %s" % (i["url"], i))

    # the origin's log: when herald asked for each asset, when the page could be answered
    reqs = [e for e in o.events("request") if e["t"] * 1000 >= tl["at"] - SLACK]
    page_req = [e for e in reqs if e["target"] == "/"]
    T.eq(len(page_req), 1, "origin requests for / in this visit")
    answer = page_req[0]["t"] * 1000 + THINK  # the origin answers no earlier
    at = tl["at"]
    T.check(at + tl["head_ms"] >= answer - SLACK,
            "head at %.1f, origin could answer from %.1f" % (at + tl["head_ms"], answer))
    T.check(tl["think_ms"] >= THINK - SLACK, "think %.1f ms" % tl["think_ms"])
    T.check(tl["head_ms"] <= tl["html_end_ms"], "head after the HTML end")
    for i in items:
        got = [e["t"] * 1000 for e in reqs if e["target"] == i["url"]]
        T.eq(len(got), 1, "origin requests for %s" % i["url"])
        T.check(at + i["fetch_ms"] - SLACK <= got[0] <= at + i["fetched_ms"] + SLACK,
                "%s: origin saw it at %.1f, herald fetched %.1f..%.1f" % (
                    i["url"], got[0] - at, i["fetch_ms"], i["fetched_ms"]))
        T.check(at + i["end_ms"] < answer,
                "%s finished at %.1f ms, after the origin could answer (%.1f ms)" % (
                    i["url"], i["end_ms"], answer - at))
        T.check(i["end_ms"] < tl["head_ms"], "%s finished after the head" % i["url"])
    print("# think %.1f ms, %d pushes finished by %.1f ms, HTML end %.1f ms" % (
        tl["head_ms"], len(items), max(i["end_ms"] for i in items), tl["html_end_ms"]), flush=True)


@T.case("admin page in Chromium draws the timeline: a bar per item, think time shaded")
def _():
    tl = S["tl"]
    with C.page_browser(T.dir, "1200,1600") as d:
        d.get("http://%s/" % h.admin)
        end = time.monotonic() + 15
        while time.monotonic() < end and not d.execute_script(
                "return document.body.getAttribute('data-loaded')"):
            time.sleep(0.1)
        T.check(d.execute_script("return document.body.getAttribute('data-loaded')"),
                "admin page never loaded")
        got = d.execute_script("""
            const s = document.querySelector('section.page[data-page="' + arguments[0] + '"]');
            const svg = s && s.querySelector('svg.timeline');
            if (!svg) return null;
            const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.width]; };
            const bars = [...svg.querySelectorAll('rect.tbar')];
            const page = svg.querySelector('rect.tbar.page');
            const think = svg.querySelector('rect.think');
            return {page: svg.dataset.page, bars: bars.map(b => b.dataset.url),
                    pushes: bars.filter(b => b.classList.contains('push')).map(b => b.dataset.url),
                    completed: svg.querySelectorAll('rect.tbar.completed').length,
                    page_box: box(page), think: think && box(think),
                    head: !!svg.querySelector('line.mark.head')};""", KEY)
        T.check(got is not None, "no svg.timeline in the page's section")
        T.eq(got["page"], KEY, "timeline's page")
        T.eq(len(got["bars"]), len(tl["items"]) + 1, "bars (one per item and the page's)")
        T.eq(sorted(got["bars"][1:]), sorted(i["url"] for i in tl["items"]), "bar per item")
        want = sorted(i["url"] for i in tl["items"] if i["via"] == "push")
        T.eq(sorted(got["pushes"]), want, "push bars")
        T.eq(got["completed"], len(want), "completed pushes drawn")
        T.check(got["head"], "no response-head mark")
        T.check(got["think"] is not None, "think time not shaded")
        # the shade starts at the page bar (arrival) and spans head_ms of its
        # html_end_ms long bar
        pl, pw = got["page_box"]
        tx, tw = got["think"]
        T.check(abs(tx - pl) < 1.5, "shade starts at %.1f, arrival at %.1f" % (tx, pl))
        ratio = tl["head_ms"] / tl["html_end_ms"]
        T.check(abs(tw / pw - ratio) < 0.02, "shade %.1f of page bar %.1f px, head/end %.3f" % (
            tw, pw, ratio))
        shot = os.path.join(harness.BUILD or T.dir, "admin_timeline.png")
        d.save_screenshot(shot)
        T.check(os.path.getsize(shot) > 1000, "screenshot %s" % shot)
        print("# screenshot: %s" % shot, flush=True)


@T.case("no-push visit: the 103's links are the timeline's hints, sent before the head")
def _():
    before = time.time() * 1000
    ng = L.nghttp(T, h.url + "/", ["--no-push"])
    info = ng.informational(ng.page_sid)
    T.eq(len(info), 1, "103s nghttp received")
    links = [v for k, v in info[0][1] if k == "link"]
    sent = sorted(L.link_targets(links))
    T.check(len(sent) >= 5, "only %d preloads in the 103" % len(sent))
    tl = fetch_timeline(before)
    hints = [i for i in tl["items"] if i["via"] == "hint"]
    T.eq([i for i in tl["items"] if i["via"] == "push"], [], "pushes to a no-push client")
    T.eq(sorted(re.sub(r"^https?://[^/]+", "", i["url"]) for i in hints), sent,
         "hinted URLs")
    T.check(tl["hints_ms"] is not None and all(i["at_ms"] == tl["hints_ms"] for i in hints),
            "hint times %s" % tl)
    T.check(tl["hints_ms"] < tl["head_ms"], "103 at %s, head at %s" % (tl["hints_ms"],
                                                                       tl["head_ms"]))
    page_req = [e for e in o.events("request") if e["target"] == "/" and
                e["t"] * 1000 >= tl["at"] - SLACK]
    T.eq(len(page_req), 1, "origin requests for / in this visit")
    T.check(tl["at"] + tl["hints_ms"] < page_req[0]["t"] * 1000 + THINK,
            "103 not within the origin's think time")


@T.case("forgetting the page forgets its timeline")
def _():
    T.eq(A.call(h, "DELETE", "/maps/page?page=" + A.q(KEY))[0], 200, "forget")
    T.eq(A.call(h, "GET", "/maps/timeline?page=" + A.q(KEY))[0], 404, "timeline after forget")


T.finish()
