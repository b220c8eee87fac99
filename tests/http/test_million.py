"""A million digits in one call: /sample streams .npy answers up to max_stream_sample in blocks made as the reader
reaches them, each block seeded on its own (the same made alone or within the stream), with an exact
Content-Length, and the server's memory held to a few chunks however many rows are asked for."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import httpx
import numpy as np
from fastapi.testclient import TestClient

from checkpoint.sampling import SEED_BLOCK, block_seed
from service.app import create_app
from tests.helpers import launch, make_settings

NPY = {"accept": "application/x-npy"}


def test_past_max_sample_only_the_streamed_answer(client: TestClient) -> None:
    """The fixture's max_sample is 500: beyond it JSON says where to go, .npy streams."""
    r = client.post("/sample", json={"n": 600, "seed": 1})
    assert r.status_code == 422 and "streamed .npy" in r.json()["error"] and "application/x-npy" in r.json()["error"]
    r = client.post("/sample", json={"n": 600, "seed": 1, "dtype": "uint8"}, headers=NPY)
    assert r.status_code == 200 and np.load(io.BytesIO(r.content)).shape == (600, 28, 28)


def test_max_stream_sample_is_a_setting(tiny_repo: Path) -> None:
    with TestClient(create_app(make_settings(tiny_repo, max_stream_sample=3000))) as c:
        r = c.post("/sample", json={"n": 3001}, headers=NPY)
        assert r.status_code == 422 and "at most 3000" in r.json()["error"]


def test_blocks_are_the_same_alone_or_within_the_stream(tiny_repo: Path) -> None:
    with TestClient(create_app(make_settings(tiny_repo))) as c:
        def npy(n: int, seed: int) -> np.ndarray:
            r = c.post("/sample", json={"model": "vae-z2", "n": n, "seed": seed, "dtype": "uint8"}, headers=NPY)
            assert r.status_code == 200 and r.headers["content-length"] == str(len(r.content))
            return np.load(io.BytesIO(r.content))

        n = 2 * SEED_BLOCK + 5000
        whole = npy(n, 7)
        assert whole.shape == (n, 28, 28) and whole.dtype == np.uint8
        np.testing.assert_array_equal(whole[:SEED_BLOCK], npy(SEED_BLOCK, 7))
        np.testing.assert_array_equal(whole[SEED_BLOCK: 2 * SEED_BLOCK], npy(SEED_BLOCK, block_seed(7, 1)))
        np.testing.assert_array_equal(whole[2 * SEED_BLOCK:], npy(5000, block_seed(7, 2)))
        assert not np.array_equal(whole[:5000], whole[2 * SEED_BLOCK:])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_million_rows_in_one_call_with_bounded_memory(tiny_repo: Path, tmp_path: Path) -> None:
    url, proc = launch(["-m", "service"], tiny_repo, tmp_path / "server.log")
    try:
        n = 1_000_000
        before = rss_mb(proc.pid)
        peak = before
        got = 0
        head = b""
        with httpx.stream("POST", url + "/sample", json={"model": "vae-z2", "n": n, "seed": 3, "dtype": "uint8"},
                          headers=NPY, timeout=120) as r:
            assert r.status_code == 200
            length = int(r.headers["content-length"])
            t0 = time.monotonic()
            for chunk in r.iter_bytes(1 << 20):
                if len(head) < 128:
                    head += chunk[:128]
                got += len(chunk)
                if got < 16 << 20:  # the first 16 MB read slowly (~8 MB/s): the server must wait, not pile up
                    time.sleep(0.1)
                if got % (32 << 20) < (1 << 20) or time.monotonic() - t0 < 3:
                    peak = max(peak, rss_mb(proc.pid))
        f = io.BytesIO(head)
        assert np.lib.format.read_magic(f) == (1, 0)
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        assert shape == (n, 28, 28) and dtype == np.uint8
        assert got == length == len(head.split(b"\n", 1)[0]) + 1 + n * 784
        assert peak - before <= 64, f"server RSS grew {peak - before:.0f} MB while streaming"
        assert os.path.exists(f"/proc/{proc.pid}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_labelled_set_past_max_sample_streams_as_npz(tiny_repo: Path) -> None:
    """.npz past max_sample: labels (balanced) and the seed, then the images as they are made; the archive checks
    out (CRC) and matches the .npy stream of the same seed."""
    import zipfile

    with TestClient(create_app(make_settings(tiny_repo, max_sample=100, max_stream_sample=2_000_000))) as c:
        body = {"model": "cvae-z4", "n": 2500, "seed": 4, "labels": "balanced", "dtype": "uint8"}
        r = c.post("/sample", json=body, headers={"accept": "application/x-npz"})
        assert r.status_code == 200 and r.headers["content-length"] == str(len(r.content))
        assert zipfile.ZipFile(io.BytesIO(r.content)).testzip() is None
        d = np.load(io.BytesIO(r.content))
        assert d["images"].shape == (2500, 28, 28) and d["images"].dtype == np.uint8 and int(d["seed"]) == 4
        np.testing.assert_array_equal(d["labels"], np.arange(2500) % 10)
        same = c.post("/sample", json=body, headers=NPY)
        np.testing.assert_array_equal(d["images"], np.load(io.BytesIO(same.content)))
        too_big = c.post("/sample", json={**body, "n": 1_400_000, "dtype": "float32"},  # 4.4 GB: zip64 land
                         headers={"accept": "application/x-npz"})
        assert too_big.status_code == 422 and "uint8" in too_big.json()["error"]
        assert c.app.state.plane._engine.scheduler.queued_rows() == 0
