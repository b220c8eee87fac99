"""The judge: a small CNN digit classifier used to score generated digits (never served as a VAE).

  forward(x (B,1,28,28) in [0,1]) -> logits (B,10)
  features(x) -> (B,128), the penultimate layer, for the Fréchet distance between samples and real digits
"""

from __future__ import annotations

import torch
from torch import nn

FEATURES = 128


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class JudgeCNN(nn.Module):
    """Two conv pairs with pooling, a 128-channel conv, global average pooling, a linear read-out.

    Global average pooling keeps the file small (~0.6 MB) and gives a 128-d feature per image that
    does not depend on where in the frame a stroke sits, which is what a distance between sets of
    digits should compare.
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _block(1, 32), _block(32, 32), nn.MaxPool2d(2),  # 14x14
            _block(32, 64), _block(64, 64), nn.MaxPool2d(2),  # 7x7
            _block(64, FEATURES), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURES, 10)

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(x)))
