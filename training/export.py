"""Export a trained model as a checkpoint (format 1, written by the `checkpoint` package).

The contract meta is derived from the kind's spec in model/registry.py; the measured figures go to
metrics.json beside model.ts, so later evaluation and judging never rewrite the model file.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

from torch import nn

import checkpoint
from checkpoint import Prior
from model import ModelSpec, kind, script

log = logging.getLogger(__name__)


CODE_ROOT = Path(__file__).resolve().parents[1]  # the checkout this code lives in, wherever train is run from


def code_commit() -> str:
    """The git commit of this code, with '+dirty' when the tree has local changes. Asked of the code's own checkout:
    run from another directory (a user's project, itself perhaps a git repository) the working directory's HEAD
    would name code that did not make the model."""
    try:
        git = ["git", "-C", str(CODE_ROOT)]
        top, sha = subprocess.run([*git, "rev-parse", "--show-toplevel", "HEAD"], capture_output=True, text=True,
                                  check=True).stdout.splitlines()
        if Path(top).resolve() != CODE_ROOT:  # installed into another project's tree: no commit of ours to name
            return "unknown"
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "model", "training", "checkpoint"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build_meta(spec: ModelSpec, name: str, version: int, config: dict[str, Any], data_sha256: str,
               weights: str, prior: str = "normal", commit: str | None = None) -> dict[str, Any]:
    """The contract part of meta: fixed at export, never rewritten."""
    return {
        "format": checkpoint.FORMAT,
        "name": name,
        "version": version,
        "kind": spec.kind,
        "latent_dim": spec.latent_dim,
        "image_shape": [1, 28, 28],
        **kind(spec.kind).meta_flags(),
        "prior": str(prior),  # normal: N(0, I); flow, class-flow: the checkpoint's scripted prior() / prior_log_prob()
        "config": config,
        "command": config.get("command", ""),  # the training command line; config holds what it set
        "data_sha256": data_sha256,
        "code_commit": commit or code_commit(),
        "weights_sha256": weights,
    }


def prior_kind(spec: ModelSpec, has_prior: bool) -> Prior:
    """meta's prior: normal (N(0, I)), flow (p(z), learned with the model or fitted after) or class-flow (p(z | y))."""
    if not has_prior:
        return Prior.NORMAL
    return Prior.CLASS_FLOW if spec.prior == Prior.CLASS_FLOW else Prior.FLOW


def export(model: nn.Module, spec: ModelSpec, name: str, repository: Path, config: dict[str, Any],
           data_sha256: str, metrics: dict[str, Any], prior: nn.Module | None = None,
           commit: str | None = None) -> Path:
    """Script the model (with its learned prior, if any) and write models/<name>/<next version>/model.ts with
    its meta, and metrics.json. `commit`: the code's commit when training started (default: now)."""
    scripted = script(model, prior)
    version = checkpoint.next_version(repository, name)
    meta = build_meta(spec, name, version, config, data_sha256, checkpoint.weights_sha256(scripted),
                      prior_kind(spec, checkpoint.has_prior(scripted)), commit)
    path = repository / name / str(version) / checkpoint.MODEL_FILE
    if meta["code_commit"].endswith("+dirty") or meta["code_commit"] == "unknown":
        log.warning("%s: model/, training/ or checkpoint/ differ from commit %s: this file cannot be traced to the "
                    "code that made it; commit first to ship it", path, meta["code_commit"])
    checkpoint.save(scripted, checkpoint.check_meta(meta, path), path)
    checkpoint.write_metrics(path, metrics)
    return path

