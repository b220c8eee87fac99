"""The scripted interface every checkpoint exposes (checkpoint contract, format 1).

  encode(x (B,1,28,28) in [0,1], labels?) -> (mu (B,m), logvar (B,m))
  decode(z (B,m), labels?) -> (B,1,28,28) in [0,1], the mean of p(x|z)
  decode_logits(z, labels?) -> pre-activation outputs, for exact likelihoods in evaluation
and, only in checkpoints with a learned prior (absent: the prior is N(0, I)):
  prior(eps (B,m), labels?) -> z (B,m)      eps ~ N(0, I) mapped to a prior sample, row by row
  prior_log_prob(z (B,m), labels?) -> (B,)  log p(z) (log p(z | y) for a class-conditional prior), for the bounds
Files exported before priors took labels have prior(eps) and prior_log_prob(z): checkpoint.latents() and
checkpoint.prior_log_prob() call either form.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class Servable(nn.Module):
    """Wraps a trained model so torch.jit.script sees one fixed, self-contained API."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.sigmoid_output = model.output == "sigmoid"
        self.latent_dim = int(model.latent_dim)
        self.num_classes = int(model.num_classes)

    @torch.jit.export
    def encode(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(x, labels)

    @torch.jit.export
    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.decode_raw(z, labels)

    @torch.jit.export
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        out = self.model.decode_raw(z, labels)
        # Bernoulli means are sigmoid(logits); the linear AE predicts pixels directly, so clamp.
        return torch.sigmoid(out) if self.sigmoid_output else out.clamp(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction from the encoder mean (what /reconstruct serves)."""
        mu, _ = self.encode(x, None)
        return self.decode(mu, None)


class ServableWithPrior(Servable):
    """Servable plus a learned prior (model/prior.py's flow): /sample decodes prior(eps) instead of eps."""

    def __init__(self, model: nn.Module, prior: nn.Module) -> None:
        super().__init__(model)
        self.flow = prior

    @torch.jit.export
    def prior(self, eps: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.flow.sample(eps, labels)

    @torch.jit.export
    def prior_log_prob(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.flow.log_prob(z, labels)


def script(model: nn.Module, prior: nn.Module | None = None) -> torch.jit.ScriptModule:
    """Script a trained model (in eval mode, on CPU) behind the Servable interface, with its prior if learned:
    `prior`, fitted after training, or the flow the model learned with (its `prior_flow`)."""
    own = getattr(model, "prior_flow", None)
    if own is not None:  # exported once, as the Servable's flow: the copy drops the model's own reference
        model = copy.deepcopy(model)
        model.prior_flow = None
        prior = prior if prior is not None else own
    if prior is None:
        return torch.jit.script(Servable(model.eval().cpu()))
    return torch.jit.script(ServableWithPrior(model.eval().cpu(), prior.eval().cpu()))
