"""Checkpoint writer (format 1). With service/loader.py, the only code that knows the file format.

models/<name>/<version>/model.ts = torch.jit.save(scripted, _extra_files={"meta.json": ...}).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model import ModelSpec, script

FORMAT = 1


def weights_sha256(module: torch.jit.ScriptModule | nn.Module) -> str:
    """SHA-256 over every parameter and buffer, by name, as float32 little-endian bytes."""
    h = hashlib.sha256()
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def code_commit() -> str:
    """The git commit of this code, with '+dirty' when the tree has local changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "model", "training"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build_meta(spec: ModelSpec, name: str, version: int, config: dict[str, Any], data_sha256: str,
               metrics: dict[str, Any], weights: str) -> dict[str, Any]:
    stochastic = spec.kind in ("vae", "cvae")
    return {
        "format": FORMAT,
        "name": name,
        "version": version,
        "kind": spec.kind,
        "latent_dim": spec.latent_dim,
        "image_shape": [1, 28, 28],
        "stochastic": stochastic,
        "generative": stochastic,  # only VAEs have a prior to sample from
        "num_classes": 10 if spec.kind == "cvae" else 0,
        "likelihood": "gaussian" if spec.kind == "linear-ae" else "bernoulli",
        "config": config,
        "data_sha256": data_sha256,
        "code_commit": code_commit(),
        "weights_sha256": weights,
        "metrics": metrics,
    }


def next_version(repository: Path, name: str) -> int:
    versions = [int(p.name) for p in (repository / name).glob("*") if p.name.isdigit()]
    return max(versions, default=0) + 1


def save(scripted: torch.jit.ScriptModule, meta: dict[str, Any], path: Path) -> None:
    """Write-then-rename, so a reader never sees a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part-{os.getpid()}")
    torch.jit.save(scripted, str(part), _extra_files={"meta.json": json.dumps(meta, indent=1)})
    part.replace(path)


def export(model: nn.Module, spec: ModelSpec, name: str, repository: Path, config: dict[str, Any],
           data_sha256: str, metrics: dict[str, Any]) -> Path:
    """Script the model and write models/<name>/<next version>/model.ts with its meta."""
    scripted = script(model)
    version = next_version(repository, name)
    meta = build_meta(spec, name, version, config, data_sha256, metrics, weights_sha256(scripted))
    path = repository / name / str(version) / "model.ts"
    save(scripted, meta, path)
    return path


def read_meta(path: Path) -> dict[str, Any]:
    files = {"meta.json": ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    return json.loads(files["meta.json"])


def update_metrics(path: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Merge measured metrics into a checkpoint's meta and rewrite it in place (atomically)."""
    files = {"meta.json": ""}
    scripted = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    meta = json.loads(files["meta.json"])
    meta["metrics"] = {**meta.get("metrics", {}), **metrics}
    save(scripted, meta, path)
    return meta
