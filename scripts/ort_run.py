#!/usr/bin/env python3
"""Run an ONNX model in onnxruntime on an NPY batch and save the outputs as float64 NPY.

Usage: ort_run.py MODEL.onnx INPUT.npy OUTPUT.npy

The input is cast to the model's input element type and reshaped to its declared input shape
(batch first); a model with a fixed batch of 1, or with a rank-1 input (one sample), is run
one sample at a time.
"""
import sys

import numpy as np
import onnxruntime as ort


def run(model, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.float64 if inp.type == "tensor(double)" else np.float32
    dims = inp.shape
    n = x.shape[0]
    if len(dims) == 1:
        # A rank-1 input is one sample: run them one at a time.
        x = x.reshape([n] + list(dims)).astype(dtype)
        return np.stack([np.asarray(sess.run(None, {inp.name: x[i]})[0]) for i in range(n)])
    sample = [d for d in dims[1:]]
    x = x.reshape([n] + sample).astype(dtype)
    if isinstance(dims[0], int) and dims[0] == 1 and n != 1:
        outs = [np.asarray(sess.run(None, {inp.name: x[i : i + 1]})[0]) for i in range(n)]
        if outs[0].ndim == 0:
            return np.stack(outs)
        return np.concatenate(outs, axis=0)
    return sess.run(None, {inp.name: x})[0]


if __name__ == "__main__":
    model, inp, out = sys.argv[1:4]
    y = run(model, np.load(inp))
    np.save(out, y.astype(np.float64))
