"""Arrays in: every REST inference route takes its arrays as a .npy/.npz body (options as query parameters), the
same answers as JSON gives; and a broken or hostile array body is a 4xx that says what is wrong, at no more memory
than its bytes, never a crash, a hang or an unpickling."""

from __future__ import annotations

import io
import pickle
import struct
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.helpers import make_settings

NPY, NPZ = "application/x-npy", "application/x-npz"


@pytest.fixture(scope="module")
def c(tiny_repo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tiny_repo, max_rows=64))) as client:
        yield client


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def post(c: TestClient, path: str, body: bytes, kind: str = NPY, accept: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"content-type": kind, **({"accept": accept} if accept else {})}
    return c.post(path, content=body, headers=headers)


def digits(n: int = 6) -> np.ndarray:
    return (np.random.default_rng(0).random((n, 28, 28)) * 255).astype(np.uint8)


def test_encode_uint8_npy_equals_json_floats(c: TestClient) -> None:
    x = digits()
    r = post(c, "/encode", npy(x), accept=NPZ)
    assert r.status_code == 200 and r.headers["content-type"] == NPZ
    got = np.load(io.BytesIO(r.content))
    ref = c.post("/encode", json={"images": [{"pixels": (img / 255).tolist()} for img in x]}).json()
    np.testing.assert_allclose(got["mu"], ref["mu"], atol=1e-5)
    np.testing.assert_allclose(got["logvar"], ref["logvar"], atol=1e-5)
    flat = post(c, "/encode?model=vae-z4", npy(x.reshape(6, 784).astype(np.float32) / 255))  # (B, 784) floats
    assert flat.status_code == 200 and np.allclose(flat.json()["mu"], ref["mu"], atol=1e-5)


def test_json_takes_uint8_pixels_and_says_so_for_floats_above_one(c: TestClient) -> None:
    x = digits(1)[0]
    as_int = c.post("/encode", json={"images": [{"pixels": x.tolist()}]})
    as_float = c.post("/encode", json={"images": [{"pixels": (x / 255).tolist()}]})
    assert as_int.status_code == 200 and np.allclose(as_int.json()["mu"], as_float.json()["mu"], atol=1e-5)
    bad = c.post("/encode", json={"images": [{"pixels": (x.astype(float) + 0.5).tolist()}]})
    assert bad.status_code == 422 and "integers 0..255" in bad.json()["error"]


def test_every_route_takes_arrays(c: TestClient) -> None:
    z = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    d = post(c, "/decode?dtype=uint8", npy(z), accept=NPY)
    ref = c.post("/decode", json={"z": z.tolist(), "dtype": "uint8"}, headers={"accept": NPY})
    assert d.status_code == 200 and np.array_equal(np.load(io.BytesIO(d.content)), np.load(io.BytesIO(ref.content)))
    cond = post(c, "/decode?model=cvae-z4", npz(z=z, labels=np.arange(5)), NPZ, NPY)
    assert cond.status_code == 200 and np.load(io.BytesIO(cond.content)).shape == (5, 28, 28)
    rec = post(c, "/reconstruct", npy(digits(3)), accept=NPZ)
    assert rec.status_code == 200 and set(np.load(io.BytesIO(rec.content)).files) == {"images", "mse"}
    lab = post(c, "/sample?model=cvae-z4&seed=3", npy(np.array([1, 2, 3, 4])), accept=NPZ)
    assert lab.status_code == 200 and np.load(io.BytesIO(lab.content))["labels"].tolist() == [1, 2, 3, 4]
    path = post(c, "/interpolate?steps=5", npy(z[:2]), accept=NPY)
    assert path.status_code == 200 and np.load(io.BytesIO(path.content)).shape == (5, 28, 28)
    ends = post(c, "/interpolate?steps=3", npz(start=digits(1)[0], end=z[0]), NPZ)
    assert ends.status_code == 200 and len(ends.json()["images"]) == 3


def test_options_come_as_query_parameters_checked_by_the_same_schema(c: TestClient) -> None:
    body = npy(digits(2))
    assert post(c, "/encode?model=nope", body).status_code == 404
    bad = post(c, "/encode?seed=minus", body)
    assert bad.status_code == 422 and "query parameter seed" in bad.json()["error"]
    extra = post(c, "/encode?colour=red", body)
    assert extra.status_code == 422 and "colour" in extra.json()["error"]
    mixed = c.post("/encode?model=vae-z4", json={"images": [{"pixels": (digits(1)[0] / 255).tolist()}]})
    assert mixed.status_code == 422 and "query parameters" in mixed.json()["error"]
    assert post(c, "/encode", b"x", "text/csv").status_code == 415


def _header(d: str, version: bytes = b"\x01\x00") -> bytes:
    head = d.encode("latin1")
    return b"\x93NUMPY" + version + struct.pack("<H", len(head)) + head


class Boom:
    """Unpickling this would write a file: it must never happen."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path("/tmp/vaeserve-unpickled"),))


@pytest.mark.parametrize(("body", "says"), [
    (b"PK\x03\x04 not npy", "not a .npy"),
    (b"\x93NUMPY\x01", "not a .npy"),
    (b"\x93NUMPY\x09\x00\x10\x00", "version"),
    (_header("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 28, 28), }") + b"\x00" * 100, "truncated"),
    (_header("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 28, 28), }") + b"\x00" * 900, "trailing"),
    (_header("{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000, 28, 28), }"), "at most"),
    (_header("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }") + pickle.dumps([Boom()]), "object"),
    (_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }"), "structured"),
    (_header("{'descr': '>f4', 'fortran_order': False, 'shape': (1, 28, 28), }") + b"\x00" * 3136, "little-endian"),
    (_header("{'descr': '<c8', 'fortran_order': False, 'shape': (1, 28, 28), }") + b"\x00" * 6272, "not accepted"),
    (_header("__import__('os').system('touch /tmp/vaeserve-unpickled')"), "not a Python literal"),
    (_header("{'descr': '|u1', 'fortran_order': False, 'shape': (-1, 28), }"), "non-negative"),
    (_header("(" * 2000 + ")" * 2000), "literal"),
    (b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{", "header of"),
])
def test_a_broken_npy_is_a_4xx_that_says_what(c: TestClient, body: bytes, says: str) -> None:
    Path("/tmp/vaeserve-unpickled").unlink(missing_ok=True)
    r = post(c, "/encode", body)
    assert r.status_code == 422 and says in r.json()["error"], r.text
    assert not Path("/tmp/vaeserve-unpickled").exists()


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_a_broken_or_hostile_npz_is_a_4xx_at_no_more_memory_than_its_bytes(c: TestClient) -> None:
    ok = npy(digits(2))
    head = _header("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 28, 28), }")
    bomb = _zip({"images.npy": head + b"\x00" * (200 << 20)})  # 200 MB of zeros in ~200 KB
    crc = bytearray(_zip({"images.npy": ok}, zipfile.ZIP_STORED))
    crc[-200] ^= 0xFF  # a byte of the data: the CRC no longer matches
    cases = [
        (b"PK\x03\x04garbage", "not a zip"),
        (_zip({"images.npy": ok})[:-30], "not a zip"),
        (_zip({"weights.npy": ok}), "takes images.npy"),
        (_zip({f"images{i}.npy": ok for i in range(5)}), "at most 4"),
        (_zip({"labels.npy": npy(np.arange(2))}), "no images.npy"),
        (_zip({"images.npy": _header("{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000000, 28, 28), }")}),
         "at most"),
        (_zip({"images.npy": b"\x80\x04pickle"}), "not a .npy"),
        (bomb, "holds more"),
        (bytes(crc), "cannot be read"),
    ]
    tracemalloc.start()
    try:
        for body, says in cases:
            tracemalloc.reset_peak()
            r = post(c, "/encode", body, NPZ)
            assert r.status_code == 422 and says in r.json()["error"], (says, r.text)
            _, peak = tracemalloc.get_traced_memory()
            assert peak < 20 * len(body) + (8 << 20), (says, peak)  # never the 200 MB the bomb unpacks to
    finally:
        tracemalloc.stop()
    assert c.get("/healthz").status_code == 200
