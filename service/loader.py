"""Checkpoint reader (format 1): with training/export.py, the only code that knows the file format.

A checkpoint is verified before it serves: meta present and complete, format known, weights
digest equal to meta's, and the scripted methods give the shapes meta promises.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

FORMAT = 1
KINDS = {"linear-ae", "deep-ae", "sparse-ae", "denoising-ae", "vae", "cvae"}
REQUIRED = {"format", "name", "version", "kind", "latent_dim", "image_shape", "stochastic", "generative",
            "num_classes"}


class CheckpointError(ValueError):
    """A file that does not meet the checkpoint contract."""


@dataclass
class Checkpoint:
    name: str
    version: int
    path: Path
    meta: dict[str, Any]
    module: torch.jit.ScriptModule
    latent_dim: int = field(init=False)
    num_classes: int = field(init=False)
    stamp: tuple[float, int] = field(init=False)

    def __post_init__(self) -> None:
        self.stamp = _stamp(self.path)
        self.latent_dim = int(self.meta["latent_dim"])
        self.num_classes = int(self.meta.get("num_classes") or 0)

    @property
    def generative(self) -> bool:
        return bool(self.meta["generative"])

    @property
    def stochastic(self) -> bool:
        return bool(self.meta["stochastic"])


def _stamp(path: Path) -> tuple[float, int]:
    st = path.stat()
    return (st.st_mtime, st.st_size)


def weights_sha256(module: torch.jit.ScriptModule) -> str:
    """SHA-256 over every parameter and buffer by name, as float32 bytes (same rule as the exporter)."""
    h = hashlib.sha256()
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_checkpoint(path: Path) -> Checkpoint:
    """Load and verify one model.ts on the CPU; raise CheckpointError saying what is wrong."""
    files = {"meta.json": ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    except Exception as exc:  # torch raises RuntimeError/ValueError variants for garbage files
        raise CheckpointError(f"{path}: not a TorchScript file ({str(exc).splitlines()[0][:200]})") from exc
    if not files["meta.json"]:
        raise CheckpointError(f"{path}: no meta.json inside")
    try:
        meta = json.loads(files["meta.json"])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: meta.json is not JSON ({exc})") from exc
    missing = REQUIRED - meta.keys()
    if missing:
        raise CheckpointError(f"{path}: meta.json lacks {sorted(missing)}")
    if meta["format"] != FORMAT:
        raise CheckpointError(f"{path}: format {meta['format']!r} unsupported (this server reads {FORMAT})")
    if meta["kind"] not in KINDS:
        raise CheckpointError(f"{path}: kind {meta['kind']!r} unknown; allowed {sorted(KINDS)}")
    if meta["image_shape"] != [1, 28, 28]:
        raise CheckpointError(f"{path}: image_shape {meta['image_shape']} != [1, 28, 28]")
    m = meta["latent_dim"]
    if not isinstance(m, int) or not 1 <= m <= 4096:
        raise CheckpointError(f"{path}: latent_dim {m!r} must be an integer in 1..4096")
    expected = meta.get("weights_sha256")
    if expected and weights_sha256(module) != expected:
        raise CheckpointError(f"{path}: weights do not match meta's weights_sha256; refusing a tampered file")
    _check_shapes(path, module, meta)
    name, version = path.parent.parent.name, int(path.parent.name)
    module.eval()
    return Checkpoint(name, version, path, meta, module)


def _check_shapes(path: Path, module: torch.jit.ScriptModule, meta: dict[str, Any]) -> None:
    m, classes = meta["latent_dim"], int(meta.get("num_classes") or 0)
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


def scan(repository: Path, known: dict[str, dict[int, Checkpoint]] | None = None,
         ) -> tuple[dict[str, dict[int, Checkpoint]], list[str]]:
    """Load every <name>/<version>/model.ts; return the good ones and an error line per bad one.

    Checkpoints in `known` whose file is unchanged (same mtime and size) are reused, not reloaded.
    Only files named model.ts are read: writers put a temporary name first and rename when complete.
    """
    models: dict[str, dict[int, Checkpoint]] = {}
    errors: list[str] = []
    if not repository.is_dir():
        return models, [f"model repository {repository} is not a directory"]
    for path in sorted(repository.glob("*/*/model.ts")):
        if not path.parent.name.isdigit():
            continue
        old = (known or {}).get(path.parent.parent.name, {}).get(int(path.parent.name))
        if old is not None and old.stamp == _stamp(path):
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
