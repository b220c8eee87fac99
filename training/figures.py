"""The docs' figures, drawn with matplotlib from the shipped files and their recorded figures (never by hand):

  frontier.png          IWAE NLL against CPU decode images/s, one point per generative model, the Pareto front
  ladder.png            samples of the latent ladder (m = 2, 5, 10, 20) side by side, each titled with its figures
  samples-<name>.png    a conditional model's samples, one row per asked label
  cas-temperature.png   the Classification Accuracy Score against sampling temperature, beside the real reference

matplotlib is an optional extra (`pip install -e '.[figures]'`): training and docs use it, serving never does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from checkpoint import load_model
from checkpoint.sampling import decoded
from training.report import read


def _plt() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ValueError("figures need matplotlib, an optional extra: .venv/bin/pip install -e '.[figures]'") from exc
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


@torch.no_grad()
def samples(path: Path, n: int, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
    """(n, 28, 28) floats: what /sample answers for this seed and temperature (balanced labels if conditional)."""
    ts, meta = load_model(path)
    return np.concatenate([x[:, 0].numpy() for x, _ in decoded(ts, meta.latent_dim, meta.num_classes, n, seed,
                                                               temperature)])


def _tile(images: np.ndarray, cols: int) -> np.ndarray:
    rows = -(-len(images) // cols)
    grid = np.ones((rows * 29 + 1, cols * 29 + 1), np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[1 + r * 29:1 + r * 29 + 28, 1 + c * 29:1 + c * 29 + 28] = 1.0 - img  # dark digits on white
    return grid


def tiles(images: np.ndarray, cols: int, out: Path, title: str, dark_on_light: bool = True) -> None:
    """(N, 28, 28) images in [0, 1] as one titled grid."""
    plt = _plt()
    rows = -(-len(images) // cols)
    fig, ax = plt.subplots(figsize=(cols * 0.45 + 0.4, rows * 0.45 + 0.7), dpi=110, layout="constrained")
    grid = _tile(images, cols)
    ax.imshow(grid if dark_on_light else 1 - grid, cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    ax.set_title(title, fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


@torch.no_grad()
def denoising(path: Path, x_test: np.ndarray, out: Path, n: int = 12, sigma: float = 0.3, seed: int = 0) -> None:
    """Test digits, the same with Gaussian noise (sigma, clipped), and what the denoising autoencoder makes of them."""
    plt = _plt()
    ts, meta = load_model(path)
    x = torch.from_numpy(x_test[:n]).float().div(255).unsqueeze(1)
    noisy = (x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)
    mu, _ = ts.encode(noisy, None)
    rows = [("test digits", x), (f"+ noise (σ = {sigma:g})", noisy), ("denoised", ts.decode(mu, None))]
    fig, axes = plt.subplots(3, 1, figsize=(n * 0.5 + 1.6, 2.4), dpi=110, layout="constrained")
    for ax, (label, imgs) in zip(axes, rows, strict=True):
        ax.imshow(_tile(imgs[:, 0].numpy(), n), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{meta.name}: the same digits clean, noised, and denoised", fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def pareto(points: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """The points no other point beats on both speed (higher) and NLL (lower), fastest first."""
    front, best = [], float("inf")
    for p in sorted(points, key=lambda p: -p[1]):
        if p[2] < best:
            front.append(p)
            best = p[2]
    return front


def frontier(paths: list[Path], out: Path) -> int:
    plt = _plt()
    points = []
    for p in paths:
        meta, metrics = read(p)
        ev, cpu = metrics.get("evaluation") or {}, (metrics.get("cost") or {}).get("cpu")
        if "iwae_nll" in ev and cpu and not meta.conditional:  # a cvae's NLL is of x given y: another measure
            points.append((meta.name, float(cpu["b1024_t2"]), float(ev["iwae_nll"])))
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for name, x, y in points:
        ax.scatter(x, y, s=36, label=f"{name} ({y:.2f})", zorder=3)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    front = pareto(points)
    if len(front) > 1:
        ax.plot([p[1] for p in front], [p[2] for p in front], "--", color="grey", zorder=2, label="frontier")
    ax.set_xscale("log")
    ax.set_xlabel("decode images/s on this CPU (batch 1,024, 2 torch threads; log scale): cheaper to the right")
    ax.set_ylabel("IWAE NLL, nats (10k test set): lower is better")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")  # fast and good: the corner no model reaches
    ax.set_title("Quality against cost of the shipped unconditional VAEs")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return len(points)


def ladder(paths: list[Path], out: Path, n: int = 64, seed: int = 0) -> int:
    """Samples of each model side by side, smallest latent first, titled with m, NLL and the judge's figures."""
    plt = _plt()
    rungs = sorted(((read(p), p) for p in paths), key=lambda r: r[0][0].latent_dim)
    fig, axes = plt.subplots(1, len(rungs), figsize=(3.2 * len(rungs), 4.2), dpi=110, squeeze=False,
                             layout="constrained")
    for ax, ((meta, metrics), path) in zip(axes[0], rungs, strict=True):
        ax.imshow(_tile(samples(path, n, seed), 8), cmap="gray", vmin=0, vmax=1)
        ev, judge = metrics.get("evaluation") or {}, metrics.get("judge") or {}
        lines = [f"m = {meta.latent_dim}  ({meta.name})"]
        if "iwae_nll" in ev:
            lines.append(f"NLL {ev['iwae_nll']:.1f} nats")
        if judge:
            lines.append(f"{judge['confident']:.0%} confident, Fréchet {judge['frechet']:.2f}")
        ax.set_title("\n".join(lines), fontsize=9)
        ax.axis("off")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return len(rungs)


def conditional_samples(path: Path, out: Path, per_label: int = 12, seed: int = 0,
                        temperature: float = 1.0) -> None:
    """One row per asked label (0..9), per_label samples each, as /sample draws them with labels="balanced"."""
    plt = _plt()
    meta, _ = read(path)
    x = samples(path, per_label * meta.num_classes, seed, temperature)
    rows = x.reshape(per_label, meta.num_classes, 28, 28).transpose(1, 0, 2, 3).reshape(-1, 28, 28)
    fig, ax = plt.subplots(figsize=(per_label * 0.5 + 0.6, meta.num_classes * 0.5 + 0.5), dpi=110)
    ax.imshow(_tile(rows, per_label), cmap="gray", vmin=0, vmax=1)
    ax.set_yticks([14.5 + 29 * k for k in range(meta.num_classes)], [str(k) for k in range(meta.num_classes)])
    ax.set_xticks([])
    ax.set_ylabel("asked label")
    ax.set_title(f"{meta.name}: samples at temperature {temperature:g}, seed {seed}", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def cas_temperature(paths: list[Path], out: Path) -> int:
    """CAS against temperature for every checkpoint with a recorded sweep (a line per sharpness), the real-data
    reference as a line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=110)
    drawn, ref = 0, None
    for p in paths:
        meta, metrics = read(p)
        cas = metrics.get("cas")
        if not cas:
            continue
        for sharp in sorted({r.get("sharpness", 1.0) for r in cas["sweep"]}):  # a line per sharpness
            sweep = sorted((r for r in cas["sweep"] if r.get("sharpness", 1.0) == sharp),
                           key=lambda r: r["temperature"])
            ax.plot([r["temperature"] for r in sweep], [100 * r["accuracy"] for r in sweep], "o-",
                    label=meta.name + (f", sharpness {sharp:g}" if sharp != 1.0 else ""))
        ref = cas["reference_accuracy"]
        drawn += 1
    if ref is not None:
        ax.axhline(100 * ref, color="grey", linestyle="--", label=f"real training digits ({ref:.2%})")
    if drawn == 0:
        ax.text(0.5, 0.5, "no checkpoint with a recorded CAS sweep", ha="center", transform=ax.transAxes)
    ax.set_xlabel("sampling temperature (noise scale): lower is cleaner, higher more varied")
    ax.set_ylabel("test accuracy of a CNN trained on samples, %")
    ax.set_title("Classification Accuracy Score (real MNIST test set)", fontsize=10)
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return drawn
