"""What each code unit of an autoencoder draws alone: decode(a_i e_i) - decode(0), a_i its typical active value.

For a sparse autoencoder each test image is drawn by a few units; this picture shows the parts they add
up from (strokes, loops, digit halves). Units are ordered by how often they are active on the test set;
units never active are left out (they draw nothing any image uses).
"""

from __future__ import annotations

from pathlib import Path

import torch

import checkpoint
from training.data import Mnist


@torch.no_grad()
def unit_features(path: Path, ds: Mnist, out: Path, columns: int = 16) -> dict[str, float]:
    """Write the features grid to `out`; return how many units are ever active and the usage of the busiest."""
    ts, meta = checkpoint.load_model(path, torch.device("cpu"), verify=False)
    x = torch.from_numpy(ds.x_test).float().div(255).unsqueeze(1)
    codes = torch.cat([ts.encode(x[i:i + 1000], None)[0] for i in range(0, len(x), 1000)])  # (N, m)
    active = codes != 0
    usage = active.float().mean(0)  # fraction of test images using each unit
    typical = (codes * active).sum(0) / active.sum(0).clamp(min=1)  # mean value when active
    order = [int(i) for i in torch.argsort(usage, descending=True) if usage[i] > 0]
    probes = torch.zeros(len(order), meta.latent_dim)
    for row, unit in enumerate(order):
        probes[row, unit] = typical[unit]
    # What the unit adds to the empty code's picture (decode(0) is the decoder's faint average digit, the same
    # in every tile): its positive part, each tile stretched to its own maximum.
    images = (ts.decode(probes, None) - ts.decode(torch.zeros_like(probes[:1]), None)).clamp(min=0)
    images = images / images.amax((1, 2, 3), keepdim=True).clamp(min=1e-6)
    from training.figures import tiles

    title = (f"{meta.name}: what each of the {len(order)} units ever active draws alone "
             f"(busiest first; the busiest is active in {usage.max().item():.0%} of test digits)")
    tiles(images[:, 0].numpy(), columns, out, title)
    return {"units_used": len(order), "busiest_unit_usage": round(usage.max().item(), 4)}
