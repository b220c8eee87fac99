"""API fuzzing with schemathesis against our own OpenAPI schema, on a live server: no 5xx, and every
answer matches the schema."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_schemathesis_no_5xx_and_answers_match_schema(server: tuple[str, subprocess.Popen], tmp_path: Path) -> None:
    st = shutil.which("st") or str(Path(sys.executable).parent / "st")
    if not Path(st).exists():
        pytest.fail("schemathesis is a dev dependency: run bash scripts/setup.sh --tests")
    url, _ = server
    # Every check but positive_data_acceptance (schema-valid bodies may still be refused on purpose: a latent
    # vector of the wrong length for the model, labels on an unconditional model, pixels of a bad PNG).
    cmd = [st, "run", f"{url}/openapi.json", "--checks", "all", "--exclude-checks", "positive_data_acceptance",
           "--max-examples", "70",
           "--workers", "2", "--phases", "examples,coverage,fuzzing", "--seed", "1", "--no-color"]
    # A body over max_body_bytes is refused with 413 before it is read: a rejection like 422, not an acceptance.
    (tmp_path / "schemathesis.toml").write_text(
        '[checks.negative_data_rejection]\nexpected-statuses = ["400", "401", "404", "408", "413", "422", "429"]\n')
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = out.stdout[out.stdout.rfind("SUMMARY"):]
    # Any "Failures:" entry is a 5xx or an answer outside the OpenAPI schema (body, status, content type,
    # headers). Schemathesis may also report its own generator errors ("Runtime Error"): not the server's.
    assert "Failures:" not in summary and "Server error" not in out.stdout, summary
    generated = re.search(r"(\d+) generated", summary)
    assert generated and int(generated.group(1)) >= 1000, summary
