#!/usr/bin/python3
"""Generates bench/pageload's synthetic site, deterministically, into --out DIR.

One ~20 KB page (/index.html, served as /) whose critical set is:
  /css/main.css   stylesheet; @imports /css/base.css and names the font
  /css/base.css   reachable only through main.css's @import
  /css/theme.css  stylesheet
  /js/vendor.js   blocking head script
  /js/app.js      blocking head script
  /fonts/body.woff2  named only in main.css (@font-face); random bytes, the
                  browser fails to decode it but fetches it in full
  /img/1..4.png   valid PNGs of noise (incompressible)
About 200 KB in all.  Writes DIR/manifest.json: {path: bytes} for the page and
each critical asset, plus the Link header values an origin that knows its
page would send (used for the "origin's own 103" row).
"""
import argparse, json, os, random, struct, zlib

R = random.Random(20261124)


def words(n):
    syl = ["her", "ald", "push", "hint", "page", "load", "ori", "gin", "ka", "lo", "mi", "to", "sa"]
    out, size = [], 0
    while size < n:
        w = "".join(R.choice(syl) for _ in range(R.randint(1, 3)))
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n]


def css(n, extra=""):
    rules, size = [extra], len(extra)
    i = 0
    while size < n:
        r = ".c%d-%s { margin: %dpx %dpx; color: #%06x; padding: %dpx; }\n" % (
            i, R.choice("abcdefgh") * 3, R.randint(0, 40), R.randint(0, 40),
            R.randint(0, 0xFFFFFF), R.randint(0, 9))
        rules.append(r)
        size += len(r)
        i += 1
    return "".join(rules)


def js(n, name):
    out = ["window.__bench = window.__bench || {}; window.__bench[%r] = 1;\n" % name]
    size, i = len(out[0]), 0
    while size < n:
        line = "var %s_%d = %r;\n" % (name, i, words(90))
        out.append(line)
        size += len(line)
        i += 1
    return "".join(out)


def png(w, h):
    raw = b"".join(b"\x00" + R.randbytes(w * 3) for _ in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    files = {}
    files["/css/main.css"] = css(14000, '@import url("/css/base.css");\n'
                                 '@font-face { font-family: "BenchBody"; '
                                 'src: url("/fonts/body.woff2") format("woff2"); font-display: swap; }\n'
                                 'body { font-family: "BenchBody", sans-serif; }\n').encode()
    files["/css/base.css"] = css(6000).encode()
    files["/css/theme.css"] = css(10000).encode()
    files["/js/vendor.js"] = js(28000, "vendor").encode()
    files["/js/app.js"] = js(16000, "app").encode()
    files["/fonts/body.woff2"] = b"wOF2" + R.randbytes(20000 - 4)
    for i in range(1, 5):
        files["/img/%d.png" % i] = png(85, 85)
    head = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            '<title>herald pageload bench</title>\n<link rel="icon" href="data:,">\n'
            '<link rel="stylesheet" href="/css/main.css">\n'
            '<link rel="stylesheet" href="/css/theme.css">\n'
            '<script src="/js/vendor.js"></script>\n'
            '<script src="/js/app.js"></script>\n</head>\n<body>\n')
    body = []
    for i in range(1, 5):
        body.append('<h2>Section %d</h2>\n<p>%s</p>\n<img src="/img/%d.png" width="85" height="85" alt="">\n'
                    % (i, words(4850), i))
    html = head + "".join(body) + "</body></html>\n"
    files["/index.html"] = html.encode()
    for p, data in files.items():
        fp = os.path.join(a.out, p.lstrip("/"))
        os.makedirs(os.path.dirname(fp), exist_ok=True)
        with open(fp, "wb") as f:
            f.write(data)
    kinds = {"css": "style", "js": "script", "woff2": "font", "png": "image"}
    links = []
    for p in ["/css/main.css", "/css/base.css", "/css/theme.css", "/js/vendor.js", "/js/app.js",
              "/fonts/body.woff2"] + ["/img/%d.png" % i for i in range(1, 5)]:
        k = kinds[p.rsplit(".", 1)[1]]
        links.append("<%s>; rel=preload; as=%s%s" % (p, k, "; crossorigin" if k == "font" else ""))
    man = {"page": "/", "html": len(files["/index.html"]),
           "assets": {p: len(d) for p, d in files.items() if p != "/index.html"},
           "links": links}
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
    print(json.dumps({"html": man["html"], "critical": sum(man["assets"].values()),
                      "total": man["html"] + sum(man["assets"].values())}))


if __name__ == "__main__":
    main()
