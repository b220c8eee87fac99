"""Bulk labelled digits: /sample n=10000 labels="balanced" as .npz, against the raw TorchScript decode of the
same 10,000 (z, label) rows, measured in the same run with the same single core.

The server runs pinned to core 0 with one torch thread; this process, the client, on core 1.
Usage: python benchmarks/labelled.py [--model cvae-z20] [--repeats 6]

--rate: the synthetic-data producer's rate instead: two clients looping /sample n=1024 labels="balanced" uint8
.npy for --seconds each (and, with --sharpness S, the same sharpened), against the default unconditional model's
/sample n=1024 uint8 .npy in the same run (the conditional model's cost beside the cheapest sampler the server has).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import CLIENT_CORE, ROOT, SERVER_CORE, free_port, server, torch_meta  # noqa: E402

ROWS = 10000


def raw_rate(checkpoint: Path, chunk: int, repeats: int = 5) -> float:
    """Images/s of module.decode on 10,000 latents with balanced labels, `chunk` rows per call, one thread,
    on the server core."""
    m = json.loads(torch_meta(checkpoint))["latent_dim"]
    code = f"""
import os, time, torch
os.sched_setaffinity(0, {{{SERVER_CORE}}}); torch.set_num_threads(1)
mod = torch.jit.load({str(checkpoint)!r}).eval()
z, y = torch.randn({ROWS}, {m}), torch.arange({ROWS}) % 10
with torch.inference_mode():
    mod.decode(z[:{chunk}], y[:{chunk}])
    t = time.perf_counter()
    for _ in range({repeats}):
        for i in range(0, {ROWS}, {chunk}): mod.decode(z[i:i + {chunk}], y[i:i + {chunk}])
print({ROWS} * {repeats} / (time.perf_counter() - t))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return float(out.stdout.strip().splitlines()[-1])


def rate(url: str, body: dict[str, object], seconds: float, clients: int = 2) -> tuple[float, int]:
    """Images/s of closed-loop clients posting `body` for `seconds` (uint8 .npy answers), and the non-200 count."""
    import threading

    done, bad, stop = [0], [0], time.perf_counter() + seconds
    lock = threading.Lock()

    def loop() -> None:
        with httpx.Client(timeout=120) as http:
            while time.perf_counter() < stop:
                r = http.post(url, json=body, headers={"accept": "application/x-npy"})
                with lock:
                    if r.status_code == 200 and np.load(io.BytesIO(r.content)).shape[0] == body["n"]:
                        done[0] += int(body["n"])  # type: ignore[call-overload]
                    else:
                        bad[0] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.perf_counter() - t0), bad[0]


def main_rate(a: argparse.Namespace) -> int:
    port = free_port()
    env = {"VAESERVE_PORT": str(port), "VAESERVE_MODEL_REPOSITORY": str(a.repository), "VAESERVE_GRPC_PORT": "0",
           "VAESERVE_TORCH_THREADS": "1", "VAESERVE_LOG_LEVEL": "warning"}
    url = f"http://127.0.0.1:{port}/sample"
    with server([sys.executable, "-m", "service"], env, f"http://127.0.0.1:{port}/readyz"):
        rows = []
        runs = [(a.model, "balanced", 1.0)] + ([(a.model, "balanced", a.sharpness)] if a.sharpness != 1.0 else [])
        for model, labels, sharp in runs + [(a.baseline, None, 1.0)]:
            body = {"model": model, "n": 1024, "dtype": "uint8", "seed": 1, **({"labels": labels} if labels else {}),
                    **({"sharpness": sharp} if sharp != 1.0 else {})}
            rate(url, body, 2.0)  # warm-up
            rows.append((f"{model}" + (f", sharpness {sharp:g}" if sharp != 1.0 else ""), *rate(url, body, a.seconds)))
    for model, images_s, bad in rows:
        print(f"| {model} | /sample n=1024 uint8 .npy, 2 clients | {images_s:,.0f} images/s | non-200 {bad} |")
    for model, images_s, _ in rows[:-1]:
        print(f"{model}: ratio {images_s / rows[-1][1]:.2f} of {a.baseline}'s rate")
    return 0 if all(bad == 0 for *_, bad in rows) else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cvae-z20")
    p.add_argument("--repository", type=Path, default=ROOT / "models")
    p.add_argument("--repeats", type=int, default=6, help="sequential requests timed (after one warm-up)")
    p.add_argument("--rate", action="store_true", help="two clients, n=1024 uint8 .npy, against --baseline")
    p.add_argument("--baseline", default="vae-flow-z20", help="the unconditional model --rate compares with")
    p.add_argument("--seconds", type=float, default=15.0, help="--rate: seconds per model")
    p.add_argument("--sharpness", type=float, default=1.0,
                   help="--rate: also the conditional model with this /sample sharpness (sharpened before uint8)")
    a = p.parse_args()
    os.sched_setaffinity(0, {CLIENT_CORE})
    if a.rate:
        return main_rate(a)
    versions = sorted((a.repository / a.model).iterdir(), key=lambda d: int(d.name) if d.name.isdigit() else -1)
    # The baseline is the best of several chunkings: one 10,000-row call is slower than 64-256-row calls
    # (cache), and the server itself decodes in batches of at most max_batch_rows (256 by default).
    raw = max(raw_rate(versions[-1] / "model.ts", chunk) for chunk in (64, 128, 256, ROWS))
    port = free_port()
    env = {"VAESERVE_PORT": str(port), "VAESERVE_MODEL_REPOSITORY": str(a.repository),
           "VAESERVE_DEFAULT_MODEL": a.model, "VAESERVE_TORCH_THREADS": "1", "VAESERVE_LOG_LEVEL": "warning",
           "VAESERVE_REQUEST_TIMEOUT_S": "120"}
    body = {"n": ROWS, "labels": "balanced", "seed": 1}
    times, bad = [], 0
    with server([sys.executable, "-m", "service"], env, f"http://127.0.0.1:{port}/readyz"), \
            httpx.Client(timeout=120) as http:
        for i in range(a.repeats + 1):  # requests one after another: a 2-second answer has no useful overlap
            t0 = time.perf_counter()
            r = http.post(f"http://127.0.0.1:{port}/sample", json=body, headers={"accept": "application/x-npz"})
            if i:
                times.append(time.perf_counter() - t0)
            bad += r.status_code != 200
            if r.status_code == 200 and i == 0:
                npz = np.load(io.BytesIO(r.content))
                assert npz["images"].shape == (ROWS, 28, 28)
                assert np.bincount(npz["labels"]).tolist() == [ROWS // 10] * 10
    served = ROWS / statistics.median(times)
    print(f"| {a.model} | raw decode {raw:,.0f} images/s | served .npz {served:,.0f} images/s (median of {len(times)}, "
          f"{statistics.median(times):.2f} s each, non-200 {bad}) | ratio {served / raw:.2f} |")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
