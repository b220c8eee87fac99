"""A bounded headless locust run (loopback only) against a live server: no errors, p99 under a bound."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
P99_BOUND_MS = 2000  # documented in the README (Load testing): generous for a 2-core CI machine


def test_locust_mix_has_no_errors(server: tuple[str, subprocess.Popen], tmp_path: Path) -> None:
    locust = shutil.which("locust") or str(Path(sys.executable).parent / "locust")
    if not Path(locust).exists():
        pytest.fail("locust is a dev dependency: run bash scripts/setup.sh --tests")
    url, _ = server
    env = {**os.environ, "VAESERVE_LATENT_DIM": "4", "VAESERVE_P99_MS": str(P99_BOUND_MS)}
    cmd = [locust, "-f", str(ROOT / "loadtest/locustfile.py"), "--headless", "-u", "20", "-r", "10", "-t", "15s",
           "--host", url, "--csv", str(tmp_path / "run"), "--only-summary"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    rows = list(csv.DictReader((tmp_path / "run_stats.csv").open()))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    assert int(total["Request Count"]) > 100, out.stderr[-2000:]
    assert int(total["Failure Count"]) == 0, out.stderr[-2000:]
    assert float(total["99%"]) <= P99_BOUND_MS, total
    assert out.returncode == 0, out.stderr[-2000:]
