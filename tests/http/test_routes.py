"""Every endpoint's happy path over tiny checkpoints, checked against the checkpoint itself."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from tests.helpers import pixels


def ts(repo: Path, name: str, version: int = 1) -> torch.jit.ScriptModule:
    return torch.jit.load(str(repo / name / str(version) / "model.ts"))


def png_b64(arr: np.ndarray, mode: str = "L") -> str:
    img = Image.fromarray((arr * 255).round().astype(np.uint8), mode="L")
    if mode != "L":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_decode_matches_the_checkpoint(client: TestClient, tiny_repo: Path) -> None:
    z = torch.randn(3, 4)
    r = client.post("/decode", json={"z": z.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "vae-z4" and body["version"] == 2  # the newest version serves by default
    with torch.no_grad():
        ref = ts(tiny_repo, "vae-z4", 2).decode(z, None)[:, 0].numpy()
    np.testing.assert_allclose(np.array(body["images"]), ref, atol=1e-5)


def test_version_can_be_pinned(client: TestClient, tiny_repo: Path) -> None:
    z = torch.zeros(1, 4)
    r = client.post("/decode", json={"z": z.tolist(), "version": 1})
    assert r.json()["version"] == 1
    with torch.no_grad():
        ref = ts(tiny_repo, "vae-z4", 1).decode(z, None)[:, 0].numpy()
    np.testing.assert_allclose(np.array(r.json()["images"][0]), ref[0], atol=1e-5)


def test_encode_returns_mu_logvar_and_seeded_z(client: TestClient, tiny_repo: Path) -> None:
    x = np.random.default_rng(0).random((2, 28, 28)).astype(np.float32)
    body = {"images": [{"pixels": x[0].tolist()}, {"pixels": x[1].tolist()}], "sample": True, "seed": 7}
    a, b = client.post("/encode", json=body).json(), client.post("/encode", json=body).json()
    with torch.no_grad():
        mu, logvar = ts(tiny_repo, "vae-z4", 2).encode(torch.from_numpy(x[:, None]), None)
    np.testing.assert_allclose(a["mu"], mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(a["logvar"], logvar.numpy(), atol=1e-5)
    assert a["z"] == b["z"] and a["z"] != a["mu"]


def test_deterministic_model_has_null_logvar(client: TestClient) -> None:
    r = client.post("/encode", json={"model": "deep-ae-z4", "images": [{"pixels": pixels()}]})
    assert r.status_code == 200 and r.json()["logvar"] is None and len(r.json()["mu"][0]) == 4


def test_png_in_grey_and_rgb_equal_pixels(client: TestClient) -> None:
    x = (np.random.default_rng(1).integers(0, 256, (28, 28)) / 255).astype(np.float32)
    results = [client.post("/encode", json={"images": [img]}).json()["mu"] for img in
               ({"pixels": x.tolist()}, {"png": png_b64(x)}, {"png": png_b64(x, "RGB")})]
    np.testing.assert_allclose(results[0], results[1], atol=1e-5)
    np.testing.assert_allclose(results[0], results[2], atol=1e-5)


def test_sample_same_seed_same_digits(client: TestClient) -> None:
    a = client.post("/sample", json={"n": 4, "seed": 123}).json()
    b = client.post("/sample", json={"n": 4, "seed": 123}).json()
    c = client.post("/sample", json={"n": 4, "seed": 124}).json()
    assert a["images"] == b["images"] and a["z"] == b["z"] and a["seed"] == 123
    assert a["images"] != c["images"]
    np.testing.assert_allclose(np.array(a["z"]), torch.randn(4, 4, generator=torch.Generator().manual_seed(123)),
                               atol=1e-6)


def test_sample_temperature_scales_z(client: TestClient) -> None:
    a = np.array(client.post("/sample", json={"n": 3, "seed": 5}).json()["z"])
    b = np.array(client.post("/sample", json={"n": 3, "seed": 5, "temperature": 0.5}).json()["z"])
    np.testing.assert_allclose(b, 0.5 * a, atol=1e-6)


NPY_ACCEPT = {"accept": "application/x-npy"}


def test_sample_sharpness_is_the_pixel_rule_in_every_answer(client: TestClient) -> None:
    """sharpness: each pixel of the plain answer through checkpoint/sampling.py's sharpen, the same in JSON, .npy
    (uint8 from the sharpened floats) and a streamed .npy; a value outside (0, 100] is a 422 that says so."""
    from checkpoint.sampling import sharpen

    for model in ("vae-z4", "cvae-z4"):  # without, and with a learned prior (one forward for .npy answers)
        body = {"model": model, "n": 6, "seed": 2, "labels": "balanced" if model == "cvae-z4" else None}
        plain = np.array(client.post("/sample", json=body).json()["images"], dtype=np.float32)
        sharp = np.array(client.post("/sample", json={**body, "sharpness": 6}).json()["images"], dtype=np.float32)
        np.testing.assert_allclose(sharp, sharpen(torch.from_numpy(plain), 6.0).numpy(), atol=1e-5)
        assert np.abs(sharp - 0.5).mean() > np.abs(plain - 0.5).mean()
        r = client.post("/sample", json={**body, "sharpness": 6, "dtype": "uint8"}, headers=NPY_ACCEPT)
        np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), np.rint(sharp * 255).astype(np.uint8))
    for bad in (0, -1, 101):
        r = client.post("/sample", json={"n": 1, "sharpness": bad})
        assert r.status_code == 422 and "sharpness" in r.json()["error"]


def test_sample_png_and_npy(client: TestClient) -> None:
    r = client.post("/sample", json={"n": 2, "seed": 1, "format": "png"})
    img = Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0])))
    assert img.size == (28, 28) and img.mode == "L"
    r = client.post("/sample", json={"n": 5, "seed": 1}, headers={"accept": "application/x-npy"})
    assert r.headers["content-type"] == "application/x-npy" and r.headers["x-model"] == "vae-z4"
    arr = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert arr.shape == (5, 28, 28) and arr.dtype == np.float32
    as_json = np.array(client.post("/sample", json={"n": 5, "seed": 1}).json()["images"], dtype=np.float32)
    # the same digits; on a busy machine the batcher may cut the rows into other chunks, whose matrix products round
    # the last bit differently (seen: 10 pixels of 3,920 one float32 step apart, 6e-8, beside a busy core)
    np.testing.assert_allclose(arr, as_json, rtol=0, atol=1e-6)


def test_conditional_sample_balanced(client: TestClient) -> None:
    r = client.post("/sample", json={"model": "cvae-z4", "n": 20, "labels": "balanced", "seed": 0})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == [i % 10 for i in range(20)]
    r = client.post("/decode", json={"model": "cvae-z4", "z": [[0.0] * 4] * 2, "labels": [3, 7]})
    assert r.status_code == 200


def test_conditional_encode_reconstruct_interpolate_take_labels(client: TestClient, tiny_repo: Path) -> None:
    """The explorer's style transfer: encode a digit under its class, decode the code under every class."""
    x = np.random.default_rng(1).random((2, 28, 28)).astype(np.float32)
    images = [{"pixels": x[0].tolist()}, {"pixels": x[1].tolist()}]
    module = ts(tiny_repo, "cvae-z4")
    lab = torch.tensor([3, 8])
    with torch.no_grad():
        mu, _ = module.encode(torch.from_numpy(x[:, None]), lab)
        rec = module.decode(mu, lab)[:, 0].numpy()
        other = module.encode(torch.from_numpy(x[:, None]), torch.tensor([0, 0]))[0]
    enc = client.post("/encode", json={"model": "cvae-z4", "images": images, "labels": [3, 8]})
    assert enc.status_code == 200, enc.text
    np.testing.assert_allclose(enc.json()["mu"], mu.numpy(), atol=1e-5)
    assert not np.allclose(enc.json()["mu"], other.numpy(), atol=1e-5)  # the label is really used
    r = client.post("/reconstruct", json={"model": "cvae-z4", "images": images, "labels": [3, 8]}).json()
    np.testing.assert_allclose(np.array(r["images"]), rec, atol=1e-5)
    path = client.post("/interpolate", json={"model": "cvae-z4", "start": {"image": images[0]},
                                             "end": {"z": [0.0] * 4}, "steps": 3, "label": 3})
    assert path.status_code == 200, path.text
    np.testing.assert_allclose(path.json()["z"][0], mu[0].numpy(), atol=1e-5)
    with torch.no_grad():
        last = module.decode(torch.zeros(1, 4), torch.tensor([3]))[0, 0].numpy()
    np.testing.assert_allclose(np.array(path.json()["images"][-1]), last, atol=1e-5)


def test_balanced_labelled_set_as_npz(client: TestClient) -> None:
    """Bulk labelled digits: images, labels and z in one .npz, equal to the JSON answer of the same seed."""
    body = {"model": "cvae-z4", "n": 100, "labels": "balanced", "seed": 5}
    r = client.post("/sample", json=body, headers={"accept": "application/x-npz"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-npz"
    npz = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert npz["images"].shape == (100, 28, 28) and npz["images"].dtype == np.float32
    assert npz["labels"].tolist() == [i % 10 for i in range(100)] and int(npz["seed"]) == 5
    as_json = client.post("/sample", json=body).json()
    np.testing.assert_array_equal(npz["images"], np.array(as_json["images"], dtype=np.float32))
    np.testing.assert_allclose(npz["z"], as_json["z"], atol=1e-6)
    rec = client.post("/reconstruct", json={"images": [{"pixels": [[0.5] * 28] * 28}]},
                      headers={"accept": "application/x-npz"})
    assert set(np.load(io.BytesIO(rec.content)).files) == {"images", "mse"}


def test_interpolate_ends_included(client: TestClient, tiny_repo: Path) -> None:
    a, b = [1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]
    lin = client.post("/interpolate", json={"start": {"z": a}, "end": {"z": b}, "steps": 5}).json()
    assert np.allclose(lin["z"][0], a) and np.allclose(lin["z"][-1], b) and len(lin["images"]) == 5
    assert np.allclose(lin["z"][2], [0.5, 1.0, 0, 0])
    sl = client.post("/interpolate", json={"start": {"z": a}, "end": {"z": b}, "steps": 3, "method": "slerp"}).json()
    assert np.allclose(sl["z"][0], a, atol=1e-6) and np.allclose(sl["z"][-1], b, atol=1e-6)
    mid = np.array(sl["z"][1])  # on the great circle: 45 degrees between the two axes
    assert abs(mid[0] - mid[1] * 0.5) < 1e-5 and mid[0] > 0.5
    img = pixels(0.3)
    r = client.post("/interpolate", json={"start": {"image": {"pixels": img}}, "end": {"z": b}, "steps": 2}).json()
    with torch.no_grad():
        mu, _ = ts(tiny_repo, "vae-z4", 2).encode(torch.full((1, 1, 28, 28), 0.3), None)
    np.testing.assert_allclose(r["z"][0], mu[0].numpy(), atol=1e-5)


def test_reconstruct_returns_mse(client: TestClient, tiny_repo: Path) -> None:
    x = np.random.default_rng(2).random((3, 28, 28)).astype(np.float32)
    r = client.post("/reconstruct", json={"images": [{"pixels": i.tolist()} for i in x]}).json()
    with torch.no_grad():
        ref = ts(tiny_repo, "vae-z4", 2).forward(torch.from_numpy(x[:, None]))[:, 0].numpy()
    np.testing.assert_allclose(r["images"], ref, atol=1e-5)
    np.testing.assert_allclose(r["mse"], ((ref - x) ** 2).mean(axis=(1, 2)), rtol=1e-4)


def test_models_and_health(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert set(models) == {"vae-z4", "vae-z2", "deep-ae-z4", "linear-ae-z3", "cvae-z4"}
    assert models["vae-z4"]["versions"] == [1, 2] and models["vae-z4"]["default"]
    assert models["deep-ae-z4"]["generative"] is False
    assert client.get("/models/vae-z2").json()["latent_dim"] == 2
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
    r = client.get("/models/nope")
    assert r.status_code == 404 and "vae-z4" in r.json()["detail"]["available"]


def test_metrics_and_request_id(client: TestClient) -> None:
    r = client.post("/sample", json={"n": 1}, headers={"x-request-id": "abc123"})
    assert r.headers["x-request-id"] == "abc123"
    assert client.post("/decode", json={}).headers["x-request-id"]
    text = client.get("/metrics").text
    assert 'vaeserve_requests_total{route="/sample",status="200"}' in text
    assert "vaeserve_batch_rows_bucket" in text and "vaeserve_request_seconds_bucket" in text


def test_v2_protocol(client: TestClient, tiny_repo: Path) -> None:
    meta = client.get("/v2/models/vae-z4-decoder").json()
    assert meta["inputs"][0] == {"name": "z", "datatype": "FP32", "shape": [-1, 4]}
    z = torch.randn(2, 4)
    r = client.post("/v2/models/vae-z4-decoder/infer",
                    json={"inputs": [{"name": "z", "shape": [2, 4], "datatype": "FP32", "data": z.flatten().tolist()}]})
    out = r.json()["outputs"][0]
    assert out["shape"] == [2, 1, 28, 28]
    with torch.no_grad():
        ref = ts(tiny_repo, "vae-z4", 2).decode(z, None).flatten().numpy()
    np.testing.assert_allclose(out["data"], ref, atol=1e-5)
    x = np.full((1, 1, 28, 28), 0.2).tolist()
    r = client.post("/v2/models/vae-z4-encoder/infer",
                    json={"inputs": [{"name": "x", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": x}]})
    assert [o["name"] for o in r.json()["outputs"]] == ["mu", "logvar"]
    assert client.get("/v2/health/ready").status_code == 200
    assert client.post("/v2/models/vae-z4/infer", json={"inputs": []}).status_code in (404, 422)


def test_v2_conditional_encoder_and_decoder_take_labels(client: TestClient, tiny_repo: Path) -> None:
    meta = client.get("/v2/models/cvae-z4-encoder").json()
    assert {"name": "labels", "datatype": "INT64", "shape": [-1]} in meta["inputs"]
    x = np.random.default_rng(2).random((2, 1, 28, 28)).astype(np.float32)
    lab = {"name": "labels", "shape": [2], "datatype": "INT64", "data": [4, 9]}
    xin = {"name": "x", "shape": [2, 1, 28, 28], "datatype": "FP32", "data": x.flatten().tolist()}
    r = client.post("/v2/models/cvae-z4-encoder/infer", json={"inputs": [xin, lab]})
    assert r.status_code == 200, r.text
    with torch.no_grad():
        mu, _ = ts(tiny_repo, "cvae-z4").encode(torch.from_numpy(x), torch.tensor([4, 9]))
    np.testing.assert_allclose(r.json()["outputs"][0]["data"], mu.flatten().numpy(), atol=1e-5)
    missing = client.post("/v2/models/cvae-z4-encoder/infer", json={"inputs": [xin]})
    assert missing.status_code == 422 and "is conditional: send input labels" in missing.json()["error"]
    one = {"name": "x", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": x[0].flatten().tolist()}
    extra = client.post("/v2/models/vae-z4-encoder/infer",
                        json={"inputs": [one, {**lab, "shape": [1], "data": [1]}]})
    assert extra.status_code == 422 and "not conditional" in extra.json()["error"]


def test_large_answers_serialised_off_the_loop_are_identical(client: TestClient) -> None:
    """Answers over 64 images are built on a thread; they hold the same images as the .npy answer."""
    big = client.post("/sample", json={"n": 100, "seed": 9, "format": "png"}).json()
    arr = np.load(io.BytesIO(client.post("/sample", json={"n": 100, "seed": 9},
                                         headers={"accept": "application/x-npy"}).content))
    pngs = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(b)))) for b in big["images"]])
    assert pngs.shape == (100, 28, 28)
    np.testing.assert_array_equal(pngs, np.rint(arr * 255).astype(np.uint8))
    pixels = np.array(client.post("/sample", json={"n": 100, "seed": 9}).json()["images"], dtype=np.float32)
    np.testing.assert_array_equal(pixels, arr)


def test_every_inference_request_passes_one_admission(tiny_repo: Path) -> None:
    """REST and v2 alike count against max_inflight, and the counts return to zero, failures included."""
    from fastapi.testclient import TestClient as TC

    from service.app import create_app
    from tests.helpers import make_settings

    with TC(create_app(make_settings(tiny_repo, max_inflight=4))) as c:
        adm = c.app.state.plane._engine.admission
        v2 = {"inputs": [{"name": "z", "shape": [1, 4], "datatype": "FP32", "data": [0.0] * 4}]}
        for _ in range(3):
            assert c.post("/decode", json={"z": [[0.0] * 4]}).status_code == 200
            assert c.post("/v2/models/vae-z4-decoder/infer", json=v2).status_code == 200
            assert c.post("/v2/models/vae-z4-decoder/infer", json={"inputs": []}).status_code == 422
            assert c.post("/decode", json={"z": [[0.0] * 5]}).status_code == 422
        assert (adm.inflight, adm.arriving) == (0, 0)
        adm.inflight = 4  # as if four requests were in flight
        for r in (c.post("/v2/models/vae-z4-decoder/infer", json=v2), c.post("/decode", json={"z": [[0.0] * 4]})):
            assert r.status_code == 429 and r.headers["retry-after"] and "in flight" in r.json()["error"]
        adm.inflight = 0


def test_interpolate_has_one_deadline_for_both_steps(tiny_repo: Path) -> None:
    """Encode then decode share the request's deadline: two slow steps cannot take 2x request_timeout_s."""
    import time as _time

    from fastapi.testclient import TestClient as TC

    from service.app import create_app
    from tests.helpers import make_settings

    with TC(create_app(make_settings(tiny_repo, request_timeout_s=1.0))) as c:
        runtime = c.app.state.plane._engine.runtime
        real = runtime.run

        def slow(*args: object) -> torch.Tensor:
            _time.sleep(0.6)  # each step alone is within the deadline; both together are not
            return real(*args)

        runtime.run = slow
        ends = {"start": {"image": {"pixels": pixels(0.2)}}, "end": {"image": {"pixels": pixels(0.8)}}}
        r = c.post("/interpolate", json={**ends, "steps": 3})
        assert r.status_code == 504 and "deadline" in r.json()["error"]


def test_table_routes_answer_405_as_json_and_are_labelled_by_template(client: TestClient) -> None:
    r = client.get("/decode")
    assert r.status_code == 405 and r.headers["allow"] == "POST" and "takes POST" in r.json()["error"]
    v2 = {"inputs": [{"name": "z", "shape": [1, 4], "datatype": "FP32", "data": [0.0] * 4}]}
    assert client.post("/v2/models/vae-z4-decoder/versions/1/infer", json=v2).status_code == 200
    text = client.get("/metrics").text
    assert 'route="/decode",status="405"' in text
    assert 'route="/v2/models/{model}/versions/{version}/infer",status="200"' in text


def test_openapi_has_every_table_row_with_its_bodies(client: TestClient) -> None:
    from service.http.table import ENDPOINTS

    spec = client.get("/openapi.json").json()
    for e in ENDPOINTS:
        op = spec["paths"][e.path]["post"]
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/" + e.request.__name__) and e.request.__name__ in spec["components"]["schemas"]
        assert {"200", "422", "429", "503", "504"} <= op["responses"].keys()


def test_uint8_answers_are_the_float_pixels_rounded(client: TestClient) -> None:
    import io

    body = {"n": 5, "seed": 3}
    ref = np.load(io.BytesIO(client.post("/sample", json=body, headers={"accept": "application/x-npy"}).content))
    r = client.post("/sample", json={**body, "dtype": "uint8"}, headers={"accept": "application/x-npy"})
    small = np.load(io.BytesIO(r.content))
    assert small.dtype == np.uint8 and small.shape == ref.shape == (5, 28, 28)
    np.testing.assert_array_equal(small, np.rint(ref * 255).astype(np.uint8))
    assert len(r.content) < len(client.post("/sample", json=body, headers={"accept": "application/x-npy"}).content) / 3
    npz = np.load(io.BytesIO(client.post("/sample", json={**body, "dtype": "uint8"},
                                         headers={"accept": "application/x-npz"}).content))
    np.testing.assert_array_equal(npz["images"], small)
    pixels_json = client.post("/decode", json={"z": [[0.0] * 4], "dtype": "uint8"}).json()["images"]
    assert all(isinstance(v, int) and 0 <= v <= 255 for v in pixels_json[0][0])
    assert client.post("/sample", json={**body, "dtype": "int8"}).status_code == 422


def test_large_npy_samples_are_streamed_with_the_same_bytes(tiny_repo: Path) -> None:
    import io

    from fastapi.testclient import TestClient as TC

    from service.app import create_app
    from tests.helpers import make_settings

    npy = {"accept": "application/x-npy"}
    body = {"n": 50, "seed": 9}
    with TC(create_app(make_settings(tiny_repo, max_batch_rows=8))) as c:  # answered whole
        whole = c.post("/sample", json=body, headers=npy)
        whole8 = c.post("/sample", json={**body, "dtype": "uint8"}, headers=npy)
    with TC(create_app(make_settings(tiny_repo, max_batch_rows=8, stream_min_rows=16))) as c:  # streamed
        streamed = c.post("/sample", json=body, headers=npy)
        streamed8 = c.post("/sample", json={**body, "dtype": "uint8"}, headers=npy)
        assert c.app.state.plane._engine.admission.inflight == 0  # the kept ticket, released
    assert streamed.status_code == 200 and streamed.headers["x-seed"] == "9"
    assert int(streamed.headers["content-length"]) == len(streamed.content)
    a, b = np.load(io.BytesIO(whole.content)), np.load(io.BytesIO(streamed.content))
    assert b.shape == (50, 28, 28) and b.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_array_equal(np.load(io.BytesIO(whole8.content)), np.load(io.BytesIO(streamed8.content)))


def test_a_stream_longer_than_the_body_timeout_is_not_cut(tiny_repo: Path) -> None:
    """The body deadline covers the request body only: a streamed answer may take longer (it once was cut)."""
    import io
    import time as _time

    from fastapi.testclient import TestClient as TC

    from service.app import create_app
    from tests.helpers import make_settings

    settings = make_settings(tiny_repo, max_batch_rows=8, stream_min_rows=16, body_timeout_s=0.3)
    with TC(create_app(settings)) as c:
        runtime = c.app.state.plane._engine.runtime
        real = runtime.run

        def slow(*args: object) -> torch.Tensor:
            _time.sleep(0.1)  # 7 chunks: ~0.7 s of streaming, past the 0.3 s body timeout
            return real(*args)

        runtime.run = slow
        r = c.post("/sample", json={"n": 50, "seed": 2}, headers={"accept": "application/x-npy"})
    assert r.status_code == 200 and np.load(io.BytesIO(r.content)).shape == (50, 28, 28)


def test_uint8_made_by_the_forward_equals_numpy_rounding() -> None:
    from checkpoint.sampling import to_uint8 as torch_u8
    from service.http.respond import to_uint8 as np_u8

    x = torch.rand(64, 28, 28)
    x[0, 0, :5] = torch.tensor([0.0, 1.0, -0.5, 1.5, 0.5 / 255])  # ends, out of range, a tie (0.5 -> 0)
    expected = np.rint(np.clip(x.numpy(), 0.0, 1.0) * 255.0).astype(np.uint8)  # numpy's rounding, the PNG rule
    np.testing.assert_array_equal(torch_u8(x).numpy(), expected)
    np.testing.assert_array_equal(np_u8(x.numpy()), expected)
    assert x[0, 0, 2] == -0.5  # neither writes into its input


@pytest.mark.parametrize(("options", "tolerance"), [({"channels_last": True}, 1e-4), ({"precision": "bf16"}, 0.05)])
def test_memory_format_and_precision_when_asked(tiny_repo: Path, options: dict, tolerance: float) -> None:
    """channels_last keeps the fp32 contract (< 1e-4); bf16 trades about a hundredth of a pixel for speed."""
    from fastapi.testclient import TestClient as TC

    from service.app import create_app
    from tests.helpers import make_settings

    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    with TC(create_app(make_settings(tiny_repo, **options))) as c:
        served = np.array(c.post("/decode", json={"z": z.tolist()}).json()["images"])
        x = np.random.default_rng(0).random((2, 28, 28)).astype(np.float32)
        mu = np.array(c.post("/encode", json={"images": [{"pixels": im.tolist()} for im in x]}).json()["mu"])
    module = ts(tiny_repo, "vae-z4", 2)
    with torch.no_grad():
        ref = module.decode(z, None)[:, 0].numpy()
        ref_mu = module.encode(torch.from_numpy(x[:, None]), None)[0].numpy()
    np.testing.assert_allclose(served, ref, atol=tolerance)
    np.testing.assert_allclose(mu, ref_mu, atol=tolerance * 10)


def test_fp16_on_a_cpu_is_refused_at_start(tiny_repo: Path) -> None:
    from service.app import create_app
    from tests.helpers import make_settings

    with pytest.raises(ValueError, match="fp16 needs CUDA; on a CPU use bf16"):
        create_app(make_settings(tiny_repo, precision="fp16", device="cpu"))
