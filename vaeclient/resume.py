"""What `synth` and `encode` share: the model they pin, and work kept on disk as it arrives, so that a run stopped
for any reason resumes with what is missing. OUT.parts/ holds whole pieces (each written then renamed: resuming never
reads half of one) and a manifest of the arguments they were made with; other arguments over a half-made file are
refused unless restarted."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the client calls these modules, not the other way round: no import cycle
    from vaeclient.sync import VaeClient


def newest_model(client: VaeClient, model: str | None) -> dict[str, Any]:
    """The server's listing of `model` (its default when None) at its newest version; ValueError naming what it has."""
    return newest_listed(client.models(), model)


def newest_listed(listed: list[dict[str, Any]], model: str | None) -> dict[str, Any]:
    """newest_model over a listing already fetched (GET /models once for several choices)."""
    if model is None:
        model = next((m["name"] for m in listed if m.get("default")), None)
    found = [m for m in listed if m["name"] == model]
    if not found:
        raise ValueError(f"no model {model!r} on the server; it has: {', '.join(sorted({m['name'] for m in listed}))}")
    return max(found, key=lambda m: m.get("version", 0))


def open_parts(out: Path, provenance: dict[str, Any], restart: bool, refusal: str) -> tuple[Path, dict[str, Any]]:
    """OUT.parts/ for these arguments: emptied when restarted or without a manifest, kept when its manifest matches
    (the server's address may differ), refused otherwise (`refusal` says what, with the manifest appended). Returns
    the directory and the provenance to record (the manifest's, with this run's server)."""
    parts = out.with_name(out.name + ".parts")
    manifest = parts / "manifest.json"
    if parts.exists() and (restart or not manifest.exists()):
        shutil.rmtree(parts)
    if manifest.exists():
        before = json.loads(manifest.read_text())
        if {k: v for k, v in before.items() if k != "server"} != {k: v for k, v in provenance.items() if k != "server"}:
            raise ValueError(f"{parts} holds {refusal} ({before}); pass --restart (restart=True) to throw it away, "
                             "or the same arguments to resume")
        provenance = before | {"server": provenance["server"]}
    parts.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(provenance, indent=1))
    return parts, provenance


def write_whole(path: Path, save: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """`save` (np.save or np.savez) into a temporary name, then renamed to `path`: a file on disk is whole. The
    temporary name ends in the extension NumPy would otherwise append, whatever `path` ends in."""
    tmp = path.with_name(path.name + (".tmp.npy" if save is np.save else ".tmp.npz"))
    save(tmp, *args, **kwargs)
    tmp.replace(path)


def finish(out: Path, parts: Path, arrays: dict[str, Any], provenance: dict[str, Any]) -> None:
    """The whole .npz (arrays and provenance) written in one piece, then the parts removed."""
    write_whole(out, np.savez, **arrays, **{k: np.asarray(v) for k, v in provenance.items()})
    shutil.rmtree(parts)
