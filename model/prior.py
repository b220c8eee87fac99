"""A learned prior over z: a small RealNVP flow (Dinh et al. 2017) fitted to the aggregate posterior.

A VAE trained against N(0, I) leaves holes: regions the prior covers and no q(z|x) does, whose decodes are
not digits. Fitting p(z) = flow_*(N(0, I)) to the codes of the training set (z ~ q(z|x)) closes them, and can
only raise the ELBO (for a fixed encoder and decoder the prior's best choice is the aggregate posterior).

  sample(eps, labels?) -> z      eps ~ N(0, I): a deterministic map of the noise, so seeds and temperature
                                (eps * t) work as before, row by row.
  log_prob(z, labels?) -> (B,)  exact log p(z): the inverse pass and its log-determinant (for the ELBO and IWAE).

With num_classes > 0 the flow is p(z | y), for a conditional model: each coupling's net also reads the one-hot
label, and the final affine map has a centre and spread per class, so each class samples the styles its own
digits are encoded with (an unconditional p(z) draws every class from the styles of all of them).

The K coupling layers keep their weights stacked in (K, ...) tensors, so TorchScript loops over them by
index in either direction (it cannot reverse a ModuleList).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class FlowPrior(nn.Module):
    def __init__(self, dim: int, layers: int = 8, hidden: int = 128, num_classes: int = 0) -> None:
        # hidden: units of each coupling's net; small latents need fewer (the ladder's z2 to z10 use 64)
        super().__init__()
        self.dim = dim
        self.cond = dim // 2  # coordinates a coupling reads; the other dim - cond it moves
        moved = dim - self.cond
        self.layers = layers
        self.num_classes = num_classes

        def stack(*shape: int, scale: float) -> nn.Parameter:
            return nn.Parameter(torch.randn(layers, *shape) * scale)

        reads = self.cond + num_classes  # a conditional coupling also reads the one-hot label
        self.w1 = stack(reads, hidden, scale=1 / math.sqrt(max(reads, 1)))
        self.b1 = nn.Parameter(torch.zeros(layers, hidden))
        self.w2 = stack(hidden, hidden, scale=1 / math.sqrt(hidden))
        self.b2 = nn.Parameter(torch.zeros(layers, hidden))
        # Zero output weights: every coupling starts as the identity, so the flow starts as N(0, I).
        self.w3 = nn.Parameter(torch.zeros(layers, hidden, 2 * moved))
        self.b3 = nn.Parameter(torch.zeros(layers, 2 * moved))
        # A final per-coordinate affine map: matches the codes' centre and spread in the first steps.
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        # ... and, conditional, per class on top of it (empty otherwise)
        self.class_loc = nn.Parameter(torch.zeros(num_classes, dim))
        self.class_log_scale = nn.Parameter(torch.zeros(num_classes, dim))

    def _onehot(self, labels: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
        if self.num_classes == 0:
            return None  # an unconditional prior ignores labels
        if labels is None:
            raise ValueError("this prior is p(z | y): labels are required")
        return F.one_hot(labels.long(), self.num_classes).to(like.dtype)

    def _affine(self, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The final map's centre and log-spread, (1, dim) or per row (B, dim)."""
        if y is None:
            return self.loc.unsqueeze(0), self.log_scale.unsqueeze(0)
        return self.loc + y @ self.class_loc, self.log_scale + y @ self.class_log_scale

    def _shift_scale(self, k: int, a: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if y is not None:
            a = torch.cat([a, y], dim=1)
        h = F.gelu(a @ self.w1[k] + self.b1[k])
        h = F.gelu(h @ self.w2[k] + self.b2[k])
        s, t = (h @ self.w3[k] + self.b3[k]).chunk(2, dim=1)
        return 2.0 * torch.tanh(s / 2.0), t  # log-scales bounded to (-2, 2): no blow-up early in the fit

    def sample(self, eps: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z = f(eps): the prior sample for base noise eps (B, dim) (of class labels (B,) when conditional)."""
        y = self._onehot(labels, eps)
        x = eps
        for k in range(self.layers):
            a, b = x[:, : self.cond], x[:, self.cond:]
            s, t = self._shift_scale(k, a, y)
            x = torch.cat([a, b * torch.exp(s) + t], dim=1).flip(1)  # flip: the next layer moves the others
        loc, log_scale = self._affine(y)
        return x * torch.exp(log_scale) + loc

    def log_prob(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """log p(z) = log N(f^-1(z); 0, I) + log |det d f^-1 / dz|; (B,)."""
        y = self._onehot(labels, z)
        loc, log_scale = self._affine(y)
        x = (z - loc) * torch.exp(-log_scale)
        logdet = -log_scale.sum(1).expand(z.shape[0])
        for i in range(self.layers):
            k = self.layers - 1 - i
            x = x.flip(1)
            a, b = x[:, : self.cond], x[:, self.cond:]
            s, t = self._shift_scale(k, a, y)
            x = torch.cat([a, (b - t) * torch.exp(-s)], dim=1)
            logdet = logdet - s.sum(1)
        return -0.5 * (x.pow(2) + math.log(2 * math.pi)).sum(1) + logdet
