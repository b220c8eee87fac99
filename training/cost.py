"""What a checkpoint costs to serve: decode images/s on this machine's CPU at batch 1 and 1024, with 1 and 2 torch
threads, timed through the scripted interface the service calls. Recorded under metrics.json's `cost`."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

import checkpoint

BATCHES = (1, 1024)
THREADS = (1, 2)


def decode_rate(module: torch.jit.ScriptModule, latent_dim: int, classes: int, batch: int,
                min_seconds: float = 1.0) -> float:
    """Images/s of module.decode on `batch` rows: warm up, then repeat until min_seconds have passed."""
    z = torch.randn(batch, latent_dim)
    labels = torch.arange(batch) % classes if classes else None
    with torch.inference_mode():
        for _ in range(3):
            module.decode(z, labels)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < min_seconds:
            module.decode(z, labels)
            n += 1
        return n * batch / (time.perf_counter() - t0)


def measure(path: Path, min_seconds: float = 1.0) -> dict[str, Any]:
    """{"cpu": {"b1_t1": images/s, "b1024_t1": ..., "b1_t2": ..., "b1024_t2": ...}, "machine": ...}"""
    module, meta = checkpoint.load_model(path, "cpu", verify=False)
    classes = meta.num_classes
    before = torch.get_num_threads()
    out: dict[str, float] = {}
    try:
        for threads in THREADS:
            torch.set_num_threads(threads)
            for batch in BATCHES:
                out[f"b{batch}_t{threads}"] = round(decode_rate(module, meta.latent_dim, classes, batch,
                                                                min_seconds), 1)
    finally:
        torch.set_num_threads(before)
    return {"cpu": out, "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"}
