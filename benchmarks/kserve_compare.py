"""vaeserve's gRPC door against KServe 0.21's own model server, same decoder, same client, same run.

The servers run side by side on core 0 (one torch thread; KServe with its defaults: one worker, its request logging
on), idle but for the one being measured: vaeserve (its gRPC door, and HTTP with binary tensors as the same-run
reference of the issue's "gRPC >= 0.9x HTTP"), KServe, and grpcio's floor (benchmarks/grpc_floor.py: its asyncio
server answering a constant, no model). Triton's perf_analyzer (unmodified; benchmarks/get_perf_analyzer.sh) on core
1 sends single-row decoder calls at concurrency 1 and 64, to each door in turn, for --rounds rounds: this machine's
speed drifts by tens of percent within minutes, so each ratio is the median of the rounds' own ratios (doors
measured a minute apart, one after another, once read 2.4x in one run and 4.3x in the next).
KServe runs benchmarks/kserve_server.py in .venv-kserve (`bash scripts/setup.sh --tests` makes it; add torch
there with `.venv-kserve/bin/pip install torch==2.13.0`).
With --before REF, an earlier commit's server (a git worktree) runs beside them and its gRPC door is measured in
the same rounds: what a change did to the door, in one run.
Usage: python benchmarks/kserve_compare.py [--model vae-flow-z20] [--seconds 4] [--rounds 3] [--before REF]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oip import perf_analyzer  # noqa: E402
from serve import ROOT, free_port, server, torch_meta, worktree  # noqa: E402

KSERVE_PY = ROOT / ".venv-kserve" / "bin" / "python"


DOORS = ("vaeserve gRPC", "vaeserve HTTP (binary tensors)", "KServe 0.21 gRPC",
         "grpcio floor (constant answer, no model)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vae-flow-z20")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repository", type=Path, default=ROOT / "models")
    p.add_argument("--before", default="", help="a git ref whose gRPC door to measure beside this checkout's")
    a = p.parse_args()
    if not KSERVE_PY.exists():
        sys.exit(f"{KSERVE_PY} absent: bash scripts/setup.sh --tests, then .venv-kserve/bin/pip install torch==2.13.0")
    ckpt = sorted((a.repository / a.model).iterdir(), key=lambda d: int(d.name))[-1] / "model.ts"
    m = json.loads(torch_meta(ckpt))["latent_dim"]
    port, grpc_port, k_port, k_grpc, f_grpc, b_port, b_grpc = (free_port() for _ in range(7))

    def vaeserve_env(http: int, grpc: int) -> dict[str, str]:
        return {"VAESERVE_PORT": str(http), "VAESERVE_GRPC_PORT": str(grpc),
                "VAESERVE_MODEL_REPOSITORY": str(a.repository), "VAESERVE_DEFAULT_MODEL": a.model,
                "VAESERVE_TORCH_THREADS": "1", "VAESERVE_LOG_LEVEL": "warning"}

    doors = list(DOORS) + ([f"vaeserve gRPC at {a.before}"] if a.before else [])
    # (door, protocol, address, model, latent size)
    targets = [(DOORS[0], "grpc", f"127.0.0.1:{grpc_port}", f"{a.model}-decoder", m),
               (DOORS[1], "http", f"127.0.0.1:{port}", f"{a.model}-decoder", m),
               (DOORS[2], "grpc", f"127.0.0.1:{k_grpc}", "decoder", m),
               (DOORS[3], "grpc", f"127.0.0.1:{f_grpc}", "floor-decoder", 20)]
    if a.before:
        targets.append((doors[4], "grpc", f"127.0.0.1:{b_grpc}", f"{a.model}-decoder", m))
    runs: dict[tuple[str, int], list[dict[str, float]]] = {(d, c): [] for d in doors for c in (1, 64)}
    floor = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "grpc_floor.py"), "--serve", str(f_grpc)],
                             preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(server([sys.executable, "-m", "service"], vaeserve_env(port, grpc_port),
                                       f"http://127.0.0.1:{port}/readyz"))
            stack.enter_context(server([str(KSERVE_PY), str(ROOT / "benchmarks" / "kserve_server.py"), str(ckpt),
                                        "--http-port", str(k_port), "--grpc-port", str(k_grpc)], {},
                                       f"http://127.0.0.1:{k_port}/v2/models/decoder/ready", method="GET"))
            if a.before:
                wt = stack.enter_context(worktree(a.before))
                stack.enter_context(server([sys.executable, "-m", "service"], vaeserve_env(b_port, b_grpc),
                                           f"http://127.0.0.1:{b_port}/readyz", cwd=wt))
            for r in range(a.rounds):
                for c in (1, 64):
                    for door, proto, address, model, dim in (targets if r % 2 == 0 else targets[::-1]):
                        out = perf_analyzer(proto, address, model, dim, 1, c, a.seconds)
                        if out is None:
                            sys.exit("perf_analyzer not found: bash benchmarks/get_perf_analyzer.sh")
                        runs[(door, c)].append(out)
                print(f"round {r + 1}: " + ", ".join(f"{d.split(' (')[0]} {runs[(d, 64)][-1]['rows_s']:.0f}"
                                                      for d in doors) + " calls/s at c=64", flush=True)
    finally:
        floor.terminate()
        floor.wait()

    def ratio(d1: str, d2: str, c: int, key: str = "rows_s") -> float:
        """The median of the rounds' own ratios: each round's two figures were measured minutes apart at most."""
        return statistics.median([x[key] / y[key] for x, y in zip(runs[(d1, c)], runs[(d2, c)], strict=True)])

    print(f"\nmodel {a.model} decoder, single-row calls; the servers side by side on core 0 (one torch thread), "
          f"perf_analyzer on core 1, {a.seconds:.0f} s per figure, {a.rounds} rounds: medians\n")
    print("| server, door | c=1 calls/s | c=1 p50 ms | c=64 calls/s | c=64 p50 ms | c=64 p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for d in doors:
        mid = {(c, key): statistics.median([x[key] for x in runs[(d, c)]])
               for c in (1, 64) for key in ("rows_s", "p50_ms", "p99_ms")}
        print(f"| {d} | {mid[(1, 'rows_s')]:.0f} | {mid[(1, 'p50_ms')]:.3f} | {mid[(64, 'rows_s')]:.0f} "
              f"| {mid[(64, 'p50_ms')]:.2f} | {mid[(64, 'p99_ms')]:.2f} |")
    g, h, k, f = DOORS
    print("\nratios, each the median of the rounds' own:")
    print(f"- vaeserve gRPC / KServe gRPC at c=64: **{ratio(g, k, 64):.2f}x** (c=1: {ratio(g, k, 1):.2f}x)")
    print(f"- vaeserve gRPC / vaeserve HTTP at c=64: **{ratio(g, h, 64):.2f}x**; c=1 p50 gRPC / HTTP "
          f"{ratio(g, h, 1, 'p50_ms'):.2f}x")
    print(f"- grpcio's floor / vaeserve HTTP at c=64: {ratio(f, h, 64):.2f}x (the most any Python gRPC door on this "
          f"core could reach); vaeserve gRPC / floor: {ratio(g, f, 64):.2f}x")
    if a.before:
        print(f"- vaeserve gRPC, this checkout / {a.before}: **{ratio(g, doors[4], 64):.2f}x** at c=64 "
              f"(c=1: {ratio(g, doors[4], 1):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
