#!/usr/bin/env bash
# `make bench-lp`: writes the project's benchmark LPs with `repair --dump-lp` and
# `bench reglo --dump-lp`, then solves each with every strategy (`bench lp`). Needs ../shared
# and python3 with numpy (for the first 100 fog images as they come, APRNN's protocol).
set -euo pipefail
N=${NETREPAIR:-target/release/netrepair}
S=${SHARED:-../shared}
OUT=${LP_DIR:-target/lps}
STRATEGIES=${STRATEGIES:-simplex,ipm,ipm-nox,pdlp,ipm-t2}
TIMEOUT=${TIMEOUT:-600}
rm -rf "$OUT" && mkdir -p "$OUT"
B=$S/benchmarks
# Dumps are written before each solve; a 1 s limit stops the repair right after.
quick=(--lp-timeout 1 --out "$OUT/discard.onnx")
python3 - "$S" "$OUT" <<'PY'
import gzip, sys
import numpy as np
s, out = sys.argv[1], sys.argv[2]
raw = gzip.open(f"{s}/data/mnist-fog/t10k-images-idx3-ubyte.gz").read()[16:]
x = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 784)[:100].astype(np.float32) / 255
lab = gzip.open(f"{s}/data/mnist-fog/t10k-labels-idx1-ubyte.gz").read()[8:]
np.save(f"{out}/fog100_x.npy", x)
np.save(f"{out}/fog100_y.npy", np.frombuffer(lab, dtype=np.uint8)[:100].astype(np.int64))
PY
"$N" repair --net "$B/eran/mnist_relu_3_100.onnx" --inputs "$OUT/fog100_x.npy" \
  --labels "$OUT/fog100_y.npy" --layer 1 --dump-lp "$OUT/aprnn-3x100-fog-layer1" "${quick[@]}" || true
# The same LP with the weight deltas written as p - q in the rows (`--split-deltas`).
"$N" repair --net "$B/eran/mnist_relu_3_100.onnx" --inputs "$OUT/fog100_x.npy" \
  --labels "$OUT/fog100_y.npy" --layer 1 --split-deltas \
  --dump-lp "$OUT/aprnn-3x100-fog-layer1-split" "${quick[@]}" || true
for layer in -1 1; do
  "$N" repair --net "$B/mnistfc/mnist-net_256x2.onnx" --misclassified 100 --dataset mnist \
    --shuffle 0 --layer "$layer" --dump-lp "$OUT/aprnn-256x2-layer$layer-keep100" "${quick[@]}" || true
done
"$N" repair --method prepared --net "$B/acasxu/ACASXU_run2a_2_9_batch_2000.onnx" \
  $(for p in 1 2 3 4 8; do echo --spec "$B/acasxu/prop_$p.vnnlib"; done) \
  --dump-lp "$OUT/prepared-acas-n29-props12348" --out "$OUT/discard.onnx" || true
"$N" bench reglo --protocol paper --areas 30 --eval-points 1000 --all-only \
  --out-dir "$OUT/reglo-tables" --dump-lp "$OUT" >/dev/null
rm -f "$OUT"/*.npy "$OUT"/discard.onnx
"$N" bench lp "$OUT" --strategies "$STRATEGIES" --timeout "$TIMEOUT" \
  --json-out docs/bench_lp.json --markdown-out docs/bench_lp.md
