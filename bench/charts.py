#!/usr/bin/python3
"""bench/charts.py: PNG charts of the benchmarks, drawn from their raw results.

  bench/charts.py pageload|throughput|learning RESULTS_DIR OUT.png
  bench/charts.py all    (every chart again from the newest
                          bench/results/<bench>-<UTC time>/ of each bench)

The bench scripts call publish() right after writing their table: it draws
the chart into the results dir and copies it to bench/charts/<bench>.png,
which bench/README.md shows inside the bench's generated section.

Needs Debian's python3-matplotlib (scripts/deps.sh bench).  Drawn with the
Agg backend in DejaVu Sans (shipped by python3-matplotlib-data), at a fixed
size and dpi, with no time stamp or version in the PNG: the same results give
the same bytes.
"""
import json
import os
import re
import shutil
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
STABLE = os.path.join(HERE, "charts")
BENCHES = ("pageload", "throughput", "learning")
ALT = {"pageload": "Page load per cell: the floor, nghttpx and herald",
       "throughput": "Proxy CPU time per request, per proxy and configuration",
       "learning": "Learning recall and precision per application and scenario"}
DPI = 100
TARGET_LEARNING = 0.95

# One colour per proxy; rows of the same proxy differ by shade and hatch.
PROXY_COLOURS = {"herald": "#d95f02", "nghttpx": "#1f78b4"}
OTHER_COLOURS = ["#33a02c", "#6a3d9a", "#b15928", "#e7298a", "#666666"]


class ChartError(Exception):
    """Raw results that cannot be charted (missing file, no data)."""


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcdefaults()
    plt.rcParams.update({
        "font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10,
        "axes.titleweight": "bold", "axes.spines.top": False, "axes.spines.right": False,
        "axes.axisbelow": True, "axes.grid": True, "axes.grid.axis": "y",
        "grid.color": "#dddddd", "grid.linewidth": 0.8, "legend.fontsize": 8,
        "legend.frameon": False, "hatch.linewidth": 0.6, "path.simplify": False,
    })
    return plt


def _save(plt, fig, out_png):
    d = os.path.dirname(os.path.abspath(out_png))
    os.makedirs(d, exist_ok=True)
    fig.savefig(out_png, dpi=DPI, format="png", metadata={"Software": None})
    plt.close(fig)


def _load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise ChartError("cannot read %s: %s" % (path, e.strerror))
    except ValueError as e:
        raise ChartError("%s is not valid JSON: %s" % (path, e))


def _tint(colour, amount):
    """colour mixed with white: amount 0 = colour, 1 = white."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#%02x%02x%02x" % tuple(round(c + (255 - c) * amount) for c in (r, g, b))


def _proxy_colours(names):
    """A colour per proxy name: the fixed ones, then the others in order."""
    out, spare = {}, iter(OTHER_COLOURS)
    for n in names:
        out[n] = PROXY_COLOURS.get(n) or next(spare, "#999999")
    return out


def _group_x(n_groups, n_bars, width=0.8):
    """x of every bar: groups at 0, 1, ..., bars side by side within width."""
    w = width / max(n_bars, 1)
    return w, [[g - width / 2 + w * (i + 0.5) for i in range(n_bars)] for g in range(n_groups)]


# ------------------------------------------------------------------ pageload

PAGELOAD_ROWS = [  # (row, label); rows not listed here follow in sorted order
    ("nghttpx-none", "nghttpx, no hints"),
    ("nghttpx-103", "nghttpx, origin's own 103"),
    ("nghttpx-103link", "nghttpx, origin's 103 + Link on its 200"),
    ("herald-first", "herald, first visit"),
    ("herald-learned", "herald, learned"),
    ("herald-unknown", "herald, learned, client network never seen"),
]
PAGELOAD_CLIENTS = [  # (client, floor key, panel title, floor label)
    ("node", "F", "Push-capable client (Node, HTTP/2 push)",
     "floor F = R + max(T, S/B) + H/B"),
    ("chromium", "F103", "Headless Chromium, TLS (103 Early Hints)",
     "floor F103 = max(R + T, 2R + S/B) + H/B"),
]
BASELINE_VARIANTS = ("none", "first")  # rows that deliver nothing early: light shade


def _bw_label(bw):
    """"20m" -> "20 Mbit/s"."""
    bw = str(bw or "?")
    return bw.upper().replace("M", " M").replace("K", " k").replace("G", " G") + "bit/s"


def _pageload_style(row, colours):
    proxy, _, variant = row.partition("-")
    c = colours[proxy]
    if variant in BASELINE_VARIANTS:
        return {"color": _tint(c, 0.6), "edgecolor": c, "hatch": None}
    if variant in ("103link", "unknown"):
        return {"color": _tint(c, 0.3), "edgecolor": c, "hatch": "///"}
    return {"color": c, "edgecolor": c, "hatch": None}


def pageload_chart(results_dir, out_png):
    """Grouped bars of page load (HTML + every critical asset, median ms) per
    cell R/T, one panel per client kind found, each row of the bench a bar,
    min-max whiskers over the runs, the cell's floor as a black line; from
    results_dir/summary.json.  Raises ChartError on missing data."""
    s = _load_json(os.path.join(results_dir, "summary.json"))
    cells = s.get("cells") or []
    if not cells:
        raise ChartError("%s/summary.json has no cells" % results_dir)
    keys = {k for c in cells for k in c.get("rows", {})}
    clients = [p for p in PAGELOAD_CLIENTS if any(k.endswith("/" + p[0]) for k in keys)]
    if not clients:
        raise ChartError("%s/summary.json has no rows" % results_dir)
    known = [r for r, _ in PAGELOAD_ROWS]
    labels = dict(PAGELOAD_ROWS)
    proxies = sorted({k.split("-")[0] for k in keys}, key=lambda p: (p != "herald", p))
    colours = _proxy_colours(proxies)
    peers = " and ".join([p for p in proxies if p != "herald"] + ["the floor"])

    plt = _pyplot()
    bws = []  # bench/pageload runs one set of cells per bottleneck rate
    for c in cells:
        if c.get("B", s.get("bw")) not in bws:
            bws.append(c.get("B", s.get("bw")))
    fig, axes = plt.subplots(len(clients), 1,
                             figsize=(max(10, 1.1 * len(cells) + 4), 3.4 * len(clients) + 1.0),
                             squeeze=False)
    for ax, (client, fkey, title, flabel) in zip(axes[:, 0], clients):
        rows = sorted({k.split("/")[0] for k in keys if k.endswith("/" + client)},
                      key=lambda r: (known.index(r) if r in known else len(known), r))
        w, xs = _group_x(len(cells), len(rows))
        top = 0
        for i, row in enumerate(rows):
            st = _pageload_style(row, colours)
            x, y, lo, hi, floor = [], [], [], [], []
            for g, c in enumerate(cells):
                r = c.get("rows", {}).get(row + "/" + client)
                if not r or r.get("done") is None:
                    continue
                runs = r.get("done_all") or [r["done"]]
                floor.append(c.get(fkey))
                x.append(xs[g][i])
                y.append(r["done"])
                lo.append(r["done"] - min(runs))
                hi.append(max(runs) - r["done"])
                top = max(top, max(runs))
            ax.bar(x, y, w * 0.92, color=st["color"], edgecolor=st["edgecolor"],
                   hatch=st["hatch"], linewidth=0.8, label=labels.get(row, row))
            ax.errorbar(x, y, yerr=[lo, hi], fmt="none", ecolor="#333333", elinewidth=0.8,
                        capsize=2)
            if row == "herald-learned":
                for xx, yy, h, f in zip(x, y, hi, floor):
                    if f:
                        ax.annotate("%.2f×" % (yy / f), (xx, yy + h), xytext=(0, 2),
                                    textcoords="offset points", ha="center", va="bottom",
                                    fontsize=7, color=colours["herald"], fontweight="bold")
        for g, c in enumerate(cells):
            if c.get(fkey) is None:
                continue
            ax.hlines(c[fkey], g - 0.45, g + 0.45, colors="black", linewidth=1.8,
                      label=flabel if g == 0 else None, zorder=3)
        ax.set_xticks(range(len(cells)))
        if len(bws) > 1:
            ax.set_xticklabels(["B = %s\nR = %g, T = %g" % (_bw_label(c.get("B")), c["R"], c["T"])
                                for c in cells], fontsize=8)
        else:
            ax.set_xticklabels(["R = %g ms, T = %g ms" % (c["R"], c["T"]) for c in cells])
        ax.set_xlim(-0.5, len(cells) - 0.5)
        ax.set_ylim(0, top * 1.12)
        ax.set_ylabel("HTML + every critical asset (ms)")
        ax.set_title(title, loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xlabel("cell: round-trip time R, origin think time T for the HTML")
    fig.suptitle("Page load under latency at B = %s: herald against %s" % (
                 ", ".join(_bw_label(b) for b in bws), peers),
                 fontweight="bold", fontsize=11, x=0.01, ha="left")
    fig.text(0.01, 0.005, "bench/pageload, %s: bars = median of %s cold-client runs, whiskers = "
             "min–max; lower is better; ratio above herald, learned = its time / the floor."
             % (s.get("date", "?"), s.get("runs", "?")), fontsize=7.5, color="#444444")
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    _save(plt, fig, out_png)


# ---------------------------------------------------------------- throughput

THROUGHPUT_RUN = re.compile(r"^(?P<body>\w+)-(?P<proto>h2c|tls)-(?P<mode>load|lat)-r(?P<round>\d+)"
                            r"(?:-retry(?P<retry>\d+))?-(?P<proxy>[\w.]+)\.txt$")
MODES = [("load", "Loaded: h2load -c 32 -m 10"), ("lat", "One request at a time: h2load -c 1 -m 1")]


def throughput_runs(results_dir):
    """Parse bench/throughput's raw h2load files: {(body, proto, mode): {proxy:
    [(cpu_us, kernel_us or None) per round]}}, the last attempt of each round only,
    runs that failed (no CPU line, requests not all done) left out."""
    try:
        names = sorted(os.listdir(results_dir))
    except OSError as e:
        raise ChartError("cannot list %s: %s" % (results_dir, e.strerror))
    last = {}
    for n in names:
        m = THROUGHPUT_RUN.match(n)
        if m:
            k = (m["body"], m["proto"], m["mode"], int(m["round"]), m["proxy"])
            if int(m["retry"] or 0) >= last.get(k, (-1, None))[0]:
                last[k] = (int(m["retry"] or 0), n)
    runs = {}
    for (body, proto, mode, _, proxy), (_, n) in sorted(last.items()):
        with open(os.path.join(results_dir, n), errors="replace") as f:
            text = f.read()
        cpu = re.search(r"# proxy CPU: (\d+) ticks \(CLK_TCK (\d+)\) over (\d+) done requests "
                        r"= [\d.na]+ us/request(?: \(kernel ([\d.]+)\))?", text)
        req = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, \d+ succeeded, "
                        r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
        if not cpu or not req or int(cpu[3]) == 0 or req[1] != req[2] or (
                req[3], req[4], req[5]) != ("0", "0", "0"):
            continue
        us = int(cpu[1]) * 1e6 / int(cpu[2]) / int(cpu[3])
        runs.setdefault((body, proto, mode), {}).setdefault(proxy, []).append(
            (us, float(cpu[4]) if cpu[4] else None))  # older runs: no kernel part
    if not runs:
        raise ChartError("no complete h2load run in %s" % results_dir)
    return runs


def _size_key(body):
    m = re.match(r"(\d+)([kKmM]?)", body)
    return (int(m[1]) * {"": 1, "k": 1 << 10, "m": 1 << 20}[m[2].lower()] if m else 0, body)


def throughput_chart(results_dir, out_png):
    """Grouped bars of the proxies' CPU time per request (median over rounds,
    kernel part hatched, min-max whiskers) per body and protocol, one panel
    per load mode; every proxy found in the raw files is a bar.  Raises
    ChartError when results_dir holds no complete run."""
    runs = throughput_runs(results_dir)
    baseline = results_dir.rstrip("/").endswith("-nghttpx-vs-nghttpx")
    proxies = sorted({p for d in runs.values() for p in d}, key=lambda p: (p != "herald", p))
    colours = _proxy_colours(proxies)
    label = {p: p for p in proxies}
    if baseline and "herald" in label:
        label["herald"] = "nghttpx (herald's slot)"
    configs = sorted({(b, p) for b, p, _ in runs}, key=lambda bp: (bp[1] != "h2c", bp[1],
                                                                   _size_key(bp[0])))
    modes = [m for m in MODES if any(k[2] == m[0] for k in runs)]

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(modes), figsize=(10, 4.6), squeeze=False)
    for ax, (mode, title) in zip(axes[0], modes):
        w, xs = _group_x(len(configs), len(proxies))
        top = 0
        for i, p in enumerate(proxies):
            x, y, k, lo, hi = [], [], [], [], []
            for g, (body, proto) in enumerate(configs):
                rr = runs.get((body, proto, mode), {}).get(p)
                if not rr:
                    continue
                total = statistics.median(r[0] for r in rr)
                x.append(xs[g][i])
                y.append(total)
                k.append(statistics.median(r[1] for r in rr) if all(
                    r[1] is not None for r in rr) else 0)
                lo.append(total - min(r[0] for r in rr))
                hi.append(max(r[0] for r in rr) - total)
                top = max(top, max(r[0] for r in rr))
            c = colours[p]
            ax.bar(x, y, w * 0.92, color=_tint(c, 0.55), edgecolor=c, linewidth=0.8,
                   label=label[p])
            ax.bar(x, k, w * 0.92, color=_tint(c, 0.55), edgecolor=c, linewidth=0.8,
                   hatch="////")
            ax.errorbar(x, y, yerr=[lo, hi], fmt="none", ecolor="#333333", elinewidth=0.8,
                        capsize=2)
            for xx, yy, h in zip(x, y, hi):  # upright when narrow bars would make them touch
                ax.annotate("%.1f" % yy, (xx, yy + h), xytext=(0, 2), textcoords="offset points",
                            ha="center", va="bottom", fontsize=7,
                            rotation=90 if len(proxies) > 2 else 0)
        if any(r[1] is not None for d in runs.values() for v in d.values() for r in v):
            ax.bar([0], [0], 0, color="white", edgecolor="#555555", hatch="////",
                   label="kernel part (stime)")
        ax.set_xticks(range(len(configs)))
        ax.set_xticklabels(["%s\n%s" % (b.replace("k", " KiB"), "TLS" if p == "tls" else p)
                            for b, p in configs])
        ax.set_xlim(-0.5, len(configs) - 0.5)
        ax.set_ylim(0, top * (1.25 if len(proxies) > 2 else 1.15))
        ax.set_ylabel("proxy CPU per request (µs)")
        ax.set_xlabel("response body, protocol")
        ax.set_title(title, loc="left")
        ax.legend(loc="upper left")
    n_rounds = max(len(v) for d in runs.values() for v in d.values())
    fig.suptitle("Proxy CPU time per request (user + kernel), lower is better",
                 fontweight="bold", fontsize=11, x=0.01, ha="left")
    fig.text(0.01, 0.01, "bench/throughput, %s: bars = median of %d rounds, whiskers = min–max; "
             "CPU = utime + stime of the proxy's processes / requests done."
             % (os.path.basename(results_dir.rstrip("/")), n_rounds), fontsize=7.5,
             color="#444444")
    fig.tight_layout(rect=(0, 0.03, 1, 0.96))
    _save(plt, fig, out_png)


# ------------------------------------------------------------------ learning

LEARNING_BARS = [  # (aggregate key, label, colour)
    ("push_recall", "push recall", "#1f78b4"),
    ("push_precision", "push precision", "#a6cee3"),
    ("hint_recall", "103 hint recall", "#d95f02"),
    ("hint_precision", "103 hint precision", "#fdbf6f"),
]
SCENARIOS = {"a": "Scenario a: 2 visits per page, Chromium ignores herald's 103",
             "b": "Scenario b: 3 visits per page, Chromium uses herald's 103"}


def learning_chart(results_dir, out_png):
    """Grouped bars of push and hint recall and precision per application,
    one panel per scenario, with the 0.95 target line; from
    results_dir/summary.json (aggregates).  Raises ChartError on missing data."""
    s = _load_json(os.path.join(results_dir, "summary.json"))
    aggs = s.get("aggregates") or []
    if not aggs:
        raise ChartError("%s/summary.json has no aggregates" % results_dir)
    apps = [a for a in s.get("apps", []) if any(g["app"] == a for g in aggs)]
    apps += sorted({g["app"] for g in aggs} - set(apps))
    scens = sorted({g["scenario"] for g in aggs})

    plt = _pyplot()
    fig, axes = plt.subplots(len(scens), 1, figsize=(10, 2.9 * len(scens) + 1.0), squeeze=False)
    for ax, scen in zip(axes[:, 0], scens):
        by_app = {g["app"]: g for g in aggs if g["scenario"] == scen}
        w, xs = _group_x(len(apps), len(LEARNING_BARS))
        for i, (key, lab, colour) in enumerate(LEARNING_BARS):
            x, y = [], []
            for g, app in enumerate(apps):
                v = by_app.get(app, {}).get(key)
                if v is None:
                    if app in by_app:
                        ax.text(xs[g][i], 0.02, "n/a", rotation=90, ha="center", va="bottom",
                                fontsize=7, color="#666666")
                    continue
                x.append(xs[g][i])
                y.append(v)
                low = v < TARGET_LEARNING
                inside = v > 0.3  # the value mid-bar, clear of the target line
                ax.text(xs[g][i], v / 2 if inside else v + 0.02, "%.2f" % v, rotation=90,
                        ha="center", va="center" if inside else "bottom", fontsize=7.5,
                        fontweight="bold" if low else "normal", zorder=4,
                        color="white" if inside and i % 2 == 0 else "black")
            ax.bar(x, y, w * 0.92, color=colour, edgecolor="#333333", linewidth=0.5, label=lab)
        ax.axhline(TARGET_LEARNING, color="#c00000", linestyle="--", linewidth=1.2,
                   label="target %.2f" % TARGET_LEARNING, zorder=3)
        ax.set_xticks(range(len(apps)))
        ax.set_xticklabels(["%s\n(%d pages)" % (a, by_app[a]["pages"]) if a in by_app else a
                            for a in apps])
        ax.set_xlim(-0.5, len(apps) - 0.5)
        ax.set_ylim(0, 1.05)
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_ylabel("fraction of assets")
        ax.set_title(SCENARIOS.get(scen, "Scenario " + scen), loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xlabel("application (Debian package, unmodified)")
    fig.suptitle("Learning accuracy: what herald delivers against what a cold Chromium fetches",
                 fontweight="bold", fontsize=11, x=0.01, ha="left")
    fig.text(0.01, 0.005, "bench/learning, %s: recall = share of the ground-truth assets "
             "(what every cold Chromium visit fetched) that herald delivered;\nprecision = share "
             "of what herald delivered that is in the ground truth; by count over the app's pages; "
             "higher is better." % s.get("date", "?"), fontsize=7.5, color="#444444")
    fig.tight_layout(rect=(0, 0.035, 1, 0.97))
    _save(plt, fig, out_png)


# ------------------------------------------------------------------ drivers

CHARTS = {"pageload": pageload_chart, "throughput": throughput_chart, "learning": learning_chart}


def newest(bench):
    """The newest bench/results/<bench>-<UTC time> dir (no suffix: variants
    such as throughput's -nghttpx-vs-nghttpx are not the headline), or None."""
    pat = re.compile(r"^%s-\d{8}T\d{6}Z$" % re.escape(bench))
    try:
        dirs = sorted(d for d in os.listdir(RESULTS) if pat.match(d))
    except OSError:
        return None
    return os.path.join(RESULTS, dirs[-1]) if dirs else None


def draw(bench, results_dir, stable=True):
    """Draw bench's chart into results_dir/<bench>.png and, if stable, copy it
    to bench/charts/<bench>.png.  Returns the path in the results dir; raises
    ImportError without matplotlib, ChartError on unusable results."""
    out = os.path.join(results_dir, bench + ".png")
    CHARTS[bench](results_dir, out)
    if stable:
        os.makedirs(STABLE, exist_ok=True)
        shutil.copyfile(out, os.path.join(STABLE, bench + ".png"))
    return out


def image_line(bench):
    """The markdown line bench/README.md shows the stable chart with."""
    return "![%s](charts/%s.png)" % (ALT[bench], bench)


def publish(bench, results_dir, stable=True):
    """For the bench scripts: draw() and return image_line() + a blank line
    for the generated section, or "" after a warning on stderr when the chart
    cannot be drawn (no matplotlib, bad data): a chart never fails a bench."""
    try:
        draw(bench, results_dir, stable)
    except ImportError as e:
        print("warning: no chart (%s): install python3-matplotlib (sh scripts/deps.sh bench)"
              % e, file=sys.stderr)
        return ""
    except Exception as e:  # noqa: BLE001 - the benchmark's results matter more
        print("warning: %s chart not drawn: %s: %s" % (bench, type(e).__name__, e),
              file=sys.stderr)
        return ""
    return image_line(bench) + "\n\n" if stable else ""


def main(argv):
    usage = ("usage: bench/charts.py pageload|throughput|learning RESULTS_DIR OUT.png\n"
             "       bench/charts.py all")
    if argv[:1] == ["all"] and len(argv) == 1:
        failed = 0
        for bench in BENCHES:
            d = newest(bench)
            if not d:
                print("%s: no bench/results/%s-<UTC time>/ dir" % (bench, bench), file=sys.stderr)
                failed += 1
                continue
            try:
                draw(bench, d)
            except ChartError as e:
                print("%s: %s" % (bench, e), file=sys.stderr)
                failed += 1
                continue
            print("%s: %s -> %s" % (bench, os.path.relpath(d, ROOT),
                                    os.path.relpath(os.path.join(STABLE, bench + ".png"), ROOT)))
        return 1 if failed else 0
    if len(argv) != 3 or argv[0] not in CHARTS:
        print(usage, file=sys.stderr)
        return 2
    bench, d, out = argv
    if not os.path.isdir(d):
        print("charts.py: %s is not a directory" % d, file=sys.stderr)
        return 1
    try:
        CHARTS[bench](d, out)
    except ChartError as e:
        print("charts.py: %s" % e, file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
