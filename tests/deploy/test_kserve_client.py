"""KServe's own clients (InferenceRESTClient v2 and InferenceGRPCClient, kserve 0.21.0, unmodified) against a live
server on the shipped models: scripts/check_kserve_client.py, run from the venv scripts/setup.sh --tests makes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port, launch

KSERVE_PYTHON = ROOT / ".venv-kserve" / "bin" / "python"


def test_kserve_rest_and_grpc_clients(tmp_path: Path) -> None:
    if not KSERVE_PYTHON.exists():
        pytest.skip("no .venv-kserve (bash scripts/setup.sh --tests makes it): KServe's clients not run")
    grpc_port = free_port()
    url, proc = launch(["-m", "service"], ROOT / "models", tmp_path / "server.log",
                       VAESERVE_DEFAULT_MODEL="vae-flow-z20", VAESERVE_GRPC_PORT=str(grpc_port))
    try:
        out = subprocess.run([str(KSERVE_PYTHON), str(ROOT / "scripts" / "check_kserve_client.py"), url,
                              f"127.0.0.1:{grpc_port}"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "KServe REST client: all checks passed" in out.stdout
        assert "KServe gRPC client: all checks passed" in out.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=30)
