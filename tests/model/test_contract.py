"""The checkpoint contract, for every kind: shapes, ranges, scripting, export -> load gives identical outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from checkpoint import read_metrics, weights_sha256
from model import KINDS, ModelSpec, build
from training.export import export

REQUIRED_META = {"format", "name", "version", "kind", "latent_dim", "image_shape", "stochastic", "generative",
                 "num_classes", "likelihood", "config", "data_sha256", "code_commit", "weights_sha256"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_export_load_roundtrip(kind: str, arch: str, tmp_path: Path) -> None:
    spec = ModelSpec(kind, latent_dim=5, arch=arch, width=16)
    torch.manual_seed(0)
    model = build(spec).eval()
    path = export(model, spec, "m", tmp_path, {"spec": spec.__dict__}, "ab" * 32, {"test_mse": 1.0})
    assert path == tmp_path / "m" / "1" / "model.ts"

    files = {"meta.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=files)  # torch alone, no project import needed
    meta = json.loads(files["meta.json"])
    assert REQUIRED_META <= meta.keys()
    assert meta["kind"] == kind and meta["latent_dim"] == 5 and meta["image_shape"] == [1, 28, 28]
    assert meta["stochastic"] == meta["generative"] == (kind in ("vae", "cvae"))
    assert meta["weights_sha256"] == weights_sha256(loaded)
    assert "metrics" not in meta and read_metrics(path) == {"test_mse": 1.0}  # figures live beside the file

    x = torch.rand(6, 1, 28, 28)
    labels = torch.arange(6) if kind == "cvae" else None
    mu, logvar = loaded.encode(x, labels)
    assert mu.shape == logvar.shape == (6, 5)
    if kind not in ("vae", "cvae"):
        assert torch.count_nonzero(logvar) == 0
    out = loaded.decode(mu, labels)
    assert out.shape == (6, 1, 28, 28) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    with torch.no_grad():
        ref_mu, _ = model.encode(x, labels)
        ref = model.decode_raw(ref_mu, labels)
        ref = ref.clamp(0, 1) if kind == "linear-ae" else torch.sigmoid(ref)
    assert torch.equal(mu, ref_mu)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_versions_increment(tmp_path: Path) -> None:
    spec = ModelSpec("linear-ae", latent_dim=2)
    for expected in (1, 2):
        path = export(build(spec), spec, "lin", tmp_path, {}, "0" * 64, {})
        assert path.parent.name == str(expected)


def test_cvae_requires_labels() -> None:
    model = build(ModelSpec("cvae", latent_dim=3, width=16))
    with pytest.raises(ValueError, match="labels are required"):
        model.decode_raw(torch.zeros(2, 3), None)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="allowed"):
        build(ModelSpec("gan"))
