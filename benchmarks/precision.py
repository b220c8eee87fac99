"""Precision and memory format on the CPU: the default model served in fp32, channels_last, bf16, bf16 +
channels_last, one after another in one run (server on core 0, one torch thread; load on core 1).
Usage: python benchmarks/precision.py [--model vae-flow-z20] [--seconds 8]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import measure  # noqa: E402
from serve import ROOT, free_port, server, torch_meta  # noqa: E402

OPTIONS = [("fp32", {}), ("fp32 + channels_last", {"VAESERVE_CHANNELS_LAST": "true"}),
           ("bf16", {"VAESERVE_PRECISION": "bf16"}),
           ("bf16 + channels_last", {"VAESERVE_PRECISION": "bf16", "VAESERVE_CHANNELS_LAST": "true"})]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vae-flow-z20")
    p.add_argument("--seconds", type=float, default=8.0)
    a = p.parse_args()
    os.sched_setaffinity(0, {1})
    ckpt = sorted((ROOT / "models" / a.model).iterdir(), key=lambda d: int(d.name))[-1] / "model.ts"
    m = json.loads(torch_meta(ckpt))["latent_dim"]
    print(f"\nmodel {a.model}; server on core 0 (one torch thread), load on core 1; {a.seconds:.0f} s per scenario\n")
    print("| forward | /sample n=1024 .npy c=2, images/s | /decode 1 row c=64, req/s | p99 ms | largest pixel "
          "difference from fp32 (/sample n=1024) |")
    print("|---|---:|---:|---:|---:|")
    reference = None
    for label, opts in OPTIONS:
        port = free_port()
        env = {"VAESERVE_PORT": str(port), "VAESERVE_LOG_LEVEL": "warning", "VAESERVE_DEFAULT_MODEL": a.model, **opts}
        url = f"http://127.0.0.1:{port}"
        with server([sys.executable, "-m", "service"], env, url + "/readyz"):
            bulk = measure(url + "/sample", json.dumps({"n": 1024, "seed": 1}).encode(), 2, a.seconds,
                           accept="application/x-npy")
            one = measure(url + "/decode", json.dumps({"z": [[0.1] * m]}).encode(), 64, a.seconds)
            got = httpx.post(url + "/sample", json={"n": 1024, "seed": 3}, headers={"accept": "application/x-npy"})
            images = np.load(io.BytesIO(got.content))
        reference = images if reference is None else reference  # the first option is fp32
        error = float(np.abs(images - reference).max())
        print(f"| {label} | {bulk.rps * 1024:.0f} | {one.rps:.0f} | {one.quantile(.99) * 1e3:.0f} | {error:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
