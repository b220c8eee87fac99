"""vaeserve's gRPC door against KServe 0.21's own model server, same decoder, same client, same run.

Each server runs alone on core 0 (one torch thread; KServe with its defaults: one worker, its request logging on),
Triton's perf_analyzer (unmodified; benchmarks/get_perf_analyzer.sh) on core 1 sends single-row decoder calls over
gRPC at concurrency 1 and 64, and HTTP to vaeserve as the same-run reference of the issue's "gRPC >= 0.9x HTTP";
then grpcio's floor (benchmarks/grpc_floor.py: its asyncio server answering a constant, no model) on the same core.
KServe runs benchmarks/kserve_server.py in .venv-kserve (`bash scripts/setup.sh --tests` makes it; add torch
there with `.venv-kserve/bin/pip install torch==2.13.0`).
Usage: python benchmarks/kserve_compare.py [--model vae-flow-z20] [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oip import perf_analyzer  # noqa: E402
from serve import ROOT, free_port, server, torch_meta  # noqa: E402

KSERVE_PY = ROOT / ".venv-kserve" / "bin" / "python"


def door(proto: str, address: str, model: str, m: int, seconds: float) -> list[dict[str, float | str]]:
    out = []
    for c in (1, 64):
        r = perf_analyzer(proto, address, model, m, 1, c, seconds)
        if r is None:
            sys.exit("perf_analyzer not found: bash benchmarks/get_perf_analyzer.sh")
        out.append({"c": c, **r})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vae-flow-z20")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--repository", type=Path, default=ROOT / "models")
    a = p.parse_args()
    if not KSERVE_PY.exists():
        sys.exit(f"{KSERVE_PY} absent: bash scripts/setup.sh --tests, then .venv-kserve/bin/pip install torch==2.13.0")
    ckpt = sorted((a.repository / a.model).iterdir(), key=lambda d: int(d.name))[-1] / "model.ts"
    m = json.loads(torch_meta(ckpt))["latent_dim"]
    results: dict[str, list[dict[str, float | str]]] = {}
    port, grpc_port = free_port(), free_port()
    env = {"VAESERVE_PORT": str(port), "VAESERVE_GRPC_PORT": str(grpc_port),
           "VAESERVE_MODEL_REPOSITORY": str(a.repository), "VAESERVE_DEFAULT_MODEL": a.model,
           "VAESERVE_TORCH_THREADS": "1", "VAESERVE_LOG_LEVEL": "warning"}
    with server([sys.executable, "-m", "service"], env, f"http://127.0.0.1:{port}/readyz"):
        results["vaeserve gRPC"] = door("grpc", f"127.0.0.1:{grpc_port}", f"{a.model}-decoder", m, a.seconds)
        results["vaeserve HTTP (binary tensors)"] = door("http", f"127.0.0.1:{port}", f"{a.model}-decoder", m,
                                                         a.seconds)
    port, grpc_port = free_port(), free_port()
    with server([str(KSERVE_PY), str(ROOT / "benchmarks" / "kserve_server.py"), str(ckpt),
                 "--http-port", str(port), "--grpc-port", str(grpc_port)], {},
                f"http://127.0.0.1:{port}/v2/models/decoder/ready", method="GET"):
        results["KServe 0.21 gRPC"] = door("grpc", f"127.0.0.1:{grpc_port}", "decoder", m, a.seconds)
    floor = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "grpc_floor.py"), "--serve", str(grpc_port)],
                             preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    try:
        time.sleep(3)
        results["grpcio floor (constant answer, no model)"] = door("grpc", f"127.0.0.1:{grpc_port}", "floor-decoder",
                                                                    20, a.seconds)
    finally:
        floor.terminate()
        floor.wait()
    print(f"\nmodel {a.model} decoder, single-row calls; each server alone on core 0 (one torch thread), "
          f"perf_analyzer on core 1, {a.seconds:.0f} s per figure\n")
    print("| server, door | c=1 calls/s | c=1 p50 ms | c=64 calls/s | c=64 p50 ms | c=64 p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (c1, c64) in results.items():
        print(f"| {name} | {c1['rows_s']:.0f} | {c1['p50_ms']:.3f} | {c64['rows_s']:.0f} | {c64['p50_ms']:.2f} "
              f"| {c64['p99_ms']:.2f} |")
    g, h, k = (results[n] for n in ("vaeserve gRPC", "vaeserve HTTP (binary tensors)", "KServe 0.21 gRPC"))
    f = results["grpcio floor (constant answer, no model)"]
    print(f"\n- vaeserve gRPC / KServe gRPC at c=64: **{g[1]['rows_s'] / k[1]['rows_s']:.2f}x** "
          f"(c=1: {g[0]['rows_s'] / k[0]['rows_s']:.2f}x)")
    print(f"- vaeserve gRPC / vaeserve HTTP at c=64: **{g[1]['rows_s'] / h[1]['rows_s']:.2f}x**; "
          f"c=1 p50 {g[0]['p50_ms']:.3f} vs {h[0]['p50_ms']:.3f} ms")
    print(f"- grpcio's floor / vaeserve HTTP at c=64: {f[1]['rows_s'] / h[1]['rows_s']:.2f}x (the most any Python gRPC "
          f"door on this core could reach); vaeserve gRPC / floor: {g[1]['rows_s'] / f[1]['rows_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
