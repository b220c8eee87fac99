"""Mixed traffic on one model: bulk clients and interactive clients at once, against bulk alone, same run.

The server runs with default settings on core 0; this load generator on core 1 runs, in one event loop,
`--bulk` clients looping `/sample` n=`--n` as .npy and `--interactive` clients sending single-row `/decode`,
all on the same model (the default: vae-flow-z20). Then the bulk clients alone. Prints interactive latency,
refusals, and bulk images/s with and without the interactive clients.
Bars of the mixed-traffic issue (2-core CPU, default model): interactive p99 <= 250 ms with none refused;
bulk images/s >= 0.7x its rate alone.
Usage: python benchmarks/mixed.py [--seconds 20] [--model vae-flow-z20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import Result, run  # noqa: E402
from serve import ROOT, free_port, server, torch_meta  # noqa: E402

CLIENT_CORE = 1


async def both(url: str, bulk_body: bytes, inter_body: bytes, a: argparse.Namespace) -> tuple[Result, Result]:
    return await asyncio.gather(
        run(url + "/sample", bulk_body, a.bulk, a.seconds, accept="application/x-npy"),
        run(url + "/decode", inter_body, a.interactive, a.seconds))


def line(name: str, r: Result, rows: int) -> str:
    refused = sum(v for k, v in r.statuses.items() if k != 200)
    return (f"| {name} | {r.rps:.1f} | {r.rps * rows:.0f} | {r.quantile(.5) * 1e3:.1f} | {r.quantile(.99) * 1e3:.1f} "
            f"| {r.quantile(1.0) * 1e3:.1f} | {refused} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vae-flow-z20")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--bulk", type=int, default=2, help="bulk clients")
    p.add_argument("--interactive", type=int, default=4, help="interactive clients")
    p.add_argument("--n", type=int, default=1024, help="rows per bulk request")
    p.add_argument("--repository", type=Path, default=ROOT / "models")
    a = p.parse_args()
    os.sched_setaffinity(0, {CLIENT_CORE})
    ckpt = sorted((a.repository / a.model).iterdir(), key=lambda d: int(d.name))[-1] / "model.ts"
    m = json.loads(torch_meta(ckpt))["latent_dim"]
    port = free_port()
    env = {"VAESERVE_PORT": str(port), "VAESERVE_MODEL_REPOSITORY": str(a.repository),
           "VAESERVE_DEFAULT_MODEL": a.model, "VAESERVE_LOG_LEVEL": "warning"}
    url = f"http://127.0.0.1:{port}"
    bulk_body = json.dumps({"n": a.n, "seed": 1}).encode()
    inter_body = json.dumps({"z": [[0.1] * m]}).encode()
    with server([sys.executable, "-m", "service"], env, url + "/readyz"):
        bulk_mixed, inter = asyncio.run(both(url, bulk_body, inter_body, a))
        bulk_alone = asyncio.run(run(url + "/sample", bulk_body, a.bulk, a.seconds, accept="application/x-npy"))
    print(f"\nmodel {a.model}, default settings; server on core {0}, load on core {CLIENT_CORE}; "
          f"{a.bulk} bulk clients (/sample n={a.n} .npy), {a.interactive} interactive (/decode 1 row); "
          f"{a.seconds:.0f} s each\n")
    print("| scenario | req/s | rows/s | p50 ms | p99 ms | max ms | refused |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(line("interactive /decode, beside bulk", inter, 1))
    print(line("bulk /sample, beside interactive", bulk_mixed, a.n))
    print(line("bulk /sample, alone", bulk_alone, a.n))
    ratio = bulk_mixed.rps / bulk_alone.rps if bulk_alone.rps else float("nan")
    refused = sum(v for k, v in inter.statuses.items() if k != 200)
    print(f"\n- interactive p99 (<= 250 ms, none refused): **{inter.quantile(.99) * 1e3:.0f} ms**, {refused} refused")
    print(f"- bulk images/s beside interactive vs alone (>= 0.7): **{ratio:.2f}**")
    return 0


if __name__ == "__main__":
    sys.exit(main())
