"""How much better a VAE fits the digits it was trained on than new ones: the IWAE bound (-log p(x), nats) on a
random slice of the training digits and of the test digits, and the parts of the one-point bound at z = mu
(reconstruction -log p(x | mu), prior -log p(mu)) on the same slices. A large gap says the next nat is a
regulariser's to win, not a tighter bound's (docs/models.md).

With --tightness K1 K2 ..., instead: the bound on the same test digits at each k (same noise seed): how far the
evaluation's k = 1,000 still is from the model's likelihood, i.e. what a better encoder could win at most.

Usage: python scripts/likelihood_gap.py models/vae-flow-z20/3/model.ts [--n 2000] [--k 100] [--seed 1]
       python scripts/likelihood_gap.py models/vae-flow-z20/3/model.ts --n 500 --tightness 100 1000 5000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from checkpoint import load_model  # noqa: E402
from model.losses import bernoulli_nll  # noqa: E402
from training.data import load_mnist  # noqa: E402
from training.evaluate import iwae_nll, log_prior  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--n", type=int, default=2000, help="digits from each set")
    p.add_argument("--k", type=int, default=100, help="importance samples of the bound")
    p.add_argument("--seed", type=int, default=1, help="which digits, and the bound's noise")
    p.add_argument("--tightness", type=int, nargs="+", default=[], metavar="K",
                   help="only the bound on the test digits at each of these k")
    a = p.parse_args()
    ts, meta = load_model(a.checkpoint)
    if not meta.stochastic or meta.conditional:
        print(f"{a.checkpoint}: an unconditional VAE is needed (this is a {meta.kind})", file=sys.stderr)
        return 2
    ds = load_mnist()
    pick = torch.Generator().manual_seed(a.seed)
    torch.manual_seed(a.seed)
    if a.tightness:
        return tightness(ts, some_digits(ds.x_test, a.n, pick), a)
    rows = {}
    with torch.no_grad():
        for name, images in (("train", ds.x_train), ("test", ds.x_test)):
            x = some_digits(images, a.n, pick)
            mu, _ = ts.encode(x, None)
            rows[name] = (iwae_nll(ts, x, None, a.k), bernoulli_nll(ts.decode_logits(mu, None), x).mean().item(),
                          -log_prior(ts, mu).mean().item())
    print(f"| {a.checkpoint}, {a.n} digits each | IWAE-{a.k} | -log p(x given mu) | -log p(mu) |")
    print("|---|---:|---:|---:|")
    for name, (nll, rec, prior) in rows.items():
        print(f"| {name} | {nll:.2f} | {rec:.2f} | {prior:.2f} |")
    gap = [t - r for r, t in zip(rows["train"], rows["test"], strict=True)]
    print(f"| test - train | {gap[0]:+.2f} | {gap[1]:+.2f} | {gap[2]:+.2f} |")
    return 0


def some_digits(images: np.ndarray, n: int, pick: torch.Generator) -> torch.Tensor:
    """n digits drawn at random (uint8 (N, 28, 28)) as the models read them: float (n, 1, 28, 28) in [0, 1]."""
    idx = torch.randperm(len(images), generator=pick)[:n]
    return torch.from_numpy(images).float().div(255).reshape(-1, 1, 28, 28)[idx]


def tightness(ts: torch.jit.ScriptModule, x: torch.Tensor, a: argparse.Namespace) -> int:
    print(f"| {a.checkpoint}, {a.n} test digits | " + " | ".join(f"IWAE-{k}" for k in a.tightness) + " |")
    print("|---|" + "---:|" * len(a.tightness))
    bounds = []
    with torch.no_grad():
        for k in a.tightness:
            torch.manual_seed(a.seed)
            bounds.append(iwae_nll(ts, x, None, k))
    print("| -log p(x), nats | " + " | ".join(f"{b:.3f}" for b in bounds) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
