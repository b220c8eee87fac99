"""scripts/deploy-check.sh without Docker (CI has no engine): it parses, says what is missing, exits 2, and still
prints its summary table (the teardown trap runs however the script ends)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/deploy-check.sh"


def test_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_without_docker_it_says_so_and_exits_2(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with the shell tools the script uses, and no docker or dockerd
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "mktemp", "date", "awk", "cat", "sleep", "seq", "timeout", "printf", "rm"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "OUT": str(tmp_path / "out")}
    (tmp_path / "out").mkdir()
    out = subprocess.run([str(bin_dir / "bash"), str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "no Docker engine here (apt-get install docker.io)" in out.stderr
    assert "| check | measured | bound | result |" in out.stdout  # the summary, from the teardown trap
    assert os.path.exists(tmp_path / "out")
