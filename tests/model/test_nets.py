"""The MLP bodies' dropout: active while training, gone when served, invisible to the tensor names."""

from __future__ import annotations

import torch

from model import ModelSpec
from model.registry import KINDS


def _vae(dropout: float) -> torch.nn.Module:
    torch.manual_seed(0)
    return KINDS["vae"].build(ModelSpec("vae", 4, "mlp", 32, depth=2, dropout=dropout))


def test_dropout_drops_in_training_only_and_keeps_the_names() -> None:
    plain, dropped = _vae(0.0), _vae(0.5)
    assert plain.state_dict().keys() == dropped.state_dict().keys()
    dropped.load_state_dict(plain.state_dict())
    z = torch.randn(8, 4)
    dropped.train()
    assert not torch.equal(dropped.decode_raw(z), dropped.decode_raw(z))  # a fresh mask each call
    dropped.eval()
    plain.eval()
    assert torch.equal(dropped.decode_raw(z), plain.decode_raw(z))  # served: the plain network exactly
