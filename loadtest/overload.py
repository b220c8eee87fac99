"""Overload and soak runs against a live server (issue: reliability). Prints JSON figures.

  overload: measure capacity (closed loop, c=64), then offer 5x that rate open-loop for --seconds;
            excess must get 429 + Retry-After at once, accepted requests keep a bounded p99, /healthz
            keeps answering, and the server is back to normal within seconds after the burst.
  soak:     offer 70 % of capacity for --seconds; resident memory growth, errors and latency drift.

  python loadtest/overload.py overload --url http://127.0.0.1:8000 --seconds 30
  python loadtest/overload.py soak --url http://127.0.0.1:8000 --seconds 600 --pid SERVER_PID
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
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


async def open_loop(url: str, body: dict, rate: float, seconds: float, health: str) -> dict:
    """Send `rate` requests/s regardless of answers; record status, latency; probe health every 0.5 s."""
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=500)
    out: dict = {"status": {}, "lat_ok": [], "retry_after": 0, "health": []}
    async with httpx.AsyncClient(limits=limits, timeout=30) as c:
        async def one() -> None:
            t0 = time.perf_counter()
            try:
                r = await c.post(url, json=body)
            except httpx.HTTPError as exc:
                out["status"][type(exc).__name__] = out["status"].get(type(exc).__name__, 0) + 1
                return
            out["status"][r.status_code] = out["status"].get(r.status_code, 0) + 1
            if r.status_code == 200:
                out["lat_ok"].append(time.perf_counter() - t0)
            elif r.status_code == 429 and "retry-after" in r.headers:
                out["retry_after"] += 1

        async def probe() -> None:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                try:
                    code = (await c.get(health)).status_code
                except httpx.HTTPError:
                    code = 0
                out["health"].append((code, time.perf_counter() - t0))
                await asyncio.sleep(0.5)

        tasks = [asyncio.create_task(probe())]
        start = time.perf_counter()
        i = 0
        while (now := time.perf_counter()) < start + seconds:
            target = int((now - start) * rate)
            while i < target:
                tasks.append(asyncio.create_task(one()))
                i += 1
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)
    lat = sorted(out["lat_ok"])
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3, 1) if lat else None  # noqa: E731
    return {"offered_rps": rate, "sent": i, "status": {str(k): v for k, v in out["status"].items()},
            "ok_p50_ms": q(.5), "ok_p99_ms": q(.99), "429_with_retry_after": out["retry_after"],
            "health_ok": sum(1 for c, _ in out["health"] if c == 200), "health_probes": len(out["health"]),
            "health_max_ms": round(max((t for _, t in out["health"]), default=0) * 1e3, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["overload", "soak"])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--pid", type=int, default=0, help="server pid, for resident memory (soak)")
    a = p.parse_args()
    body = {"z": [[0.1] * a.latent_dim]}
    cap = measure(a.url + "/decode", json.dumps(body).encode(), 64, 5).rps
    report: dict = {"capacity_rps": round(cap)}
    if a.mode == "overload":
        report["burst"] = asyncio.run(open_loop(a.url + "/decode", body, 5 * cap, a.seconds, a.url + "/healthz"))
        time.sleep(2)
        after = measure(a.url + "/decode", json.dumps(body).encode(), 1, 3)
        report["after_burst_c1_p50_ms"] = round(after.quantile(.5) * 1e3, 2)
        report["after_burst_status"] = {str(k): v for k, v in after.statuses.items()}
    else:
        rss0 = rss_mb(a.pid) if a.pid else None
        windows = []
        per = 60.0
        for _ in range(max(1, int(a.seconds // per))):
            w = asyncio.run(open_loop(a.url + "/decode", body, 0.7 * cap, per, a.url + "/healthz"))
            w["rss_mb"] = round(rss_mb(a.pid), 1) if a.pid else None
            windows.append({k: w[k] for k in ("status", "ok_p50_ms", "ok_p99_ms", "rss_mb")})
            print(json.dumps(windows[-1]), flush=True)
        report.update(rss_start_mb=rss0, windows=windows)
        if rss0:
            report["rss_growth_pct"] = round(100 * (windows[-1]["rss_mb"] / rss0 - 1), 2)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
