"""Encoder and decoder bodies shared by every kind: a small convolutional pair and an MLP pair.

Both map images (B, 1, 28, 28) to a flat feature vector and a flat vector back to per-pixel
outputs (B, 1, 28, 28). The heads that turn features into a code (or mu/logvar) live in the models,
so the AE, the sparse AE, the denoising AE and the VAE share these bodies unchanged.
"""

from __future__ import annotations

import torch
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


def _relu_stack(sizes: list[int]) -> list[nn.Module]:
    """Linear + ReLU for each consecutive pair of sizes."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return layers


class MLPEncoder(nn.Module):
    """(B, 1, 28, 28) -> (B, hidden): depth ReLU layers of `hidden` units. Depth 1 is the pytorch/examples body;
    on a CPU a matrix product per layer costs a few MFLOP, against ~126 for the conv-96 decoder."""

    def __init__(self, hidden: int = 400, extra_inputs: int = 0, depth: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), *_relu_stack([PIXELS + extra_inputs] + [hidden] * depth))
        self.out_features = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPDecoder(nn.Module):
    """(B, in_features) -> (B, 1, 28, 28) logits."""

    def __init__(self, in_features: int, hidden: int = 400, depth: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(*_relu_stack([in_features] + [hidden] * depth), nn.Linear(hidden, PIXELS))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h).view(-1, 1, 28, 28)


def make_body(arch: str, in_decoder: int, width: int, extra_inputs: int = 0,
              depth: int = 1) -> tuple[nn.Module, nn.Module, int]:
    """Return (encoder body, decoder, encoder feature size) for arch 'conv' or 'mlp' (depth: MLP hidden layers).

    extra_inputs: the encoder takes that many more values per image (conv: as constant input planes;
    MLP: appended to the flat pixels).
    """
    if arch == "conv":
        enc = ConvEncoder(width, extra_inputs)
        return enc, ConvDecoder(in_decoder, width), enc.out_features
    if arch == "mlp":
        mlp = MLPEncoder(width, extra_inputs, depth)
        return mlp, MLPDecoder(in_decoder, width, depth), mlp.out_features
    raise ValueError(f"unknown arch {arch!r}; allowed: conv, mlp")
