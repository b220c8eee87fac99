"""Several worker processes on one machine: uvicorn --workers with the ASGI factory."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.service.conftest import launch


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
