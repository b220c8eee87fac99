"""Repository control over HTTP (/admin/reload, /v2/repository/models/{m}/load|unload): off unless the operator
turns it on, then only with the admin key, and never reachable by a browser's cross-site simple request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tritonclient.http as httpclient
from fastapi.testclient import TestClient
from pydantic import ValidationError
from tritonclient.utils import InferenceServerException

from service.app import create_app
from service.settings import Settings
from tests.helpers import launch, make_settings, slow_forwards

ADMIN = "http-admin-key-0123456789"
PATHS = ["/admin/reload", "/v2/repository/models/vae-z2-decoder/load", "/v2/repository/models/vae-z2/unload"]


@pytest.fixture()
def on(tiny_repo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tiny_repo, model_control=True, admin_key=ADMIN))) as c:
        yield c


@pytest.mark.parametrize("path", PATHS)
def test_off_by_default(client: TestClient, path: str) -> None:
    r = client.post(path, headers={"x-admin-key": ADMIN})
    assert r.status_code == 403 and "VAESERVE_MODEL_CONTROL" in r.json()["error"]


def test_server_metadata_announces_only_what_it_serves(client: TestClient, on: TestClient) -> None:
    assert "model_repository" not in client.get("/v2").json()["extensions"]
    assert "model_repository" in on.get("/v2").json()["extensions"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("key", [None, "wrong-key-0123456789"])
def test_needs_the_admin_key(on: TestClient, path: str, key: str | None) -> None:
    r = on.post(path, headers={"x-admin-key": key} if key else {})
    assert r.status_code == 403 and "X-Admin-Key" in r.json()["error"]


@pytest.mark.parametrize("kind", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                  "text/plain"])
def test_cross_site_simple_requests_never_reach_it(on: TestClient, kind: str) -> None:
    """What a web page can send to a local server without a preflight: refused by type, key or not."""
    r = on.post("/admin/reload", content=b"a=1", headers={"content-type": kind, "x-admin-key": ADMIN})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    r = on.post("/admin/reload", headers={"sec-fetch-site": "cross-site", "x-admin-key": ADMIN})
    assert r.status_code == 403


def test_unload_then_load(on: TestClient) -> None:
    key = {"x-admin-key": ADMIN}
    assert on.post("/v2/repository/models/vae-z2-decoder/unload", headers=key).status_code == 200
    assert on.get("/v2/models/vae-z2-decoder/ready").status_code == 404
    assert on.post("/decode", json={"model": "vae-z2", "z": [[0.0, 0.0]]}).status_code == 404
    index = on.post("/v2/repository/index").json()
    assert {"name": "vae-z2-encoder", "version": "", "state": "UNAVAILABLE", "reason": "unloaded"} in index
    assert on.post("/admin/reload", headers=key).json()["models"].get("vae-z2") is None  # stays unloaded
    r = on.post("/v2/repository/models/vae-z2/load", headers=key)
    assert r.status_code == 200 and r.json()["models"]["vae-z2"] == [1]
    assert on.post("/decode", json={"model": "vae-z2", "z": [[0.0, 0.0]]}).status_code == 200
    assert on.post("/v2/repository/models/no-such/load", headers=key).status_code == 404
    assert on.post("/v2/repository/models/vae-z4/unload", headers=key).status_code == 422  # the default


def test_control_without_a_key_refuses_to_start(tiny_repo: Path) -> None:
    with pytest.raises(ValidationError, match="VAESERVE_ADMIN_KEY"):
        Settings(model_repository=tiny_repo, model_control=True)


def test_tritonclient_load_and_unload(tiny_repo: Path, tmp_path: Path) -> None:
    url, proc = launch(["-m", "service"], tiny_repo, tmp_path / "server.log", VAESERVE_MODEL_CONTROL="true",
                       VAESERVE_ADMIN_KEY=ADMIN)
    try:
        c = httpclient.InferenceServerClient(url.removeprefix("http://"))
        with pytest.raises(InferenceServerException, match="admin key"):
            c.unload_model("cvae-z4-decoder")
        c.unload_model("cvae-z4-decoder", headers={"x-admin-key": ADMIN})
        assert not c.is_model_ready("cvae-z4-decoder")
        c.load_model("cvae-z4-decoder", headers={"x-admin-key": ADMIN})
        assert c.is_model_ready("cvae-z4-decoder")
        c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_unload_lets_queued_requests_finish(tiny_repo: Path) -> None:
    """A request already queued on a model when it is unloaded is answered in full; the next one is not found."""
    import threading
    import time

    app = create_app(make_settings(tiny_repo, model_control=True, admin_key=ADMIN, max_batch_rows=50))
    with TestClient(app) as c, slow_forwards(app, 0.05):  # 400 rows in 50-row chunks: ~0.4 s of work
        answers: list[int] = []
        t = threading.Thread(target=lambda: answers.append(
            c.post("/sample", json={"model": "vae-z2", "n": 400, "seed": 1}).status_code))
        t.start()
        time.sleep(0.15)
        assert c.post("/v2/repository/models/vae-z2/unload", headers={"x-admin-key": ADMIN}).status_code == 200
        t.join(timeout=30)
        assert answers == [200]
        assert c.post("/sample", json={"model": "vae-z2", "n": 1}).status_code == 404
