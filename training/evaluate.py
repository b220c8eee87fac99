"""Measure a checkpoint on the official 10k test set through its scripted interface alone.

Everything here calls only what the service calls (encode, decode, decode_logits), so the numbers
describe the shipped file, not the Python class it came from.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

import checkpoint
from checkpoint import has_prior, prior_log_prob
from model.losses import bernoulli_nll, importance_terms, kl_to_standard_normal, log_diag_normal, log_standard_normal
from model.registry import KINDS, corrupt
from training.data import Mnist


def load(path: Path, device: torch.device) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Any checkpoint (the judge's too): the scripted module on `device` and its meta as written."""
    return checkpoint.load(path, device, verify=False)


def load_model(path: Path, device: torch.device) -> tuple[torch.jit.ScriptModule, checkpoint.Meta]:
    """A model checkpoint: the scripted module on `device` and its typed meta (the contract's fields checked)."""
    return checkpoint.load_model(path, device, verify=False)


def _batches(n: int, bs: int) -> list[slice]:
    return [slice(i, min(i + bs, n)) for i in range(0, n, bs)]


@torch.no_grad()
def reconstruction_mse(ts: torch.jit.ScriptModule, x: torch.Tensor, y: torch.Tensor | None, bs: int = 1000) -> float:
    """Mean squared error per pixel of decode(mu(x)) against x."""
    total = 0.0
    for s in _batches(len(x), bs):
        lab = None if y is None else y[s]
        mu, _ = ts.encode(x[s], lab)
        total += (ts.decode(mu, lab) - x[s]).pow(2).sum().item()
    return total / x.numel()


def log_prior(ts: torch.jit.ScriptModule, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """log p(z) of the model as served: its learned prior when it carries one (p(z | y) for a class-conditional
    one), else N(0, I); (B,)."""
    return prior_log_prob(ts, z, labels) if has_prior(ts) else log_standard_normal(z)


@torch.no_grad()
def neg_elbo(ts: torch.jit.ScriptModule, x: torch.Tensor, y: torch.Tensor | None, bs: int = 1000) -> float:
    """-ELBO in nats per image, one reparameterised sample per image (seeded by the caller).

    KL(q || N(0, I)) in closed form; with a learned prior, the one-sample estimate log q(z|x) - log p(z)."""
    total = 0.0
    for s in _batches(len(x), bs):
        lab = None if y is None else y[s]
        mu, logvar = ts.encode(x[s], lab)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        if has_prior(ts):
            kl = log_diag_normal(z, mu, logvar) - prior_log_prob(ts, z, lab)
        else:
            kl = kl_to_standard_normal(mu, logvar)
        total += (bernoulli_nll(ts.decode_logits(z, lab), x[s]) + kl).sum().item()
    return total / len(x)


@torch.no_grad()
def iwae_nll(ts: torch.jit.ScriptModule, x: torch.Tensor, y: torch.Tensor | None, k: int,
             bs: int = 50, chunk: int = 500) -> float:
    """-log p(x) estimated by the IWAE bound: -log (1/k) sum_i p(x, z_i) / q(z_i | x), nats per image."""
    total = 0.0
    for s in _batches(len(x), bs):
        xb = x[s]
        lab = None if y is None else y[s]
        mu, logvar = ts.encode(xb, lab)  # (B, m)
        logw = []
        for c in range(0, k, chunk):
            log_px, log_pz_q = importance_terms(xb, mu, logvar, min(chunk, k - c), ts.decode_logits,
                                                lambda z, yz: log_prior(ts, z, yz), lab)
            logw.append(log_px + log_pz_q)  # (kc, B)
        w = torch.cat(logw)  # (k, B)
        total += -(torch.logsumexp(w.double(), 0) - math.log(k)).sum().item()
    return total / len(x)


def pca_mse(x_train: torch.Tensor, x_test: torch.Tensor, m: int) -> float:
    """Test MSE per pixel of the rank-m PCA reconstruction fitted on the training set (clamped to [0,1])."""
    xt = x_train.flatten(1).double()
    mean = xt.mean(0)
    cov = (xt - mean).T @ (xt - mean) / len(xt)
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    top = vecs[:, -m:]  # (784, m)
    xe = x_test.flatten(1).double() - mean
    rec = (xe @ top @ top.T + mean).clamp(0, 1)
    return (rec - x_test.flatten(1).double()).pow(2).mean().item()


def meta_figures(meta: checkpoint.Meta) -> tuple[str, ...]:
    """The extra figures a checkpoint asks for: its meta's list, or (older files) its kind's spec."""
    if "figures" in meta.raw:
        return tuple(meta.raw["figures"])
    return KINDS[meta.kind].figures if meta.kind in KINDS else ()


def evaluate(path: Path, ds: Mnist, device: torch.device, iwae_k: int = 1000, binarize_seed: int | None = None,
             limit: int = 0, seed: int = 0) -> dict[str, Any]:
    """All metrics that apply to the checkpoint's kind, on the test set (first `limit` images if > 0)."""
    ts, meta = load_model(path, device)
    torch.manual_seed(seed)
    x = torch.from_numpy(ds.x_test).to(device).float().div(255).unsqueeze(1)
    y = torch.from_numpy(ds.y_test).to(device)
    if limit:
        x, y = x[:limit], y[:limit]
    protocol = "continuous pixels uint8/255"
    if binarize_seed is not None:
        x = torch.bernoulli(x, generator=torch.Generator(device).manual_seed(binarize_seed))
        protocol = f"binarised once, seed {binarize_seed}"
    figures = meta_figures(meta)
    lab = y if meta.conditional else None
    out: dict[str, Any] = {"test_images": len(x), "protocol": protocol, "mse": reconstruction_mse(ts, x, lab)}
    if meta.stochastic:
        out["neg_elbo"] = neg_elbo(ts, x, lab)
        if iwae_k > 0:
            out["iwae_nll"] = iwae_nll(ts, x, lab, iwae_k)
            out["iwae_k"] = iwae_k
    if "pca" in figures:
        xtr = torch.from_numpy(ds.x_train).to(device).float().div(255).unsqueeze(1)
        out["pca_mse"] = pca_mse(xtr, x, meta.latent_dim)
        out["mse_over_pca"] = out["mse"] / out["pca_mse"]
    if "sparsity" in figures:
        codes = torch.cat([ts.encode(x[s], None)[0] for s in _batches(len(x), 1000)])
        out["code_zero_fraction"] = (codes == 0).float().mean().item()
        out["code_active_per_image"] = (codes != 0).float().sum(1).mean().item()
    if "denoising" in figures:
        cfg = meta.config["spec"]
        gen = torch.Generator(device).manual_seed(seed)
        noisy = corrupt(x, cfg["noise"], cfg["noise_level"], gen)
        with torch.no_grad():
            den = torch.cat([ts.decode(ts.encode(noisy[s], None)[0], None) for s in _batches(len(x), 1000)])
        out["noise"] = f"{cfg['noise']} {cfg['noise_level']}"
        out["noisy_mse"] = (noisy - x).pow(2).mean().item()
        out["denoised_mse"] = (den - x).pow(2).mean().item()
        out["denoised_over_noisy"] = out["denoised_mse"] / out["noisy_mse"]
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}
