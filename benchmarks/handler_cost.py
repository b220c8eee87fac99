"""The gRPC door's own cost per call, without grpcio's transport: ModelInfer's handler (the one wrapper, codec,
dataplane, rules, admission, batcher, forward, metrics) driven in-process by callers that each parse a serialized
single-row request, await the handler and serialize its answer, on one pinned core with one torch thread.

What a call costs us beyond grpcio's floor (benchmarks/grpc_floor.py) shows here without perf_analyzer's and the
transport's noise: CPU microseconds a call, at concurrency 64 (big chunks) and 1 (the lone-request path).
With --before REF, the same on an earlier commit's checkout (a git worktree), alternated, each first once.
Usage: python benchmarks/handler_cost.py [--seconds 5] [--before REF]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVER_CORE = 0


class Context:
    """What the handler asks of grpcio's ServicerContext on a call without deadline or metadata."""

    def time_remaining(self) -> None:
        return None

    def invocation_metadata(self) -> tuple[()]:
        return ()

    async def abort(self, code: Any, message: str) -> None:
        raise RuntimeError(f"{code}: {message}")

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass


async def measure(model: str, concurrency: int, seconds: float) -> dict[str, float]:
    """Calls/s and CPU us a call of the checkout in the working directory (its service package)."""
    import numpy as np

    from service.dataplane import DataPlane
    from service.engine.engine import Engine
    from service.rpc import messages
    from service.rpc.server import GrpcDoor
    from service.settings import Settings

    plane = DataPlane(Engine(Settings(grpc_port=0, default_model=model, torch_threads=1, log_level="warning",
                                      model_repository=ROOT / "models")))
    plane.start()
    gc.collect()
    gc.freeze()  # as the app's lifespan does
    door = GrpcDoor(plane)
    req_cls, resp_cls = messages.methods()["ModelInfer"]
    method = door._unary("ModelInfer", door.ModelInfer, req_cls, resp_cls)
    handle, parse, serialize = method.unary_unary, method.request_deserializer, method.response_serializer
    req = req_cls(model_name=f"{model}-decoder")
    m = plane.model(f"{model}-decoder")[0].latent_dim
    req.inputs.add(name="z", datatype="FP32", shape=[1, m])
    req.raw_input_contents.append(np.zeros((1, m), np.float32).tobytes())
    wire = req.SerializeToString()
    context = Context()
    calls = 0

    async def caller(until: float) -> None:
        nonlocal calls
        while time.perf_counter() < until:
            serialize(await handle(parse(wire), context))
            calls += 1

    await asyncio.gather(*(caller(time.perf_counter() + 0.5) for _ in range(concurrency)))  # warm-up
    calls = 0
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller(t0 + seconds) for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await plane.stop()
    return {"calls_s": calls / wall, "cpu_us": 1e6 * cpu / calls}


def one(cwd: Path, model: str, concurrency: int, seconds: float) -> dict[str, float]:
    """One measurement in a fresh process on the server core, importing `cwd`'s service (PYTHONPATH comes before
    the editable install's finder)."""
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", str(concurrency),
                          "--seconds", str(seconds), "--model", model], cwd=cwd, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(cwd)},
                         preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CORE}), check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--model", default="vae-flow-z20")
    p.add_argument("--before", default="", help="a git ref to measure beside this checkout")
    p.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        import uvloop  # as uvicorn runs the server

        print(json.dumps(uvloop.run(measure(a.model, a.one, a.seconds))))
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from serve import worktree

    print("| checkout | concurrency | calls/s | CPU us a call |")
    print("|---|---:|---:|---:|")
    if not a.before:
        for c in (64, 1):
            r = one(ROOT, a.model, c, a.seconds)
            print(f"| this | {c} | {r['calls_s']:.0f} | {r['cpu_us']:.1f} |")
        return 0
    with worktree(a.before) as wt:
        pair = [(a.before, wt), ("this", ROOT)]
        for c in (64, 1):
            for order in (pair, pair[::-1]):
                for name, cwd in order:
                    r = one(cwd, a.model, c, a.seconds)
                    print(f"| {name} | {c} | {r['calls_s']:.0f} | {r['cpu_us']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
