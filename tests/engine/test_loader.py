"""The loader refuses files that break the contract, with messages that say why; the runtime splits on OOM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from service.engine.checkpoints import Checkpoint, CheckpointError, load_checkpoint, scan
from service.engine.runtime import Runtime


def copy_with_meta(src: Path, dst: Path, edit) -> Path:
    files = {"meta.json": ""}
    module = torch.jit.load(str(src), _extra_files=files)
    meta = json.loads(files["meta.json"])
    edit(meta, module)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(module, str(dst), _extra_files={"meta.json": json.dumps(meta)})
    return dst


def test_good_checkpoint_loads(tiny_repo: Path) -> None:
    ckpt = load_checkpoint(tiny_repo / "vae-z4" / "2" / "model.ts")
    assert (ckpt.name, ckpt.version, ckpt.latent_dim, ckpt.generative) == ("vae-z4", 2, 4, True)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m, mod: m.update(format=2), "format 2 unsupported"),
    (lambda m, mod: m.update(latent_dim=7), "meta promises (B, 7)"),
    (lambda m, mod: m.pop("latent_dim"), "lacks ['latent_dim']"),
    (lambda m, mod: m.update(weights_sha256="0" * 64), "tampered"),
])
def test_contract_breaking_meta_is_refused(tiny_repo: Path, tmp_path: Path, edit, message: str) -> None:
    bad = copy_with_meta(tiny_repo / "vae-z4" / "1" / "model.ts", tmp_path / "bad" / "1" / "model.ts", edit)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_checkpoint(bad)


def test_a_new_kind_that_meets_the_contract_is_served(tiny_repo: Path, tmp_path: Path) -> None:
    """Capabilities, not a list of kind names: a kind this server has never heard of loads."""
    path = copy_with_meta(tiny_repo / "vae-z4" / "1" / "model.ts", tmp_path / "new" / "1" / "model.ts",
                          lambda m, mod: m.update(kind="flow-vae-from-elsewhere"))
    ckpt = load_checkpoint(path)
    assert ckpt.meta.kind == "flow-vae-from-elsewhere" and ckpt.generative


def test_figures_come_from_metrics_json_and_follow_its_changes(tiny_repo: Path, tmp_path: Path) -> None:
    import shutil

    from checkpoint import write_metrics

    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo / "vae-z2", repo / "vae-z2")
    models, _ = scan(repo)
    ckpt = models["vae-z2"][1]
    assert ckpt.metrics == {"test_mse": 0.1} and "metrics" not in ckpt.meta.listing()
    write_metrics(ckpt.path, {"judge": {"frechet": 1.5}})
    again, _ = scan(repo, models)
    assert again["vae-z2"][1] is ckpt and ckpt.metrics["judge"] == {"frechet": 1.5}  # no reload of the module


def test_changed_weights_are_refused(tiny_repo: Path, tmp_path: Path) -> None:
    def edit(meta, module):
        with torch.no_grad():
            next(module.parameters()).add_(1e-3)

    bad = copy_with_meta(tiny_repo / "vae-z4" / "1" / "model.ts", tmp_path / "w" / "1" / "model.ts", edit)
    with pytest.raises(CheckpointError, match="weights_sha256"):
        load_checkpoint(bad)


def test_garbage_and_missing_meta(tmp_path: Path) -> None:
    junk = tmp_path / "junk" / "1" / "model.ts"
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match="not a TorchScript file"):
        load_checkpoint(junk)
    plain = tmp_path / "plain" / "1" / "model.ts"
    plain.parent.mkdir(parents=True)
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(plain))
    with pytest.raises(CheckpointError, match="no meta.json"):
        load_checkpoint(plain)


def test_scan_keeps_good_models_and_reports_bad(tiny_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    copy_with_meta(tiny_repo / "vae-z4" / "1" / "model.ts", repo / "good" / "1" / "model.ts", lambda m, mod: None)
    (repo / "bad" / "1").mkdir(parents=True)
    (repo / "bad" / "1" / "model.ts").write_bytes(b"xx")
    models, errors = scan(repo)
    assert list(models) == ["good"] and len(errors) == 1 and "bad" in errors[0]


def test_oom_splits_the_batch(tiny_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt: Checkpoint = load_checkpoint(tiny_repo / "vae-z4" / "2" / "model.ts")
    rt = Runtime(torch.device("cpu"))
    rt.place(ckpt)
    real = rt._forward

    def fake(ck, op, x, labels):  # a device that cannot hold more than 4 rows at once
        if len(x) > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(ck, op, x, labels)

    monkeypatch.setattr(rt, "_forward", fake)
    z = torch.randn(13, 4)
    out = rt.run(ckpt, "decode", z, None)
    with torch.no_grad():
        ref = ckpt.module.decode(z, None)[:, 0]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    assert rt.oom_splits > 0
    rt.shutdown()


def test_host_staging_reuses_its_buffer_and_grows_it() -> None:
    from service.engine.runtime import HostStaging

    staging = HostStaging(pin=False)  # pinned on CUDA; the reuse logic is the same
    a = staging.stage(torch.arange(6.0).reshape(3, 2))
    ptr = a.data_ptr()
    b = staging.stage(torch.ones(2, 2))
    assert b.data_ptr() == ptr and torch.equal(b, torch.ones(2, 2))  # same memory, new values
    c = staging.stage(torch.full((7, 2), 5.0))  # larger: grown (to max(7, 2 x 3) rows)
    assert torch.equal(c, torch.full((7, 2), 5.0)) and len(staging.buffers[(torch.float32, (2,))]) == 7
    labels = staging.stage(torch.arange(3))  # another dtype: its own buffer
    assert labels.dtype == torch.int64 and len(staging.buffers) == 2


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_a_missing_or_empty_repository_is_a_warning_and_a_readiness_reason(
        tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from tests.helpers import make_settings

    repo = tmp_path / "models"
    if where == "empty":
        repo.mkdir()
    with caplog.at_level("WARNING"), TestClient(create_app(make_settings(repo))) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    reason = " ".join(r.json()["detail"])
    assert ("is not a directory" if where == "missing" else "holds no") in reason and str(repo) in reason
    assert any(rec.levelname == "WARNING" and "no models loaded" in rec.getMessage() for rec in caplog.records)
