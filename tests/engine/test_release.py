"""A model that stops being served gives its memory back: unloaded, deleted from the repository, or replaced by a
changed file at the same version, its module is freed once the requests already queued on it have finished (and
those finish on the module they were queued for)."""

from __future__ import annotations

import gc
import shutil
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.engine.gpu import GraphCache
from tests.engine.test_gpu import FakeGraphs
from tests.engine.test_reload import install
from tests.helpers import make_settings, slow_forwards

ADMIN = "release-admin-key-0123456"
KEY = {"x-admin-key": ADMIN}


def freed(ref: weakref.ref, timeout_s: float = 10.0) -> bool:
    """Whether the object behind ref is collected within timeout_s (retired batchers stop when idle)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        gc.collect()
        if ref() is None:
            return True
        time.sleep(0.05)
    return False


def served_module(app: object, name: str, version: int) -> weakref.ref:
    return weakref.ref(app.state.plane._engine.repository.resolve(name, version).module)  # type: ignore[attr-defined]


def test_unload_frees_the_model_and_load_serves_it_again(tiny_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo)
    app = create_app(make_settings(repo, model_control=True, admin_key=ADMIN))
    with TestClient(app) as c:
        for path, body in [("/decode", {"z": [[0.1, 0.2]]}), ("/sample", {"n": 3}),
                           ("/reconstruct", {"images": [{"pixels": [[0.5] * 28] * 28}]})]:
            assert c.post(path, json={"model": "vae-z2", **body}).status_code == 200  # batchers hold it now
        ref = served_module(app, "vae-z2", 1)
        assert c.post("/v2/repository/models/vae-z2/unload", headers=KEY).status_code == 200
        assert freed(ref), "the unloaded model's module is still referenced"
        index = c.post("/v2/repository/index").json()
        assert {"name": "vae-z2-sampler", "version": "", "state": "UNAVAILABLE", "reason": "unloaded"} in index
        assert c.post("/decode", json={"model": "vae-z2", "z": [[0.1, 0.2]]}).status_code == 404
        assert c.post("/v2/repository/models/vae-z2/load", headers=KEY).status_code == 200
        assert c.post("/decode", json={"model": "vae-z2", "z": [[0.1, 0.2]]}).status_code == 200


@pytest.mark.parametrize("graphs", [False, True])
def test_a_deleted_or_replaced_version_is_freed(tiny_repo: Path, tmp_path: Path, graphs: bool) -> None:
    """graphs: the runtime's CUDA graph cache, with graphs that replay the module they captured (as CUDA's replay
    the weights they captured): a file replaced at the same version must not answer through the old one's."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo)
    app = create_app(make_settings(repo, model_control=True, admin_key=ADMIN))
    with TestClient(app) as c:
        if graphs:
            app.state.plane._engine.runtime.graphs = GraphCache(8, capture=FakeGraphs())
        z = {"z": [[0.3] * 4]}
        one = c.post("/decode", json={"model": "vae-z4", "version": 1, **z}).json()["images"]
        two = c.post("/decode", json={"model": "vae-z4", **z}).json()["images"]
        assert one != two  # the two versions' weights differ (seeds 0 and 1)
        old_one, old_two = served_module(app, "vae-z4", 1), served_module(app, "vae-z4", 2)

        shutil.rmtree(repo / "vae-z4" / "1")  # deleted: dropped at the next reload
        time.sleep(0.01)  # a later mtime for the replacement
        install(repo / "vae-z4" / "2" / "model.ts", repo / "vae-z4" / "2" / "copy.ts")
        install(tiny_repo / "vae-z4" / "1" / "model.ts", repo / "vae-z4" / "2" / "model.ts")  # v1's weights as v2
        assert c.post("/admin/reload", headers=KEY).json()["models"]["vae-z4"] == [2]
        assert c.post("/decode", json={"model": "vae-z4", **z}).json()["images"] == one  # the new file serves
        assert freed(old_one) and freed(old_two)


def test_queued_requests_finish_on_the_module_they_were_queued_for(tiny_repo: Path, tmp_path: Path) -> None:
    import threading

    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo)
    app = create_app(make_settings(repo, model_control=True, admin_key=ADMIN, max_batch_rows=50))
    with TestClient(app) as c:
        z = [[0.3] * 4] * 400
        before = c.post("/decode", json={"model": "vae-z4", "z": z}).json()["images"]
        with slow_forwards(app, 0.05):  # 400 rows in 50-row chunks: ~0.4 s of work
            answers: list[dict] = []
            t = threading.Thread(target=lambda: answers.append(
                c.post("/decode", json={"model": "vae-z4", "z": z}).json()))
            t.start()
            time.sleep(0.15)
            install(tiny_repo / "vae-z4" / "1" / "model.ts", repo / "vae-z4" / "2" / "model.ts")  # replaced now
            assert c.post("/admin/reload", headers=KEY).json()["added"] == ["vae-z4/2"]
            t.join(timeout=30)
        # every chunk on the weights it was queued for (to float noise: the slowed forwards may cut other chunk sizes,
        # and a matrix product's rounding depends on the batch's size); the other version's pixels differ by ~1e-2
        np.testing.assert_allclose(answers[0]["images"], before, atol=1e-5)
        after = np.asarray(c.post("/decode", json={"model": "vae-z4", "z": z}).json()["images"])
        assert np.abs(after - np.asarray(before)).max() > 1e-3


def test_a_stream_of_blocks_finishes_when_its_model_is_unloaded(tiny_repo: Path, tmp_path: Path) -> None:
    """A streamed /sample of three seed blocks, unloaded in its first: every block comes, the same digits as an
    undisturbed stream's (to a uint8 step: other chunk sizes round differently), then the model is freed."""
    import io
    import threading

    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo)
    app = create_app(make_settings(repo, model_control=True, admin_key=ADMIN, max_batch_rows=2000))
    body, npy = {"model": "vae-z2", "n": 30_000, "seed": 5, "dtype": "uint8"}, {"accept": "application/x-npy"}
    with TestClient(app) as c:
        expected = np.load(io.BytesIO(c.post("/sample", json=body, headers=npy).content))
        ref = served_module(app, "vae-z2", 1)
        with slow_forwards(app, 0.03):  # 15 chunks of 2,000 rows: ~0.5 s
            answers: list[object] = []
            t = threading.Thread(target=lambda: answers.append(c.post("/sample", json=body, headers=npy)))
            t.start()
            time.sleep(0.1)
            assert c.post("/v2/repository/models/vae-z2/unload", headers=KEY).status_code == 200
            t.join(timeout=60)
        r = answers[0]
        assert r.status_code == 200  # type: ignore[attr-defined]
        got = np.load(io.BytesIO(r.content)).astype(np.int16)  # type: ignore[attr-defined]
        assert got.shape == expected.shape and np.abs(got - expected).max() <= 1  # a uint8 step of float noise
        assert freed(ref)
