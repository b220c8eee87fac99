"""The engine's operations: what one forward computes, and what it takes and gives.

A StrEnum, so an operation is also its own metric label ("decode_u8") and its own key in the runtime's tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch


class Op(StrEnum):
    ENCODE = "encode"  # images (B, 1, 28, 28) -> (B, 2m): mu and logvar side by side, so rows split cleanly
    DECODE = "decode"  # latents (B, m) -> images (B, 28, 28) float32 in [0, 1]
    DECODE_U8 = "decode_u8"  # ... as uint8 0..255, made on the device (4x less to copy off a GPU)
    RECONSTRUCT = "reconstruct"  # images -> decode(mu(images)) (B, 28, 28)
    PRIOR = "prior"  # N(0, I) noise (B, m) -> a learned prior's latents (B, m)
    NOISE = "noise"  # the inverse: latents (B, m) -> the prior's base noise (B, m) (restyling)
    SAMPLE = "sample"  # noise -> decode(prior(noise)) in one forward, for answers that carry images only
    SAMPLE_U8 = "sample_u8"

    @property
    def out_dtype(self) -> torch.dtype:
        return torch.uint8 if self in (Op.DECODE_U8, Op.SAMPLE_U8) else torch.float32

    def out_row_bytes(self, latent_dim: int) -> int:
        """Bytes of one row's output: what a queued request's answer will hold."""
        if self in (Op.ENCODE,):
            return 2 * latent_dim * 4
        if self in (Op.PRIOR, Op.NOISE):
            return latent_dim * 4
        return 28 * 28 * (1 if self.out_dtype == torch.uint8 else 4)

    def float32(self) -> Op:
        """The float32 twin: what a uint8 op costs until its own chunks say otherwise."""
        return {Op.DECODE_U8: Op.DECODE, Op.SAMPLE_U8: Op.SAMPLE}.get(self, self)


@dataclass(frozen=True, slots=True)
class Rows:
    """An operation's typed input: x (B, ...) float32, checked by service.engine.rules, and one class per row for
    a conditional model (int64 (B,)), None for an unconditional one."""

    x: torch.Tensor
    labels: torch.Tensor | None = None
