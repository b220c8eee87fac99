"""Objectives of the notes: reconstruction terms, the closed-form Gaussian KL, the sparsity penalty."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) = 1/2 (|mu|^2 - m + sum(sigma^2 - log sigma^2)); (B,)."""
    m = mu.shape[1]
    return 0.5 * (mu.pow(2).sum(1) - m + (logvar.exp() - logvar).sum(1))


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) in nats per image for a Bernoulli decoder on (possibly continuous) pixels; (B,)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def half_squared_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """1/2 |x_hat - x|^2 per image, the linear autoencoder's objective; (B,)."""
    return 0.5 * (x_hat - x).pow(2).flatten(1).sum(1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dim."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)


def log_diag_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dim."""
    return -0.5 * ((z - mu).pow(2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


LogitsFn = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def importance_terms(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, k: int, decode_logits: LogitsFn,
                     log_prior: LogitsFn, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves of the IWAE log-weights of k draws z_i ~ q(z|x) = N(mu, diag exp(logvar)), each (k, B):
    log p(x|z_i) and log p(z_i) - log q(z_i|x); their sum is log w_i, and -(logsumexp_i log w_i - log k) the bound
    (Burda et al. 2016). One place for the training objective (model/registry.py, eager, with gradients) and the
    evaluation's NLL (training/evaluate.py, a served file, in chunks of k)."""
    z = mu + torch.exp(0.5 * logvar) * torch.randn(k, *mu.shape, device=mu.device, dtype=mu.dtype)  # (k, B, m)
    flat = z.reshape(-1, mu.shape[1])
    rep = None if labels is None else labels.repeat(k)
    log_px = -bernoulli_nll(decode_logits(flat, rep), x.repeat(k, 1, 1, 1)).view(k, -1)
    log_pz = log_prior(flat, rep).view(k, -1)
    return log_px, log_pz - log_diag_normal(z, mu, logvar)
