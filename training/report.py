"""The README's model tables, made from each checkpoint's meta (what it is) and metrics.json (what it scored)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from checkpoint import Meta, Prior, read_meta, read_metrics
from model.registry import KINDS

BASELINES = {"vae-mlp-z20": "pytorch/examples architecture (baseline)"}  # reference rows, by model name


def read(path: Path) -> tuple[Meta, dict[str, Any]]:
    raw = read_meta(path)
    return Meta.parse(raw, path), read_metrics(path, raw)


def _note(meta: Meta) -> str:
    if meta.name in BASELINES:
        return BASELINES[meta.name]
    if meta.conditional:
        return "conditional: NLL of x given its label"
    return ""


def _arch(meta: Meta) -> str:
    spec = meta.config.get("spec") or {}  # a checkpoint trained elsewhere may not say
    k = KINDS.get(meta.kind)
    if k is not None and not k.uses_arch:
        return "linear"
    if "arch" not in spec or "width" not in spec:
        return "?"
    depth = f"x{spec['depth']}" if spec.get("depth", 1) > 1 else ""
    named = {Prior.NORMAL: "", Prior.FLOW: " + flow prior", Prior.CLASS_FLOW: r" + flow prior p(z \| y)"}
    prior = named[meta.prior]
    topk = f", top-{spec['topk']}" if spec.get("topk") else ""
    return f"{spec['arch']}-{spec['width']}{depth}{topk}{prior}"


def table(paths: list[Path]) -> str:
    rows = ["| model | kind | m | arch | epochs | test MSE | -ELBO | IWAE NLL (k) | CPU decode img/s (1 / 2 threads) "
            "| other | train time |",
            "|---|---|---:|---|---:|---:|---:|---:|---:|---|---|"]
    for p in paths:
        meta, metrics = read(p)
        ev = metrics.get("evaluation") or metrics.get("evaluation_binarised") or {}
        # Not evaluated yet: the training run's own test figures (same test set, fixed noise seed) stand in
        mse = ev.get("mse", metrics.get("test_mse"))
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
        elbo = f"{ev['neg_elbo']:.2f}" if "neg_elbo" in ev else (f"{metrics['test_loss']:.2f} (train-time)"
                                                                  if meta.stochastic and "test_loss" in metrics
                                                                  else "")
        m = metrics
        rows.append(f"| {meta.name} v{meta.version} | {meta.kind} | {meta.latent_dim} | {_arch(meta)} | "
                    f"{meta.config.get('epochs', '')} | {'' if mse is None else f'{mse:.5f}'} | {elbo} | {nll} | "
                    f"{cost(metrics)} | "
                    f"{'; '.join(other)} | {m.get('train_seconds', 0):.0f} s ({m.get('train_device', '?')}) |")
    return "\n".join(rows)


def cost(metrics: dict[str, Any]) -> str:
    """Decode images/s on the CPU at batch 1024 with 1 and 2 torch threads (`python -m training cost`)."""
    cpu = metrics.get("cost", {}).get("cpu")
    return f"{cpu['b1024_t1']:,.0f} / {cpu['b1024_t2']:,.0f}" if cpu else ""


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
        baseline = " (baseline)" if meta.name in BASELINES else ""
        rows.append(f"| {meta.name} v{meta.version}{baseline} | {meta.kind} | {meta.latent_dim} | "
                    f"{j['n']} | {j['confident']:.1%} | {j['class_entropy_bits']:.3f} | {j['frechet']:.3f} | {cond} |")
    if ref is not None:
        rows.append(f"| real digits (10k training images) | | | 10000 | {ref['confident']:.1%} | "
                    f"{ref['class_entropy_bits']:.3f} | {ref['frechet']:.3f} | {ref['cond_acc']:.1%} |")
    return "\n".join(rows)


def cas_table(paths: list[Path]) -> str:
    """Classification Accuracy Score of each conditional checkpoint with one (`python -m training cas`): the
    headline at the temperature chosen on held-out training digits (files measured before say "test-chosen"), the
    sweep (test accuracy, held-out in brackets), and real + synthetic against real when measured."""
    rows = ["| model | CAS (temperature, sharpness, chosen on) | real-data reference | digits per class | CAS at each "
            "temperature and sharpness (held-out) | real + synthetic − real (seeds) |", "|---|---:|---:|---:|---|---|"]
    for p in paths:
        meta, metrics = read(p)
        cas = metrics.get("cas")
        if not cas:
            continue
        chosen = "held-out" if "held_out_images" in cas else "test"
        sweep = ", ".join(f"{r['temperature']:g}" + (f" s{r['sharpness']:g}" if "sharpness" in r else "")
                          + f": {r['accuracy']:.2%}"
                          + (f" ({r['held_out_accuracy']:.2%})" if "held_out_accuracy" in r else "")
                          for r in sorted(cas["sweep"], key=lambda r: (r["temperature"], r.get("sharpness", 1.0))))
        mixed = cas.get("real_plus_synthetic")
        plus = (f"{mixed['difference']['mean'] * 100:+.2f} ± {mixed['difference']['std'] * 100:.2f} points "
                f"({len(mixed['seeds'])}: real {mixed['real_summary']['mean']:.2%}, mixed "
                f"{mixed['mixed_summary']['mean']:.2%})") if mixed else ""
        sharp = f", sharpness {cas['sharpness']:g}" if "sharpness" in cas else ""
        rows.append(f"| {meta.name} v{meta.version} | {cas['accuracy']:.2%} (t={cas['temperature']:g}{sharp}, "
                    f"{chosen}) | {cas['reference_accuracy']:.2%} | {cas['per_class']:,} | {sweep} | {plus} |")
    return "\n".join(rows) if len(rows) > 2 else ""
