"""bench/learning: ground truth, scores, diagnosis and tables.

Ground truth (per page): the same-origin subresources a cold headless
Chromium fetched with status 200 (see learning_clients), over N cold
visits straight to the origin.  A URL fetched in every visit is ground
truth.  URLs that are not: when the same path with the same query
parameter names was fetched in every visit but with a different value of
some parameter, those parameters are volatile (a timestamp, a nonce) and
the URL is dropped from the truth; a push or hint of such a path counts as
waste ("volatile URL").  Any other URL fetched in some visits only is
"unstable": a push or hint of it counts neither as right nor as waste.
"""
import html.parser
import http.client
import re
import urllib.parse

from learning_clients import local, origin_of

VERSIONED = re.compile(r"[?&](ver|v|s|version|rev|hash|_)=", re.I)


# ------------------------------------------------------------ ground truth

def split_query(pq):
    path, _, q = pq.partition("?")
    return path, urllib.parse.parse_qsl(q, keep_blank_values=True) if q else []


def ground_truth(visit_sets):
    """visit_sets: [{path?query: request}] of N cold visits.  Returns
    (stable {pq: request}, unstable [pq], volatile [{"path", "params"}])."""
    n = len(visit_sets)
    allk = set().union(*[set(v) for v in visit_sets]) if visit_sets else set()
    stable = {k: visit_sets[0][k] for k in allk if all(k in v for v in visit_sets)}
    rest = allk - set(stable)
    groups = {}
    for k in rest:
        path, params = split_query(k)
        sig = (path, tuple(sorted(p for p, _ in params)))
        groups.setdefault(sig, set()).add(k)
    volatile, vol_keys = [], set()
    for (path, names), keys in groups.items():
        if not names:
            continue
        present = sum(1 for v in visit_sets if any(k in v for k in keys))
        if present < n or len(keys) < 2:
            continue
        vals = {}
        for k in keys:
            for p, val in split_query(k)[1]:
                vals.setdefault(p, set()).add(val)
        vparams = sorted(p for p, vs in vals.items() if len(vs) > 1)
        if vparams:
            volatile.append({"path": path, "params": vparams, "seen": sorted(keys)})
            vol_keys |= keys
    unstable = sorted(rest - vol_keys)
    return stable, unstable, volatile


def volatile_match(pq, volatile):
    path, params = split_query(pq)
    names = {p for p, _ in params}
    for v in volatile:
        if v["path"] == path and set(v["params"]) <= names:
            return v
    return None


# ------------------------------------------------ references in HTML / CSS

CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)""", re.I)
CSS_IMPORT = re.compile(r"""@import\s+(?:url\(\s*)?(?:"([^"]*)"|'([^']*)'|([^;'"\s)]+))""", re.I)


def css_refs(text, base):
    """[(pq or absolute URL, "CSS url()"|"CSS @import")] of a stylesheet."""
    out = []
    for m in CSS_IMPORT.finditer(text):
        u = next(g for g in m.groups() if g is not None)
        out.append((urllib.parse.urljoin(base, u), "CSS @import"))
    for m in CSS_URL.finditer(text):
        u = next((g for g in m.groups() if g is not None), "")
        if u and not u.startswith("data:"):
            # inside an @font-face block?
            head = text[:m.start()]
            ff = head.rfind("@font-face")
            where = "@font-face url()" if ff >= 0 and "}" not in head[ff:] else "CSS url()"
            out.append((urllib.parse.urljoin(base, u), where))
    return out


class HtmlRefs(html.parser.HTMLParser):
    """Where the page's markup names each URL: {absolute URL: [description]}
    (e.g. '<link rel=stylesheet href>', '<img srcset> candidate',
    '<img src loading=lazy>')."""

    INSIDE = {"style": "in_style", "picture": "in_picture", "noscript": "in_noscript"}

    def __init__(self, base):
        super().__init__(convert_charrefs=True)
        self.base = base
        self.refs = {}
        self.in_style = False
        self.in_picture = False
        self.in_noscript = False

    def add(self, url, what):
        if not url or url.startswith(("data:", "javascript:", "#", "mailto:")):
            return
        u = urllib.parse.urljoin(self.base, url.strip())
        if self.in_noscript:
            what += " in <noscript>"
        self.refs.setdefault(u, []).append(what)

    def srcset(self, value, what):
        for cand in value.split(","):
            parts = cand.strip().split()
            if parts:
                self.add(parts[0], what)

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "base" and a.get("href"):
            self.base = urllib.parse.urljoin(self.base, a["href"])
        elif tag == "link":
            rel = " ".join(a.get("rel", "").lower().split())
            extra = " as=%s" % a["as"] if a.get("as") else ""
            self.add(a.get("href"), "<link rel=%s%s href>" % (rel or "?", extra))
            if a.get("imagesrcset"):
                self.srcset(a["imagesrcset"], "<link rel=%s imagesrcset>" % rel)
        elif tag == "script" and a.get("src"):
            flags = [f for f in ("async", "defer") if f in a]
            if a.get("type", "").lower() == "module":
                flags.append("type=module")
            self.add(a["src"], "<script src%s>" % ("".join(" " + f for f in flags)))
        elif tag in ("img", "source", "input", "video", "audio", "iframe", "embed"):
            lazy = " loading=lazy" if a.get("loading", "").lower() == "lazy" else ""
            pic = " in <picture>" if tag == "source" and self.in_picture else ""
            if a.get("src"):
                self.add(a["src"], "<%s src%s>%s" % (tag, lazy, pic))
            if a.get("srcset"):
                self.srcset(a["srcset"], "<%s srcset%s> candidate%s" % (tag, lazy, pic))
            if a.get("poster"):
                self.add(a["poster"], "<%s poster>" % tag)
            for k in ("data-src", "data-srcset", "data-lazy-src"):
                if a.get(k):
                    self.add(a[k].split()[0], "<%s %s> (script lazy-load)" % (tag, k))
        elif tag == "object" and a.get("data"):
            self.add(a["data"], "<object data>")
        elif tag in self.INSIDE:
            setattr(self, self.INSIDE[tag], True)
        if a.get("style"):
            for u, what in css_refs(a["style"], self.base):
                self.add(u, "style attribute url()")

    def handle_endtag(self, tag):
        if tag in self.INSIDE:
            setattr(self, self.INSIDE[tag], False)

    def handle_data(self, data):
        if self.in_style:
            for u, what in css_refs(data, self.base):
                self.add(u, "<style> " + what)


def html_refs(text, page_url):
    p = HtmlRefs(page_url)
    try:
        p.feed(text)
        p.close()
    except Exception:
        pass
    # a browser with scripts on does not fetch what <noscript> holds: name
    # another place first when there is one
    return {local(u): sorted(v, key=lambda w: "noscript" in w) for u, v in p.refs.items()
            if origin_of(u) == origin_of(page_url)}


# ------------------------------------------------------------ asset facts

HEADERS_KEPT = ("content-type", "content-length", "cache-control", "expires", "vary",
                "set-cookie", "etag", "last-modified", "content-encoding", "link")


def fetch(port, pq, timeout=30):
    """GET pq from the origin (no redirect following): status, kept headers,
    body length, body (text for CSS/HTML, else None)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", pq, headers={"User-Agent": "herald-learning-bench/facts",
                                       "Accept": "*/*"})
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    hs = {}
    for k, v in r.getheaders():
        k = k.lower()
        if k in HEADERS_KEPT:
            hs[k] = (hs[k] + ", " + v) if k in hs else v
    ctype = hs.get("content-type", "")
    text = body.decode("utf-8", "replace") if ("css" in ctype or "html" in ctype) else None
    return {"status": r.status, "headers": hs, "bytes": len(body), "text": text}


def header_class(facts, pq):
    """Compact facts that matter for caching/pushing: 'cc=…', 'vary=…',
    'set-cookie', 'versioned ?x='."""
    if facts is None:
        return "?"
    hs = facts["headers"]
    out = []
    cc = hs.get("cache-control")
    if cc:
        out.append("cc=" + cc)
    elif hs.get("expires"):
        out.append("expires")
    else:
        out.append("no cc/expires" + ("; etag/lm" if hs.get("etag") or hs.get("last-modified")
                                      else ""))
    if hs.get("vary"):
        out.append("vary=" + hs["vary"])
    if hs.get("set-cookie"):
        out.append("set-cookie")
    m = VERSIONED.search(pq)
    if m:
        out.append("?%s=" % m.group(1))
    if facts["status"] != 200:
        out.append("status %d" % facts["status"])
    return "; ".join(out)


# --------------------------------------------------------- classification

def browser_class(req, page_url, refs, css_urls):
    """How the ground-truth browser got to a URL it fetched."""
    pq = local(req["url"])
    ini = req.get("initiator") or {}
    typ = (req.get("type") or "?")
    where = refs.get(pq)
    src = ini.get("url")
    if ini.get("type") == "parser":
        if src and local(src) != local(page_url) and (
                origin_of(src) != origin_of(page_url) or local(src) in css_urls or
                typ in ("Font",) or ".css" in src):
            if typ == "Font":
                return "CSS font (@font-face url())"
            if typ == "Stylesheet":
                return "CSS @import"
            return "CSS url() %s" % typ.lower()
        if where:
            return "HTML " + where[0]
        return "HTML parser, not in the markup (%s)" % typ
    if ini.get("type") == "script":
        return "JS-initiated %s" % typ
    if ini.get("type") == "preload":
        return "preload %s" % typ
    if where and any("icon" in w for w in where):
        return "favicon (HTML %s)" % where[0]
    if pq.endswith("favicon.ico"):
        return "favicon (implicit /favicon.ico)"
    return "other %s (initiator %s)" % (typ, ini.get("type"))


def waste_class(pq, gt, refs, css_refs_map, kind=None):
    """Why a pushed/hinted URL that is not ground truth might have looked
    needed: where the page or its CSS names it (kind: herald's kind for
    it, e.g. font, image)."""
    k = (kind + " ") if kind else ""
    v = volatile_match(pq, gt["volatile"])
    if v:
        return "%svolatile URL (%s change per load)" % (k, ",".join(v["params"]))
    if pq in refs:
        return "%snamed in HTML %s, not fetched" % (k, refs[pq][0])
    if pq in css_refs_map:
        return "%snamed in %s, not fetched" % (k, css_refs_map[pq])
    return "%snot named by the page or its CSS" % k


def find_edge(pq, page_dump, tmpl_dump):
    """(herald's edge for pq on the page, else on its template; " (template)"
    or "")."""
    for dump, via in ((page_dump, ""), (tmpl_dump, " (template)")):
        for e in (dump or {}).get("edges", []):
            if local(e.get("url") or e.get("key") or "") == pq:
                return e, via
    return None, ""


def herald_reason(pq, page_dump, tmpl_dump, info, doc_mime):
    """Why herald did not deliver pq (from its map as it was before the
    scoring visits)."""
    if page_dump is None and tmpl_dump is None:
        odd = [m for m in doc_mime if m != "text/html"]
        return "page not in map" + (" (Chromium got the page as %s)" % ", ".join(odd)
                                    if odd else ""), None
    e, via = find_edge(pq, page_dump, tmpl_dump)
    if e is None:
        n = len((page_dump or {}).get("edges", []))
        if n >= info["max_assets_per_page"]:
            return "not learned: page has %d edges (--max-assets-per-page)" % n, None
        return "not learned", None
    min_conf = info["min_confidence"]
    why = []
    if e.get("state") == "banned":
        why.append("banned")
    if e.get("confidence", 0) < min_conf:
        why.append("low confidence")
    if not e.get("cacheable", True):
        why.append("not cacheable")
    if e.get("unpushable"):
        why.append("unpushable")
    if e.get("status") not in (None, 0, 200):
        why.append("status %s" % e.get("status"))
    if e.get("volatile"):
        why.append("volatile")
    if not why:
        why.append("eligible, not delivered")
    return "learned%s, %s" % (via, ", ".join(why)), edge_brief(e)


def edge_brief(e):
    if e is None:
        return None
    return {k: e.get(k) for k in ("kind", "as", "crossorigin", "sources", "confidence",
                                  "hit_visits", "cacheable", "unpushable", "volatile", "state",
                                  "status", "size", "promised", "hinted", "cancelled")}


def waste_reason(pq, page_dump, tmpl_dump):
    e, via = find_edge(pq, page_dump, tmpl_dump)
    if e is None:
        return "delivered, no edge in the page's map", None
    return "learned%s from %s" % (via, "+".join(e.get("sources") or ["?"])), edge_brief(e)


# ------------------------------------------------------------------ scores

def ratio(a, b):
    return None if b == 0 else a / b


def score_page(gt, push_visit, hint_visit, warm_visit, sizes):
    """Counts for one page; sizes {pq: bytes} (origin body sizes) are used
    for hint bytes only."""
    G = set(gt["stable"])
    U = set(gt["unstable"])
    pushes = {}
    for p in push_visit["pushes"]:
        if p["path"]:
            pushes[p["path"]] = pushes.get(p["path"], 0) + p["bytes"]
    P = set(pushes)
    H = set()
    for h in hint_visit["hints"]:
        u = urllib.parse.urljoin("https://x/", h["url"])
        H.add(local(u))
    Pc = P - U
    Hc = H - U
    prev = set(pushes)
    warm = [p["path"] for p in (warm_visit or {}).get("pushes", [])]
    return {
        "gt": len(G), "unstable": len(U), "volatile": len(gt["volatile"]),
        "push_n": len(P), "push_hit": len(P & G), "push_counted": len(Pc),
        "push_bytes": sum(pushes[p] for p in Pc), "push_hit_bytes": sum(pushes[p] for p in P & G),
        "push_waste_bytes": sum(pushes[p] for p in Pc - G),
        "push_miss": sorted(G - P), "push_waste": sorted(Pc - G),
        "hint_n": len(H), "hint_hit": len(H & G), "hint_counted": len(Hc),
        "hint_miss": sorted(G - H), "hint_waste": sorted(Hc - G),
        "warm_pushes": len(warm), "warm_already": sum(1 for p in warm if p in prev),
        "warm_paths": warm,
    }


SUMS = ("gt", "push_n", "push_hit", "push_counted", "push_bytes", "push_hit_bytes",
        "push_waste_bytes", "hint_n", "hint_hit", "hint_counted", "warm_pushes", "warm_already")


def aggregate(page_scores):
    s = {k: sum(p[k] for p in page_scores) for k in SUMS}
    s["pages"] = len(page_scores)
    s["push_recall"] = ratio(s["push_hit"], s["gt"])
    s["push_precision"] = ratio(s["push_hit"], s["push_counted"])
    s["push_bytes_precision"] = ratio(s["push_hit_bytes"], s["push_bytes"])
    s["push_waste_share"] = ratio(s["push_waste_bytes"], s["push_bytes"])
    s["hint_recall"] = ratio(s["hint_hit"], s["gt"])
    s["hint_precision"] = ratio(s["hint_hit"], s["hint_counted"])
    return s


def fmt(x, target=0.95, low_good=False):
    if x is None:
        return "–"
    ok = (x <= 0.05) if low_good else (x >= target)
    s = ("%.0f%%" % (100 * x)) if low_good else ("%.2f" % x)
    return s if ok else "**%s**" % s
