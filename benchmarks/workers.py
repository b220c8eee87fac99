"""1 vs 2 workers (`python -m service --workers N`, one torch thread each) on this machine, both doors, same run.

No core pinning: with 2 workers the server and the load generators share both cores, which is what a 2-core
machine serving its own clients looks like (the load generator's share is not measured apart: say so beside any
figure). HTTP: benchmarks/loadgen.py, single-row /decode at c=64 and /sample n=1024 .npy at c=4; gRPC: Triton's
perf_analyzer (benchmarks/get_perf_analyzer.sh), single-row decoder calls at c=64.
Usage: python benchmarks/workers.py [--model vae-flow-z20] [--seconds 6]
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
from oip import perf_analyzer  # noqa: E402
from serve import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(workers: int, model: str, seconds: float) -> dict[str, object]:
    port = free_port()
    grpc_port = free_port()
    env = {**os.environ, "VAESERVE_DEFAULT_MODEL": model, "VAESERVE_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1",
           "VAESERVE_GRPC_PORT": str(grpc_port), "VAESERVE_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "service", "--port", str(port), "--workers", str(workers)],
                            cwd=ROOT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        m = json.loads(httpx.get(url + f"/models/{model}").text)["latent_dim"]  # /readyz: every worker serves
        body = json.dumps({"z": [[0.1] * m]}).encode()
        r = measure(url + "/decode", body, 64, seconds)
        bulk = measure(url + "/sample", b'{"n": 1024, "seed": 1}', 4, seconds, accept="application/x-npy")
        g = perf_analyzer("grpc", f"127.0.0.1:{grpc_port}", f"{model}-decoder", m, 1, 64, seconds, pin=False)
        return {"workers": workers, "decode_c64_rps": round(r.rps),
                "decode_c64_p99_ms": round(r.quantile(.99) * 1e3, 2),
                "sample1024_npy_images_s": round(bulk.rps * 1024),
                "grpc_c64_rps": round(g["rows_s"]) if g else None, "grpc_c64_p99_ms": g["p99_ms"] if g else None}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="vae-flow-z20")
    p.add_argument("--seconds", type=float, default=6)
    a = p.parse_args()
    rows = [run(w, a.model, a.seconds) for w in (1, 2)]
    print("| workers | HTTP /decode 1 row c=64 req/s | p99 ms | /sample n=1024 .npy images/s | gRPC decoder 1 row c=64 "
          "calls/s | p99 ms |\n|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['workers']} | {r['decode_c64_rps']:,} | {r['decode_c64_p99_ms']} "
              f"| {r['sample1024_npy_images_s']:,} | {r['grpc_c64_rps'] or 'n/a':,} | {r['grpc_c64_p99_ms']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
