#!/usr/bin/env python3
"""Time onnxruntime's forward pass on a random batch; prints JSON {"median_s": ...}.

Usage: ort_bench.py --net MODEL.onnx --batch 1000 --repeats 10

Uses 2 intra-op threads (this project's machines have 2 cores). A model whose batch
dimension is fixed to 1 is given a symbolic batch dimension first (same weights and nodes).
"""
import argparse
import json
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort


def with_free_batch(path):
    m = onnx.load(path)
    inits = {i.name for i in m.graph.initializer}
    for v in list(m.graph.input) + list(m.graph.output):
        if v.name in inits:
            continue
        d = v.type.tensor_type.shape.dim
        if len(d):
            d[0].ClearField("dim_value")
            d[0].dim_param = "batch"
    f = tempfile.NamedTemporaryFile(suffix=".onnx", delete=False)
    onnx.save(m, f.name)
    return f.name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", required=True)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=10)
    a = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(with_free_batch(a.net), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [a.batch] + [d for d in inp.shape[1:]]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    sess.run(None, {inp.name: x})
    times = []
    for _ in range(a.repeats):
        s = time.perf_counter()
        sess.run(None, {inp.name: x})
        times.append(time.perf_counter() - s)
    print(json.dumps({"median_s": float(np.median(times)), "onnxruntime": ort.__version__}))


if __name__ == "__main__":
    main()
