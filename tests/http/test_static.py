"""The explorer's files: served without a key (the calls the page makes still need one), nothing else."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from service.app import create_app
from tests.helpers import make_settings


def test_explorer_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/explorer/explorer.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    js = client.get("/explorer/explorer.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert client.get("/explorer/explorer.css").headers["content-type"].startswith("text/css")
    assert client.get("/explorer/nope.js").status_code == 404
    for probe in ("/explorer/../app.py", "/explorer/%2e%2e/app.py", "/explorer/..%2fapp.py"):
        r = client.get(probe)
        assert r.status_code == 404 or "create_app" not in r.text, probe
    assert "/" not in client.get("/openapi.json").json()["paths"]  # not an API operation


def test_page_is_public_but_its_calls_need_the_key(tiny_repo: Path) -> None:
    with TestClient(create_app(make_settings(tiny_repo, api_key="k"))) as c:
        assert c.get("/").status_code == 200
        assert c.get("/explorer/explorer.js").status_code == 200
        assert c.post("/sample", json={"n": 1}).status_code == 401
        assert c.post("/sample", json={"n": 1}, headers={"x-api-key": "k"}).status_code == 200
