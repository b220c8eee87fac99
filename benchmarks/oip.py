"""Open Inference Protocol bulk tensors against the REST routes' .npy, same server, same run.

The server (vaeserve, one torch thread) runs on core 0, this load generator on core 1. Each scenario moves
`--rows` rows per request at concurrency 2:
  REST  /decode   z as JSON in, images as .npy out        (the REST bulk decode path)
  REST  /sample   n rows as .npy out                      (no input at all: the cheapest REST bulk path)
  v2    decoder   z as binary tensor data in, x binary out (Inference-Header-Content-Length both ways)
  v2    decoder   z and x as JSON                          (what a client gets without the binary extension)
Then the same server's two Open Inference Protocol doors side by side through Triton's perf_analyzer (unmodified;
benchmarks/get_perf_analyzer.sh fetches it), HTTP with binary tensors against gRPC with raw contents:
  single row at concurrency 1 and 64, and --rows-row batches at concurrency 2.
Usage: python benchmarks/oip.py [--model vae-flow-z20] [--rows 1024] [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import measure  # noqa: E402
from serve import ROOT, free_port, row, server, torch_meta  # noqa: E402

CLIENT_CORE = 1
PA_DIR = ROOT / ".cache" / "perf_analyzer"


def perf_analyzer(proto: str, address: str, model: str, m: int, batch: int, concurrency: int,
                  seconds: float, pin: bool = True) -> dict[str, float] | None:
    """perf_analyzer's throughput (inferences, i.e. rows, per second) and p50/p99 latency (ms); None if absent."""
    exe = Path(os.environ.get("PERF_ANALYZER", PA_DIR / "perf_analyzer"))
    if not exe.exists():
        return None
    env = {**os.environ, "LD_LIBRARY_PATH": str(exe.parent / "lib")}
    out = subprocess.run([str(exe), "-m", model, "-i", proto, "-u", address, "--input-data", "zero",
                          "--shape", f"z:{m}", "-b", str(batch), "--concurrency-range", str(concurrency),
                          "--measurement-interval", str(int(seconds * 1000)), "--stability-percentage", "25",
                          "--max-trials", "8"],
                         capture_output=True, text=True, env=env, timeout=10 * seconds + 60,
                         preexec_fn=(lambda: os.sched_setaffinity(0, {CLIENT_CORE})) if pin else None)
    out = out.stdout + out.stderr
    found = {k: re.search(p, out) for k, p in (("rows_s", r"Throughput: ([\d.]+) infer/sec"),
                                               ("p50_ms", r"p50 latency: (\d+) usec"),
                                               ("p99_ms", r"p99 latency: (\d+) usec"))}
    if not all(found.values()):
        raise RuntimeError("perf_analyzer failed:\n" + out[-2000:])
    r = {k: float(v.group(1)) for k, v in found.items() if v is not None}
    return {"rows_s": r["rows_s"], "p50_ms": r["p50_ms"] / 1000, "p99_ms": r["p99_ms"] / 1000}


def v2_binary_body(z: np.ndarray) -> tuple[bytes, str]:
    head = json.dumps({"inputs": [{"name": "z", "shape": list(z.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": z.nbytes}}],
                       "outputs": [{"name": "x", "parameters": {"binary_data": True}}]}).encode()
    return head + z.tobytes(), f"Inference-Header-Content-Length: {len(head)}\r\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vae-flow-z20")
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--repository", type=Path, default=ROOT / "models")
    a = p.parse_args()
    os.sched_setaffinity(0, {CLIENT_CORE})
    ckpt = sorted((a.repository / a.model).iterdir(), key=lambda d: int(d.name))[-1] / "model.ts"
    m = json.loads(torch_meta(ckpt))["latent_dim"]
    z = np.random.default_rng(0).standard_normal((a.rows, m)).astype(np.float32)
    port, grpc_port = free_port(), free_port()
    env = {"VAESERVE_PORT": str(port), "VAESERVE_GRPC_PORT": str(grpc_port),
           "VAESERVE_MODEL_REPOSITORY": str(a.repository),
           "VAESERVE_DEFAULT_MODEL": a.model, "VAESERVE_TORCH_THREADS": "1",
           "VAESERVE_LOG_LEVEL": "warning", "VAESERVE_QUEUE_BYTES": "4294967296",
           "VAESERVE_MAX_ROWS": str(max(a.rows, 1024))}
    url = f"http://127.0.0.1:{port}"
    rows = []
    with server([sys.executable, "-m", "service"], env, url + "/readyz"):
        rest = json.dumps({"z": z.tolist()}).encode()
        rows.append(row(f"REST /decode {a.rows} rows, JSON in, .npy out", measure(
            url + "/decode", rest, 2, a.seconds, accept="application/x-npy"), a.rows))
        rows.append(row(f"REST /sample n={a.rows}, .npy out", measure(
            url + "/sample", json.dumps({"n": a.rows, "seed": 1}).encode(), 2, a.seconds,
            accept="application/x-npy"), a.rows))
        body, header = v2_binary_body(z)
        rows.append(row(f"v2 {a.model}-decoder {a.rows} rows, binary in and out", measure(
            f"{url}/v2/models/{a.model}-decoder/infer", body, 2, a.seconds, headers=header), a.rows))
        js = json.dumps({"inputs": [{"name": "z", "shape": list(z.shape), "datatype": "FP32",
                                     "data": z.reshape(-1).tolist()}]}).encode()
        rows.append(row(f"v2 {a.model}-decoder {a.rows} rows, JSON in and out", measure(
            f"{url}/v2/models/{a.model}-decoder/infer", js, 2, a.seconds), a.rows))
        doors = []
        for batch, conc in ((1, 1), (1, 64), (a.rows, 2)):
            for proto, address in (("http", f"127.0.0.1:{port}"), ("grpc", f"127.0.0.1:{grpc_port}")):
                r = perf_analyzer(proto, address, f"{a.model}-decoder", m, batch, conc, a.seconds)
                if r is not None:
                    doors.append({"proto": proto, "batch": batch, "c": conc, **r})
    print(f"\nmodel {a.model}; server on core 0 (one torch thread), load generator on core 1; c=2, "
          f"{a.seconds:.0f} s per scenario\n")
    print("| scenario | req/s | rows/s | p50 ms | p99 ms | non-200 |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['scenario']} | {r['req_s']:.1f} | {r['rows_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
              f"| {r['non_200']} |")
    print(f"\n- v2 binary rows/s vs REST /decode .npy: **{rows[2]['rows_s'] / rows[0]['rows_s']:.2f}**")
    print(f"- v2 binary rows/s vs REST /sample .npy: **{rows[2]['rows_s'] / rows[1]['rows_s']:.2f}**")
    if not doors:
        print("\nperf_analyzer not found: bash benchmarks/get_perf_analyzer.sh for the HTTP/gRPC comparison")
        return 0
    print(f"\nperf_analyzer, {a.model}-decoder, HTTP (binary tensors) and gRPC (raw contents), same server:\n")
    print("| door | rows/request | concurrency | rows/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for d in doors:
        print(f"| {d['proto']} | {d['batch']} | {d['c']} | {d['rows_s']:.0f} | {d['p50_ms']:.3f} | {d['p99_ms']:.3f} |")
    for i in range(0, len(doors) - 1, 2):
        h, g = doors[i], doors[i + 1]
        print(f"- rows/request {h['batch']}, c={h['c']}: gRPC/HTTP rate **{g['rows_s'] / h['rows_s']:.2f}**, "
              f"p50 {g['p50_ms']:.3f} vs {h['p50_ms']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
