"""The server's resident memory across unload/load cycles of every model but the default, each model used between.

An operator who unloads models to make room, or loads them back, expects the memory to follow. This starts
`python -m service` on the shipped repository with repository control on, then for each cycle: one /decode and one
/reconstruct per model (so its batchers exist), unload them all, read the server's RSS, load them all, read it again.
A server that frees an unloaded model gives the memory back after each unload and stays flat across cycles. The
server is started as the other benchmarks start it (benchmarks/serve.py: server, pinned to the server core).
With --before REF, REF's server (a git worktree) runs the same cycles afterwards, for a same-run comparison.
Usage: python benchmarks/unload_memory.py [--cycles 5] [--repository models] [--before REF]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import free_port, server, worktree  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY = "unload-memory-benchmark-key"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def settled_rss(pid: int) -> float:
    """RSS once the server has had a moment to drain and free (retired batchers stop within tens of ms)."""
    time.sleep(1.0)
    return rss_mib(pid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--repository", type=Path, default=ROOT / "models")
    ap.add_argument("--before", default="", help="a git ref whose server runs the same cycles afterwards")
    a = ap.parse_args()
    print("this checkout:")
    cycles(ROOT, a.repository.resolve(), a.cycles)
    if a.before:
        print(f"{a.before}:")
        with worktree(a.before) as wt:
            cycles(wt, a.repository.resolve(), a.cycles)


def cycles(checkout: Path, repository: Path, n: int) -> None:
    port = free_port()
    env = {"VAESERVE_MODEL_CONTROL": "true", "VAESERVE_ADMIN_KEY": KEY, "VAESERVE_LOG_LEVEL": "warning",
           "VAESERVE_MODEL_REPOSITORY": str(repository), "VAESERVE_TORCH_THREADS": "1"}
    url, head = f"http://127.0.0.1:{port}", {"x-admin-key": KEY}
    with server([sys.executable, "-m", "service", "--port", str(port)], env, url + "/readyz", cwd=checkout) as proc, \
            httpx.Client(base_url=url, timeout=60) as c:
        listed = c.get("/models").json()["models"]
        default = next(m["name"] for m in listed if m["default"])
        models = {m["name"]: m for m in listed if not m["default"]}
        print(f"server pid {proc.pid}; cycling {len(models)} models (all but the default {default})")
        print("cycle  RSS after load (MiB)  RSS after unload (MiB)")
        for cycle in range(n):
            for name, m in models.items():
                labels = {"labels": [3]} if m.get("num_classes") else {}
                for path, body in [("/decode", {"z": [[0.1] * m["latent_dim"]]}),
                                   ("/reconstruct", {"images": [{"pixels": [[0.5] * 28] * 28}]})]:
                    r = c.post(path, json={"model": name, **body, **labels})
                    assert r.status_code == 200, (name, path, r.text)
            loaded = settled_rss(proc.pid)
            for name in models:
                assert c.post(f"/v2/repository/models/{name}/unload", headers=head).status_code == 200
            unloaded = settled_rss(proc.pid)
            for name in models:
                assert c.post(f"/v2/repository/models/{name}/load", headers=head).status_code == 200
            print(f"{cycle + 1:5d}  {loaded:21.1f}  {unloaded:22.1f}")


if __name__ == "__main__":
    main()
