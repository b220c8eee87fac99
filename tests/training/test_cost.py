"""The cost of a checkpoint (decode images/s on the CPU) goes to metrics.json, the table and the frontier picture."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from checkpoint import read_metrics, write_metrics
from training.__main__ import main
from training.report import frontier_png, table


def test_cost_is_measured_recorded_tabled_and_drawn(tiny_repo: Path, tmp_path: Path, capsys) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo / "vae-z2", repo / "vae-z2")
    ckpt = repo / "vae-z2" / "1" / "model.ts"
    before = ckpt.stat().st_mtime_ns
    assert main(["cost", str(ckpt), "--seconds", "0.05"]) == 0
    cpu = read_metrics(ckpt)["cost"]["cpu"]
    assert set(cpu) == {"b1_t1", "b1024_t1", "b1_t2", "b1024_t2"} and all(v > 0 for v in cpu.values())
    assert ckpt.stat().st_mtime_ns == before  # figures beside the model file, never in it
    assert f"{cpu['b1024_t1']:,.0f} / {cpu['b1024_t2']:,.0f}" in table([ckpt])
    write_metrics(ckpt, {"evaluation": {"iwae_nll": 120.0, "iwae_k": 10, "mse": 0.05}})
    assert frontier_png([ckpt], tmp_path / "f.png") == 1
    assert Image.open(tmp_path / "f.png").size == (900, 560)
