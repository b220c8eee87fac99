"""Where a conditional model's CAS gap is: in where z comes from (the prior), or in what the decoder makes of it?

Trains the Classification Accuracy Score's CNN (training/cas.py, same recipe) on the decoder's images of the real
60,000 training digits' own codes: z ~ q(z | x, y) for each training digit, decode(z, y), sharpened and rounded to
uint8 as /sample does, labelled with the digit's real label; tests it on the real test set. A prior that matched the
codes of real digits perfectly would score this, so it bounds what any better prior could give the CAS; the rest of
the gap to real digits is the decoder's. Works for unconditional VAEs too (their decoder then reads no label).

Usage: python scripts/decoder_ceiling.py models/cvae-z20/3/model.ts [--sharpness 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from checkpoint import load_model  # noqa: E402
from checkpoint.sampling import sharpen, to_uint8  # noqa: E402
from training.cas import Recipe, accuracy, tensors, train_classifier  # noqa: E402
from training.data import load_mnist  # noqa: E402
from training.loop import to_tensor  # noqa: E402


@torch.no_grad()
def posterior_images(module: torch.jit.ScriptModule, conditional: bool, x: torch.Tensor, y: torch.Tensor,
                     sharpness: float, seed: int) -> torch.Tensor:
    """uint8 (N, 28, 28): decode(z ~ q(z | x, y), y) of each digit, sharpened as /sample's `sharpness`."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(x), 1000):
        lab = y[i:i + 1000] if conditional else None
        mu, logvar = module.encode(x[i:i + 1000], lab)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
        out.append(to_uint8(sharpen(module.decode(z, lab), sharpness)[:, 0]))
    return torch.cat(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--sharpness", type=float, default=1.0, help="/sample's sharpness (1: the means as decoded)")
    p.add_argument("--seed", type=int, default=0, help="seed of the codes' noise and of the classifier")
    a = p.parse_args()
    ts, meta = load_model(a.checkpoint)
    if not meta.stochastic:
        print(f"{a.checkpoint}: a VAE is needed (this is a {meta.kind})", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    ds = load_mnist()
    x, y = tensors(ds.x_train, ds.y_train)
    t0 = time.perf_counter()
    images = posterior_images(ts, meta.conditional, x, y, a.sharpness, a.seed)
    model = train_classifier(to_tensor(images.numpy(), torch.device("cpu")), y, Recipe(seed=a.seed))
    acc = accuracy(model, *tensors(ds.x_test, ds.y_test))
    print(json.dumps({"checkpoint": str(a.checkpoint), "sharpness": a.sharpness, "seed": a.seed,
                      "accuracy_on_decoded_training_codes": round(acc, 4),
                      "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
