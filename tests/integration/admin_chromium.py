#!/usr/bin/python3
"""The admin HTML page in headless Chromium: after two nghttp
visits taught herald the demo home page, GET / on the admin port shows the
page and its assets (with confidence and bytes bars), clicking "ban" on one
asset calls the JSON API, the DOM and GET /maps/page then show it banned,
and a screenshot is saved under the build directory."""

import os
import time

import adminlib as A
import chromelib as C
import harness

T = harness.Tests("admin_chromium", need=["chromium", "chromedriver", "nghttp"],
                  python_modules=["selenium"])
o = T.origin()
h = A.herald(T, o)
KEY = A.page_key(h)
S = {}


@T.case("learn the home page through two nghttp visits")
def _():
    S["page"] = A.learn(T, h)


@T.case("admin page in Chromium: page and assets shown, ban clicked, map changed, screenshot")
def _():
    from selenium.webdriver.common.by import By
    with C.page_browser(T.dir, "1200,1400") as d:
        d.get("http://%s/" % h.admin)

        def wait(js, what, timeout=10):
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                v = d.execute_script(js)
                if v:
                    return v
                time.sleep(0.1)
            raise harness.Failure("timed out waiting for " + what)

        wait("return document.body.getAttribute('data-loaded')", "the page list")
        pages = d.execute_script(
            "return [...document.querySelectorAll('section.page')].map(s => s.dataset.page)")
        T.eq(pages, [KEY], "pages shown")
        rows = d.execute_script("""return [...document.querySelectorAll('tr.asset')].map(r => ({
            asset: r.dataset.asset, state: r.querySelector('td.state').textContent,
            bars: r.querySelectorAll('.bar').length}))""")
        want = {e["key"] for e in S["page"]["edges"]}
        T.eq({r["asset"] for r in rows}, want, "assets shown")
        T.check(all(r["bars"] == 2 for r in rows), "confidence and bytes bars: %s" % rows[:2])
        target = "http://127.0.0.1:%d/js/app.js" % h.port
        T.check(target in want, "%s not learned" % target)
        row = d.find_element(By.CSS_SELECTOR, 'tr.asset[data-asset="%s"]' % target)
        row.find_element(By.CSS_SELECTOR, "button.ban").click()
        wait("""return [...document.querySelectorAll('tr.asset')].some(r =>
            r.dataset.asset === %r && r.classList.contains('banned'))""" % target,
             "the row to show banned")
        shot = os.path.join(harness.BUILD or T.dir, "admin_page.png")
        d.save_screenshot(shot)
        T.check(os.path.getsize(shot) > 1000, "screenshot %s" % shot)
        print("# screenshot: %s" % shot, flush=True)
    st, j, _ = A.call(h, "GET", "/maps/page?page=" + A.q(KEY))
    T.eq({e["key"]: e["state"] for e in j["edges"]}.get(target), "banned", "map via the API")


T.finish()
