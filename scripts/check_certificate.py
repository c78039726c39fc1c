#!/usr/bin/env python3
"""Checks a netrepair repair certificate (a VNN-COMP benchmark folder) without netrepair.

    python3 scripts/check_certificate.py DIR/instances.csv [--samples N] [--seed S]

For every instance (network, property, timeout) it

1. parses the VNN-LIB file with its own reader (independent of netrepair's): `declare-const`
   of `X_i` / `Y_j` of sort Real, declared in order, and `assert` of `<=`, `>=`, `<`, `>`
   over linear terms (`+`, `-`, `*` by a constant) combined with `and` / `or`; the input
   constraints must be bounds of single `X_i` forming one box (every `X_i` bounded both ways);
2. checks the declared sizes against the ONNX model's input and output sizes;
3. runs the model on onnxruntime at the box's centre, its lower and upper corners and N
   uniform samples of the box (one point when the box is a point), and checks that no output
   meets every output assertion (that is, lands in the unsafe region the property excludes).

Sampling cannot prove a property (the verifier does that); it catches a certificate whose
files do not say what was proved, a network file that differs from the one checked, or a
reader that disagrees with ours. Exit status 0 when every instance passes, 1 otherwise.
"""

import argparse
import csv
import os
import re
import sys

import numpy as np


def tokenize(text):
    text = re.sub(r";[^\n]*", " ", text)
    return re.findall(r"\(|\)|[^\s()]+", text)


def parse_sexprs(tokens):
    out, stack = [], []
    for t in tokens:
        if t == "(":
            stack.append([])
        elif t == ")":
            if not stack:
                raise ValueError("unbalanced ')'")
            e = stack.pop()
            (stack[-1] if stack else out).append(e)
        else:
            (stack[-1] if stack else out).append(t)
    if stack:
        raise ValueError("unbalanced '('")
    return out


VAR = re.compile(r"^([XY])_(\d+)$")


def linear(e):
    """A linear term as ({(kind, index): coeff}, constant)."""
    if isinstance(e, str):
        m = VAR.match(e)
        if m:
            return {(m.group(1), int(m.group(2))): 1.0}, 0.0
        return {}, float(e)
    op, args = e[0], [linear(a) for a in e[1:]]
    if op == "+":
        terms, c = {}, 0.0
        for t, k in args:
            for v, a in t.items():
                terms[v] = terms.get(v, 0.0) + a
            c += k
        return terms, c
    if op == "-":
        if len(args) == 1:
            t, k = args[0]
            return {v: -a for v, a in t.items()}, -k
        t, k = args[0]
        terms = dict(t)
        for t2, k2 in args[1:]:
            for v, a in t2.items():
                terms[v] = terms.get(v, 0.0) - a
            k -= k2
        return terms, k
    if op == "*":
        consts = [a for a in args if not a[0]]
        vars_ = [a for a in args if a[0]]
        if len(vars_) > 1:
            raise ValueError("a product of variables is not linear")
        scale = float(np.prod([k for _, k in consts])) if consts else 1.0
        if not vars_:
            return {}, scale
        t, k = vars_[0]
        return {v: a * scale for v, a in t.items()}, k * scale
    raise ValueError(f"unsupported term operator {op!r}")


def comparison(e):
    """(op, lhs - rhs as linear term) for <=, >=, <, >."""
    op = e[0]
    if op not in ("<=", ">=", "<", ">") or len(e) != 3:
        raise ValueError(f"unsupported comparison {e!r}")
    (t1, k1), (t2, k2) = linear(e[1]), linear(e[2])
    terms = dict(t1)
    for v, a in t2.items():
        terms[v] = terms.get(v, 0.0) - a
    return op, terms, k1 - k2


def kinds(e):
    """Which variable kinds ('X', 'Y') a formula mentions."""
    if isinstance(e, str):
        m = VAR.match(e)
        return {m.group(1)} if m else set()
    return set().union(*(kinds(a) for a in e[1:])) if len(e) > 1 else set()


def holds(e, y):
    """Whether formula e (over outputs only) holds at y."""
    op = e[0]
    if op == "and":
        return all(holds(a, y) for a in e[1:])
    if op == "or":
        return any(holds(a, y) for a in e[1:])
    cop, terms, k = comparison(e)
    v = sum(a * y[i] for (_, i), a in terms.items()) + k
    return v <= 0 if cop in ("<=", "<") else v >= 0


def read_vnnlib(path):
    """(n_inputs, n_outputs, lower, upper, output assertions)."""
    with open(path) as f:
        exprs = parse_sexprs(tokenize(f.read()))
    declared = {"X": [], "Y": []}
    lower, upper, unsafe = {}, {}, []
    for e in exprs:
        if not isinstance(e, list) or not e:
            raise ValueError(f"unexpected top-level {e!r}")
        if e[0] == "declare-const":
            m = VAR.match(e[1])
            if not m or e[2] != "Real":
                raise ValueError(f"declaration {e!r} is not X_i / Y_j of sort Real")
            declared[m.group(1)].append(int(m.group(2)))
        elif e[0] == "assert":
            body = e[1]
            k = kinds(body)
            if k == {"Y"}:
                unsafe.append(body)
            elif k == {"X"}:
                op, terms, c = comparison(body)
                if len(terms) != 1:
                    raise ValueError(f"input constraint {body!r} is not a bound of one X_i")
                ((_, i), a), = terms.items()
                bound = -c / a
                is_upper = (op in ("<=", "<")) == (a > 0)
                d = upper if is_upper else lower
                d[i] = min(d.get(i, np.inf), bound) if is_upper else max(d.get(i, -np.inf), bound)
            else:
                raise ValueError(f"assertion mixes inputs and outputs (several boxes): {body!r}")
        else:
            raise ValueError(f"unsupported command {e[0]!r}")
    for kind, idx in declared.items():
        if idx != list(range(len(idx))):
            raise ValueError(f"{kind} variables not declared as {kind}_0 .. {kind}_{len(idx) - 1} in order")
    n, m = len(declared["X"]), len(declared["Y"])
    missing = [i for i in range(n) if i not in lower or i not in upper]
    if missing:
        raise ValueError(f"inputs without both bounds: X_{missing[0]} and {len(missing) - 1} more")
    lo = np.array([lower[i] for i in range(n)])
    hi = np.array([upper[i] for i in range(n)])
    if np.any(lo > hi):
        raise ValueError("an empty input box")
    if not unsafe:
        raise ValueError("no output assertion (everything would be unsafe)")
    return n, m, lo, hi, unsafe


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("instances")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import onnxruntime as ort

    root = os.path.dirname(os.path.abspath(args.instances))
    rng = np.random.default_rng(args.seed)
    sessions, failures, rows = {}, 0, 0
    with open(args.instances) as f:
        for row in csv.reader(f):
            if not row or not row[0].strip():
                continue
            rows += 1
            onnx_path, spec_path = (os.path.join(root, p.strip()) for p in row[:2])
            name = os.path.relpath(spec_path, root)
            try:
                if onnx_path not in sessions:
                    sessions[onnx_path] = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
                sess = sessions[onnx_path]
                inp = sess.get_inputs()[0]
                shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
                size = int(np.prod(shape))
                n, m, lo, hi, unsafe = read_vnnlib(spec_path)
                if n != size:
                    raise ValueError(f"declares {n} inputs, the network takes {size}")
                points = [lo, hi, (lo + hi) / 2]
                if np.any(hi > lo):
                    points += list(lo + (hi - lo) * rng.random((args.samples, n)))
                for x in points:
                    y = sess.run(None, {inp.name: x.astype(np.float32).reshape(shape)})[0].reshape(-1)
                    if y.size != m:
                        raise ValueError(f"declares {m} outputs, the network gives {y.size}")
                    if all(holds(u, y.astype(np.float64)) for u in unsafe):
                        raise ValueError(f"counterexample: input {x[:6]}... gives unsafe output {y}")
                print(f"ok    {name}: {n} inputs, {m} outputs, {len(points)} samples, none unsafe")
            except Exception as e:  # one line per failing instance
                failures += 1
                print(f"FAIL  {name}: {e}")
    if rows == 0:
        print(f"FAIL  {args.instances}: no instances")
        return 1
    print(f"{rows - failures} of {rows} instances pass")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
