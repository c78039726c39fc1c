#!/usr/bin/env python3
"""Cross-check netrepair's f64 forward pass against onnxruntime on every benchmark network.

Usage: crosscheck_onnxruntime.py [--shared ../shared] [--netrepair target/release/netrepair]
                                 [--n 100] [--rtol 1e-5]

Inputs: 100 MNIST test images (pixels / 255) for the MNIST networks, 100 CIFAR-10 test images
(ERAN CSV, lossless, normalised with resnet_2b's mean/std) for resnet_2b, 100 uniform points in
the ACAS Xu input box (taken from prop_1.vnnlib... the normalised domain) for the 45 ACAS Xu
networks, and the VNN-COMP 2022 networks under vnncomp2022/ (random inputs of their shapes).
onnxruntime runs the file in float32 (the weights are float32), netrepair in float64;
the agreement criterion is |ours - ort| <= rtol * max(1, |ort|) on every output.
Exit status 1 when any network disagrees.
"""
import argparse
import glob
import gzip
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ort_run import run as ort_run  # noqa: E402

ACAS_LO = np.array([-0.3284228772, -0.5, -0.5, -0.5, -0.5])
ACAS_HI = np.array([0.6798577687, 0.5, 0.5, 0.5, 0.5])


def mnist(shared, n):
    with gzip.open(os.path.join(shared, "data/mnist/t10k-images-idx3-ubyte.gz")) as f:
        px = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
    return (px[: n * 784].reshape(n, 1, 28, 28) / 255.0).astype(np.float32)


def cifar(shared, n):
    rows = np.loadtxt(os.path.join(shared, "data/cifar10/eran_cifar10_test_100.csv"), delimiter=",")[:n]
    x = rows[:, 1:].reshape(-1, 32, 32, 3).transpose(0, 3, 1, 2) / 255.0
    mean = np.array([0.4914, 0.4822, 0.4465]).reshape(1, 3, 1, 1)
    std = np.array([0.2471, 0.2435, 0.2616]).reshape(1, 3, 1, 1)
    return ((x - mean) / std).astype(np.float32)


def acas(n):
    r = np.random.default_rng(0).random((n, 5))
    return (ACAS_LO + r * (ACAS_HI - ACAS_LO)).astype(np.float32).reshape(n, 1, 1, 5)


def vnncomp2022(b, n, xa):
    """VNN-COMP 2022 networks (rank-1 inputs, nn4sys set models, carvana UNets), when present."""
    r = np.random.default_rng(1)
    carvana = r.random((n, 4, 31, 47)).astype(np.float32)
    carvana[:, 3] = r.integers(0, 2, (n, 31, 47))  # the ground-truth mask channel: 0 / 1
    inputs = {
        "test/test_nano.onnx": r.uniform(-1, 1, (n, 1)),
        "test/test_tiny.onnx": r.uniform(-1, 1, (n, 1)),
        "test/test_small.onnx": r.uniform(-1, 1, (n, 1)),
        "test/test_sat.onnx": xa,
        "test/test_unsat.onnx": xa,
        "nn4sys/mscn_128d.onnx": r.uniform(0.05, 1, (n, 11, 14)),
        "nn4sys/mscn_128d_dual.onnx": r.uniform(0.05, 1, (n, 22, 14)),
        "carvana_unet_2022/unet_simp_small.onnx": carvana,
        "carvana_unet_2022/unet_upsample_small.onnx": carvana,
    }
    return [
        ("vnncomp2022/" + rel, x.astype(np.float32))
        for rel, x in inputs.items()
        if os.path.exists(os.path.join(b, "vnncomp2022", rel))
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--netrepair", default="target/release/netrepair")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rtol", type=float, default=1e-5)
    a = ap.parse_args()
    b = os.path.join(a.shared, "benchmarks")
    cases = [
        ("mnistfc/mnist-net_256x2.onnx", mnist(a.shared, a.n).reshape(a.n, 784, 1)),
        ("eran/mnist_relu_9_200.onnx", mnist(a.shared, a.n)),
        ("eran/ffnnSIGMOID__Point_6x200.onnx", mnist(a.shared, a.n)),
        ("verivital/Convnet_maxpool.onnx", mnist(a.shared, a.n)),
        ("cifar10_resnet/resnet_2b.onnx", cifar(a.shared, a.n)),
    ]
    xa = acas(a.n)
    cases += [(os.path.relpath(p, b), xa) for p in sorted(glob.glob(os.path.join(b, "acasxu/*.onnx")))]
    cases += vnncomp2022(b, a.n, xa)
    worst_all, bad = 0.0, 0
    print(f"{'network':<45} {'n':>4} {'max abs diff':>13} {'max rel diff':>13}  ok")
    with tempfile.TemporaryDirectory() as tmp:
        for rel, x in cases:
            net = os.path.join(b, rel)
            xin, yout = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
            np.save(xin, x)
            subprocess.run([a.netrepair, "forward", "--net", net, "--input", xin, "--output", yout], check=True, capture_output=True)
            ours = np.load(yout).reshape(x.shape[0], -1)
            ref = ort_run(net, x).astype(np.float64).reshape(x.shape[0], -1)
            absd = np.abs(ours - ref)
            rel_d = absd / np.maximum(1.0, np.abs(ref))
            ok = bool(rel_d.max() <= a.rtol)
            bad += not ok
            worst_all = max(worst_all, rel_d.max())
            print(f"{rel:<45} {x.shape[0]:>4} {absd.max():>13.3e} {rel_d.max():>13.3e}  {'yes' if ok else 'NO'}")
    print(f"\n{len(cases) - bad} of {len(cases)} networks agree within rtol {a.rtol} (worst {worst_all:.3e})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
