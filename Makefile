# The two commands of the README: `make demo` (main job) and `make test` (tests).
CARGO ?= cargo

.PHONY: setup demo test lint crosscheck bench-forward

setup:
	@bash scripts/setup.sh

demo: setup
	$(CARGO) run --release -p netrepair-cli -- demo

test: setup
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Needs ../shared (the benchmark networks and data sets).
crosscheck: setup
	$(CARGO) build --release -p netrepair-cli
	python3 scripts/crosscheck_onnxruntime.py --shared ../shared --netrepair target/release/netrepair

bench-forward: setup
	$(CARGO) run --release -p netrepair-cli -- bench forward --benchmarks ../shared/benchmarks --json-out docs/bench_forward.json
