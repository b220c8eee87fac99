"""A data set's codes in one command: `python -m vaeclient encode IN OUT.npz` reads MNIST-shaped digits (`.npy`, or
`.npz` with `x`/`images` and, when present, `y`/`labels`), sends them through /encode in pieces, and writes their
posterior means and log-variances (`mu`, `logvar`), the labels carried through, and where the codes came from
(server, model, version).

Like `synth`, it resumes: pieces of PIECE_ROWS rows are kept in OUT.parts/ as they arrive, and a run started again
with the same arguments sends only what is missing. The model's version is pinned at the start.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vaeclient.calls import progress_bar
from vaeclient.resume import finish, newest_model, open_parts, write_whole

if TYPE_CHECKING:  # the client calls this module, not the other way round: no import cycle
    from vaeclient.sync import VaeClient

PIECE_ROWS = 10_240  # rows kept on disk per piece (ten requests of 1,024)
IMAGE_KEYS, LABEL_KEYS = ("x", "images", "x_test", "x_train"), ("y", "labels", "y_test", "y_train")


def load_digits(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(images (N, 28, 28) uint8 or float, labels (N,) or None) from a .npy or an MNIST-shaped .npz."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False, mmap_mode="r"), None
    with np.load(path, allow_pickle=False) as npz:
        key = next((k for k in IMAGE_KEYS if k in npz.files), None)
        if key is None:
            raise ValueError(f"{path} holds {', '.join(npz.files)}; the images must be one of {', '.join(IMAGE_KEYS)}")
        lab = next((k for k in LABEL_KEYS if k in npz.files), None)
        return npz[key], None if lab is None else npz[lab]


def _digest(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def encode_file(client: VaeClient, src: Path, out: Path, *, model: str | None = None, progress: bool = True,
                restart: bool = False) -> dict[str, Any]:
    """Write the codes of every digit in src to out (.npz); returns the provenance written beside them."""
    images, labels = load_digits(src)
    n = len(images)
    if n == 0 or images.shape[1:] not in ((28, 28), (1, 28, 28), (784,)):
        raise ValueError(f"{src}: images of shape {list(images.shape)}; (N, 28, 28), (N, 1, 28, 28) or (N, 784)")
    entry = newest_model(client, model)
    conditional = bool(entry.get("num_classes"))
    if conditional and labels is None:
        raise ValueError(f"model {entry['name']} is conditional: its codes need the labels (y or labels in a .npz)")
    provenance = {"server": client.base_url, "model": entry["name"], "version": int(entry["version"]), "n": n,
                  "source": str(src), "source_digest": _digest(src), "piece": PIECE_ROWS}
    parts, provenance = open_parts(out, provenance, restart, "codes begun with other arguments or another input")
    starts = list(range(0, n, PIECE_ROWS))
    todo = [s for s in starts if not (parts / f"{s:09d}.npz").exists()]
    bar = progress_bar(n, progress, "digit", initial=n - sum(min(PIECE_ROWS, n - s) for s in todo))
    try:
        for s in todo:
            sl = slice(s, min(n, s + PIECE_ROWS))
            lab = labels[sl] if conditional and labels is not None else None
            mu, logvar = client.encode(np.asarray(images[sl]), model=entry["name"], version=provenance["version"],
                                       labels=lab)
            write_whole(parts / f"{s:09d}.npz", np.savez, mu=mu, **({} if logvar is None else {"logvar": logvar}))
            if bar is not None:
                bar.update(sl.stop - sl.start)
    finally:
        if bar is not None:
            bar.close()
    pieces = [np.load(parts / f"{s:09d}.npz") for s in starts]
    result: dict[str, Any] = {"mu": np.concatenate([p["mu"] for p in pieces])}
    if "logvar" in pieces[0].files:
        result["logvar"] = np.concatenate([p["logvar"] for p in pieces])
    if labels is not None:
        result["labels"] = np.asarray(labels)
    finish(out, parts, result, provenance)
    return provenance
