#!/usr/bin/env bash
# Triton's perf_analyzer (a C++ Open Inference Protocol load generator, HTTP and gRPC) into .cache/perf_analyzer/,
# from the tritonclient 2.41.0 manylinux wheel on PyPI, with the CUDA runtime library it links against (it runs on a
# CPU machine too) from PyPI's nvidia-cuda-runtime-cu12, and Debian's libb64 (apt-get, root).
# Then: benchmarks/oip.py finds it there (or set PERF_ANALYZER=/path/to/perf_analyzer).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=.cache/perf_analyzer
mkdir -p "$DIR" && cd "$DIR"
PY=${PYTHON:-python3}
[[ -f tritonclient-2.41.0-py3-none-manylinux1_x86_64.whl ]] || "$PY" -m pip download -q --no-deps \
  --platform manylinux1_x86_64 --only-binary=:all: tritonclient==2.41.0 -d .
ls nvidia_cuda_runtime_cu12-*.whl >/dev/null 2>&1 || "$PY" -m pip download -q --no-deps --only-binary=:all: \
  "nvidia-cuda-runtime-cu12==12.*" -d .
unzip -q -o -j tritonclient-2.41.0-py3-none-manylinux1_x86_64.whl 'tritonclient-2.41.0.data/data/bin/perf_analyzer' -d .
unzip -q -o -j nvidia_cuda_runtime_cu12-*.whl 'nvidia/cuda_runtime/lib/libcudart.so.12' -d lib
chmod +x perf_analyzer
if ! ldconfig -p | grep -q libb64.so.0d; then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo -n"
  $SUDO apt-get install -y -qq libb64-0d >/dev/null
fi
LD_LIBRARY_PATH=$PWD/lib ./perf_analyzer --version 2>/dev/null | head -1 || true
echo "perf_analyzer: $PWD/perf_analyzer (LD_LIBRARY_PATH=$PWD/lib)"
