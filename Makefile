# The two commands of the README: `make demo` (main job) and `make test` (tests).
CARGO ?= cargo

.PHONY: setup demo test lint fuzz crosscheck bench-forward bench-repair bench-aprnn bench-acas bench-irepair bench-irepair-plus bench-irepair-refereed bench-informed bench-reglo bench-lp

setup:
	@bash scripts/setup.sh

demo: setup
	$(CARGO) run --release -p netrepair-cli -- demo

# Tests run in the release profile, so that `make demo && make test` compiles the dependencies
# (candle, HiGHS) once, not once per profile.
test: setup
	$(CARGO) test --workspace --release

lint:
	$(CARGO) fmt --all -- --check
	python3 scripts/check_import_cycles.py
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings

# Mutation fuzzing of the ONNX, NPY and VNN-LIB readers (stable toolchain), FUZZ_SECONDS per
# reader (default 600), in the test profile so that integer overflow panics; no ../shared needed.
FUZZ_SECONDS ?= 600
fuzz: setup
	NETREPAIR_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CARGO) test -p netrepair-experiments --test fuzz_readers -- --nocapture

# Needs ../shared (the benchmark networks and data sets).
crosscheck: setup
	$(CARGO) build --release -p netrepair-cli
	python3 scripts/crosscheck_onnxruntime.py --shared ../shared --netrepair target/release/netrepair

bench-forward: setup
	$(CARGO) run --release -p netrepair-cli -- bench forward --benchmarks ../shared/benchmarks --json-out docs/bench_forward.json

# APRNN on 100 MNIST errors per layer (clean and corrupted repair sets); needs ../shared.
bench-repair: setup
	$(CARGO) run --release -p netrepair-cli -- bench repair --json-out docs/repair_mnist.json --markdown-out docs/repair_mnist.md

# APRNN's own MNIST experiment (APRNN Table 1: ERAN 3x100/9x100/9x200, first 100 fog images as they come); needs ../shared.
bench-aprnn: setup
	$(CARGO) run --release -p netrepair-cli -- bench repair --protocol aprnn --lp-timeout 1200 --json-out docs/repair_aprnn_table1.json --markdown-out docs/repair_aprnn_table1.md

# PREPARED on every violated ACAS Xu instance of props 2, 7, 8; needs ../shared.
bench-acas: setup
	$(CARGO) run --release -p netrepair-cli -- bench acas --json-out docs/repair_acasxu.json --markdown-out docs/repair_acasxu.md

# I-REPAIR vs retraining on mnist-net_256x2 (seed 001, Table 1; 20 seeds, about 1 hour); needs ../shared.
bench-irepair: setup
	$(CARGO) run --release -p netrepair-cli -- bench irepair --mm 1,5 --json-out docs/irepair_mnist.json --markdown-out docs/irepair_mnist.md --plot docs/irepair_mnist.png

# Published I-REPAIR against I-REPAIR+ on the public code's protocol, 20 seeds split over two
# processes and merged, one compute thread each (candle's thread pool spins when two processes
# share the cores: 6x slower; measured 2026-12-01); needs ../shared.
bench-irepair-plus: setup
	$(CARGO) build --release -p netrepair-cli
	RAYON_NUM_THREADS=1 target/release/netrepair bench irepair --protocol paper --first-seed 0 --seeds 10 --gammas 1 --plus 1 --no-retrain --json-out target/irepair_plus_a.json > /dev/null & \
	RAYON_NUM_THREADS=1 target/release/netrepair bench irepair --protocol paper --first-seed 10 --seeds 10 --gammas 1 --plus 1 --no-retrain --json-out target/irepair_plus_b.json > /dev/null; wait
	target/release/netrepair bench irepair --from-json target/irepair_plus_a.json,target/irepair_plus_b.json --json-out docs/irepair_plus_20.json --markdown-out docs/irepair_plus_20.md

# I-REPAIR+ refereed (its three settings and APRNN's last-layer LP) by held-out predictions (training images
# 39000-48999), same 20 seeds and split (about 1 hour on 2 cores); needs ../shared.
bench-irepair-refereed: setup
	$(CARGO) build --release -p netrepair-cli
	RAYON_NUM_THREADS=1 target/release/netrepair bench irepair --protocol paper --first-seed 0 --seeds 10 --gammas "" --refereed 1 --no-retrain --json-out target/irepair_refereed_a.json > /dev/null & \
	RAYON_NUM_THREADS=1 target/release/netrepair bench irepair --protocol paper --first-seed 10 --seeds 10 --gammas "" --refereed 1 --no-retrain --json-out target/irepair_refereed_b.json > /dev/null; wait
	target/release/netrepair bench irepair --from-json target/irepair_refereed_a.json,target/irepair_refereed_b.json --json-out docs/irepair_refereed.json --markdown-out docs/irepair_refereed.md

# Seed 000's experiments: heuristics vs the oracle, size sweep, incremental repair; needs ../shared.
bench-informed: setup
	$(CARGO) run --release -p netrepair-cli -- bench informed --out-dir docs

# REGLO (seed 002): German credit age groups (Table 1), Adult (sex), MNIST per-class boxes; needs ../shared.
bench-reglo: setup
	$(CARGO) run --release -p netrepair-cli -- bench reglo --protocol paper --areas 30 --eval-points 1000 --out-dir docs
	$(CARGO) run --release -p netrepair-cli -- bench reglo --dataset german --out-dir docs
	$(CARGO) run --release -p netrepair-cli -- bench reglo --dataset adult --sensitive sex --at-epochs 3 --out-dir docs
	$(CARGO) run --release -p netrepair-cli -- bench reglo --dataset mnist --eps 0.005 --eval-points 200 --out-dir docs

# The project's own LPs (APRNN 3x100 fog layer 1, 256x2 last and middle layer with a keep set,
# PREPARED ACAS N2,9, REGLO German 30 areas) written with --dump-lp and solved with each
# strategy (simplex, interior point with and without crossover, PDLP, 2 threads); needs ../shared.
bench-lp: setup
	$(CARGO) build --release -p netrepair-cli
	bash scripts/bench_lp.sh
