"""Apps over the tiny repository, with the lifespan running (TestClient as a context manager)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings


def make_settings(repo: Path, **kw: object) -> Settings:
    return Settings(model_repository=repo, default_model="vae-z4", **kw)  # type: ignore[arg-type]


@pytest.fixture()
def client(tiny_repo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tiny_repo, max_rows=64, max_sample=500))) as c:
        yield c


def pixels(value: float = 0.5) -> list[list[float]]:
    return [[value] * 28 for _ in range(28)]
