#!/usr/bin/env bash
# Create .venv and install vaeserve with its test tools. Idempotent; safe to run again.
# torch is pinned to 2.13.0 (a CPU build on this kind of machine); the Docker image installs CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
# The explorer's browser tests drive Debian's Chromium (Playwright's own browser downloads are not used).
if [[ ! -x /usr/bin/chromium && -z "${VAESERVE_CHROMIUM:-}" ]] && command -v apt-get >/dev/null; then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
