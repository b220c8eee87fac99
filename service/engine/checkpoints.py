"""Loading checkpoints for serving: the file is read by the `checkpoint` package (the one module that knows
the format); here a checkpoint is verified for what serving needs, by capability, never by kind name:
meta complete, weights digest equal to meta's, and the scripted methods giving the shapes meta promises.
Any file that meets the contract serves, whatever its kind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from checkpoint import MODEL_FILE, CheckpointError, Meta, has_prior, latents, load_model, read_metrics

log = logging.getLogger(__name__)

__all__ = ["Checkpoint", "CheckpointError", "load_checkpoint", "scan"]


@dataclass
class Checkpoint:
    name: str
    version: int
    path: Path
    meta: Meta  # the contract, fixed at export, typed (checkpoint.Meta)
    module: torch.jit.ScriptModule
    metrics: dict[str, Any] = field(default_factory=dict)  # metrics.json: re-read when it changes
    latent_dim: int = field(init=False)  # copies of meta's: read on every request
    num_classes: int = field(init=False)
    generative: bool = field(init=False)
    stochastic: bool = field(init=False)
    stamp: tuple[float, int] = field(init=False)
    retired: bool = field(init=False, default=False)  # no longer served: new requests get no batcher for it

    def __post_init__(self) -> None:
        self.stamp = _stamp(self.path)
        self.latent_dim, self.num_classes = self.meta.latent_dim, self.meta.num_classes
        self.generative, self.stochastic = self.meta.generative, self.meta.stochastic

    @property
    def has_prior(self) -> bool:
        """A learned prior: /sample decodes prior(eps) (scripted in the file) instead of eps ~ N(0, I)."""
        return has_prior(self.module)


def _stamp(path: Path) -> tuple[float, int]:
    st = path.stat()
    return (st.st_mtime, st.st_size)


def load_checkpoint(path: Path) -> Checkpoint:
    """Load and verify one model.ts on the CPU; raise CheckpointError saying what is wrong."""
    module, meta = load_model(path, "cpu", verify=True)
    metrics = read_metrics(path, meta.raw)
    _check_shapes(path, module, meta)
    name, version = path.parent.parent.name, int(path.parent.name)
    return Checkpoint(name, version, path, meta, module, metrics)


def _check_shapes(path: Path, module: torch.jit.ScriptModule, meta: Meta) -> None:
    m, classes = meta.latent_dim, meta.num_classes
    for method in ("encode", "decode"):
        if not hasattr(module, method):
            raise CheckpointError(f"{path}: no scripted {method}(); the contract needs encode and decode")
    labels = torch.zeros(2, dtype=torch.long) if classes else None
    try:
        with torch.inference_mode():
            mu, logvar = module.encode(torch.zeros(2, 1, 28, 28), labels)
    except Exception as exc:
        raise CheckpointError(f"{path}: encode failed on a test batch ({str(exc).splitlines()[0][:200]})") from exc
    if tuple(mu.shape) != (2, m) or tuple(logvar.shape) != (2, m):
        raise CheckpointError(f"{path}: encode gave {tuple(mu.shape)}, meta promises (B, {m})")
    try:
        with torch.inference_mode():
            img = module.decode(torch.zeros(2, m), labels)
    except Exception as exc:
        raise CheckpointError(f"{path}: decode failed on a test batch ({str(exc).splitlines()[0][:200]})") from exc
    if tuple(img.shape) != (2, 1, 28, 28):
        raise CheckpointError(f"{path}: decode gave {tuple(img.shape)}, expected (B, 1, 28, 28)")
    if has_prior(module):  # optional: a learned prior maps N(0, I) noise to latents
        try:
            with torch.inference_mode():
                z = latents(module, torch.zeros(2, m), labels)
        except Exception as exc:
            raise CheckpointError(f"{path}: prior failed on a test batch ({str(exc).splitlines()[0][:200]})") from exc
        if tuple(z.shape) != (2, m):
            raise CheckpointError(f"{path}: prior gave {tuple(z.shape)}, meta promises (B, {m})")


def scan(repository: Path, known: dict[str, dict[int, Checkpoint]] | None = None,
         ) -> tuple[dict[str, dict[int, Checkpoint]], list[str]]:
    """Load every <name>/<version>/model.ts; return the good ones and an error line per bad one.

    Checkpoints in `known` whose file is unchanged (same mtime and size) are reused, not reloaded.
    Only files named model.ts are read: writers put a temporary name first and rename when complete.
    """
    models: dict[str, dict[int, Checkpoint]] = {}
    errors: list[str] = []
    if not repository.is_dir():
        return models, [f"model repository {repository} ({repository.resolve()}) is not a directory: start the "
                        "server from the checkout's root, or set VAESERVE_MODEL_REPOSITORY"]
    if not any(repository.glob(f"*/*/{MODEL_FILE}")):
        return models, [f"model repository {repository} ({repository.resolve()}) holds no <name>/<version>/"
                        f"{MODEL_FILE}: train one with python -m training train ... --repository {repository}"]
    for path in sorted(repository.glob(f"*/*/{MODEL_FILE}")):
        if not path.parent.name.isdigit():
            continue
        old = (known or {}).get(path.parent.parent.name, {}).get(int(path.parent.name))
        if old is not None and old.stamp == _stamp(path):
            old.metrics = read_metrics(path)  # figures may have been re-measured: a small file
            models.setdefault(old.name, {})[old.version] = old
            continue
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as exc:
            log.error("refusing checkpoint: %s", exc)
            errors.append(str(exc))
            continue
        models.setdefault(ckpt.name, {})[ckpt.version] = ckpt
    return models, errors
