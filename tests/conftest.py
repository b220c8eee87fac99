"""Shared fixtures: tiny MNIST-shaped IDX data and tiny untrained checkpoints, made on the fly."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from model import ModelSpec, build
from service.app import create_app
from tests.helpers import launch, make_settings
from training.export import export


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 IDX file: magic 0x0000 08 NDIM, big-endian dims, raw bytes."""
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_idx_dir(root: Path, n_train: int = 256, n_test: int = 64, seed: int = 0) -> Path:
    """Digit-like blobs: a bright square whose position depends on the label."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 40, (n, 28, 28))
        for i, lab in enumerate(y):
            r, c = 4 + (lab // 5) * 10, 2 + (lab % 5) * 5
            x[i, r:r + 10, c:c + 6] = 255
        write_idx(root / f"{split}-images-idx3-ubyte", x)
        write_idx(root / f"{split}-labels-idx1-ubyte", y)
    return root


def perturb(module: torch.nn.Module, scale: float) -> torch.nn.Module:
    """Add scale * N(0, 1) noise to every parameter, in place: a flow prior that is not the identity it starts as."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_idx_dir(tmp_path_factory.mktemp("mnist"))


TINY = {  # one untrained checkpoint per kind; small widths keep the suite fast
    "vae-z4": ModelSpec("vae", latent_dim=4, width=16),
    "vae-z2": ModelSpec("vae", latent_dim=2, arch="mlp", width=32),
    "deep-ae-z4": ModelSpec("deep-ae", latent_dim=4, width=16),
    "linear-ae-z3": ModelSpec("linear-ae", latent_dim=3),
    "cvae-z4": ModelSpec("cvae", latent_dim=4, width=16),
}


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository of tiny untrained checkpoints; vae-z4 also has a version 2."""
    repo = tmp_path_factory.mktemp("repo")
    for name, spec in TINY.items():
        torch.manual_seed(0)
        export(build(spec), spec, name, repo, {"spec": spec.__dict__}, "0" * 64, {"test_mse": 0.1})
    torch.manual_seed(1)
    spec = TINY["vae-z4"]
    export(build(spec), spec, "vae-z4", repo, {"spec": spec.__dict__}, "0" * 64, {"test_mse": 0.2})
    return repo


@pytest.fixture()
def client(tiny_repo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tiny_repo, max_rows=64, max_sample=500))) as c:
        yield c


@pytest.fixture()
def server(tiny_repo: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    url, proc = launch(["-m", "service"], tiny_repo, tmp_path / "server.log", VAESERVE_DRAIN_TIMEOUT_S="10")
    yield url, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()
