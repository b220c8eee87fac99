"""The Classification Accuracy Score: digits drawn exactly as /sample serves them, a classifier per temperature,
the real-data reference cached, the figures recorded."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from checkpoint import read_metrics
from model import ModelSpec, build
from model.prior import FlowPrior
from service.app import create_app
from tests.conftest import perturb
from tests.helpers import make_settings
from training.__main__ import main
from training.cas import Recipe, cas, draw
from training.data import load_mnist
from training.export import export


@pytest.fixture(scope="module")
def cvae_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cvae-flow-z3: an untrained MLP cvae with a perturbed flow prior (not the identity); vae-z4: unconditional
    (the default model of make_settings)."""
    repo = tmp_path_factory.mktemp("cas-repo")
    torch.manual_seed(0)
    spec = ModelSpec("cvae", latent_dim=3, arch="mlp", width=16, depth=2)
    flow = perturb(FlowPrior(3, layers=2, hidden=8), 0.3)
    export(build(spec), spec, "cvae-flow-z3", repo, {"spec": spec.__dict__}, "0" * 64, {}, prior=flow)
    cond = ModelSpec("cvae", latent_dim=3, arch="mlp", width=16, depth=2, prior="class-flow", prior_hidden=8)
    model = build(cond)
    perturb(model.prior_flow, 0.3)
    export(model, cond, "cvae-classflow-z3", repo, {"spec": cond.__dict__}, "0" * 64, {})
    plain = ModelSpec("vae", latent_dim=3, arch="mlp", width=16)
    export(build(plain), plain, "vae-z4", repo, {"spec": plain.__dict__}, "0" * 64, {})
    return repo


@pytest.mark.parametrize("name", ["cvae-flow-z3", "cvae-classflow-z3"])
def test_draw_is_the_served_sample(cvae_repo: Path, name: str) -> None:
    """What CAS trains on is byte for byte what a client pulls: .npy uint8, labels balanced, across seed blocks;
    with p(z) or p(z | y) as the prior."""
    per_class = 1001  # 10,010 rows: the second seed block starts at row 10,000
    x, y = draw(cvae_repo / name / "1" / "model.ts", per_class, 0.8, seed=5)
    assert x.shape == (10010, 28, 28) and x.dtype == np.uint8 and list(y[:12]) == [*range(10), 0, 1]
    with TestClient(create_app(make_settings(cvae_repo))) as c:
        r = c.post("/sample", json={"model": name, "n": 10010, "labels": "balanced", "seed": 5,
                                    "temperature": 0.8, "dtype": "uint8"}, headers={"accept": "application/x-npy"})
        assert r.status_code == 200, r.text
        served = np.load(io.BytesIO(r.content))
        # JSON answers z = prior(eps, labels); /decode of that z under the same labels gives the same digits
        body = c.post("/sample", json={"model": name, "n": 20, "labels": "balanced", "seed": 5,
                                       "temperature": 0.8}).json()
        again = c.post("/decode", json={"model": name, "z": body["z"], "labels": body["labels"]}).json()
        np.testing.assert_allclose(np.asarray(again["images"]), np.asarray(body["images"]), atol=1e-5)
        small, _ = draw(cvae_repo / name / "1" / "model.ts", 2, 0.8, seed=5)  # n=20: its own noise, not x[:20]
        np.testing.assert_allclose(np.asarray(body["images"]) * 255, small, atol=0.51)
    assert np.abs(served.astype(int) - x.astype(int)).max() <= 1  # float rounding of a batch may flip one level
    assert (served == x).mean() > 0.999
    other, _ = draw(cvae_repo / name / "1" / "model.ts", per_class, 0.8, seed=6)
    assert (other != x).mean() > 0.01  # the seed matters


def test_cas_sweeps_temperature_and_caches_the_reference(cvae_repo: Path, idx_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load_mnist(idx_dir, tmp_path / "data")
    recipe = Recipe(epochs=1, batch_size=32)
    out = cas(cvae_repo / "cvae-flow-z3" / "1" / "model.ts", ds, [0.5, 1.0], per_class=4, recipe=recipe,
              cache_dir=tmp_path)
    assert [r["temperature"] for r in out["sweep"]] == [0.5, 1.0]
    chosen = max(out["sweep"], key=lambda r: r["held_out_accuracy"])  # held-out training digits choose, not the test
    assert (out["accuracy"], out["temperature"]) == (chosen["accuracy"], chosen["temperature"])
    assert out["held_out_images"] > 0 and "held out" in out["note"]
    assert 0 <= out["reference_accuracy"] <= 1 and out["per_class"] == 4 and out["test_images"] == len(ds.y_test)
    cached = list(tmp_path.glob("cas-reference-*.json"))
    assert len(cached) == 1
    cached[0].write_text(json.dumps({"accuracy": 0.123}))  # the cache is what a second run reads
    again = cas(cvae_repo / "cvae-flow-z3" / "1" / "model.ts", ds, [1.0], per_class=4, recipe=recipe,
                cache_dir=tmp_path)
    assert again["reference_accuracy"] == 0.123
    other = cas(cvae_repo / "cvae-flow-z3" / "1" / "model.ts", ds, [1.0], per_class=4,
                recipe=Recipe(epochs=1, batch_size=32, seed=1), cache_dir=tmp_path)
    assert other["reference_accuracy"] != 0.123  # another recipe, another reference
    assert out["sweep"][0]["synthetic_images"] == 40 and not out["fresh"]
    # --fresh: the reference's steps over recipe.epochs times the digits, each seen once; the reference unchanged
    import training.cas as cas_module

    trained = []
    real_train = cas_module.train_classifier
    monkeypatch.setattr(cas_module, "train_classifier",
                        lambda x, y, r: trained.append((len(x), r.epochs)) or real_train(x, y, r))
    fresh = cas(cvae_repo / "cvae-flow-z3" / "1" / "model.ts", ds, [1.0], per_class=4,
                recipe=Recipe(epochs=3, batch_size=4), cache_dir=tmp_path, fresh=True)
    assert fresh["fresh"] and fresh["sweep"][0]["synthetic_images"] == 120 and fresh["classifier"]["epochs"] == 3
    assert trained[-1] == (120, 1)  # 120 digits once each: the steps of 3 epochs over 40


def test_cas_cli_records_the_figure_and_refuses_unconditional_models(cvae_repo: Path, idx_dir: Path,
                                                                    tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = cvae_repo / "cvae-flow-z3" / "1" / "model.ts"
    common = ["--idx-dir", str(idx_dir), "--data-cache", str(tmp_path / "data"), "--cache", str(tmp_path),
              "--per-class", "3", "--epochs", "1"]
    assert main(["cas", str(ckpt), "-t", "0.7", "--real-plus", "2", *common]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert read_metrics(ckpt)["cas"] == printed and printed["temperature"] == 0.7
    mixed = printed["real_plus_synthetic"]  # the same CNN on real digits alone, and on real plus synthetic
    assert mixed["seeds"] == [0, 1] and len(mixed["real"]) == len(mixed["real_plus_synthetic"]) == 2
    expected = (sum(mixed["real_plus_synthetic"]) - sum(mixed["real"])) / 2
    assert abs(mixed["difference"]["mean"] - expected) < 1e-4
    assert main(["cas", str(cvae_repo / "vae-z4" / "1" / "model.ts"), *common]) == 2
    assert "needs a conditional model" in capsys.readouterr().err


def test_decoder_ceiling_decodes_each_digits_own_code() -> None:
    """scripts/decoder_ceiling.py's images: decode(z ~ q(z | x, y), y) of each real digit, sharpened as /sample
    sharpens: the shipped conditional model's are that digit (close to it pixel by pixel, far from the next one's),
    black and white once sharpened, and the same for the same seed."""
    import importlib.util

    root = Path(__file__).resolve().parents[2]  # wherever pytest runs from
    spec = importlib.util.spec_from_file_location("decoder_ceiling", root / "scripts" / "decoder_ceiling.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from checkpoint import load_model, newest
    from training.loop import to_tensor

    shipped = next(p for p in newest(root / "models") if p.parts[-3].startswith("cvae"))  # whichever version ships
    digits, labels = draw(shipped, 4, 1.0, seed=3)  # 40 digits standing in for real ones (the suite has no MNIST)
    x, y = to_tensor(digits, torch.device("cpu")), torch.from_numpy(labels)
    ts, meta = load_model(shipped)
    plain = mod.posterior_images(ts, meta.conditional, x, y, 1.0, 0).float() / 255
    assert plain.shape == (40, 28, 28)
    own = (plain - x[:, 0]).abs().mean(dim=(1, 2))
    other = (plain - x[:, 0].roll(1, dims=0)).abs().mean(dim=(1, 2))
    assert bool((own < other).all()) and float(own.mean()) < 0.08
    sharp = mod.posterior_images(ts, meta.conditional, x, y, 12.0, 0).float() / 255
    grey = ((plain > 0.08) & (plain < 0.92)).float().mean()
    assert float(((sharp > 0.08) & (sharp < 0.92)).float().mean()) < float(grey) / 3
    assert torch.equal(mod.posterior_images(ts, meta.conditional, x, y, 12.0, 0), (sharp * 255).round().to(torch.uint8))


def test_cas_jobs_measure_in_processes_what_one_thread_measures_here(cvae_repo: Path, idx_dir: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """--jobs N: each setting and seed in a process of its own, the figures those of a one-thread serial run."""
    ckpt = cvae_repo / "cvae-flow-z3" / "1" / "model.ts"
    args = ["cas", str(ckpt), "-t", "0.7", "1.0", "--sharpness", "1", "6", "--real-plus", "2", "--no-write",
            "--idx-dir", str(idx_dir), "--data-cache", str(tmp_path / "data"), "--cache", str(tmp_path),
            "--per-class", "3", "--epochs", "1"]
    before = read_metrics(ckpt)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(args) == 0
    finally:
        torch.set_num_threads(threads)
    serial = json.loads(capsys.readouterr().out)
    assert main([*args, "--jobs", "2"]) == 0
    parallel = json.loads(capsys.readouterr().out)

    def figures(out: dict) -> dict:
        return {**out, "sweep": [{k: v for k, v in row.items() if k != "seconds"} for row in out["sweep"]]}

    assert [(r["temperature"], r["sharpness"]) for r in parallel["sweep"]] == [(0.7, 1.0), (0.7, 6.0), (1.0, 1.0),
                                                                              (1.0, 6.0)]
    assert figures(parallel) == figures(serial)
    assert read_metrics(ckpt) == before  # --no-write
    assert main([*args, "--jobs", "0"]) == 2 and "--jobs 0" in capsys.readouterr().err
