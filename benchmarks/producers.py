"""Bulk producers beside interactive callers, with the project's own VaeClient (retries 429/503 five times,
honouring Retry-After), against one server on core 0 with default settings; clients on core 1, in threads.

  A  two workers looping sample(n=--n)                                  -> the bulk rate alone
  B  --workers workers looping sample(n=--n), beside four single-row    -> failed requests, bulk rate / A's,
     decode clients                                                        interactive p99 and refusals
  C  --crowd workers, one sample(n=--n) each, all at once                -> 429s answered, requests that failed
Goals (issue "Bulk producers never fail"): B 0 failed, rate >= 0.95x A's, interactive p99 <= 100 ms with none
refused; C every request finishes (its 429s' Retry-After honoured).
Usage: python benchmarks/producers.py [--seconds 20] [--workers 12] [--crowd 100] [--n 4096]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from serve import ROOT, free_port, server  # noqa: E402

from vaeclient import VaeClient, VaeServeError  # noqa: E402

CLIENT_CORE = 1


def loop(url: str, seconds: float, work, out: dict[str, list]) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    with VaeClient(url, max_connections=2) as c:
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                rows = work(c)
                out["ok"].append((time.perf_counter() - t0, rows))
            except (VaeServeError, httpx.HTTPError) as exc:
                out["failed"].append(str(exc)[:200])


def phase(url: str, seconds: float, bulk: int, interactive: int, n: int) -> tuple[dict, dict, float]:
    b: dict[str, list] = {"ok": [], "failed": []}
    i: dict[str, list] = {"ok": [], "failed": []}
    z = np.zeros((1, 20), np.float32)
    threads = [threading.Thread(target=loop, args=(url, seconds, lambda c: len(c.sample(n)), b))
               for _ in range(bulk)]
    threads += [threading.Thread(target=loop, args=(url, seconds, lambda c: len(c.decode(z)), i))
                for _ in range(interactive)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return b, i, time.monotonic() - t0


def rejections(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith('vaeserve_rejections_total{reason="queue_full"}'))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--workers", type=int, default=12)
    p.add_argument("--crowd", type=int, default=100)
    p.add_argument("--n", type=int, default=4096)
    a = p.parse_args()
    os.sched_setaffinity(0, {CLIENT_CORE})
    port = free_port()
    env = {"VAESERVE_PORT": str(port), "VAESERVE_GRPC_PORT": "0", "VAESERVE_LOG_LEVEL": "warning",
           "VAESERVE_MODEL_REPOSITORY": str(ROOT / "models")}
    url = f"http://127.0.0.1:{port}"
    with server([sys.executable, "-m", "service"], env, url + "/readyz"):
        alone, _, ta = phase(url, a.seconds, 2, 0, a.n)
        before = rejections(url)
        mixed, inter, tb = phase(url, a.seconds, a.workers, 4, a.n)
        refused_b = rejections(url) - before
        crowd: dict[str, list] = {"ok": [], "failed": []}

        def once(c: VaeClient) -> None:
            t0 = time.perf_counter()
            try:
                crowd["ok"].append((time.perf_counter() - t0, len(c.sample(a.n))))
            except (VaeServeError, httpx.HTTPError) as exc:
                crowd["failed"].append(str(exc)[:200])

        before = rejections(url)
        clients = [VaeClient(url, max_connections=1) for _ in range(a.crowd)]
        threads = [threading.Thread(target=once, args=(c,)) for c in clients]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        tc = time.monotonic() - t0
        refused_c = rejections(url) - before
        for c in clients:
            c.close()
    rate_a = sum(r for _, r in alone["ok"]) / ta
    rate_b = sum(r for _, r in mixed["ok"]) / tb
    lat = sorted(t for t, _ in inter["ok"])
    p99 = lat[int(0.99 * (len(lat) - 1))] * 1000 if lat else float("nan")
    print(f"\nserver on core 0 (defaults), clients on core 1; n={a.n}; {a.seconds:.0f} s per phase\n")
    print("| phase | requests ok | failed | 429s answered (retried) | images/s | interactive p99 ms | "
          "interactive failed |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| A: 2 bulk workers | {len(alone['ok'])} | {len(alone['failed'])} | | {rate_a:.0f} | | |")
    print(f"| B: {a.workers} bulk workers + 4 single-row | {len(mixed['ok'])} | {len(mixed['failed'])} | "
          f"{refused_b:.0f} | {rate_b:.0f} | {p99:.1f} | {len(inter['failed'])} |")
    print(f"| C: {a.crowd} workers at once, one request each | {len(crowd['ok'])} | {len(crowd['failed'])} | "
          f"{refused_c:.0f} | {sum(r for _, r in crowd['ok']) / tc:.0f} | | |")
    print(f"\n- B bulk rate vs A: **{rate_b / rate_a:.2f}** (goal >= 0.95); B failed: **{len(mixed['failed'])}**; "
          f"interactive p99 **{p99:.1f} ms**, refused or failed **{len(inter['failed'])}**")
    print(f"- C: **{len(crowd['ok'])}/{a.crowd}** finished in {tc:.1f} s, {refused_c:.0f} answers were 429")
    for msg in (mixed["failed"] + crowd["failed"])[:3]:
        print("  failure:", msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
