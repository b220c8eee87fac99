"""/restyle: one drawing in its own style as every class, through the class-conditional flow's inverse, read by the
judge on the shipped cvae-z20 (the row that once showed the drawn class in most tiles)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from checkpoint import latents, newest, prior_noise, read_meta
from service.app import create_app
from service.settings import Settings
from training.judge import load_judge

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shipped() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_repository=ROOT / "models", grpc_port=0))) as c:
        yield c


def slant(img: np.ndarray) -> float:
    """dx/dy of the ink's principal direction: a style the class does not decide."""
    ys, xs = np.mgrid[0:28, 0:28]
    w = img / img.sum()
    mx, my = (w * xs).sum(), (w * ys).sum()
    return float((w * (xs - mx) * (ys - my)).sum() / (w * (ys - my) ** 2).sum())


def test_the_flow_inverts_exactly() -> None:
    shipped_cvae = next(p for p in newest(ROOT / "models") if p.parts[-3] == "cvae-z20")  # whichever version ships
    m = torch.jit.load(str(shipped_cvae))
    dim = read_meta(shipped_cvae)["latent_dim"]
    eps, labels = torch.randn(16, dim, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 10
    with torch.inference_mode():
        assert torch.allclose(prior_noise(m, latents(m, eps, labels), labels), eps, atol=1e-4)


def test_every_class_in_the_drawings_style_as_the_judge_reads_it(shipped: TestClient) -> None:
    judge, _ = load_judge(ROOT / "judge" / "mnist-cnn.ts", torch.device("cpu"))
    asked = [7] * 6 + [3] * 6 + [1] * 6
    src = shipped.post("/sample", json={"model": "cvae-z20", "n": len(asked), "labels": asked, "seed": 4}).json()
    hits, slants = [], []
    for img, label in zip(src["images"], asked, strict=True):
        r = shipped.post("/restyle", json={"model": "cvae-z20", "image": {"pixels": img}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["label"] == label and body["labels"] == list(range(10))
        out = np.asarray(body["images"], np.float32)
        with torch.no_grad():
            pred = judge(torch.from_numpy(out)[:, None]).argmax(1).numpy()
        hits.append(float((pred == np.arange(10)).mean()))
        slants.append((slant(np.asarray(img)), float(np.mean([slant(o) for o in out]))))
    assert min(hits) >= 0.9, hits  # each drawing's row: at least 9 of 10 tiles the class they were asked as
    src_slant, row_slant = np.asarray(slants).T
    assert np.corrcoef(src_slant, row_slant)[0, 1] > 0.6  # the style held: a slanted drawing gives slanted rows


def test_restyle_takes_an_array_and_refuses_what_it_cannot_do(shipped: TestClient) -> None:
    x = (np.asarray(shipped.post("/sample", json={"model": "cvae-z20", "n": 1, "labels": [2], "seed": 1})
                    .json()["images"][0]) * 255).astype(np.uint8)
    buf = io.BytesIO()
    np.save(buf, x)
    r = shipped.post("/restyle?model=cvae-z20&label=2&labels=5", content=buf.getvalue(),
                     headers={"content-type": "application/x-npy", "accept": "application/x-npy"})
    assert r.status_code == 422 and "labels" in r.json()["error"]  # a list is not a query parameter
    r = shipped.post("/restyle?model=cvae-z20&label=2", content=buf.getvalue(),
                     headers={"content-type": "application/x-npy", "accept": "application/x-npy"})
    assert r.status_code == 200 and np.load(io.BytesIO(r.content)).shape == (10, 28, 28)
    both = io.BytesIO()
    np.savez(both, image=x, labels=np.array([4, 9]))  # an .npz carries the target labels beside the image
    r = shipped.post("/restyle?model=cvae-z20", content=both.getvalue(),
                     headers={"content-type": "application/x-npz", "accept": "application/x-npz"})
    assert r.status_code == 200
    with np.load(io.BytesIO(r.content)) as got:
        assert got["images"].shape == (2, 28, 28) and got["labels"].tolist() == [4, 9]
    plain = shipped.post("/restyle", json={"model": "vae-flow-z20", "image": {"pixels": x.tolist()}})
    assert plain.status_code == 422 and "not conditional" in plain.json()["error"]
    far = shipped.post("/restyle", json={"model": "cvae-z20", "image": {"pixels": x.tolist()}, "labels": [12]})
    assert far.status_code == 422
