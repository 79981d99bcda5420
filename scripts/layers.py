#!/usr/bin/python3
"""Print the dependency graph between herald's layers and fail on an edge
that goes up or sideways (not listed in ALLOWED below), or on a cycle.

Two kinds of edges, both from the sources and the build:
- includes: `#include "dir/file.h"` in a layer's .c and .h files;
- symbols: what each object file of a layer leaves undefined (`nm -u`),
  resolved to the layer whose object defines it. A function declared in
  one layer's header and defined in another makes a cycle that includes
  alone do not show.

usage: scripts/layers.py [--build DIR] [--map FILE] [--dot]
  --build DIR  the meson build dir whose objects to read (default build);
               without objects only includes are checked
  --map FILE   a layer map to use instead of the built-in one (lines
               "layer: glob glob ..." and "allow: layer -> layer layer ...")
  --dot        print the graph in Graphviz dot syntax too
Exit 0 when every edge is allowed, 1 otherwise.
"""

import argparse
import fnmatch
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Layers, bottom up, and the files that belong to each.
LAYERS = [
    ("include", ["include/herald/*.h"]),
    ("parser", ["parser/*.c", "parser/*.h"]),
    ("learn", ["learn/*.c", "learn/*.h"]),
    ("base", ["proxy/base/*.c", "proxy/base/*.h"]),
    ("http", ["proxy/http/*.c", "proxy/http/*.h"]),
    ("front", ["proxy/front/*.c", "proxy/front/*.h"]),
    ("origin", ["proxy/origin/*.c", "proxy/origin/*.h"]),
    ("deliver", ["proxy/deliver/*.c", "proxy/deliver/*.h"]),
    ("ops", ["proxy/ops/*.c", "proxy/ops/*.h"]),
    ("top", ["proxy/*.c", "proxy/*.h"]),
]

# Which layers each may use (besides itself).
ALLOWED = {
    "include": [],
    "parser": ["include"],
    "learn": ["include"],
    "base": ["include"],
    "http": ["base", "parser", "include"],
    "front": ["http", "base", "parser", "include"],
    "origin": ["http", "base", "include"],
    "deliver": ["http", "base", "learn", "parser", "include"],
    "ops": ["deliver", "origin", "front", "http", "base", "learn", "parser", "include"],
    "top": ["ops", "deliver", "origin", "front", "http", "base", "learn", "parser", "include"],
}


def read_map(path):
    layers, allowed = [], {}
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("allow:"):
            a, _, b = line[6:].partition("->")
            allowed[a.strip()] = b.split()
        else:
            name, _, globs = line.partition(":")
            layers.append((name.strip(), globs.split()))
    return layers, allowed


def layer_of(rel, layers):
    for name, globs in layers:
        if any(fnmatch.fnmatch(rel, g) and rel.count("/") == g.count("/") for g in globs):
            return name
    return None


def files(layers):
    out = {}
    for name, globs in layers:
        for g in globs:
            for p in glob.glob(os.path.join(ROOT, g)):
                rel = os.path.relpath(p, ROOT)
                if layer_of(rel, layers) == name:
                    out[rel] = name
    return out


def include_edges(layers):
    edges = {}
    inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
    by_file = files(layers)
    for rel, layer in by_file.items():
        with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for target in inc.findall(text):
            # "herald/error.h" lives under include/; others are root-relative
            cand = target if os.path.exists(os.path.join(ROOT, target)) else "include/" + target
            tl = layer_of(cand, layers)
            if tl is None or tl == layer:
                continue
            edges.setdefault((layer, tl), set()).add("%s includes %s" % (rel, target))
    return edges


def nm(path, undefined):
    args = ["nm", "-u" if undefined else "--defined-only", path]
    r = subprocess.run(args, capture_output=True, text=True)
    syms = set()
    for line in r.stdout.splitlines():
        parts = line.split()
        if not parts:
            continue
        if undefined:
            syms.add(parts[-1])
        elif len(parts) >= 3 and parts[1] in "TDBRtdbr" and parts[1].isupper():
            syms.add(parts[2])
    return syms


def symbol_edges(layers, build):
    """Edges from the objects meson built for each source (any target)."""
    objs = {}
    # file names are unique across folders (STYLE.md): an object's name
    # (meson: <lib>.p/<file>.c.o) tells its source
    by_base = {os.path.basename(rel): rel for rel in files(layers) if rel.endswith(".c")}
    for o in glob.glob(os.path.join(build, "**", "*.o"), recursive=True):
        if "fuzz" in o or "test" in o or "bench" in o:
            continue
        rel = by_base.get(os.path.basename(o)[:-2])
        if rel is not None:
            objs.setdefault(rel, o)
    defined = {}
    for rel, o in objs.items():
        for s in nm(o, False):
            defined.setdefault(s, rel)
    edges = {}
    for rel, o in objs.items():
        layer = layer_of(rel, layers)
        for s in nm(o, True):
            d = defined.get(s)
            if d is None:
                continue
            tl = layer_of(d, layers)
            if tl is None or tl == layer:
                continue
            edges.setdefault((layer, tl), set()).add("%s uses %s (%s)" % (rel, s, d))
    return edges, len(objs)


def cycles(nodes, edges):
    """Strongly connected components with more than one layer."""
    graph = {n: set() for n in nodes}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--map")
    ap.add_argument("--dot", action="store_true")
    a = ap.parse_args()
    layers, allowed = (read_map(a.map) if a.map else (LAYERS, ALLOWED))
    edges = include_edges(layers)
    nobj = 0
    if os.path.isdir(a.build):
        sedges, nobj = symbol_edges(layers, a.build)
        for k, v in sedges.items():
            edges.setdefault(k, set()).update(v)
    names = [n for n, _ in layers]
    bad = 0
    print("layers (bottom up): " + " < ".join(names))
    print("edges (from includes%s):" % (" and the symbols of %d objects" % nobj if nobj else ""))
    for (src, dst) in sorted(edges, key=lambda e: (names.index(e[0]), names.index(e[1]))):
        ok = dst in allowed.get(src, [])
        print("  %-8s -> %-8s %s (%d)" % (src, dst, "ok" if ok else "NOT ALLOWED", len(edges[(src, dst)])))
        if not ok:
            bad += 1
            for why in sorted(edges[(src, dst)])[:5]:
                print("      " + why)
    for comp in cycles(names, edges):
        bad += 1
        print("  cycle: " + " <-> ".join(comp))
    if a.dot:
        print("digraph layers {")
        for (src, dst) in sorted(edges):
            print('  "%s" -> "%s";' % (src, dst))
        print("}")
    print("layer check: %s" % ("ok" if bad == 0 else "%d problem(s)" % bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
