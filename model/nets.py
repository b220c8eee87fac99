"""Encoder and decoder bodies shared by every kind: a small convolutional pair and an MLP pair.

Both map images (B, 1, 28, 28) to a flat feature vector and a flat vector back to per-pixel
outputs (B, 1, 28, 28). The heads that turn features into a code (or mu/logvar) live in the models,
so the AE, the sparse AE, the denoising AE and the VAE share these bodies unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
PIXELS = 784


class ResBlock(nn.Module):
    """3x3 conv residual block: capacity at low resolution for few parameters."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x))))


class ConvEncoder(nn.Module):
    """(B, 1, 28, 28) -> (B, ch*7*7); two stride-2 convs with residual blocks between."""

    def __init__(self, ch: int = 64, extra_channels: int = 0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1 + extra_channels, ch // 2, 4, stride=2, padding=1),  # (B, ch/2, 14, 14)
            nn.GELU(),
            nn.Conv2d(ch // 2, ch, 3, padding=1),
            ResBlock(ch),
            nn.Conv2d(ch, ch, 4, stride=2, padding=1),  # (B, ch, 7, 7)
            ResBlock(ch),
            nn.GELU(),
            nn.Flatten(),
        )
        self.out_features = ch * 7 * 7

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """(B, in_features) -> (B, 1, 28, 28) pre-activation outputs (logits for Bernoulli)."""

    def __init__(self, in_features: int, ch: int = 64) -> None:
        super().__init__()
        self.ch = ch
        self.fc = nn.Linear(in_features, ch * 7 * 7)
        self.net = nn.Sequential(
            ResBlock(ch),
            nn.GELU(),
            nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1),  # (B, ch, 14, 14)
            ResBlock(ch),
            nn.GELU(),
            nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1),  # (B, ch/2, 28, 28)
            nn.GELU(),
            nn.Conv2d(ch // 2, 1, 3, padding=1),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(h).view(-1, self.ch, 7, 7))


class ReLUDropout(nn.Module):
    """ReLU, then dropout while training: one module in the ReLU's place, so a network trained with dropout has
    the same tensor names as one without (fine-tuning either from the other works) and serves as a plain ReLU."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return F.dropout(x, self.p, True) if self.training else x


def _relu_stack(sizes: list[int], dropout: float = 0.0) -> list[nn.Module]:
    """Linear + ReLU for each consecutive pair of sizes (with dropout > 0, dropped out in training)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), ReLUDropout(dropout) if dropout > 0 else nn.ReLU()]
    return layers


class MLPEncoder(nn.Module):
    """(B, 1, 28, 28) -> (B, hidden): depth ReLU layers of `hidden` units. Depth 1 is the pytorch/examples body;
    on a CPU a matrix product per layer costs a few MFLOP, against ~126 for the conv-96 decoder."""

    def __init__(self, hidden: int = 400, extra_inputs: int = 0, depth: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), *_relu_stack([PIXELS + extra_inputs] + [hidden] * depth, dropout))
        self.out_features = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPDecoder(nn.Module):
    """(B, in_features) -> (B, 1, 28, 28) logits."""

    def __init__(self, in_features: int, hidden: int = 400, depth: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(*_relu_stack([in_features] + [hidden] * depth, dropout), nn.Linear(hidden, PIXELS))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h).view(-1, 1, 28, 28)


def make_body(arch: str, in_decoder: int, width: int, extra_inputs: int = 0,
              depth: int = 1, dropout: float = 0.0, encoder_width: int = 0) -> tuple[nn.Module, nn.Module, int]:
    """Return (encoder body, decoder, encoder feature size) for arch 'conv' or 'mlp' (depth: MLP hidden layers;
    dropout: MLP only, each hidden layer's dropout in training; encoder_width: MLP only, the encoder's hidden
    units when not `width`).

    extra_inputs: the encoder takes that many more values per image (conv: as constant input planes;
    MLP: appended to the flat pixels).
    """
    if arch == "conv":
        if dropout > 0 or encoder_width:
            raise ValueError("dropout and encoder_width are for the mlp arch only")
        enc = ConvEncoder(width, extra_inputs)
        return enc, ConvDecoder(in_decoder, width), enc.out_features
    if arch == "mlp":
        mlp = MLPEncoder(encoder_width or width, extra_inputs, depth, dropout)
        return mlp, MLPDecoder(in_decoder, width, depth, dropout), mlp.out_features
    raise ValueError(f"unknown arch {arch!r}; allowed: conv, mlp")
