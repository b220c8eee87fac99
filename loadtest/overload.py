"""Overload and soak runs against a live server (issue: reliability). Prints JSON figures.

  overload: measure capacity (closed loop, c=64), then --burst-concurrency closed-loop clients (8x) for --seconds;
            excess must get 429 + Retry-After at once, accepted requests keep a bounded p99, /healthz
            keeps answering, and the server is back to normal within seconds after the burst.
  soak:     --soak-concurrency clients for --seconds in 60 s windows; memory growth, errors, latency drift.

  python loadtest/overload.py overload --url http://127.0.0.1:8000 --seconds 30
  python loadtest/overload.py soak --url http://127.0.0.1:8000 --seconds 600 --pid SERVER_PID
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from loadgen import measure  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def probe_health(url: str, stop: threading.Event, out: list[tuple[int, float]]) -> None:
    with httpx.Client(timeout=10) as c:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                code = c.get(url).status_code
            except httpx.HTTPError:
                code = 0
            out.append((code, time.perf_counter() - t0))
            time.sleep(0.5)


def q(xs: list[float], p: float) -> float | None:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p * len(xs)))] * 1e3, 2) if xs else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["overload", "soak"])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--pid", type=int, default=0, help="server pid, for resident memory (soak)")
    p.add_argument("--burst-concurrency", type=int, default=512, help="closed-loop clients in the burst")
    p.add_argument("--soak-concurrency", type=int, default=4, help="closed-loop clients in the soak")
    a = p.parse_args()
    body = json.dumps({"z": [[0.1] * a.latent_dim]}).encode()
    url = a.url + "/decode"
    cap = measure(url, body, 64, 5)
    report: dict = {"capacity_rps_c64": round(cap.rps), "capacity_p99_ms": q(cap.ok_latencies, .99)}
    health: list[tuple[int, float]] = []
    stop = threading.Event()
    prober = threading.Thread(target=probe_health, args=(a.url + "/healthz", stop, health), daemon=True)
    prober.start()
    if a.mode == "overload":
        burst = measure(url, body, a.burst_concurrency, a.seconds)
        report["burst"] = {"clients": a.burst_concurrency, "offered_vs_c64": a.burst_concurrency / 64,
                           "answered_rps": round(burst.rps), "status": {str(k): v for k, v in burst.statuses.items()},
                           "ok_rps": round(len(burst.ok_latencies) / burst.seconds),
                           "ok_p50_ms": q(burst.ok_latencies, .5), "ok_p99_ms": q(burst.ok_latencies, .99)}
        time.sleep(2)
        after = measure(url, body, 1, 3)
        report["after_burst_c1"] = {"p50_ms": q(after.ok_latencies, .5), "status": after.statuses}
    else:
        rss0 = rss_mb(a.pid) if a.pid else None
        windows = []
        for _ in range(max(1, int(a.seconds // 60))):
            w = measure(url, body, a.soak_concurrency, 60)
            windows.append({"rps": round(w.rps), "status": {str(k): v for k, v in w.statuses.items()},
                            "p50_ms": q(w.ok_latencies, .5), "p99_ms": q(w.ok_latencies, .99),
                            "rss_mb": round(rss_mb(a.pid), 1) if a.pid else None})
            print(json.dumps(windows[-1]), flush=True)
        report.update(load_vs_capacity=round(windows[0]["rps"] / cap.rps, 2), rss_start_mb=rss0, windows=windows)
        if rss0:
            report["rss_growth_pct"] = round(100 * (windows[-1]["rss_mb"] / rss0 - 1), 2)
    stop.set()
    prober.join()
    report["health"] = {"probes": len(health), "ok": sum(1 for c, _ in health if c == 200),
                        "max_ms": round(max((t for _, t in health), default=0) * 1e3, 1)}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
