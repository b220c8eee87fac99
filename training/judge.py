"""Train the judge classifier, and score any generative checkpoint with it.

Scores of a generator (10,000 samples decoded from z ~ N(0, I), Bernoulli means as images):
  confident  fraction the judge classifies with max softmax >= 0.9 (does it look like *a* digit?)
  entropy    entropy of the judge's class histogram, bits (log2 10 = 3.32 when every class is equally drawn)
  frechet    Fréchet distance between Gaussians fitted to the judge's penultimate features of the samples
             and of the 10k real test digits: an MNIST analogue of FID (lower is better)
  cond_acc   conditional models only: fraction classified as the label asked for
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from checkpoint import save, weights_sha256
from checkpoint.sampling import decoded
from model.judge import JudgeCNN
from training.data import Mnist
from training.evaluate import load, load_model
from training.export import code_commit
from training.loop import to_tensor

log = logging.getLogger("training.judge")
DEFAULT_JUDGE = Path("judge/mnist-cnn.ts")
CONFIDENT = 0.9
CPU = torch.device("cpu")


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Small random rotations, scalings and shifts: the judge must not care where a digit sits."""
    b = len(x)
    angle = (torch.rand(b, generator=gen) - 0.5) * math.radians(20)
    scale = 1.0 + (torch.rand(b, generator=gen) - 0.5) * 0.2
    shift = (torch.rand(b, 2, generator=gen) - 0.5) * 0.2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


@torch.no_grad()
def _predict(fn: Any, x: torch.Tensor, bs: int = 1000) -> torch.Tensor:
    return torch.cat([fn(x[i : i + bs]) for i in range(0, len(x), bs)])


def train_judge(ds: Mnist, out: Path, epochs: int = 6, batch_size: int = 128, lr: float = 2e-3,
                seed: int = 0, device: torch.device = CPU, limit_train: int = 0) -> dict[str, Any]:
    """Train the CNN with augmentation and a one-cycle schedule; export TorchScript with its test accuracy."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xtr, ytr = to_tensor(ds.x_train, device), torch.from_numpy(ds.y_train).to(device)
    if limit_train:
        xtr, ytr = xtr[:limit_train], ytr[:limit_train]
    xte, yte = to_tensor(ds.x_test, device), torch.from_numpy(ds.y_test).to(device)
    model = JudgeCNN().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = max(1, len(xtr) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps)
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen).to(device)
        for i in range(steps):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            loss = F.cross_entropy(model(augment(xtr[idx], gen)), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        acc = (_predict(model, xte).argmax(1) == yte).float().mean().item()
        log.info("judge epoch %d/%d: loss %.4f, test accuracy %.4f, %.0f s", epoch, epochs, loss.item(), acc,
                 time.perf_counter() - t0)
    scripted = torch.jit.script(model.eval().cpu())
    meta = {"format": 1, "name": "mnist-cnn", "kind": "judge", "image_shape": [1, 28, 28], "num_classes": 10,
            "features": int(model.head.in_features), "test_accuracy": round(acc, 4),
            "test_errors": int(round((1 - acc) * len(xte))), "epochs": epochs, "batch_size": batch_size,
            "lr": lr, "seed": seed, "limit_train": limit_train, "train_seconds": round(time.perf_counter() - t0, 1),
            "train_device": device.type, "data_sha256": ds.sha256(), "code_commit": code_commit(),
            "weights_sha256": weights_sha256(scripted)}
    save(scripted, meta, out)
    return meta


def load_judge(path: Path, device: torch.device) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    ts, meta = load(path, device)
    if meta.get("kind") != "judge":
        raise ValueError(f"{path} is not a judge checkpoint (kind {meta.get('kind')!r})")
    if weights_sha256(ts) != meta.get("weights_sha256"):  # scores from altered weights would mean nothing
        raise ValueError(f"{path}: weights do not match the weights_sha256 in its meta")
    return ts, meta


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), in float64.

    The matrix square root of the product is taken through the symmetric form S_a^1/2 S_b S_a^1/2,
    whose eigenvalues are real and non-negative, so eigh suffices and no scipy is needed.
    """
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    tr_root = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_root)


def class_entropy_bits(pred: np.ndarray) -> float:
    p = np.bincount(pred, minlength=10) / len(pred)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) + 0.0  # never "-0.0"


@torch.no_grad()
def score_images(judge: torch.jit.ScriptModule, x: torch.Tensor, real_features: np.ndarray,
                 labels: torch.Tensor | None = None) -> dict[str, Any]:
    probs = _predict(judge, x).softmax(1)
    conf, pred = probs.max(1)
    feats = _predict(judge.features, x).cpu().numpy()
    out = {
        "confident": round(float((conf >= CONFIDENT).float().mean()), 4),
        "class_entropy_bits": round(class_entropy_bits(pred.cpu().numpy()), 4),
        "class_histogram": np.bincount(pred.cpu().numpy(), minlength=10).tolist(),
        "frechet": round(frechet_distance(feats, real_features), 3),
    }
    if labels is not None:
        out["cond_acc"] = round(float((pred == labels).float().mean()), 4)
    return out


@torch.no_grad()
def judge_generator(checkpoint: Path, judge_path: Path, ds: Mnist, n: int = 10000, seed: int = 0,
                    device: torch.device = CPU) -> dict[str, Any]:
    """Draw n samples from the prior of a generative checkpoint and score them with the judge."""
    ts, meta = load_model(checkpoint, device)
    if not meta.generative:
        raise ValueError(f"{checkpoint} is a {meta.kind}: it has no prior to sample from")
    judge, jmeta = load_judge(judge_path, device)
    xte = to_tensor(ds.x_test, device)
    real = _predict(judge.features, xte).cpu().numpy()
    # /sample's answer of n rows with this seed, labels balanced (checkpoint/sampling.py)
    parts = list(decoded(ts, meta.latent_dim, meta.num_classes, n, seed, 1.0, device=device))
    x = torch.cat([px for px, _ in parts])
    labels = torch.cat([lab for _, lab in parts]) if meta.conditional else None
    result = score_images(judge, x, real, labels)
    # The same scores for real digits (10k training images vs the test set): the floor to read against.
    xtr = to_tensor(ds.x_train[:n], device)
    ref = score_images(judge, xtr, real, torch.from_numpy(ds.y_train[:n]).to(device))
    result.update({"n": n, "seed": seed, "temperature": 1.0, "judge": judge_path.name,
                   "judge_weights_sha256": jmeta["weights_sha256"], "judge_test_accuracy": jmeta["test_accuracy"],
                   "real_train_reference": {k: ref[k] for k in ("confident", "class_entropy_bits", "frechet",
                                                                "cond_acc")}})
    return result
