#!/usr/bin/python3
"""Golden test: does discovery find what Chromium fetches?

usage: golden_test.py HERALD_SCAN ROOT PAGE EXPECTED

Runs herald-scan on ROOT/PAGE as http://localhost/PAGE, then on every
same-origin stylesheet it found (as the proxy would see them pass, @import
chains included), and compares the picked URLs with EXPECTED: lines
"<chromium resource type> <url>" written from tests/golden/capture.py and
reviewed by hand, plus review directives

    missing-ok <url> <reason>   the browser fetched it, discovery cannot
    extra-ok <url> <reason>     discovery reports it, the browser did not fetch it

Every expected URL must be found with a compatible kind and nothing may be
found that the browser did not request, except what the directives list.
Exit 0 pass, 1 fail, 77 skip (no herald-scan).
"""
import json
import os
import subprocess
import sys

ORIGIN = "http://localhost/"

# Chromium's resource types against herald's kinds.
KINDS = {
    "stylesheet": {"style"},
    "script": {"script", "module"},
    "image": {"image", "icon"},
    "font": {"font"},
    "manifest": {"manifest"},
    "other": {"icon", "other"},
    "fetch": {"other"},
}


def scan(herald_scan, path, base, css=False):
    cmd = [herald_scan, "--base", base]
    if css:
        cmd += ["--type", "text/css"]
    out = subprocess.run(cmd + [path], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line]


def discover(herald_scan, root, page):
    found = {}
    todo = [(os.path.join(root, page), ORIGIN + page, False)]
    seen_css = set()
    while todo:
        path, base, css = todo.pop(0)
        for a in scan(herald_scan, path, base, css):
            if not a["pick"] or a["kind"] == "preconnect":
                continue
            found.setdefault(a["url"], a["kind"])
            if a["kind"] == "style" and a["url"].startswith(ORIGIN) and a["url"] not in seen_css:
                seen_css.add(a["url"])
                local = os.path.join(root, a["url"][len(ORIGIN):].split("?")[0])
                if os.path.isfile(local):
                    todo.append((local, a["url"], True))
    return found


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    herald_scan, root, page, expected_path = sys.argv[1:]
    if not os.access(herald_scan, os.X_OK):
        print(f"skip: no herald-scan at {herald_scan}")
        return 77
    expected, missing_ok, extra_ok = {}, set(), set()
    with open(expected_path, encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0] == "missing-ok":
                missing_ok.add(words[1])
            elif words[0] == "extra-ok":
                extra_ok.add(words[1])
            else:
                expected[words[1]] = words[0]
    found = discover(herald_scan, root, page)
    errors = []
    for url, ctype in expected.items():
        if url in missing_ok:
            continue
        if url not in found:
            errors.append(f"missing: {ctype} {url}")
        elif found[url] not in KINDS.get(ctype, {found[url]}):
            errors.append(f"kind: {url} is {found[url]}, browser says {ctype}")
    for url, kind in found.items():
        if url not in expected and url not in extra_ok:
            errors.append(f"extra: {kind} {url}")
    for e in errors:
        print(e)
    print(f"{page}: {len(found)} found, {len(expected)} expected, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
