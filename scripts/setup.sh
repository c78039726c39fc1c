#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test netrepair.
#
# System packages (Debian): cmake and libclang-dev (to build the bundled HiGHS solver and its
# bindings), g++. (The ONNX protobuf types are committed: no protoc needed.)
# Optional: fonts-dejavu-core (labels in the PNG plots).
# Python packages (pip): onnxruntime, onnx, numpy (the reference for the cross-check tests and
# the benchmarks; without them those tests are skipped unless NETREPAIR_REQUIRE_ORT=1).
#
# Run as root to install system packages; otherwise it prints what to install.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
if ! ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so'; then
  need+=(libclang-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${need[*]}" >&2
    echo "setup: install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

# Optional: a TrueType font for the labels of the plots (plots are drawn without labels otherwise).
if [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing fonts-dejavu-core (apt-get) for plot labels"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null) \
      || echo "setup: could not install fonts-dejavu-core; plots will have no labels" >&2
  else
    echo "setup: optional: sudo apt-get install -y fonts-dejavu-core (labels in plots)" >&2
  fi
fi

if command -v python3 >/dev/null 2>&1; then
  if ! python3 -c "import onnxruntime, onnx, numpy" >/dev/null 2>&1; then
    echo "setup: installing onnxruntime, onnx, numpy (pip) for the reference checks"
    python3 -m pip install -q onnxruntime onnx numpy 2>&1 | grep -v "Running pip as the 'root' user" || true
  fi
else
  echo "setup: python3 not found; the onnxruntime cross-checks will be skipped" >&2
fi
