"""/sample through a checkpoint's learned prior; checkpoints without one sample N(0, I) as before."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import checkpoint
from model import ModelSpec, build
from model.prior import FlowPrior
from service.app import create_app
from tests.conftest import perturb
from tests.helpers import make_settings
from training.export import export

NPY = {"accept": "application/x-npy"}


@pytest.fixture(scope="module")
def prior_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vae-flow-z3: an MLP VAE with a (perturbed, so not the identity) flow prior; vae-z4: a plain VAE."""
    repo = tmp_path_factory.mktemp("prior-repo")
    torch.manual_seed(0)
    spec = ModelSpec("vae", latent_dim=3, arch="mlp", width=16, depth=2)
    flow = perturb(FlowPrior(3, layers=4, hidden=16), 0.2)
    export(build(spec), spec, "vae-flow-z3", repo, {"spec": spec.__dict__}, "0" * 64, {}, prior=flow)
    plain = ModelSpec("vae", latent_dim=4, arch="mlp", width=16)
    export(build(plain), plain, "vae-z4", repo, {"spec": plain.__dict__}, "0" * 64, {})
    return repo


@pytest.fixture()
def client(prior_repo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(prior_repo))) as c:
        yield c


def _reference(repo: Path, seed: int, n: int, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    ts, _ = checkpoint.load(repo / "vae-flow-z3" / "1" / "model.ts", torch.device("cpu"), verify=False)
    eps = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed)) * temperature
    with torch.no_grad():
        z = ts.prior(eps)
        return z, ts.decode(z)[:, 0]


def test_sample_decodes_the_prior_of_the_noise(client: TestClient, prior_repo: Path) -> None:
    listed = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert listed["vae-flow-z3"]["prior"] == "flow"
    for temperature in (1.0, 0.5):
        body = client.post("/sample", json={"model": "vae-flow-z3", "n": 6, "seed": 11,
                                            "temperature": temperature}).json()
        z, images = _reference(prior_repo, 11, 6, temperature)
        np.testing.assert_allclose(np.array(body["z"]), z.numpy(), atol=1e-5)
        np.testing.assert_allclose(np.array(body["images"]), images.numpy(), atol=1e-5)
        # .npy (prior and decode fused in one forward) and .npz (z beside the images) give the same digits
        body_np = {"model": "vae-flow-z3", "n": 6, "seed": 11, "temperature": temperature}
        npy = np.load(io.BytesIO(client.post("/sample", json=body_np, headers=NPY).content))
        npz = np.load(io.BytesIO(client.post("/sample", json=body_np, headers={"accept": "application/x-npz"}).content))
        np.testing.assert_allclose(npy, images.numpy(), atol=1e-5)
        np.testing.assert_allclose(npz["z"], z.numpy(), atol=1e-5)
        np.testing.assert_allclose(npz["images"], images.numpy(), atol=1e-5)
        # the z /sample returns decodes to the same digits through /decode
        again = client.post("/decode", json={"model": "vae-flow-z3", "z": body["z"]}).json()["images"]
        np.testing.assert_allclose(np.array(again), images.numpy(), atol=1e-5)


def test_seeded_prior_samples_do_not_depend_on_batching(prior_repo: Path) -> None:
    """The same request answered in chunks of 1 and 2 rows, whole, and streamed: the same digits."""
    body = {"model": "vae-flow-z3", "n": 40, "seed": 5}
    answers = []
    for kw in ({"max_batch_rows": 1}, {"max_batch_rows": 2}, {}, {"stream_min_rows": 16}):
        with TestClient(create_app(make_settings(prior_repo, **kw))) as c:
            answers.append(np.load(io.BytesIO(c.post("/sample", json=body, headers=NPY).content)))
    for other in answers[1:]:
        np.testing.assert_allclose(other, answers[0], atol=1e-6)
    np.testing.assert_allclose(answers[0], _reference(prior_repo, 5, 40)[1].numpy(), atol=1e-5)


def test_checkpoint_without_a_prior_samples_the_standard_normal(client: TestClient) -> None:
    body = client.post("/sample", json={"model": "vae-z4", "n": 3, "seed": 7}).json()
    np.testing.assert_allclose(np.array(body["z"]), torch.randn(3, 4, generator=torch.Generator().manual_seed(7)),
                               atol=1e-6)
    assert "prior" not in client.get("/models/vae-z4").json() or \
        client.get("/models/vae-z4").json()["prior"] == "normal"


def test_shipped_checkpoints_from_before_the_prior_still_load() -> None:
    from checkpoint import latents, prior_takes_labels
    from service.engine.checkpoints import load_checkpoint

    models = Path(__file__).resolve().parents[2] / "models"
    old = load_checkpoint(models / "deep-ae-z20" / "1" / "model.ts")  # exported before priors were recorded
    assert old.meta.prior == "normal" and "prior" not in old.meta.raw and not old.has_prior
    # A ladder rung was exported when prior() took the noise alone; it serves as ever beside newer files
    rung = load_checkpoint(models / "vae-flow-z5" / "1" / "model.ts")
    assert rung.has_prior and not prior_takes_labels(rung.module)
    eps = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(latents(rung.module, eps), rung.module.prior(eps))


def test_v2_sampler_applies_the_learned_prior(client: TestClient) -> None:
    """vae-flow-z3-sampler on /sample's own noise (seed 5) gives /sample's digits: the prior runs in the server."""

    eps = torch.randn(8, 3, generator=torch.Generator().manual_seed(5))
    body = {"inputs": [{"name": "eps", "shape": [8, 3], "datatype": "FP32", "data": eps.reshape(-1).tolist()}]}
    r = client.post("/v2/models/vae-flow-z3-sampler/infer", json=body)
    assert r.status_code == 200, r.text
    x = np.asarray(r.json()["outputs"][0]["data"], dtype=np.float32).reshape(8, 28, 28)
    ref = np.load(io.BytesIO(client.post("/sample", json={"model": "vae-flow-z3", "n": 8, "seed": 5},
                                         headers={"accept": "application/x-npy"}).content))
    np.testing.assert_allclose(x, ref, atol=1e-5)
    decoded = client.post("/v2/models/vae-flow-z3-decoder/infer",
                          json={"inputs": [{**body["inputs"][0], "name": "z"}]}).json()["outputs"][0]["data"]
    assert not np.allclose(np.asarray(decoded, dtype=np.float32).reshape(8, 28, 28), ref, atol=1e-3)


def test_bf16_keeps_the_learned_prior_in_fp32(prior_repo: Path) -> None:
    """Served in bf16, the prior's z are the fp32 flow's (its couplings compound bf16's rounding: the default's z
    moved by up to 0.25), and the digits differ only by the bf16 decoder's rounding."""
    z, images = _reference(prior_repo, 11, 64)
    with TestClient(create_app(make_settings(prior_repo, precision="bf16"))) as c:
        body = c.post("/sample", json={"model": "vae-flow-z3", "n": 64, "seed": 11}).json()
        npy = np.load(io.BytesIO(c.post("/sample", json={"model": "vae-flow-z3", "n": 64, "seed": 11},
                                        headers=NPY).content))
    np.testing.assert_allclose(np.array(body["z"]), z.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.array(body["images"]), images.numpy(), atol=0.05)
    np.testing.assert_allclose(npy, images.numpy(), atol=0.05)
    assert np.abs(npy - images.numpy()).max() > 0  # bf16 did serve the decoder: the comparison can tell
