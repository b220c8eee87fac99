"""Every shipped checkpoint can be traced: a clean commit, and a line of training/train_defaults.sh whose command
stands for exactly the configuration recorded in the file (and is the command the file records, where it does)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from checkpoint import newest, read_meta
from training.__main__ import parse_command, train_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = newest(ROOT / "models")
UNRECORDED = ("command", "extra", "export_command")  # not flags: what was run, and free-form notes
# Where, not what: paths and the device choice change no weight (the data is checked by its digest, data_sha256;
# the device by train_device in metrics.json).
WHERE = ("idx_dir", "data_cache", "runs_dir", "repository", "device")


def _commands() -> dict[str, str]:
    out = subprocess.run(["bash", str(ROOT / "training" / "train_defaults.sh"), "--list"], capture_output=True,
                         text=True, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def _differences(recorded: dict[str, Any], rebuilt: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields the file records that the command would set otherwise (older files record fewer fields)."""
    diff = {}
    for key, value in recorded.items():
        if key in UNRECORDED or key in WHERE or key not in rebuilt:
            continue
        if key == "spec":
            diff |= {f"spec.{k}": (v, rebuilt["spec"].get(k)) for k, v in value.items() if rebuilt["spec"].get(k) != v}
        elif rebuilt[key] != value:
            diff[key] = (value, rebuilt[key])
    return diff


def test_the_script_lists_every_shipped_model_and_nothing_unknown() -> None:
    listed = _commands()
    assert {p.parts[-3] for p in SHIPPED} <= set(listed)
    assert len(SHIPPED) >= 8


@pytest.mark.parametrize("path", SHIPPED, ids=[p.parts[-3] for p in SHIPPED])
def test_shipped_model_is_traceable(path: Path) -> None:
    meta = read_meta(path)
    commit = meta["code_commit"]
    assert len(commit) == 40 and all(c in "0123456789abcdef" for c in commit), f"not a clean commit: {commit}"
    command = _commands()[meta["name"]]
    if meta.get("command"):
        assert meta["command"] == command
    rebuilt = train_config(parse_command(command)).to_json()
    assert _differences(meta["config"], rebuilt) == {}


def test_a_changed_flag_is_caught() -> None:
    meta = read_meta(next(p for p in SHIPPED if p.parts[-3] == "vae-flow-z20"))
    rebuilt = train_config(parse_command(_commands()["vae-flow-z20"] + " --width 256")).to_json()
    assert _differences(meta["config"], rebuilt) == {"spec.width": (512, 256)}


def test_a_fine_tuned_models_starting_file_is_restored_from_git(tmp_path: Path) -> None:
    """A line that fine-tunes (--init-from models/NAME/V/model.ts) names a file models/ may no longer ship: the
    script restores it from the git history, byte for byte, so the line runs from a fresh clone."""
    from checkpoint import read_meta as meta_of

    starts = {name: cmd.split("--init-from ", 1)[1].split()[0] for name, cmd in _commands().items()
              if "--init-from " in cmd}
    assert "vae-flow-z20" in starts  # the default is fine-tuned from v2
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=clone, capture_output=True,
                             text=True, check=True).stdout.strip() == "true"
    for name, start in starts.items():
        (clone / start).unlink(missing_ok=True)
        out = subprocess.run(["bash", "training/train_defaults.sh", "--restore", name], cwd=clone,
                             capture_output=True, text=True)
        if shallow:  # a clone without the history cannot, and says which file it lacks
            assert out.returncode != 0 and start in out.stderr
            continue
        assert out.returncode == 0, out.stderr
        assert meta_of(clone / start)["name"] == name
        assert f"{name} starts from {start}: restored from git" in out.stderr


def test_the_commit_recorded_is_this_codes_wherever_train_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user who trains from their own project (a git repository of its own) gets this checkout's commit in the
    file, not their project's HEAD."""
    from training.export import code_commit

    git = ["git", "-c", "user.email=u@example.com", "-c", "user.name=u"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "theirs"], check=True)
    theirs = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    ours = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    monkeypatch.chdir(tmp_path)
    recorded = code_commit()
    assert recorded.removesuffix("+dirty") == ours != theirs
