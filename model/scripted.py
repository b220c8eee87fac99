"""The scripted interface every checkpoint exposes (checkpoint contract, format 1).

  encode(x (B,1,28,28) in [0,1], labels?) -> (mu (B,m), logvar (B,m))
  decode(z (B,m), labels?) -> (B,1,28,28) in [0,1], the mean of p(x|z)
  decode_logits(z, labels?) -> pre-activation outputs, for exact likelihoods in evaluation
"""

from __future__ import annotations

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


def script(model: nn.Module) -> torch.jit.ScriptModule:
    """Script a trained model (in eval mode, on CPU) behind the Servable interface."""
    return torch.jit.script(Servable(model.eval().cpu()))
