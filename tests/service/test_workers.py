"""Several worker processes on one machine: uvicorn --workers with the ASGI factory."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, launch
from tests.service.test_e2e import load_then_sigterm


def test_uvicorn_workers_serve_with_the_factory(tiny_repo: Path, tmp_path: Path) -> None:
    url, proc = launch(["-m", "uvicorn", "--factory", "service.app:create_app", "--workers", "2",
                        "--port", "{port}"], tiny_repo,
                       tmp_path / "uvicorn.log", VAESERVE_TORCH_THREADS="1")
    try:
        codes = set()
        for i in range(40):  # new connections, spread over both workers by the kernel
            codes.add(httpx.post(url + "/sample", json={"n": 2, "seed": i}, timeout=10).status_code)
        assert codes == {200}
        assert (tmp_path / "uvicorn.log").read_text().count("Application startup complete") == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _worker_pids(parent: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def _kill_a_worker(parent: int, log: Path) -> int:
    """SIGKILL one worker (not multiprocessing's resource tracker) and wait until the parent says it restarts it."""
    workers = _worker_pids(parent)
    assert len(workers) >= 2
    victim = next(p for p in workers if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()
                  and "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text())
    os.kill(victim, signal.SIGKILL)
    deadline = time.time() + 30
    while "restarting it" not in log.read_text() and time.time() < deadline:
        time.sleep(0.2)
    return victim


def _ready_workers(url: str) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail("workers not ready again")


def test_two_workers_share_both_doors_add_their_metrics_restart_and_drain(tiny_repo: Path, tmp_path: Path) -> None:
    """--workers 2 with gRPC on: both answer on both doors, one scrape counts both (and one statistics call), a
    killed worker is restarted (and said so), readiness needs both, and SIGTERM under load loses no request."""
    import numpy as np
    import tritonclient.grpc as grpcclient

    grpc_port = free_port()
    log = tmp_path / "workers.log"
    url, proc = launch(["-m", "service", "--workers", "2"], tiny_repo, log, VAESERVE_GRPC_PORT=str(grpc_port),
                       VAESERVE_TORCH_THREADS="1")
    try:
        for i in range(30):  # new connections, spread over the two workers by the kernel
            r = httpx.post(url + "/sample", json={"n": 2, "seed": i}, timeout=10)
            assert r.status_code == 200
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        for _ in range(10):
            z = grpcclient.InferInput("z", [3, 4], "FP32")
            z.set_data_from_numpy(np.zeros((3, 4), np.float32))
            assert client.infer("vae-z4-decoder", [z]).as_numpy("x").shape == (3, 1, 28, 28)
        for _ in range(6):  # whichever worker answers the scrape, it counts both workers' requests
            text = httpx.get(url + "/metrics", timeout=10).text
            assert 'vaeserve_requests_total{route="/sample",status="200"} 30.0' in text
            assert 'route="/inference.GRPCInferenceService/ModelInfer",status="200"} 10.0' in text
        infer = {"inputs": [{"name": "z", "shape": [1, 4], "datatype": "FP32", "data": [0.0] * 4}]}
        for _ in range(20):  # the protocol over HTTP, new connections: both workers answer some
            assert httpx.post(url + "/v2/models/vae-z4-decoder/infer", json=infer, timeout=10).status_code == 200
        time.sleep(0.5)  # each worker publishes its statistics every 0.1 s
        for _ in range(6):  # Triton's statistics, whichever worker answers: both workers' inferences
            stats = httpx.get(url + "/v2/models/vae-z4-decoder/stats", timeout=10).json()["model_stats"]
            assert sum(m["inference_stats"]["success"]["count"] for m in stats) == 30
            assert sum(m["inference_count"] for m in stats) == 10 * 3 + 20
        victim = _kill_a_worker(proc.pid, log)
        assert "restarting it" in log.read_text()
        _ready_workers(url)
        assert victim not in _worker_pids(proc.pid)

        # clients post until told `Connection: close` (a balancer's client goes elsewhere then) or refused
        results, errors = load_then_sigterm(url, proc, clients=16, after_s=1.5, body={"n": 8})
        assert not errors, errors[:5]
        assert results.count(200) > 0 and set(results) <= {200, 503}
    finally:
        if proc.poll() is None:
            proc.kill()


def test_repository_control_reaches_every_worker(tiny_repo: Path, tmp_path: Path) -> None:
    """--workers 2 with repository control: an unload answered by one worker is applied by both before the answer
    (every later request, whichever worker takes it, is refused), a worker restarted afterwards replays it, and a
    load brings the model back on both."""
    key = {"x-admin-key": "workers-admin-key-0123456789"}
    log = tmp_path / "workers.log"
    url, proc = launch(["-m", "service", "--workers", "2"], tiny_repo, log, VAESERVE_TORCH_THREADS="1",
                       VAESERVE_MODEL_CONTROL="true", VAESERVE_ADMIN_KEY=key["x-admin-key"])

    def codes(n: int = 24) -> set[int]:  # new connections, spread over the two workers by the kernel
        return {httpx.post(url + "/decode", json={"model": "vae-z2", "z": [[0.1, 0.2]]}, timeout=10).status_code
                for _ in range(n)}

    try:
        assert codes() == {200}
        r = httpx.post(url + "/v2/repository/models/vae-z2/unload", headers=key, timeout=60)
        assert r.status_code == 200 and r.json()["workers"] == {"applied": 2, "ready": 2}
        assert codes() == {404}
        _kill_a_worker(proc.pid, log)
        _ready_workers(url)
        assert codes() == {404}  # the new worker replayed the unload before it served
        r = httpx.post(url + "/v2/repository/models/vae-z2/load", headers=key, timeout=60)
        assert r.status_code == 200
        assert codes() == {200}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
