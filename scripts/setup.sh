#!/usr/bin/env bash
# Create .venv and install vaeserve: what serving needs; with --tests, also the test tools (pytest, Triton's and
# KServe's clients, Playwright and Chromium, locust, schemathesis, matplotlib). Idempotent; safe to run again.
# Usage: bash scripts/setup.sh [--tests]
# torch is pinned to 2.13.0 (a CPU build on this kind of machine); the Docker image installs CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
if [[ "${1:-}" != "--tests" ]]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
  exit 0
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,figures]"
# KServe's API types, read by tests/deploy/test_kserve.py as source (its own runtime deps are not needed)
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "kserve==0.21.0"
# --tests: also KServe's own clients in a venv of their own (kserve brings its whole server stack, which is not
# ours to install beside the service), for tests/deploy/test_kserve_client.py; a failure is reported, not fatal.
if [[ "${1:-}" == "--tests" && ! -x .venv-kserve/bin/python ]]; then
  if ! { "$PY" -m venv .venv-kserve && .venv-kserve/bin/python -m pip install -q --disable-pip-version-check \
         "kserve==0.21.0"; }; then
    echo "setup: could not install kserve==0.21.0 into .venv-kserve; its client test will say so" >&2
    rm -rf .venv-kserve
  fi
fi
# --tests: also Debian's Chromium for the explorer's browser tests (Playwright's own browser downloads are not
# used). Needs root or password-less sudo; without it, say so and go on (the browser tests will say it again).
if [[ "${1:-}" == "--tests" && ! -x /usr/bin/chromium && -z "${VAESERVE_CHROMIUM:-}" ]]; then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo -n"
  if ! { command -v apt-get >/dev/null && $SUDO apt-get update -qq && \
         $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
    echo "setup: could not install chromium (apt-get as root); tests/browser needs /usr/bin/chromium" \
         "or VAESERVE_CHROMIUM=/path/to/chromium" >&2
  fi
fi
