"""1 vs 2 workers (`python -m service --workers N`, one torch thread each) on this machine, both doors, same run.

No core pinning: with 2 workers the server and the load generators share both cores, which is what a 2-core
machine serving its own clients looks like (the load generator's share is not measured apart: say so beside any
figure). HTTP: benchmarks/loadgen.py, single-row /decode at c=64 and /sample n=1024 .npy at c=4; gRPC: Triton's
perf_analyzer (benchmarks/get_perf_analyzer.sh), single-row decoder calls at c=64 over its one connection, then two
perf_analyzers at once (two connections, c=32 each; SO_REUSEPORT places each connection by its address hash, so the
two share a worker about half the time). Workers 1, 2, 1, 2 with --repeat 2.
Usage: python benchmarks/workers.py [--model vae-flow-z20] [--seconds 6] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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
        address = f"127.0.0.1:{grpc_port}"
        g = perf_analyzer("grpc", address, f"{model}-decoder", m, 1, 64, seconds, pin=False)
        with ThreadPoolExecutor(2) as pool:  # two client processes, two connections
            two = list(pool.map(lambda _: perf_analyzer("grpc", address, f"{model}-decoder", m, 1, 32, seconds,
                                                         pin=False), range(2)))
        return {"workers": workers, "decode_c64_rps": round(r.rps),
                "decode_c64_p99_ms": round(r.quantile(.99) * 1e3, 2),
                "sample1024_npy_images_s": round(bulk.rps * 1024),
                "grpc_c64_rps": round(g["rows_s"]) if g else None, "grpc_c64_p99_ms": g["p99_ms"] if g else None,
                "grpc_2x32_rps": round(sum(t["rows_s"] for t in two)) if g else None}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="vae-flow-z20")
    p.add_argument("--seconds", type=float, default=6)
    p.add_argument("--repeat", type=int, default=1, help="run 1 and 2 workers this many times, alternating")
    a = p.parse_args()
    rows = [run(w, a.model, a.seconds) for _ in range(a.repeat) for w in (1, 2)]
    print("| workers | HTTP /decode 1 row c=64 req/s | p99 ms | /sample n=1024 .npy images/s | gRPC decoder 1 row c=64 "
          "calls/s | p99 ms | gRPC 2 connections x c=32 calls/s |\n|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['workers']} | {r['decode_c64_rps']:,} | {r['decode_c64_p99_ms']} "
              f"| {r['sample1024_npy_images_s']:,} | {r['grpc_c64_rps'] or 'n/a':,} | {r['grpc_c64_p99_ms']} "
              f"| {r['grpc_2x32_rps'] or 'n/a':,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
