"""Every kind of bad input gets a 4xx whose body says what was wrong (never a 500)."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from tests.helpers import make_settings, pixels


def png_bytes(w: int = 28, h: int = 28, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h), 128).save(buf, format="PNG")
    return buf.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def bomb_header(w: int, h: int) -> bytes:
    """A PNG whose IHDR declares w x h with a tiny, highly compressible body."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100000)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


BAD = [
    ("/decode", {"z": [[0.0] * 3]}, "exactly 4"),
    ("/decode", {"z": []}, "at least 1"),
    ("/decode", {"z": [[0.0] * 4]}, None),  # control: valid
    ("/decode", {"z": [[1e9] * 4]}, "less than or equal to 1000"),
    ("/decode", {"z": [[0.0] * 4], "format": "jpeg"}, "'pixels' or 'png'"),
    ("/decode", {"z": [[0.0] * 4], "labels": [1]}, "not conditional"),
    ("/decode", {"z": [[0.0] * 4], "unknown": 1}, "Extra inputs"),
    ("/decode", {"z": "hello"}, "valid array"),
    ("/decode", {"model": "nope", "z": [[0.0] * 4]}, "unknown model"),
    ("/decode", {"model": "../etc", "z": [[0.0] * 4]}, "pattern"),
    ("/decode", {"z": [[0.0] * 4], "version": 9}, "no version 9"),
    ("/decode", {"model": "cvae-z4", "z": [[0.0] * 4]}, "send labels"),
    ("/decode", {"model": "cvae-z4", "z": [[0.0] * 4], "labels": [11]}, "less than or equal to 9"),
    ("/decode", {"model": "cvae-z4", "z": [[0.0] * 4], "labels": [1, 2]}, "one label per row"),
    ("/decode", {"z": [[0.0] * 4] * 65}, "at most 64"),
    ("/encode", {"images": [{"pixels": [[0.5] * 28] * 27}]}, "at least 28"),
    ("/encode", {"images": [{"pixels": [[1.5] * 28] * 28}]}, "integers 0..255"),
    ("/encode", {"images": [{"pixels": [[256] * 28] * 28}]}, "integers 0..255"),
    ("/encode", {"images": [{"pixels": [[-0.5] * 28] * 28}]}, "greater than or equal to 0"),
    ("/encode", {"images": [{"pixels": [[-0.1] * 28] * 28}]}, "greater than or equal to 0"),
    ("/encode", {"images": []}, "at least 1"),
    ("/encode", {"images": [{}]}, "exactly one"),
    ("/encode", {"images": [{"pixels": pixels(), "png": "x"}]}, "exactly one"),
    ("/encode", {"images": [{"png": "!!!notbase64"}]}, "base64"),
    ("/encode", {"images": [{"png": b64(b"GIF89a" + b"\0" * 40)}]}, "not a PNG"),
    ("/encode", {"images": [{"png": b64(png_bytes(32, 32))}]}, "only 28x28"),
    ("/encode", {"images": [{"png": b64(bomb_header(100000, 100000))}]}, "only 28x28"),
    ("/encode", {"images": [{"png": b64(png_bytes()[:60])}]}, "could not be decoded"),
    ("/encode", {"images": [{"png": b64(png_bytes(mode="I;16"))}]}, "8-bit"),
    ("/sample", {"n": 0}, "greater than or equal to 1"),
    ("/sample", {"n": 501}, "at most 500"),
    ("/sample", {"n": 1, "temperature": 0}, "greater than 0"),
    ("/sample", {"n": 1, "model": "deep-ae-z4"}, "not generative"),
    ("/sample", {"n": 1, "labels": "balanced"}, "not conditional"),
    ("/sample", {"n": 2, "seed": -1}, "greater than or equal to 0"),
    ("/sample", {"n": 2, "seed": False}, "seed: Input should be a valid integer"),  # strict: no bool -> 0
    ("/sample", {"n": True}, "n: Input should be a valid integer"),
    ("/sample", {"n": 2.0}, "n: Input should be a valid integer"),
    ("/decode", {"z": [[0.0] * 4], "version": "1"}, "version: Input should be a valid integer"),
    ("/interpolate", {"start": {"z": [0.0] * 4}, "end": {"z": [0.0] * 4}, "steps": "3"}, "valid integer"),
    ("/encode", {"images": [{"pixels": pixels()}], "sample": 1}, "sample: Input should be a valid boolean"),
    ("/interpolate", {"start": {"z": [0.0] * 4}, "end": {"z": [0.0] * 4}, "steps": 1}, "greater than or equal to 2"),
    ("/interpolate", {"start": {"z": [0.0] * 4}, "end": {}, "steps": 3}, "exactly one"),
    ("/interpolate", {"start": {"z": [0.0] * 4}, "end": {"z": [0.0] * 5}}, "end.z[0] has 5 values"),
    ("/interpolate", {"start": {"z": [0.0] * 4}, "end": {"z": [0.0] * 4}, "method": "cubic"}, "'linear' or 'slerp'"),
    ("/reconstruct", {"images": [{"pixels": [[0.5] * 28] * 28}] * 65}, "at most 64"),
    ("/encode", {"model": "cvae-z4", "images": [{"pixels": pixels()}]}, "send labels"),
    ("/encode", {"images": [{"pixels": pixels()}], "labels": [3]}, "not conditional"),
    ("/reconstruct", {"model": "cvae-z4", "images": [{"pixels": pixels()}] * 2, "labels": [3]}, "one label per row"),
    ("/reconstruct", {"images": [{"pixels": pixels()}], "labels": [3]}, "not conditional"),
    ("/interpolate", {"model": "cvae-z4", "start": {"z": [0.0] * 4}, "end": {"z": [1.0] * 4}}, "send 'label'"),
    ("/interpolate", {"start": {"z": [0.0] * 4}, "end": {"z": [1.0] * 4}, "label": 2}, "not conditional"),
    ("/interpolate", {"model": "cvae-z4", "start": {"z": [0.0] * 4}, "end": {"z": [1.0] * 4}, "label": 10},
     "less than or equal to 9"),
]


@pytest.mark.parametrize(("path", "body", "message"), BAD)
def test_bad_input_is_a_clear_422(client: TestClient, path: str, body: dict, message: str | None) -> None:
    r = client.post(path, json=body)
    if message is None:
        assert r.status_code == 200
        return
    assert r.status_code in (404, 422), r.text
    text = r.text
    assert message in text, text
    assert r.json()["error"]


def test_nan_and_infinity_are_refused(client: TestClient) -> None:
    for token in ("NaN", "Infinity", "-Infinity"):
        body = f'{{"z": [[0.0, 0.0, 0.0, {token}]]}}'
        r = client.post("/decode", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, (token, r.text)
        assert "finite" in r.text or "NaN" in r.text or "inf" in r.text.lower()


def test_malformed_json_and_wrong_content_type(client: TestClient) -> None:
    r = client.post("/decode", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.text
    good = b'{"z": [[0.0, 0.0, 0.0, 0.0]]}'
    for kind in ("application/x-www-form-urlencoded", "text/plain", "application/xml", "multipart/form-data"):
        for path in ("/decode", "/sample", "/encode", "/interpolate", "/reconstruct"):
            r = client.post(path, content=good, headers={"content-type": kind})
            assert r.status_code == 415, (kind, path, r.text)
            assert "application/json" in r.json()["error"] and kind in r.json()["error"]
    for kind in ("application/json; charset=utf-8", "application/vnd.api+json", None):  # JSON, or not declared
        r = client.post("/decode", content=good, headers={"content-type": kind} if kind else {})
        assert r.status_code == 200, (kind, r.text)
    # The Open Inference Protocol's routes keep taking JSON with no Content-Type (Triton's client sends none)
    r = client.post("/v2/models/vae-z4-decoder/infer", content=b'{"inputs": [{"name": "z", "shape": [1, 4], '
                    b'"datatype": "FP32", "data": [0, 0, 0, 0]}]}')
    assert r.status_code == 200, r.text


def test_body_too_large_is_413(tiny_repo: Path) -> None:
    with TestClient(create_app(make_settings(tiny_repo, max_body_bytes=4096))) as c:
        r = c.post("/decode", json={"z": [[0.0] * 4] * 400})
        assert r.status_code == 413 and "at most 4096 bytes" in r.json()["error"]


def test_chunked_body_too_large_is_413(tiny_repo: Path) -> None:
    def chunks():  # no content-length: the limit applies as the body streams in
        yield b'{"z": ['
        for _ in range(500):
            yield b"[0.0, 0.0, 0.0, 0.0],"
        yield b"[0.0, 0.0, 0.0, 0.0]]}"

    with TestClient(create_app(make_settings(tiny_repo, max_body_bytes=4096))) as c:
        r = c.post("/decode", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        # a route FastAPI dispatches itself (it swallows the error and answers 400; the 413 replaces it)
        r = c.post("/v2/models/vae-z4-decoder/infer", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "larger than 4096 bytes" in r.json()["error"]
        assert 'vaeserve_rejections_total{reason="body_too_large"} 2.0' in c.get("/metrics").text


def test_deeply_nested_json_is_refused(client: TestClient) -> None:
    body = '{"z": ' + "[" * 5000 + "]" * 5000 + "}"
    r = client.post("/decode", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_api_key(tiny_repo: Path) -> None:
    with TestClient(create_app(make_settings(tiny_repo, api_key="s3cret"))) as c:
        assert c.post("/sample", json={"n": 1}).status_code == 401
        assert c.post("/sample", json={"n": 1}, headers={"x-api-key": "wrong"}).status_code == 401
        assert c.post("/sample", json={"n": 1}, headers={"x-api-key": "s3cret"}).status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/metrics").status_code == 200


def test_not_ready_without_default_model(tiny_repo: Path) -> None:
    settings = make_settings(tiny_repo)
    settings.default_model = "deep-ae-z4"  # not generative: the server refuses to become ready
    with TestClient(create_app(settings)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "not generative" in r.text
        r = c.post("/sample", json={"n": 1})
        assert r.status_code == 503 and r.headers["retry-after"]


def test_pixels_of_wrong_type(client: TestClient) -> None:
    r = client.post("/encode", json={"images": [{"pixels": [["a"] * 28] * 28}]})
    assert r.status_code == 422 and "valid number" in r.text
    arr = np.full((28, 28), 0.5).tolist()
    arr[3][4] = None
    assert client.post("/encode", json={"images": [{"pixels": arr}]}).status_code == 422


def test_cors_is_closed_by_default_and_open_when_configured(tiny_repo: Path) -> None:
    with TestClient(create_app(make_settings(tiny_repo))) as c:
        r = c.post("/sample", json={"n": 1}, headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    with TestClient(create_app(make_settings(tiny_repo, cors_origins=["https://app.example"]))) as c:
        r = c.post("/sample", json={"n": 1}, headers={"origin": "https://app.example"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
        pre = c.options("/sample", headers={"origin": "https://app.example", "access-control-request-method": "POST"})
        assert pre.status_code == 200


def test_limits_are_settings_alone(tiny_repo: Path) -> None:
    """Raising a setting raises its limit: no cap hides behind it (rows, n, steps), and the refusal names it."""
    big = {"max_rows": 15000, "max_sample": 15000, "max_steps": 1500, "max_body_bytes": 64 * 1024 * 1024}
    with TestClient(create_app(make_settings(tiny_repo, **big))) as c:
        assert c.post("/decode", json={"z": [[0.0] * 4] * 12000}, headers={"accept": "application/x-npy"}
                      ).status_code == 200
        r = c.post("/sample", json={"n": 12000, "seed": 1})
        assert r.status_code == 200 and len(r.json()["images"]) == 12000
        r = c.post("/interpolate", json={"start": {"z": [0.0] * 4}, "end": {"z": [1.0] * 4}, "steps": 1200},
                   headers={"accept": "application/x-npy"})
        assert r.status_code == 200, r.text
    with TestClient(create_app(make_settings(tiny_repo))) as c:
        r = c.post("/decode", json={"z": [[0.0] * 4] * 1025})
        assert r.status_code == 422 and "1024" in r.text
        r = c.post("/sample", json={"n": 10001, "seed": 1})
        assert r.status_code == 422 and "10000" in r.text
        r = c.post("/interpolate", json={"start": {"z": [0.0] * 4}, "end": {"z": [1.0] * 4}, "steps": 257})
        assert r.status_code == 422 and "256" in r.text
