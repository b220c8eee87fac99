"""The training CLI end to end on tiny IDX data: train -> export -> evaluate, Ctrl-C, and DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from checkpoint import read_meta, read_metrics
from training.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def _train_args(idx_dir: Path, tmp: Path, *extra: str) -> list[str]:
    return ["train", "--idx-dir", str(idx_dir), "--runs-dir", str(tmp / "runs"), "--repository",
            str(tmp / "repo"), "--device", "cpu", "--batch-size", "32", "--width", "16", *extra]


@pytest.mark.parametrize("kind", ["vae", "linear-ae", "sparse-ae", "denoising-ae"])
def test_train_export_evaluate(kind: str, idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_train_args(idx_dir, tmp_path, "--kind", kind, "--latent-dim", "3", "--epochs", "2")) == 0
    ckpt = tmp_path / "repo" / f"{kind}-z3" / "1" / "model.ts"
    run = tmp_path / "runs" / f"{kind}-z3"
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert (run / "reconstructions.png").exists() and (run / "samples.png").exists() == (kind == "vae")
    capsys.readouterr()
    before = ckpt.stat().st_mtime_ns
    assert main(["evaluate", str(ckpt), "--idx-dir", str(idx_dir), "--iwae-k", "8", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_images"] == 64 and result["mse"] > 0
    expected = {"vae": "iwae_nll", "linear-ae": "mse_over_pca", "sparse-ae": "code_zero_fraction",
                "denoising-ae": "denoised_over_noisy"}[kind]
    assert expected in result
    if kind == "vae":  # the IWAE bound is tighter than the ELBO (up to Monte-Carlo noise)
        assert result["iwae_nll"] <= result["neg_elbo"] + 1.0
    assert read_metrics(ckpt)["evaluation"][expected] == result[expected]
    assert ckpt.stat().st_mtime_ns == before and "metrics" not in read_meta(ckpt)  # model.ts never rewritten


def test_same_seed_same_model(idx_dir: Path, tmp_path: Path) -> None:
    for sub in ("a", "b"):
        main(_train_args(idx_dir, tmp_path / sub, "--kind", "deep-ae", "--latent-dim", "2", "--epochs", "1"))
    a = torch.jit.load(str(tmp_path / "a/repo/deep-ae-z2/1/model.ts"))
    b = torch.jit.load(str(tmp_path / "b/repo/deep-ae-z2/1/model.ts"))
    for (na, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=False):
        assert torch.equal(pa, pb), na


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_ctrl_c_keeps_the_best_epoch(idx_dir: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "training", *_train_args(idx_dir, tmp_path, "--kind", "vae", "--latent-dim", "2",
                                                           "--epochs", "10000", "--batch-size", "8")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "runs" / "vae-z2" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "interrupted" in err
    assert (tmp_path / "repo" / "vae-z2" / "1" / "model.ts").exists()


def test_ddp_two_cpu_processes(idx_dir: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training", *_train_args(idx_dir, tmp_path, "--kind", "vae", "--latent-dim", "2", "--epochs", "2")]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_metrics(tmp_path / "repo" / "vae-z2" / "1" / "model.ts")["world_size"] == 2
