"""Serving benchmark: our service against a bare FastAPI endpoint and naive decode servers, in one run.

Each server runs pinned to core 0 (one torch thread); this process, the load generator, runs on
core 1. Prints a Markdown table and the ratios the service is held to:
  /decode single row at c=64: >= 0.6x bare req/s, p99 <= 2x bare p99
  /decode single row at c=1:  p50 latency <= 1.2x the naive orjson server's, req/s >= 0.6x bare FastAPI's at c=1
  /sample n=1024 as .npy:     >= 0.8x the raw TorchScript decode rate (images/s)
With --before REF, also single-row /decode at c=1 and c=64 on REF's server (a git worktree) and on this checkout's,
alternated, each first once: what a change did, measured in one run.
Usage: python benchmarks/serve.py [--seconds 8] [--model vae-flow-z20] [--before REF]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import Result, measure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SERVER_CORE, CLIENT_CORE = 0, 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(cmd: list[str], env: dict[str, str], ready: str, cwd: Path = ROOT, method: str = ""):
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1", **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CORE}))
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.request(method or ("GET" if "readyz" in ready else "POST"), ready, json={"z": [0.0] * 20},
                                 timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise RuntimeError(f"server did not start: {cmd}")
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def raw_decode_rate(checkpoint: Path, rows: int = 1024, repeats: int = 20) -> float:
    """Images/s of the raw sampling forward on `rows` latents, one thread, on the server core: module.decode, after
    module.prior for a checkpoint with a learned prior (the same work /sample asks of it)."""
    code = f"""
import os, sys, torch
os.sched_setaffinity(0, {{{SERVER_CORE}}}); torch.set_num_threads(1)
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from same_cost import rate  # the one timing of prior, then decode
m = torch.jit.load({str(checkpoint)!r}).eval(); z = torch.randn({rows}, {{m}})
with torch.inference_mode():
    rate(m, z, 3)
    print(rate(m, z, {repeats}))
"""
    meta = json.loads(torch_meta(checkpoint))
    out = subprocess.run([sys.executable, "-c", code.replace("{m}", str(meta["latent_dim"]))],
                         capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return float(out.stdout.strip().splitlines()[-1])


@contextmanager
def worktree(ref: str):
    """An earlier commit's checkout (a detached git worktree), removed afterwards: `-m service` run from it imports
    its service (the working directory comes before the editable install's finder)."""
    with tempfile.TemporaryDirectory() as tmp:
        wt = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(wt), ref], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            yield wt
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT, capture_output=True)


def decode_before_after(ref: str, seconds: float, concurrency: int = 64) -> tuple[float, float]:
    """Single-row /decode req/s at `concurrency` on this checkout and on `ref`'s (a git worktree), alternated so
    each goes first once (no order effect); (now, before), the better of each's two runs."""
    z1 = json.dumps({"z": [[0.1] * 20]}).encode()
    with worktree(ref) as wt:
        rates: dict[str, list[float]] = {"now": [], "before": []}
        pair = [("before", wt), ("now", ROOT)]
        for order in (pair, pair[::-1]):
            for which, cwd in order:
                port = free_port()
                env = {"VAESERVE_PORT": str(port), "VAESERVE_GRPC_PORT": "0", "VAESERVE_TORCH_THREADS": "1",
                       "VAESERVE_MODEL_REPOSITORY": str(ROOT / "models")}
                with server([sys.executable, "-m", "service"], env, f"http://127.0.0.1:{port}/readyz", cwd=cwd):
                    rates[which].append(measure(f"http://127.0.0.1:{port}/decode", z1, concurrency, seconds).rps)
    return max(rates["now"]), max(rates["before"])


def torch_meta(path: Path) -> str:
    from checkpoint import read_meta

    return json.dumps(read_meta(path))


def row(name: str, r: Result, unit_rows: int = 1) -> dict[str, object]:
    bad = sum(v for k, v in r.statuses.items() if k != 200)
    return {"scenario": name, "req_s": r.rps, "rows_s": r.rps * unit_rows, "p50_ms": r.quantile(.5) * 1e3,
            "p99_ms": r.quantile(.99) * 1e3, "non_200": bad}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--model", default="vae-flow-z20")
    p.add_argument("--repository", type=Path, default=ROOT / "models")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    p.add_argument("--before", default="", help="a git ref whose server to compare single-row /decode with")
    a = p.parse_args()
    os.sched_setaffinity(0, {CLIENT_CORE})
    versions = sorted((a.repository / a.model).iterdir(), key=lambda d: int(d.name))
    ckpt = versions[-1] / "model.ts"
    m = json.loads(torch_meta(ckpt))["latent_dim"]
    z1 = json.dumps({"z": [[0.1] * m]}).encode()
    rows: list[dict[str, object]] = []
    py = sys.executable

    port = free_port()
    with server([py, "benchmarks/baselines.py", "bare", str(port), str(ckpt)], {}, f"http://127.0.0.1:{port}/bare"):
        bare = measure(f"http://127.0.0.1:{port}/bare", json.dumps({"z": [0.1] * 20}).encode(), 64, a.seconds)
        rows.append(row("bare FastAPI, c=64", bare))
        bare1 = measure(f"http://127.0.0.1:{port}/bare", json.dumps({"z": [0.1] * 20}).encode(), 1, a.seconds)
        rows.append(row("bare FastAPI, c=1", bare1))

    naive: dict[str, Result] = {}
    for mode in ("naive-json", "naive-orjson"):
        port = free_port()
        with server([py, "benchmarks/baselines.py", mode, str(port), str(ckpt)], {},
                    f"http://127.0.0.1:{port}/decode"):
            url = f"http://127.0.0.1:{port}/decode"
            rows.append(row(f"{mode} /decode 1 row, c=64", measure(url, z1, 64, a.seconds)))
            naive[mode] = measure(url, z1, 1, a.seconds)
            rows.append(row(f"{mode} /decode 1 row, c=1", naive[mode]))

    port = free_port()
    env = {"VAESERVE_PORT": str(port), "VAESERVE_MODEL_REPOSITORY": str(a.repository),
           "VAESERVE_DEFAULT_MODEL": a.model, "VAESERVE_TORCH_THREADS": "1", "VAESERVE_LOG_LEVEL": "warning",
           "VAESERVE_QUEUE_BYTES": "4294967296"}
    with server([py, "-m", "service"], env, f"http://127.0.0.1:{port}/readyz"):
        url = f"http://127.0.0.1:{port}"
        ours64 = measure(url + "/decode", z1, 64, a.seconds)
        rows.append(row("vaeserve /decode 1 row, c=64", ours64))
        ours1 = measure(url + "/decode", z1, 1, a.seconds)
        rows.append(row("vaeserve /decode 1 row, c=1", ours1))
        bulk = measure(url + "/sample", json.dumps({"n": 1024, "seed": 1}).encode(), 2, a.seconds,
                       accept="application/x-npy")
        rows.append(row("vaeserve /sample n=1024 .npy, c=2", bulk, 1024))
        bulk_json = measure(url + "/sample", json.dumps({"n": 1024, "seed": 1}).encode(), 2, a.seconds)
        rows.append(row("vaeserve /sample n=1024 JSON, c=2", bulk_json, 1024))
        bulk_png = measure(url + "/sample", json.dumps({"n": 1024, "seed": 1, "format": "png"}).encode(), 2,
                           a.seconds)
        rows.append(row("vaeserve /sample n=1024 PNG, c=2", bulk_png, 1024))

    raw = raw_decode_rate(ckpt)
    rows.append({"scenario": "raw TorchScript decode (after prior, if any), 1024 rows", "req_s": raw / 1024,
                 "rows_s": raw,
                 "p50_ms": 1024 / raw * 1e3, "p99_ms": float("nan"), "non_200": 0})

    print(f"\nmodel {a.model}; server on core {SERVER_CORE}, load generator on core {CLIENT_CORE}; "
          f"{a.seconds:.0f} s per scenario\n")
    print("| scenario | req/s | rows/s | p50 ms | p99 ms | non-200 |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['scenario']} | {r['req_s']:.0f} | {r['rows_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
              f"| {r['non_200']} |")
    ratios = {
        "c64 req/s vs bare (>= 0.6)": ours64.rps / bare.rps,
        "c64 p99 vs bare p99 (<= 2.0)": ours64.quantile(.99) / bare.quantile(.99),
        "c1 p50 vs naive orjson p50 (<= 1.2)": ours1.quantile(.5) / naive["naive-orjson"].quantile(.5),
        "c1 req/s vs bare c1 (>= 0.6)": ours1.rps / bare1.rps,
        "sample n=1024 npy images/s vs raw decode (>= 0.8)": bulk.rps * 1024 / raw,
    }
    if a.before:
        for conc in (1, 64):
            now, before = decode_before_after(a.before, a.seconds, conc)
            print(f"| vaeserve /decode 1 row, c={conc}, {a.before} | {before:.0f} | | | | |")
            print(f"| vaeserve /decode 1 row, c={conc}, this checkout | {now:.0f} | | | | |")
            ratios[f"c{conc} req/s, this checkout vs {a.before}"] = now / before
            ratios[f"c{conc} req/s vs bare c{conc}, {a.before}"] = before / (bare1 if conc == 1 else bare).rps
    print()
    for k, v in ratios.items():
        print(f"- {k}: **{v:.2f}**")
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "ratios": ratios}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
