"""The cost of a checkpoint (decode images/s on the CPU) goes to metrics.json, the table and the frontier picture."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from checkpoint import read_metrics, write_metrics
from training.__main__ import main
from training.report import table


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
    from training import figures

    assert figures.frontier([ckpt], tmp_path / "f.png") == 1
    assert Image.open(tmp_path / "f.png").size[0] > 500


def test_pareto_front() -> None:
    from training.figures import pareto

    pts = [("slow-good", 10.0, 85.0), ("fast-bad", 1000.0, 100.0), ("dominated", 5.0, 90.0), ("mid", 100.0, 88.0)]
    assert [p[0] for p in pareto(pts)] == ["fast-bad", "mid", "slow-good"]


def test_table_shows_any_checkpoints_figures(tiny_repo: Path, tmp_path: Path, capsys) -> None:
    """A freshly trained file has only its training run's figures: the table shows them, not nan."""
    ckpt = tmp_path / "repo" / "vae-z2" / "1" / "model.ts"
    shutil.copytree(tiny_repo / "vae-z2", ckpt.parents[1])
    write_metrics(ckpt, {"test_mse": 0.0123, "test_loss": 150.5, "train_seconds": 3.0, "train_device": "cpu"})
    assert main(["table", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "0.01230" in out and "150.50 (train-time)" in out and "nan" not in out
    assert main(["table", str(tmp_path / "repo")]) == 0 and "vae-z2 v1" in capsys.readouterr().out
    assert main(["table", str(tmp_path / "nothing")]) == 2
