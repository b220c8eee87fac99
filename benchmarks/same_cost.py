"""Two checkpoints' sampling rate (prior, then decode) interleaved on one pinned core and one torch thread, so
that the machine's drift falls on both alike; prints each one's median and their ratio. For "a new version at the
old one's cost": `python -m training cost` measures one file at a time, ~1 s a figure, and moved ±15 % between
files of the same network in one run.
Usage: python benchmarks/same_cost.py OLD.ts NEW.ts [--rows 1024] [--rounds 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def rate(module: torch.jit.ScriptModule, z: torch.Tensor, repeats: int) -> float:
    draw = (lambda e: module.decode(module.prior(e), None)) if hasattr(module, "prior") else (
        lambda e: module.decode(e, None))
    t = time.perf_counter()
    for _ in range(repeats):
        draw(z)
    return repeats * len(z) / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    torch.set_num_threads(1)
    files = {name: torch.jit.load(path).eval() for name, path in (("old", a.old), ("new", a.new))}
    m = int(files["old"].latent_dim)
    z = torch.randn(a.rows, m, generator=torch.Generator().manual_seed(0))
    rates: dict[str, list[float]] = {name: [] for name in files}
    with torch.inference_mode():
        for module in files.values():
            rate(module, z, 5)  # warm-up
        for _ in range(a.rounds):
            for name, module in files.items():
                rates[name].append(rate(module, z, a.repeats))
    for name, path in (("old", a.old), ("new", a.new)):
        print(f"{name} {path}: median {statistics.median(rates[name]):,.0f} images/s "
              f"({', '.join(f'{r:,.0f}' for r in rates[name])})")
    print(f"new / old: **{statistics.median(rates['new']) / statistics.median(rates['old']):.2f}x**")


if __name__ == "__main__":
    main()
