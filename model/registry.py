"""Kinds by name: how to build each and what it optimises. The only place a kind is defined."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.autoencoders import VAE, DeepAE, LinearAE, reparameterize
from model.losses import bernoulli_nll, half_squared_error, kl_to_standard_normal

KINDS = ("linear-ae", "deep-ae", "sparse-ae", "denoising-ae", "vae", "cvae")


@dataclass
class ModelSpec:
    kind: str
    latent_dim: int = 20
    arch: str = "conv"  # conv (default) or mlp (the pytorch/examples body, for comparison)
    width: int = 64  # conv channels, or MLP hidden units
    sparsity_weight: float = 1e-2  # lambda in + lambda |f(x)|_1 (sparse-ae)
    noise: str = "gaussian"  # gaussian | masking (denoising-ae)
    noise_level: float = 0.3  # gaussian sigma, or masking drop probability


def build(spec: ModelSpec) -> nn.Module:
    """Construct an untrained model for a spec."""
    if spec.kind == "linear-ae":
        return LinearAE(spec.latent_dim)
    if spec.kind in ("deep-ae", "denoising-ae"):
        return DeepAE(spec.latent_dim, spec.arch, spec.width)
    if spec.kind == "sparse-ae":
        return DeepAE(spec.latent_dim, spec.arch, spec.width, nonneg_code=True)
    if spec.kind == "vae":
        return VAE(spec.latent_dim, spec.arch, spec.width)
    if spec.kind == "cvae":
        return VAE(spec.latent_dim, spec.arch, spec.width, num_classes=10)
    raise ValueError(f"unknown kind {spec.kind!r}; allowed: {', '.join(KINDS)}")


def corrupt(x: torch.Tensor, noise: str, level: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """x~ for the denoising AE: additive Gaussian noise (clipped to [0,1]) or random pixel masking."""
    if noise == "gaussian":
        eps = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        return (x + level * eps).clamp(0.0, 1.0)
    if noise == "masking":
        keep = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) >= level
        return x * keep
    raise ValueError(f"unknown noise {noise!r}; allowed: gaussian, masking")


def objective(
    model: nn.Module, spec: ModelSpec, x: torch.Tensor, labels: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean per-image loss for a batch x (B,1,28,28) and its parts (for logging)."""
    if spec.kind == "linear-ae":
        code, _ = model.encode(x)
        rec = half_squared_error(model.decode_raw(code), x)
        return rec.mean(), {"rec": rec.mean()}
    if spec.kind in ("vae", "cvae"):
        y = labels if spec.kind == "cvae" else None
        mu, logvar = model.encode(x, y)
        z = reparameterize(mu, logvar)
        rec = bernoulli_nll(model.decode_raw(z, y), x)
        kl = kl_to_standard_normal(mu, logvar)
        return (rec + kl).mean(), {"rec": rec.mean(), "kl": kl.mean()}  # the negative ELBO
    inp = corrupt(x, spec.noise, spec.noise_level) if spec.kind == "denoising-ae" else x
    code, _ = model.encode(inp)
    rec = bernoulli_nll(model.decode_raw(code), x)  # the target is always the clean x
    if spec.kind == "sparse-ae":
        l1 = code.abs().sum(1)
        return (rec + spec.sparsity_weight * l1).mean(), {"rec": rec.mean(), "l1": l1.mean()}
    return rec.mean(), {"rec": rec.mean()}
