"""1 vs 2 uvicorn workers (ASGI factory, one torch thread each) on this machine, same load generator.

No core pinning here: with 2 workers the server and the load generator share both cores, which is what
a 2-core machine serving its own clients looks like. Usage: python benchmarks/workers.py [--model vae-mlp-z20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import measure  # noqa: E402
from serve import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(workers: int, model: str, seconds: float) -> dict[str, object]:
    port = free_port()
    env = {**os.environ, "VAESERVE_DEFAULT_MODEL": model, "VAESERVE_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app", "--port",
                             str(port), "--workers", str(workers), "--log-level", "warning"], cwd=ROOT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        time.sleep(2)  # every worker up
        m = json.loads(httpx.get(url + f"/models/{model}").text)["latent_dim"]
        body = json.dumps({"z": [[0.1] * m]}).encode()
        r = measure(url + "/decode", body, 64, seconds)
        bulk = measure(url + "/sample", b'{"n": 1024, "seed": 1}', 4, seconds, accept="application/x-npy")
        return {"workers": workers, "decode_c64_rps": round(r.rps),
                "decode_c64_p99_ms": round(r.quantile(.99) * 1e3, 2), "sample1024_npy_images_s": round(bulk.rps * 1024)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="vae-mlp-z20")
    p.add_argument("--seconds", type=float, default=6)
    a = p.parse_args()
    rows = [run(w, a.model, a.seconds) for w in (1, 2)]
    print("| workers | /decode c=64 req/s | p99 ms | /sample n=1024 .npy images/s |\n|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['workers']} | {r['decode_c64_rps']} | {r['decode_c64_p99_ms']} | {r['sample1024_npy_images_s']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
