"""Image grids as PNG (pillow): sample and reconstruction grids for every run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def grid(images: torch.Tensor, rows: int, pad: int = 2) -> np.ndarray:
    """(N, 1, 28, 28) in [0,1] -> one uint8 (H, W) mosaic with `rows` rows."""
    imgs = images.detach().float().clamp(0, 1).cpu().numpy()[:, 0]
    n = len(imgs)
    cols = -(-n // rows)
    h, w = imgs.shape[1:]
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad), dtype=np.float32)
    for i, img in enumerate(imgs):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
    return (out * 255).round().astype(np.uint8)


def save_grid(images: torch.Tensor, rows: int, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid(images, rows), mode="L").save(path)
