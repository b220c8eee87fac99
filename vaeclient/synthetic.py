"""A synthetic training set in one call: N balanced, labelled digits from a conditional model, written as an
MNIST-shaped .npz (x uint8 (N, 28, 28), y int64 (N,)) with where they came from (server, model, version, seed,
temperature, sharpness), so the set can be traced and made again.

The set is pulled in chunks of 10,000 (the server's seed block: chunk k is asked for with block k's seed, so the
file equals one /sample answer of n=N with this seed), each kept on disk as it arrives (OUT.parts/); a run that
stops, for any reason, resumes where it stopped when started again with the same arguments. The model's version
is pinned at the start: a reload on the server mid-way cannot mix two models in one set.

    python -m vaeclient synth digits.npz -n 60000 --seed 1 --temperature 1.1 --sharpness 6
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vaeclient.calls import VaeServeError, progress_bar
from vaeclient.resume import finish, newest_listed, open_parts, write_whole

if TYPE_CHECKING:  # the client calls this module, not the other way round: no import cycle
    from vaeclient.sync import VaeClient

SEED_BLOCK = 10_000  # the server's (checkpoint/sampling.py); tests/client check the two agree


def block_seed(seed: int, k: int) -> int:
    """The server's seed of block k of an answer (checkpoint/sampling.py: the same rule, torch-free here)."""
    return seed if k == 0 else (seed + k * 0x9E3779B97F4A7C15) % 2**63


def resolve(client: VaeClient, model: str | None) -> dict[str, Any]:
    """The model to pull from, which must be conditional, and its newest version. None: the server's default when
    it is conditional, else the server's one conditional model (several: the caller must name one)."""
    listed = client.models()  # one GET /models for every choice below
    conditional = sorted({m["name"] for m in listed if m.get("num_classes")})
    entry = newest_listed(listed, model)
    if model is None and not entry.get("num_classes") and len(conditional) == 1:
        entry = newest_listed(listed, conditional[0])
    if not entry.get("num_classes"):
        if model is None and conditional:
            raise ValueError(f"the server has several conditional models ({', '.join(conditional)}): name one")
        raise ValueError(f"model {entry['name']!r} is not conditional: its digits come without labels; conditional "
                         f"models here: {', '.join(conditional) or 'none'}")
    return entry


def write_synthetic(client: VaeClient, out: Path, n: int, *, model: str | None = None, seed: int = 0,
                    temperature: float = 1.0, sharpness: float = 1.0, workers: int = 2, progress: bool = True,
                    restart: bool = False, on_chunk: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Pull n balanced labelled digits into out (.npz); returns the provenance written beside x and y."""
    if n <= 0 or n % 10:
        raise ValueError(f"n={n}: a positive multiple of 10, so every class has as many digits")
    entry = resolve(client, model)
    provenance = {"server": client.base_url, "model": entry["name"], "version": int(entry["version"]), "seed": seed,
                  "temperature": temperature, "sharpness": sharpness, "n": n, "labels": "balanced",
                  "chunk": SEED_BLOCK}
    parts, provenance = open_parts(out, provenance, restart, "a set begun with other arguments")
    chunks = [(k, min(SEED_BLOCK, n - k * SEED_BLOCK)) for k in range((n + SEED_BLOCK - 1) // SEED_BLOCK)]
    todo = [(k, rows) for k, rows in chunks if not (parts / f"{k:05d}.npy").exists()]
    bar = progress_bar(n, progress, "digit", initial=n - sum(rows for _, rows in todo),
                       desc=f"{entry['name']} v{provenance['version']}", delay=0.0)

    def pull(k: int, rows: int) -> int:
        images = client.sample(rows, model=entry["name"], version=provenance["version"], seed=block_seed(seed, k),
                               temperature=temperature, labels="balanced", dtype="uint8",
                               sharpness=None if sharpness == 1.0 else sharpness)
        if images.shape != (rows, 28, 28) or images.dtype != np.uint8:
            raise VaeServeError(200, f"chunk {k}: expected ({rows}, 28, 28) uint8, got {images.shape} {images.dtype}")
        write_whole(parts / f"{k:05d}.npy", np.save, images)
        return rows

    pool = ThreadPoolExecutor(max(1, workers))
    try:
        for rows in pool.map(lambda c: pull(*c), todo):
            if bar is not None:
                bar.update(rows)
            if on_chunk is not None:
                on_chunk(rows)
    finally:  # a stop (Ctrl-C, an error) pulls nothing more; chunks in flight still land whole on disk
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    x = np.concatenate([np.load(parts / f"{k:05d}.npy") for k, _ in chunks])
    y = (np.arange(n) % int(entry["num_classes"])).astype(np.int64)  # labels="balanced": row i asked for i % 10
    finish(out, parts, {"x": x, "y": y}, provenance)
    return provenance
