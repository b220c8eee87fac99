"""Every example marked `run` in the README and docs/ (```bash run, ```python run) runs as written against a live
server on the shipped models: an example that stops working fails here, not in a reader's terminal.

The only rewrites: the server's address (the examples say localhost:8000 and 127.0.0.1:8001; the test's server
listens on free ports) and `.venv/bin/python` (this interpreter). Each block runs in a fresh directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, launch

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(bash|python) run\s*\n(.*?)^```\s*$", re.M | re.S)


def blocks() -> list[tuple[str, str, str]]:
    """(id, language, code) of every runnable block."""
    out = []
    for page in PAGES:
        text = page.read_text()
        for m in FENCE.finditer(text):
            line = text[: m.start()].count("\n") + 1
            out.append((f"{page.relative_to(ROOT)}:{line}", m.group(1), m.group(2)))
    return out


BLOCKS = blocks()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    grpc_port = free_port()
    url, proc = launch(["-m", "service"], ROOT / "models", tmp_path_factory.mktemp("log") / "server.log",
                       VAESERVE_DEFAULT_MODEL="vae-flow-z20", VAESERVE_GRPC_PORT=str(grpc_port))
    yield url, grpc_port
    proc.terminate()
    proc.wait(timeout=30)


def test_every_page_has_runnable_examples() -> None:
    pages = {b[0].split(":")[0] for b in BLOCKS}
    assert "README.md" in pages and len(BLOCKS) >= 8, pages


@pytest.mark.parametrize(("where", "lang", "code"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_example_runs(where: str, lang: str, code: str, live: tuple[str, int], tmp_path: Path) -> None:
    url, grpc_port = live
    host = url.removeprefix("http://")
    code = (code.replace("http://127.0.0.1:8000", url).replace("http://localhost:8000", url)
            .replace("localhost:8000", host).replace("127.0.0.1:8000", host)
            .replace("127.0.0.1:8001", f"127.0.0.1:{grpc_port}").replace(".venv/bin/python", sys.executable))
    cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VAESERVE_URL": url}  # the synth CLI's default server
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"{where} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr and '"error"' not in proc.stdout, f"{where}:\n{proc.stdout[-2000:]}"


def test_configuration_table_is_the_settings() -> None:
    """The README's configuration table is generated from service/settings.py (scripts/update_docs.py)."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_docs.py"), "--check"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    from service.settings import Settings

    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`VAESERVE_{name.upper()}`" in readme
