"""Several worker processes on one machine: uvicorn --workers with the ASGI factory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.service.conftest import ROOT, free_port


def test_uvicorn_workers_serve_with_the_factory(tiny_repo: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "VAESERVE_MODEL_REPOSITORY": str(tiny_repo), "VAESERVE_DEFAULT_MODEL": "vae-z4",
           "VAESERVE_TORCH_THREADS": "1", "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "uvicorn.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app", "--workers", "2",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        codes = set()
        for i in range(40):  # new connections, spread over both workers by the kernel
            codes.add(httpx.post(url + "/sample", json={"n": 2, "seed": i}, timeout=10).status_code)
        assert codes == {200}
        assert (tmp_path / "uvicorn.log").read_text().count("Application startup complete") == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
