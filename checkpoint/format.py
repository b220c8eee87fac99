"""models/<name>/<version>/model.ts and metrics.json beside it.

  model.ts      torch.jit.save(scripted, _extra_files={"meta.json": ...}): the module and its contract meta
                (format, name, version, kind, latent_dim, image_shape, stochastic, generative, num_classes,
                likelihood, config, data and weights SHA-256, code commit). Written once, never rewritten.
  metrics.json  the measured figures (evaluation, judge, cost...), merged and rewritten by write-then-rename.
                Files written before metrics.json existed carry their figures in meta["metrics"]: read_metrics
                falls back to those, and the first write_metrics moves them out.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = 1
MODEL_FILE, METRICS_FILE = "model.ts", "metrics.json"
REQUIRED = ("format", "name", "version", "kind", "latent_dim", "image_shape", "stochastic", "generative",
            "num_classes", "likelihood")


class CheckpointError(ValueError):
    """A file that does not meet the checkpoint contract; the message says what is wrong."""


def weights_sha256(module: torch.nn.Module | torch.jit.ScriptModule) -> str:
    """SHA-256 over every parameter and buffer, by name, as float32 little-endian bytes."""
    h = hashlib.sha256()
    tensors: dict[str, torch.Tensor] = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def has_prior(module: Any) -> bool:
    """Whether a loaded checkpoint carries a learned prior: both optional scripted methods, prior(eps) and
    prior_log_prob(z). Without them the prior is N(0, I) (older files, plain VAEs)."""
    return hasattr(module, "prior") and hasattr(module, "prior_log_prob")


def prior_takes_labels(module: Any) -> bool:
    """Whether the file's prior methods take labels (exported since they do: prior(eps, labels=None)); a
    class-conditional prior needs them, an unconditional one ignores them, older files have prior(eps) only."""
    return has_prior(module) and len(module.prior.schema.arguments) > 2


def latents(module: Any, eps: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """z for base noise eps, as /sample decodes: prior(eps[, labels]) with a learned prior, else eps itself."""
    if not has_prior(module):
        return eps
    return module.prior(eps, labels) if prior_takes_labels(module) else module.prior(eps)


def prior_noise(module: Any, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The inverse of latents(): the base noise eps whose prior sample is z (under labels' classes for p(z | y)).
    The flow's inverse is what its log-density computes on the way (model/prior.py's log_prob); the scripted flow
    keeps the parts it is made of (_affine, _shift_scale, _onehot), so files exported before this needed no new
    method. Without a learned prior, eps is z itself."""
    if not has_prior(module):
        return z
    flow = getattr(module, "flow", None)
    if flow is None or not all(hasattr(flow, part) for part in ("_affine", "_shift_scale", "_onehot")):
        raise CheckpointError("this file's prior keeps no parts to invert (exported before the flow's parts were "
                              "scripted): retrain or re-export it")
    y = flow._onehot(labels, z) if prior_takes_labels(module) else None
    loc, log_scale = flow._affine(y)
    x = (z - loc) * torch.exp(-log_scale)
    for k in reversed(range(int(flow.layers))):
        x = x.flip(1)
        a, b = x[:, : int(flow.cond)], x[:, int(flow.cond):]
        s, t = flow._shift_scale(k, a, y)
        x = torch.cat([a, (b - t) * torch.exp(-s)], dim=1)
    return x


def prior_log_prob(module: Any, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """log p(z) (or log p(z | y)) of a file with a learned prior, whichever form its methods have."""
    return module.prior_log_prob(z, labels) if prior_takes_labels(module) else module.prior_log_prob(z)


def check_meta(meta: Any, where: Path | str = "meta") -> dict[str, Any]:
    """The meta if it meets the contract's fields; CheckpointError naming the first problem otherwise."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: meta.json is not an object")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise CheckpointError(f"{where}: meta.json lacks {missing}")
    if meta["format"] != FORMAT:
        raise CheckpointError(f"{where}: format {meta['format']!r} unsupported (this code reads {FORMAT})")
    if meta["image_shape"] != [1, 28, 28]:
        raise CheckpointError(f"{where}: image_shape {meta['image_shape']} != [1, 28, 28]")
    m = meta["latent_dim"]
    if not isinstance(m, int) or isinstance(m, bool) or not 1 <= m <= 4096:
        raise CheckpointError(f"{where}: latent_dim {m!r} must be an integer in 1..4096")
    classes = meta["num_classes"]
    if not isinstance(classes, int) or isinstance(classes, bool) or not 0 <= classes <= 1000:
        raise CheckpointError(f"{where}: num_classes {classes!r} must be an integer in 0..1000")
    for flag in ("stochastic", "generative"):
        if not isinstance(meta[flag], bool):
            raise CheckpointError(f"{where}: {flag} must be true or false")
    return meta


def save(scripted: torch.jit.ScriptModule, meta: dict[str, Any], path: Path) -> None:
    """Write model.ts with its meta, write-then-rename, so a reader never sees a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part-{os.getpid()}")
    torch.jit.save(scripted, str(part), _extra_files={"meta.json": json.dumps(meta, indent=1)})
    part.replace(path)


def read_meta(path: Path) -> dict[str, Any]:
    """The embedded meta.json, read from the zip archive without loading the module."""
    try:
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith("/extra/meta.json")), None)
            if name is None:
                raise CheckpointError(f"{path}: no meta.json inside")
            raw = z.read(name)
    except (OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: not a TorchScript file ({exc})") from exc
    try:
        meta: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: meta.json is not JSON ({exc})") from exc
    return meta


def load(path: Path, map_location: str | torch.device = "cpu",
         verify: bool = True) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """(module in eval mode, meta); with verify, the contract's fields and the weights digest are checked."""
    files = {"meta.json": ""}
    try:
        module = torch.jit.load(str(path), map_location=map_location, _extra_files=files)
    except Exception as exc:  # torch raises RuntimeError/ValueError variants for garbage files
        raise CheckpointError(f"{path}: not a TorchScript file ({str(exc).splitlines()[0][:200]})") from exc
    if not files["meta.json"]:
        raise CheckpointError(f"{path}: no meta.json inside")
    try:
        meta = json.loads(files["meta.json"])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: meta.json is not JSON ({exc})") from exc
    if verify:
        check_meta(meta, path)
        expected = meta.get("weights_sha256")
        if expected and weights_sha256(module) != expected:
            raise CheckpointError(f"{path}: weights do not match meta's weights_sha256; refusing a tampered file")
    return module.eval(), meta


def _metrics_path(model_path: Path) -> Path:
    return model_path.with_name(METRICS_FILE)


def read_metrics(path: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The measured figures of the checkpoint at `path`: metrics.json, else the legacy meta["metrics"]."""
    mpath = _metrics_path(path)
    if mpath.exists():
        try:
            data: dict[str, Any] = json.loads(mpath.read_text())
            return data
        except (OSError, json.JSONDecodeError):
            return {}  # a broken figures file never stops a model from serving
    legacy = (meta if meta is not None else read_meta(path)).get("metrics")
    return dict(legacy) if isinstance(legacy, dict) else {}


def write_metrics(path: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Merge `metrics` into the checkpoint's figures and rewrite metrics.json (write-then-rename)."""
    merged = {**read_metrics(path), **metrics}
    mpath = _metrics_path(path)
    part = mpath.with_name(f".{mpath.name}.part-{os.getpid()}")
    part.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
    part.replace(mpath)
    return merged


def versions(repository: Path, name: str) -> list[int]:
    return sorted(int(p.name) for p in (repository / name).glob("*") if p.name.isdigit())


def next_version(repository: Path, name: str) -> int:
    return max(versions(repository, name), default=0) + 1


def newest(repository: Path) -> list[Path]:
    """The model.ts of every model's newest version, by name."""
    out = []
    for d in sorted(p for p in repository.iterdir() if p.is_dir()):
        have = [v for v in versions(repository, d.name) if (d / str(v) / MODEL_FILE).exists()]
        if have:
            out.append(d / str(max(have)) / MODEL_FILE)
    return out
