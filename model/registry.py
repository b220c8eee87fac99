"""The kinds of the lecture notes, each defined here and nowhere else: how to build it, what it optimises,
and the flags and figures that follow from it. Export, training, evaluation and the report ask a kind's
`Kind` (or the meta export derived from it); no other file branches on a kind's name.

Adding a kind: a row in KINDS (and, if its body is new, a class in model/autoencoders.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from model.autoencoders import VAE, DeepAE, LinearAE, reparameterize
from model.losses import (
    bernoulli_nll,
    half_squared_error,
    importance_terms,
    kl_to_standard_normal,
    log_diag_normal,
    log_standard_normal,
)


@dataclass
class ModelSpec:
    """The arguments that rebuild a model (stored in the checkpoint's config)."""

    kind: str
    latent_dim: int = 20
    arch: str = "conv"  # conv (default) or mlp (the pytorch/examples body, for comparison)
    width: int = 64  # conv channels, or MLP hidden units
    sparsity_weight: float = 1e-2  # lambda in + lambda |f(x)|_1 (sparse-ae)
    noise: str = "gaussian"  # gaussian | masking (denoising-ae)
    noise_level: float = 0.3  # gaussian sigma, or masking drop probability
    depth: int = 1  # MLP hidden layers per half (1: the pytorch/examples body)
    topk: int = 0  # sparse-ae: keep the k largest code entries, the rest exactly 0 (0 = off: L1 alone)
    prior: str = "normal"  # N(0, I); "flow": p(z) learned with the model (model/prior.py); "class-flow": p(z | y)
    prior_hidden: int = 128  # units per coupling net of the flow prior
    iwae_k: int = 1  # VAEs: 1 trains the ELBO; k > 1 the importance-weighted bound of k samples (Burda et al. 2016)
    dropout: float = 0.0  # VAEs with the mlp arch: dropout on each hidden layer in training (off when served)
    encoder_width: int = 0  # VAEs with the mlp arch: the encoder's hidden units (0: width, as the decoder's)


Loss = tuple[torch.Tensor, dict[str, torch.Tensor]]
Objective = Callable[[nn.Module, ModelSpec, torch.Tensor, "torch.Tensor | None"], Loss]


@dataclass(frozen=True)
class Kind:
    name: str
    build: Callable[[ModelSpec], nn.Module]
    objective: Objective  # mean per-image loss of a batch and its parts (for logging)
    stochastic: bool = False  # the encoder gives q(z|x) = N(mu, sigma^2); with the N(0, I) prior: generative
    num_classes: int = 0  # > 0: conditional, one class per row on both halves
    likelihood: str = "bernoulli"  # p(x|z) the decoder's output is the mean of: bernoulli | gaussian
    figures: tuple[str, ...] = ()  # extra figures evaluate reports: pca | sparsity | denoising
    uses_arch: bool = True  # arch/width shape the model (the linear AE has neither)

    def meta_flags(self) -> dict[str, object]:
        """The contract flags a checkpoint of this kind carries in its meta."""
        return {"stochastic": self.stochastic, "generative": self.stochastic, "num_classes": self.num_classes,
                "likelihood": self.likelihood, "figures": list(self.figures)}

    def labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The labels this kind's model takes: y for a conditional kind, None otherwise."""
        return y if self.num_classes else None


def corrupt(x: torch.Tensor, noise: str, level: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """x~ for the denoising AE: additive Gaussian noise (clipped to [0,1]) or random pixel masking."""
    if noise == "gaussian":
        eps = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        return (x + level * eps).clamp(0.0, 1.0)
    if noise == "masking":
        keep = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) >= level
        return x * keep
    raise ValueError(f"unknown noise {noise!r}; allowed: gaussian, masking")


def linear_objective(model: nn.Module, spec: ModelSpec, x: torch.Tensor, labels: torch.Tensor | None) -> Loss:
    """1/2 |W_g W_f x - x|^2: the linear AE of the notes, whose optimum spans the PCA subspace."""
    code, _ = model.encode(x)
    rec = half_squared_error(model.decode_raw(code), x)
    return rec.mean(), {"rec": rec.mean()}


def ae_objective(model: nn.Module, spec: ModelSpec, x: torch.Tensor, labels: torch.Tensor | None) -> Loss:
    """Bernoulli reconstruction of x from f(x)."""
    code, _ = model.encode(x)
    rec = bernoulli_nll(model.decode_raw(code), x)
    return rec.mean(), {"rec": rec.mean()}


def sparse_objective(model: nn.Module, spec: ModelSpec, x: torch.Tensor, labels: torch.Tensor | None) -> Loss:
    """Reconstruction + lambda |f(x)|_1."""
    code, _ = model.encode(x)
    rec = bernoulli_nll(model.decode_raw(code), x)
    l1 = code.abs().sum(1)
    return (rec + spec.sparsity_weight * l1).mean(), {"rec": rec.mean(), "l1": l1.mean()}


def denoising_objective(model: nn.Module, spec: ModelSpec, x: torch.Tensor, labels: torch.Tensor | None) -> Loss:
    """Reconstruct the clean x from a corrupted x~."""
    code, _ = model.encode(corrupt(x, spec.noise, spec.noise_level))
    rec = bernoulli_nll(model.decode_raw(code), x)  # the target is always the clean x
    return rec.mean(), {"rec": rec.mean()}


def elbo_objective(model: nn.Module, spec: ModelSpec, x: torch.Tensor, labels: torch.Tensor | None) -> Loss:
    """The negative ELBO (Kingma & Welling 2014): reconstruction under z = mu + sigma * eps, plus KL to the prior:
    closed form for N(0, I); for a learned prior, its one-sample estimate log q(z|x) - log p(z).
    With spec.iwae_k = k > 1, the importance-weighted bound instead (Burda et al. 2016):
    -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), tighter than the ELBO, so the decoder is trained on the
    likelihood the evaluation reports and the encoder is free to cover more of the posterior."""
    if spec.iwae_k > 1:
        return _iwae_objective(model, spec.iwae_k, x, labels)
    mu, logvar = model.encode(x, labels)
    z = reparameterize(mu, logvar)
    rec = bernoulli_nll(model.decode_raw(z, labels), x)
    flow = getattr(model, "prior_flow", None)
    kl = (kl_to_standard_normal(mu, logvar) if flow is None
          else log_diag_normal(z, mu, logvar) - flow.log_prob(z, labels))
    return (rec + kl).mean(), {"rec": rec.mean(), "kl": kl.mean()}


def _iwae_objective(model: nn.Module, k: int, x: torch.Tensor, labels: torch.Tensor | None) -> Loss:
    mu, logvar = model.encode(x, labels)  # (B, m): one encoder pass, k decoder passes
    flow = getattr(model, "prior_flow", None)
    log_pz = (lambda z, _: log_standard_normal(z)) if flow is None else flow.log_prob
    log_px, log_pz_q = importance_terms(x, mu, logvar, k, model.decode_raw, log_pz, labels)  # (k, B) each
    bound = -(torch.logsumexp(log_px + log_pz_q, 0) - math.log(k))  # (B,)
    return bound.mean(), {"rec": -log_px.mean(), "kl": -log_pz_q.mean()}


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("linear-ae", lambda s: LinearAE(s.latent_dim), linear_objective, likelihood="gaussian",
         figures=("pca",), uses_arch=False),
    Kind("deep-ae", lambda s: DeepAE(s.latent_dim, s.arch, s.width, depth=s.depth), ae_objective),
    Kind("sparse-ae", lambda s: DeepAE(s.latent_dim, s.arch, s.width, nonneg_code=True, depth=s.depth,
                                           topk=s.topk), sparse_objective,
         figures=("sparsity",)),
    Kind("denoising-ae", lambda s: DeepAE(s.latent_dim, s.arch, s.width, depth=s.depth), denoising_objective,
         figures=("denoising",)),
    Kind("vae", lambda s: VAE(s.latent_dim, s.arch, s.width, depth=s.depth, prior=s.prior,
                              prior_hidden=s.prior_hidden, dropout=s.dropout, encoder_width=s.encoder_width),
         elbo_objective, stochastic=True),
    Kind("cvae", lambda s: VAE(s.latent_dim, s.arch, s.width, num_classes=10, depth=s.depth, prior=s.prior,
                               prior_hidden=s.prior_hidden, dropout=s.dropout, encoder_width=s.encoder_width),
         elbo_objective, stochastic=True,
         num_classes=10),
)}


def kind(name: str) -> Kind:
    if name not in KINDS:
        raise ValueError(f"unknown kind {name!r}; allowed: {', '.join(KINDS)}")
    return KINDS[name]


def build(spec: ModelSpec) -> nn.Module:
    """Construct an untrained model for a spec."""
    return kind(spec.kind).build(spec)


def objective(model: nn.Module, spec: ModelSpec, x: torch.Tensor, labels: torch.Tensor | None = None) -> Loss:
    """Mean per-image loss for a batch x (B,1,28,28) and its parts (for logging)."""
    k = kind(spec.kind)
    return k.objective(model, spec, x, k.labels(labels))


def pixels(model: nn.Module, raw: torch.Tensor) -> torch.Tensor:
    """decode_raw's output as pixel means in [0,1]: sigmoid of logits, or clamped direct predictions."""
    return torch.sigmoid(raw) if model.output == "sigmoid" else raw.clamp(0, 1)
