"""Helpers shared by the service's tests: settings over the tiny repository, a free port, a live server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def make_settings(repo: Path, **kw: object) -> Settings:
    kw.setdefault("grpc_port", 0)  # apps in tests serve gRPC only where a test asks for it
    return Settings(model_repository=repo, default_model="vae-z4", **kw)  # type: ignore[arg-type]


@contextmanager
def slow_forwards(app: Any, seconds: float) -> Iterator[None]:
    """Every forward of the app's runtime takes `seconds` longer: requests stay queued long enough to act on them."""
    runtime = app.state.plane._engine.runtime
    real = runtime.run

    def slow(*args: object) -> object:
        time.sleep(seconds)
        return real(*args)

    runtime.run = slow
    try:
        yield
    finally:
        runtime.run = real


def pixels(value: float = 0.5) -> list[list[float]]:
    return [[value] * 28 for _ in range(28)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], repo: Path, log_path: Path, **env: str) -> tuple[str, subprocess.Popen]:
    """Start `python ARGS` serving `repo` on a free port (VAESERVE_PORT, and `{port}` in ARGS); wait for
    /readyz, or fail with the server's log."""
    port = free_port()
    full = {**os.environ, "VAESERVE_MODEL_REPOSITORY": str(repo), "VAESERVE_DEFAULT_MODEL": "vae-z4",
            "VAESERVE_PORT": str(port), "VAESERVE_GRPC_PORT": "0", "PYTHONPATH": str(ROOT), **env}
    log = log_path.open("w")  # a file, not a pipe: a full pipe would block the server
    proc = subprocess.Popen([sys.executable, *(a.format(port=port) for a in args)], cwd=ROOT, env=full,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("server did not become ready: " + log_path.read_text())
