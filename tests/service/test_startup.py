"""Settings that speak up: flags and variables from one source, unknown variables named with the closest real one,
bad values stopped in a few lines, an explicit default model that is absent refused, an unset one chosen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.__main__ import main
from service.settings import Settings
from service.startup import check_default_model, load_settings, unknown_variables
from tests.helpers import ROOT


def test_help_lists_every_setting_as_a_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for field in Settings.model_fields:
        assert "--" + field.replace("_", "-") in out, field


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAESERVE_PORT", "8100")
    s = load_settings(["--port", "9000", "--model-repository", "runs/models", "--channels-last"])
    assert s.port == 9000 and s.model_repository == Path("runs/models") and s.channels_last
    assert load_settings([]).port == 8100


def test_an_unknown_flag_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        load_settings(["--prot", "9000"])
    assert refused.value.code == 2 and "--prot" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "meant"), [("VAESERVE_MODEL_DIR", "VAESERVE_MODEL_REPOSITORY"),
                                             ("VAESERVE_DEFAULT_MODLE", "VAESERVE_DEFAULT_MODEL"),
                                             ("VAESERVE_MAXROWS", "VAESERVE_MAX_ROWS")])
def test_an_unknown_variable_is_named_with_the_closest_setting(name: str, meant: str) -> None:
    (line,) = unknown_variables({name: "x", "VAESERVE_PORT": "1", "VAESERVE_URL": "http://x", "HOME": "/"})
    assert line == f"{name} is not a setting; did you mean {meant}?"
    assert unknown_variables({"VAESERVE_XYZZY": "1"}) == [
        "VAESERVE_XYZZY is not a setting; python -m service --help lists them"]


def test_what_a_workers_parent_hands_its_workers_is_not_reported_as_unknown() -> None:
    """`--workers N` gives each worker VAESERVE_PEERS_DIR; every worker used to warn that it was not a setting."""
    from service.shared import PEERS_ENV

    assert unknown_variables({PEERS_ENV: "/tmp/peers", "VAESERVE_URL": "http://x"}) == []


def test_a_bad_value_stops_the_start_in_a_few_lines_that_name_it() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "VAESERVE_DEVICE": "gpu", "VAESERVE_MODEL_DIR": "x"}
    proc = subprocess.run([sys.executable, "-m", "service", "--port", "abc"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    err = proc.stderr
    assert "Traceback" not in err and len(err.splitlines()) <= 5, err
    assert "VAESERVE_MODEL_DIR is not a setting; did you mean VAESERVE_MODEL_REPOSITORY?" in err
    assert "VAESERVE_DEVICE (flag --device) = 'gpu'" in err and "auto | cpu | cuda" in err
    assert "VAESERVE_PORT (flag --port) = 'abc'" in err and ">= 1, <= 65535" in err


def test_an_explicit_default_model_that_is_absent_refuses_to_start(tiny_repo: Path) -> None:
    check_default_model(Settings(model_repository=tiny_repo, default_model="vae-z4"))
    check_default_model(Settings(model_repository=tiny_repo))  # unset: chosen at load
    with pytest.raises(SystemExit) as refused:
        check_default_model(Settings(model_repository=tiny_repo, default_model="nope"))
    msg = str(refused.value)
    assert len(msg.splitlines()) == 1 and "VAESERVE_DEFAULT_MODEL" in msg and "'nope'" in msg and "vae-z4" in msg


def test_an_unset_default_is_the_newest_generative_model(tiny_repo: Path) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(Settings(model_repository=tiny_repo, grpc_port=0))) as c:
        assert c.get("/readyz").status_code == 200
        plane = c.app.state.plane  # type: ignore[attr-defined]
        newest = max((plane.newest(n).stamp[0], n) for n in plane.names() if plane.newest(n).generative)[1]
        assert plane.default_model == newest
        r = c.post("/sample", json={"n": 2, "seed": 1})
        assert r.status_code == 200 and r.json()["model"] == newest
        assert [m["name"] for m in c.get("/models").json()["models"] if m["default"]] == [newest]
