#!/usr/bin/env python3
"""Fails when files inside one crate import each other in a circle (issue 18).

Usage: check_import_cycles.py [CRATES_DIR]   (default: crates)

Every `.rs` file under `CRATES_DIR/*/src` is a module; a `crate::a::b` or `super::x` path in
it (outside its `#[cfg(test)] mod tests`) is an edge to the longest module prefix of that
path. Strongly connected components with more than one module are cycles: each is printed,
and the exit code is 1 when there is any. (Crates themselves cannot form cycles: Cargo
refuses them.)
"""
import os
import re
import sys


def module_of(src, path):
    parts = os.path.relpath(path, src)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def edges_of(src):
    files = {}
    for d, _, names in os.walk(src):
        for f in names:
            if f.endswith(".rs"):
                p = os.path.join(d, f)
                files[module_of(src, p)] = p
    mods = set(files)
    edges = {m: set() for m in mods}
    for m, p in files.items():
        text = open(p, encoding="utf-8").read()
        text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
        # A file's `super` is its parent module (a `mod.rs` is the module itself).
        parent = list(m[:-1])
        for hit in re.finditer(r"\b(crate|super)((?:::\w+)+)", text):
            rest = [x for x in hit.group(2).split("::") if x]
            path = ([] if hit.group(1) == "crate" else parent) + rest
            for k in range(len(path), 0, -1):
                target = tuple(path[:k])
                if target in mods:
                    if target != m:
                        edges[m].add(target)
                    break
    return edges


def cycles(edges):
    """Tarjan's strongly connected components of size > 1."""
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
                found.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "crates"
    bad = 0
    for crate in sorted(os.listdir(root)):
        src = os.path.join(root, crate, "src")
        if not os.path.isdir(src):
            continue
        for comp in cycles(edges_of(src)):
            bad += 1
            names = sorted("::".join(m) or "lib" for m in comp)
            print(f"{crate}: files import each other in a circle: {', '.join(names)}")
    if bad:
        sys.exit(1)
    print("no import cycles between files inside any crate")


if __name__ == "__main__":
    main()
