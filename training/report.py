"""The README's model tables, made from each checkpoint's meta (what it is) and metrics.json (what it scored)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from checkpoint import read_meta, read_metrics
from model.registry import KINDS

BASELINES = {"vae-mlp-z20": "pytorch/examples architecture (baseline)"}  # reference rows, by model name


def read(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    meta = read_meta(path)
    return meta, read_metrics(path, meta)


def _note(meta: dict[str, Any]) -> str:
    if meta["name"] in BASELINES:
        return BASELINES[meta["name"]]
    if meta.get("num_classes"):
        return "conditional: NLL of x given its label"
    return ""


def _arch(meta: dict[str, Any]) -> str:
    spec = meta["config"]["spec"]
    k = KINDS.get(meta["kind"])
    return f"{spec['arch']}-{spec['width']}" if k is None or k.uses_arch else "linear"


def table(paths: list[Path]) -> str:
    rows = ["| model | kind | m | arch | epochs | test MSE | -ELBO | IWAE NLL (k) | other | train time |",
            "|---|---|---:|---|---:|---:|---:|---:|---|---|"]
    for p in paths:
        meta, metrics = read(p)
        ev = metrics.get("evaluation") or metrics.get("evaluation_binarised") or {}
        other = []
        if "mse_over_pca" in ev:
            other.append(f"MSE / PCA(m) = {ev['mse_over_pca']:.4f} (PCA {ev['pca_mse']:.5f})")
        if "code_zero_fraction" in ev:
            other.append(f"zeros in code {ev['code_zero_fraction']:.1%}, active {ev['code_active_per_image']:.1f}")
        if "denoised_over_noisy" in ev:
            other.append(f"{ev['noise']}: noisy {ev['noisy_mse']:.4f} -> {ev['denoised_mse']:.4f} "
                         f"({ev['denoised_over_noisy']:.2f}x)")
        if "binarised" in ev.get("protocol", ""):
            other.append(ev["protocol"])
        note = _note(meta)
        if note:
            other.append(note)
        nll = f"{ev['iwae_nll']:.2f} ({ev['iwae_k']})" if "iwae_nll" in ev else ""
        elbo = f"{ev['neg_elbo']:.2f}" if "neg_elbo" in ev else ""
        m = metrics
        rows.append(f"| {meta['name']} v{meta['version']} | {meta['kind']} | {meta['latent_dim']} | {_arch(meta)} | "
                    f"{meta['config']['epochs']} | {ev.get('mse', float('nan')):.5f} | {elbo} | {nll} | "
                    f"{'; '.join(other)} | {m.get('train_seconds', 0):.0f} s ({m.get('train_device', '?')}) |")
    return "\n".join(rows)


def judge_table(paths: list[Path]) -> str:
    """Generated digits as the judge classifier sees them (`python -m training judge`), one row per model."""
    rows = ["| model | kind | m | samples | confident (p >= 0.9) | class entropy (bits) | Fréchet (judge) "
            "| asked label hit |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    ref = None
    for p in paths:
        meta, metrics = read(p)
        j = metrics.get("judge")
        if not j:
            continue
        ref = ref or j["real_train_reference"]
        cond = f"{j['cond_acc']:.1%}" if "cond_acc" in j else ""
        baseline = " (baseline)" if meta["name"] in BASELINES else ""
        rows.append(f"| {meta['name']} v{meta['version']}{baseline} | {meta['kind']} | {meta['latent_dim']} | "
                    f"{j['n']} | {j['confident']:.1%} | {j['class_entropy_bits']:.3f} | {j['frechet']:.3f} | {cond} |")
    if ref is not None:
        rows.append(f"| real digits (10k training images) | | | 10000 | {ref['confident']:.1%} | "
                    f"{ref['class_entropy_bits']:.3f} | {ref['frechet']:.3f} | {ref['cond_acc']:.1%} |")
    return "\n".join(rows)
