"""VaeClient and AsyncVaeClient against a live server, and their retry rules against a mock."""

from __future__ import annotations

import asyncio
import io
import subprocess

import httpx
import numpy as np
import pytest

from vaeclient import AsyncVaeClient, VaeClient, VaeServeError


def test_sync_client_against_live_server(server: tuple[str, subprocess.Popen]) -> None:
    url, _ = server
    with VaeClient(url) as c:
        names = {m["name"] for m in c.models()}
        assert "vae-z4" in names
        imgs = c.sample(5, seed=3)
        assert imgs.shape == (5, 28, 28) and imgs.dtype == np.float32
        assert np.array_equal(imgs, c.sample(5, seed=3))
        small = c.sample(5, seed=3, dtype="uint8")  # pictures rather than probabilities: 4x less to move
        assert small.dtype == np.uint8 and np.array_equal(small, np.rint(imgs * 255).astype(np.uint8))
        mu, logvar = c.encode(imgs[:2])
        assert mu.shape == (2, 4) and logvar is not None and logvar.shape == (2, 4)
        dec = c.decode(mu)
        assert dec.shape == (2, 28, 28)
        path = c.interpolate(mu[0], imgs[1], steps=4, method="slerp")
        assert path.shape == (4, 28, 28)
        rec, mse = c.reconstruct(imgs[:3])
        assert rec.shape == (3, 28, 28) and mse.shape == (3,)
        _, det_logvar = c.encode(imgs[:1], model="deep-ae-z4")
        assert det_logvar is None
        with pytest.raises(VaeServeError) as err:
            c.decode(np.zeros((1, 7)))
        assert err.value.status == 422 and "exactly 4" in err.value.message
        with pytest.raises(VaeServeError, match="unknown model"):
            c.sample(1, model="nope")
        # Conditional model: labels everywhere a digit is decoded or encoded.
        digits = c.sample(10, model="cvae-z4", labels="balanced", seed=1)
        cmu, _ = c.encode(digits, model="cvae-z4", labels=list(range(10)))
        assert cmu.shape == (10, 4)
        crec, _ = c.reconstruct(digits[:2], model="cvae-z4", labels=[0, 1])
        assert crec.shape == (2, 28, 28)
        assert c.interpolate(cmu[0], cmu[1], steps=3, model="cvae-z4", label=5).shape == (3, 28, 28)
        with pytest.raises(VaeServeError, match="send labels"):
            c.encode(digits[:1], model="cvae-z4")
        images, labels = c.sample_labelled(10, model="cvae-z4", seed=1)
        assert images.shape == (10, 28, 28) and labels.tolist() == list(range(10))
        np.testing.assert_array_equal(images, digits)  # the same seed: the same digits


def test_async_client_against_live_server(server: tuple[str, subprocess.Popen]) -> None:
    url, _ = server

    async def go() -> None:
        async with AsyncVaeClient(url) as c:
            batches = await asyncio.gather(*[c.sample(2, seed=i) for i in range(8)])
            assert all(b.shape == (2, 28, 28) for b in batches)
            imgs, labels = await c.sample_labelled(4, model="cvae-z4", labels=[7, 7, 1, 1])
            assert imgs.shape == (4, 28, 28) and labels.tolist() == [7, 7, 1, 1]
            mu, _ = await c.encode(batches[0])
            assert (await c.decode(mu)).shape == (2, 28, 28)

    asyncio.run(go())


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_retries_429_and_503_honouring_retry_after() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(429, headers={"retry-after": "0"}, json={"error": "busy"})
        if len(calls) == 2:
            return httpx.Response(503, headers={"retry-after": "0"}, json={"error": "draining"})
        return httpx.Response(200, headers={"content-type": "application/x-npy"}, content=npy(np.ones((1, 28, 28))))

    with VaeClient("http://x", transport=httpx.MockTransport(handler)) as c:
        assert c.sample(1).shape == (1, 28, 28)
    assert len(calls) == 3


def test_gives_up_after_retries_with_the_server_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "0"}, json={"error": "server busy: queue full"})

    with VaeClient("http://x", retries=2, transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(VaeServeError) as err:
            c.sample(1)
    assert err.value.status == 429 and "queue full" in err.value.message


def test_client_package_stands_alone() -> None:
    """The client is importable without the server, torch or FastAPI: httpx and NumPy only."""
    import subprocess
    import sys

    code = ("import sys, vaeclient; bad = [m for m in ('torch', 'service', 'fastapi', 'grpc') if m in sys.modules]; "
            "sys.exit(str(bad) if bad else 0)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sync_and_async_share_one_description() -> None:
    """Each method of both clients is the same builder of vaeclient.calls, with its signature and docstring."""
    import inspect

    from vaeclient import calls

    for build in calls.API:
        for cls in (VaeClient, AsyncVaeClient):
            method = getattr(cls, build.__name__)
            assert method.__doc__ == build.__doc__ and inspect.signature(method) == inspect.signature(build)


def test_any_number_of_rows_in_pieces_two_in_flight_in_order(server: tuple[str, subprocess.Popen],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """uint8 digits as people load MNIST, more rows than one request may carry: split into max_rows pieces, sent
    as arrays, answers in order; the same codes as one float request of each piece would give."""
    url, _ = server
    monkeypatch.setenv("VAESERVE_URL", url)
    x = (np.random.default_rng(0).random((150, 28, 28)) * 255).astype(np.uint8)
    with VaeClient(max_rows=64) as c:  # the address from VAESERVE_URL
        assert c.base_url == url
        mu, logvar = c.encode(x, progress=True)
        assert mu.shape == (150, 4) and logvar is not None and logvar.shape == (150, 4)
        ref, _ = c.encode(x[100:110].astype(np.float32) / 255)
        np.testing.assert_allclose(mu[100:110], ref, atol=1e-5)
        rec, mse = c.reconstruct(x)
        assert rec.shape == (150, 28, 28) and mse.shape == (150,)
        imgs = c.decode(mu, dtype="uint8")
        assert imgs.shape == (150, 28, 28) and imgs.dtype == np.uint8
        np.testing.assert_array_equal(imgs[70:75], c.decode(mu[70:75], dtype="uint8"))
        cmu, _ = c.encode(x[:70], model="cvae-z4", labels=np.arange(70) % 10)
        assert cmu.shape == (70, 4)

    async def go() -> None:
        async with AsyncVaeClient(max_rows=64) as ac:
            amu, _ = await ac.encode(x)
            np.testing.assert_allclose(amu, mu, atol=1e-6)
            assert (await ac.decode(amu)).shape == (150, 28, 28)

    asyncio.run(go())


def test_encode_command_writes_a_data_sets_codes_and_resumes_after_ctrl_c(
        server: tuple[str, subprocess.Popen], tmp_path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import vaeclient.dataset as dataset
    from vaeclient.__main__ import main

    url, _ = server
    monkeypatch.setattr(dataset, "PIECE_ROWS", 100)
    x = (np.random.default_rng(2).random((350, 28, 28)) * 255).astype(np.uint8)
    y = np.arange(350) % 10
    src, out = tmp_path / "digits.npz", tmp_path / "codes.npz"
    np.savez(src, x=x, y=y)
    sent = []
    real = VaeClient.encode

    def stopping(self, images, **kw):  # type: ignore[no-untyped-def]
        sent.append(len(images))
        if len(sent) == 3:
            raise KeyboardInterrupt
        return real(self, images, **kw)

    monkeypatch.setattr(VaeClient, "encode", stopping)
    assert main(["encode", str(src), str(out), "--url", url, "--quiet"]) == 130
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "resume" in err and "Traceback" not in err
    sent.clear()
    monkeypatch.setattr(VaeClient, "encode", lambda self, images, **kw: (sent.append(len(images)), real(
        self, images, **kw))[1])
    assert main(["encode", str(src), str(out), "--url", url, "--quiet"]) == 0
    assert sent == [100, 50]  # only the pieces the stopped run had not kept
    codes = np.load(out)
    assert codes["mu"].shape == (350, 4) and codes["logvar"].shape == (350, 4)
    assert codes["labels"].tolist() == y.tolist() and str(codes["model"]) == "vae-z4"
    with VaeClient(url) as c:
        np.testing.assert_allclose(codes["mu"][200:210], c.encode(x[200:210])[0], atol=1e-5)
