"""The README's model table, made from the metrics recorded in each checkpoint's meta.json."""

from __future__ import annotations

from pathlib import Path

from training.export import read_meta


def newest(repository: Path) -> list[Path]:
    out = []
    for d in sorted(p for p in repository.iterdir() if p.is_dir()):
        versions = [v for v in d.iterdir() if v.name.isdigit() and (v / "model.ts").exists()]
        if versions:
            out.append(max(versions, key=lambda v: int(v.name)) / "model.ts")
    return out


def _note(meta: dict) -> str:
    spec = meta["config"]["spec"]
    if (meta["kind"], spec["arch"], spec["width"], meta["latent_dim"], meta["config"]["epochs"]) == \
            ("vae", "mlp", 400, 20, 10):
        return "pytorch/examples architecture (baseline)"
    if meta["kind"] == "cvae":
        return "conditional: NLL of x given its label"
    return ""


def table(paths: list[Path]) -> str:
    rows = ["| model | kind | m | arch | epochs | test MSE | -ELBO | IWAE NLL (k) | other | train time |",
            "|---|---|---:|---|---:|---:|---:|---:|---|---|"]
    for p in paths:
        meta = read_meta(p)
        ev = meta["metrics"].get("evaluation") or meta["metrics"].get("evaluation_binarised") or {}
        spec = meta["config"]["spec"]
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
        m = meta["metrics"]
        arch = f"{spec['arch']}-{spec['width']}" if meta["kind"] != "linear-ae" else "linear"
        rows.append(f"| {meta['name']} v{meta['version']} | {meta['kind']} | {meta['latent_dim']} | {arch} | "
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
        meta = read_meta(p)
        j = meta["metrics"].get("judge")
        if not j:
            continue
        ref = ref or j["real_train_reference"]
        cond = f"{j['cond_acc']:.1%}" if "cond_acc" in j else ""
        baseline = " (baseline)" if "baseline" in _note(meta) else ""
        rows.append(f"| {meta['name']} v{meta['version']}{baseline} | {meta['kind']} | {meta['latent_dim']} | "
                    f"{j['n']} | {j['confident']:.1%} | {j['class_entropy_bits']:.3f} | {j['frechet']:.3f} | {cond} |")
    if ref is not None:
        rows.append(f"| real digits (10k training images) | | | 10000 | {ref['confident']:.1%} | "
                    f"{ref['class_entropy_bits']:.3f} | {ref['frechet']:.3f} | {ref['cond_acc']:.1%} |")
    return "\n".join(rows)
