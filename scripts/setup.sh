#!/usr/bin/env bash
# Create .venv and install vaeserve with its test tools. Idempotent; safe to run again.
# torch is pinned to 2.13.0 (a CPU build on this kind of machine); the Docker image installs CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
