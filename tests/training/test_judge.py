"""The judge: the Fréchet distance and entropy against independent formulas, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from checkpoint import read_meta, read_metrics
from training.__main__ import main
from training.judge import class_entropy_bits, frechet_distance


def test_frechet_matches_the_product_eigenvalue_form() -> None:
    """Tr((S_a S_b)^1/2) computed another way: the eigenvalues of the (non-symmetric) product S_a S_b."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(3000, 6)) @ rng.normal(size=(6, 6)) + 0.5
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    tr_root = np.sqrt(np.linalg.eigvals(s_a @ s_b).real.clip(0)).sum()
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_root
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + 3.0) == pytest.approx(6 * 9.0, rel=1e-6)  # a pure shift: |d|^2


def test_class_entropy() -> None:
    assert class_entropy_bits(np.arange(1000) % 10) == pytest.approx(np.log2(10))
    assert class_entropy_bits(np.full(50, 3)) == 0.0
    assert class_entropy_bits(np.array([0, 1])) == pytest.approx(1.0)


def test_train_judge_then_judge_generators(idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    judge = tmp_path / "judge.ts"
    assert main(["train-judge", "--idx-dir", str(idx_dir), "--out", str(judge), "--epochs", "2",
                 "--batch-size", "32", "--device", "cpu"]) == 0
    jmeta = json.loads(capsys.readouterr().out)
    assert jmeta["kind"] == "judge" and 0 <= jmeta["test_accuracy"] <= 1 and read_meta(judge)["kind"] == "judge"
    common = ["--judge", str(judge), "--idx-dir", str(idx_dir), "-n", "60", "--device", "cpu"]
    repo = tmp_path / "repo"
    for kind in ("vae", "cvae"):
        assert main(["train", "--kind", kind, "--latent-dim", "3", "--epochs", "1", "--width", "16",
                     "--batch-size", "32", "--idx-dir", str(idx_dir), "--runs-dir", str(tmp_path / "runs"),
                     "--repository", str(repo), "--device", "cpu"]) == 0
        ckpt = repo / f"{kind}-z3" / "1" / "model.ts"
        capsys.readouterr()
        assert main(["judge", str(ckpt), *common]) == 0
        out = json.loads(capsys.readouterr().out)
        assert sum(out["class_histogram"]) == 60 and 0 <= out["confident"] <= 1 and out["frechet"] >= 0
        assert ("cond_acc" in out) == (kind == "cvae")
        assert read_metrics(ckpt)["judge"]["frechet"] == out["frechet"]
    # Autoencoders have no prior: refused with a message, exit 2.
    assert main(["train", "--kind", "deep-ae", "--latent-dim", "3", "--epochs", "1", "--width", "16",
                 "--idx-dir", str(idx_dir), "--runs-dir", str(tmp_path / "runs"), "--repository", str(repo),
                 "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["judge", str(repo / "deep-ae-z3" / "1" / "model.ts"), *common]) == 2
    assert "no prior to sample from" in capsys.readouterr().err
    assert main(["judge", str(repo / "vae-z3" / "1" / "model.ts"), "--judge", str(repo / "vae-z3" / "1" / "model.ts"),
                 "--idx-dir", str(idx_dir), "-n", "10", "--device", "cpu"]) == 2
    assert "not a judge" in capsys.readouterr().err
    # A judge whose weights were changed after export is refused.
    files = {"meta.json": ""}
    module = torch.jit.load(str(judge), _extra_files=files)
    with torch.no_grad():
        module.head.bias.add_(1.0)
    torch.jit.save(module, str(tmp_path / "tampered.ts"), _extra_files=files)
    assert main(["judge", str(repo / "vae-z3" / "1" / "model.ts"), "--judge", str(tmp_path / "tampered.ts"),
                 "--idx-dir", str(idx_dir), "-n", "10", "--device", "cpu"]) == 2
    assert "weights do not match" in capsys.readouterr().err
