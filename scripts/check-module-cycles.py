#!/usr/bin/env python3
"""Fails when the top-level modules of src/ import each other in a circle.

Reads every non-test .rs file under src/, takes each `crate::X` it names as an edge from its
own top-level module to X, and prints every strongly connected component of more than one
module (Tarjan). Exit 0 when there is none. Run from anywhere: `python3 scripts/check-module-cycles.py`.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def top(path):
    first = os.path.relpath(path, ROOT).split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def edges():
    out = {}
    for d, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs") or "test" in f:
                continue
            p = os.path.join(d, f)
            src = open(p, encoding="utf-8").read()
            src = re.split(r"#\[cfg\(test\)\]", src)[0]
            a = top(p)
            for b in set(re.findall(r"crate::([a-z_]+)", src)):
                if b != a:
                    out.setdefault(a, set()).add(b)
    return out


def cycles(g):
    index, low, stack, on, found, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
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
                found.append(sorted(comp))

    for v in sorted(set(g) | {b for bs in g.values() for b in bs}):
        if v not in index:
            visit(v)
    return found


g = edges()
found = cycles(g)
for comp in found:
    print("import cycle between modules:", ", ".join(comp))
    for a in comp:
        print("   ", a, "->", ", ".join(sorted(b for b in g.get(a, ()) if b in comp)))
if found:
    sys.exit(1)
print("no import cycles between the top-level modules of src/")
