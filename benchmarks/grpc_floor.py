"""The floor of the gRPC door: grpcio's asyncio server alone, answering ModelInfer with a constant (no engine, no
model), on core 0, driven by perf_analyzer on core 1 exactly as benchmarks/oip.py drives vaeserve. What it reaches
is the most any Python gRPC door on this core can, whatever it does per call. Beside it, in the same run, grpcio's
other server, the synchronous one (a thread pool; `--threads`), answering the same constant: whether another shape of
grpcio server would lift the floor.
Usage: python benchmarks/grpc_floor.py [--seconds 4] [--threads 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from oip import perf_analyzer  # noqa: E402
from serve import free_port  # noqa: E402

MODEL = "floor-decoder"


def serve(port: int, threads: int = 0, bridge: bool = False) -> None:
    """The bare server: metadata, config and statistics enough for perf_analyzer, and a constant answer."""
    import grpc
    from google.protobuf import json_format

    from service.rpc import messages

    out = np.zeros((1, 1, 28, 28), np.float32).tobytes()
    count = [0]
    tensor = {"name": "z", "datatype": "FP32", "shape": [-1, 20]}
    meta = {"name": MODEL, "versions": ["1"], "platform": "x", "inputs": [tensor],
            "outputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]}
    config = {"name": MODEL, "max_batch_size": 1024, "input": [{"name": "z", "data_type": "TYPE_FP32", "dims": [20]}],
              "output": [{"name": "x", "data_type": "TYPE_FP32", "dims": [1, 28, 28]}]}

    def answer(req: Any) -> Any:
        count[0] += 1
        r = messages.ModelInferResponse(model_name=req.model_name, model_version="1", id=req.id)
        r.outputs.add(name="x", datatype="FP32", shape=[1, 1, 28, 28])
        r.raw_output_contents.append(out)
        return r

    async def infer(req: Any, ctx: Any) -> Any:
        return answer(req)

    def infer_sync(req: Any, ctx: Any) -> Any:
        if bridge:  # the answer made on an event loop in another thread, as an engine living on one would
            return asyncio.run_coroutine_threadsafe(infer(req, ctx), loop).result()
        return answer(req)

    def const(name: str, body: dict[str, Any]) -> Any:
        async def fn(req: Any, ctx: Any) -> Any:
            return json_format.ParseDict(body, messages.message(name)())
        return fn

    async def stats(req: Any, ctx: Any) -> Any:
        one = {"count": count[0]}
        return json_format.ParseDict({"model_stats": [{"name": MODEL, "version": "1", "inference_stats": {
            "queue": one, "success": one}}]}, messages.message("ModelStatisticsResponse")())

    fns = {"ModelInfer": infer, "ModelStatistics": stats,
           "ModelMetadata": const("ModelMetadataResponse", meta),
           "ModelConfig": const("ModelConfigResponse", {"config": config}),
           "ServerReady": const("ServerReadyResponse", {"ready": True}),
           "ServerLive": const("ServerLiveResponse", {"live": True}),
           "ModelReady": const("ModelReadyResponse", {"ready": True}),
           "ServerMetadata": const("ServerMetadataResponse", {"name": "floor"})}

    def handlers(sync: bool) -> dict[str, Any]:
        def fn(name: str) -> Any:
            if not sync:
                return fns[name]
            if name == "ModelInfer":
                return infer_sync
            return lambda req, ctx: asyncio.run(fns[name](req, ctx))  # the few metadata calls
        return {name: grpc.unary_unary_rpc_method_handler(fn(name), request_deserializer=rq.FromString,
                                                          response_serializer=rs.SerializeToString)
                for name, (rq, rs) in messages.methods().items() if name in fns}

    if threads:
        import threading
        from concurrent import futures

        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(messages.SERVICE, handlers(True)),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        server.wait_for_termination()
        return

    async def main() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(messages.SERVICE, handlers(False)),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=4, help="the synchronous server's thread pool (0: not measured)")
    p.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--serve-threads", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--serve-bridge", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        serve(a.serve, a.serve_threads, a.serve_bridge)
        return 0
    servers = {"grpc.aio server": (0, False)} | ({
        f"grpc.server, {a.threads} threads": (a.threads, False),
        f"grpc.server, {a.threads} threads, answer from an event loop": (a.threads, True)} if a.threads else {})
    procs = {}
    try:
        for label, (threads, bridge) in servers.items():
            port = free_port()
            procs[label] = (port, subprocess.Popen(
                [sys.executable, __file__, "--serve", str(port), "--serve-threads", str(threads)]
                + (["--serve-bridge"] if bridge else []),
                preexec_fn=lambda: os.sched_setaffinity(0, {0})))
        time.sleep(3)
        print("| constant answer from | rows/request | concurrency | calls/s | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|---:|")
        for conc in (1, 64):
            for label, (port, _) in procs.items():  # side by side, each idle while the other is measured
                r = perf_analyzer("grpc", f"127.0.0.1:{port}", MODEL, 20, 1, conc, a.seconds)
                if r is None:
                    print("perf_analyzer not found: bash benchmarks/get_perf_analyzer.sh")
                    return 1
                print(f"| {label} | 1 | {conc} | {r['rows_s']:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} |")
    finally:
        for _, proc in procs.values():
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
