"""Hot reload: a new version is picked up without restart and with no failed request during the
swap; a corrupt version is refused and the old one keeps serving."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from fastapi.testclient import TestClient

from service.app import create_app
from tests.helpers import make_settings

ADMIN = "admin-key-for-tests-0123"


def install(src: Path, dst: Path) -> None:
    """Write-then-rename, as the exporter does: readers never see a half-written model.ts."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(".model.ts.part")
    shutil.copyfile(src, part)
    part.replace(dst)


def test_new_version_served_without_failures(tiny_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo)
    with TestClient(create_app(make_settings(repo, model_control=True, admin_key=ADMIN))) as c:
        assert c.post("/decode", json={"z": [[0.0] * 4]}).json()["version"] == 2
        codes: list[int] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                codes.append(c.post("/decode", json={"z": [[0.1] * 4]}).status_code)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        install(tiny_repo / "vae-z4" / "1" / "model.ts", repo / "vae-z4" / "3" / "model.ts")
        report = c.post("/admin/reload", headers={"x-admin-key": ADMIN}).json()
        stop.set()
        for t in threads:
            t.join()
        assert report["added"] == ["vae-z4/3"] and report["refused"] == []
        assert codes and set(codes) == {200}
        assert c.post("/decode", json={"z": [[0.0] * 4]}).json()["version"] == 3

        bad = repo / "vae-z4" / "4" / "model.ts"
        bad.parent.mkdir()
        bad.write_bytes(b"corrupt")
        report = c.post("/admin/reload", headers={"x-admin-key": ADMIN}).json()
        assert len(report["refused"]) == 1 and "vae-z4/4" in report["refused"][0]
        assert c.post("/decode", json={"z": [[0.0] * 4]}).json()["version"] == 3
        assert "vaeserve_model_load_failures_total 1.0" in c.get("/metrics").text


def test_watcher_picks_up_new_versions(tiny_repo: Path, tmp_path: Path) -> None:
    import time

    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo)
    with TestClient(create_app(make_settings(repo, watch_interval_s=0.1))) as c:
        install(tiny_repo / "vae-z2" / "1" / "model.ts", repo / "vae-z2" / "5" / "model.ts")
        deadline = time.time() + 10
        while time.time() < deadline and c.get("/models/vae-z2").json()["version"] != 5:
            time.sleep(0.1)
        assert c.get("/models/vae-z2").json()["version"] == 5


def test_reload_that_brings_the_default_model_makes_the_server_ready(tiny_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo)
    shutil.rmtree(repo / "vae-z4")
    with TestClient(create_app(make_settings(repo, model_control=True, admin_key=ADMIN))) as c:
        assert c.get("/readyz").status_code == 503 and c.get("/v2/health/ready").status_code == 503
        assert c.post("/sample", json={"n": 1}).status_code == 503
        install(tiny_repo / "vae-z4" / "1" / "model.ts", repo / "vae-z4" / "1" / "model.ts")
        assert c.post("/admin/reload", headers={"x-admin-key": ADMIN}).json()["added"] == ["vae-z4/1"]
        assert c.get("/readyz").status_code == 200 and c.get("/v2/health/ready").status_code == 200
        assert c.post("/sample", json={"n": 1}).status_code == 200
