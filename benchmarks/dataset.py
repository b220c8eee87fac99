"""Your own data through the service: a data set through /encode and /reconstruct, against the raw encoder, one run.

The server runs pinned to core 0 (one torch thread); the client (VaeClient, or `python -m vaeclient encode`) runs on
core 1, as a user's would beside it. Reference: the raw TorchScript encoder (module.encode) at batch 1,024 on one
thread of core 0, measured in the same run. Prints a Markdown table and the ratios:
  20,000 uint8 MNIST digits through VaeClient.encode in one call:       >= 0.5x the raw encoder's rows/s
  5,000 through VaeClient.reconstruct in one call                        (against raw encode + decode)
  the 60,000-digit training set through `python -m vaeclient encode`:  >= 0.5x the raw encoder's rows/s
  the JSON float path of before (VaeClient-style 256-row JSON calls)     for scale
  single-row /decode at c=64, this checkout against --before REF:        within 5 % (same run, alternated)
Usage: python benchmarks/dataset.py [--seconds 6] [--before 7bcc4d4] [--model vae-flow-z20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import CLIENT_CORE, ROOT, SERVER_CORE, decode_before_after, free_port, server  # noqa: E402

sys.path.insert(0, str(ROOT))


def raw_rate(checkpoint: Path, what: str, rows: int = 1024, repeats: int = 30) -> float:
    """Rows/s of the raw TorchScript forward at batch `rows`, one thread, on the server core: encode, or encode then
    decode of the means (reconstruct)."""
    code = f"""
import os, time, torch
os.sched_setaffinity(0, {{{SERVER_CORE}}}); torch.set_num_threads(1)
m = torch.jit.load({str(checkpoint)!r}).eval(); x = torch.rand({rows}, 1, 28, 28)
f = (lambda x: m.encode(x, None)) if {what!r} == "encode" else (lambda x: m.decode(m.encode(x, None)[0], None))
with torch.inference_mode():
    for _ in range(3): f(x)
    t = time.perf_counter()
    for _ in range({repeats}): f(x)
print({rows} * {repeats} / (time.perf_counter() - t))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return float(out.stdout.strip().splitlines()[-1])


def timed(fn, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    """Best of `repeats` wall times (the machine's noise only ever adds)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def mnist_train() -> tuple[np.ndarray, np.ndarray]:
    from training.data import load_mnist

    ds = load_mnist(None, ROOT / "data")
    return np.asarray(ds.x_train, dtype=np.uint8).reshape(-1, 28, 28), np.asarray(ds.y_train)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--model", default="vae-flow-z20")
    p.add_argument("--before", default="", help="a git ref whose server to compare single-row /decode with")
    a = p.parse_args()
    os.sched_setaffinity(0, {CLIENT_CORE})
    from vaeclient import VaeClient
    from vaeclient.calls import Call, _images

    ckpt = max((ROOT / "models" / a.model).glob("*/model.ts"), key=lambda f: int(f.parent.name))
    x_train, y_train = mnist_train()
    x20k, x5k = x_train[:20000], x_train[:5000]
    raw_enc, raw_rec = raw_rate(ckpt, "encode"), raw_rate(ckpt, "reconstruct")
    rows = [("raw TorchScript encode, batch 1,024, 1 thread", raw_enc, 1.0, "reference"),
            ("raw TorchScript encode + decode, batch 1,024, 1 thread", raw_rec, 1.0, "reference")]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"VAESERVE_PORT": str(port), "VAESERVE_GRPC_PORT": "0", "VAESERVE_TORCH_THREADS": "1"}
    with server([sys.executable, "-m", "service"], env, url + "/readyz"), VaeClient(url, timeout=120) as c:
        c.encode(x5k)  # warm: the batcher's cost estimate, torch's first calls
        t = timed(lambda: c.encode(x20k))
        rows.append(("VaeClient.encode(20,000 uint8 digits), one call", 20000 / t, 20000 / t / raw_enc, ">= 0.5"))
        t = timed(lambda: c.reconstruct(x5k))
        rows.append(("VaeClient.reconstruct(5,000 uint8 digits), one call", 5000 / t, 5000 / t / raw_rec, ""))
        json_calls = [Call("POST", "/encode", lambda r: r, {"images": _images(x_train[i:i + 256] / 255)})
                      for i in range(0, 2048, 256)]
        t = timed(lambda: [c.send(call) for call in json_calls], 1)
        rows.append(("before: JSON float pixels, 256-row calls", 2048 / t, 2048 / t / raw_enc, "for scale"))
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "train.npz"
            np.savez(src, x=x_train, y=y_train)
            cmd = [sys.executable, "-m", "vaeclient", "encode", str(src), str(Path(tmp) / "codes.npz"), "--url", url,
                   "--quiet"]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
            t = time.perf_counter() - t0
            rows.append(("python -m vaeclient encode (60,000-digit .npz), process start included", 60000 / t,
                         60000 / t / raw_enc, ">= 0.5"))
    if a.before:
        now, before = decode_before_after(a.before, a.seconds, concurrency=64)
        rows += [(f"single-row /decode c=64, {a.before}", before, 1.0, "reference"),
                 ("single-row /decode c=64, this checkout", now, now / before, ">= 0.95")]
    print("| what | rows/s (req/s for /decode) | ratio | goal |\n|---|---:|---:|---|")
    for what, rate, ratio, goal in rows:
        print(f"| {what} | {rate:,.0f} | {ratio:.3f} | {goal} |")


if __name__ == "__main__":
    main()
