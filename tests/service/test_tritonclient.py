"""Triton's own HTTP client (tritonclient[http], unmodified) against a live server: the Open Inference
Protocol as real clients use it, JSON and binary tensors both ways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.helpers import launch


@pytest.fixture(scope="module")
def triton(tiny_repo: Path, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[tuple[httpclient.InferenceServerClient, Path]]:
    url, proc = launch(["-m", "service"], tiny_repo, tmp_path_factory.mktemp("triton") / "server.log")
    client = httpclient.InferenceServerClient(url.removeprefix("http://"))
    yield client, tiny_repo
    client.close()
    proc.terminate()
    proc.wait(timeout=30)


def module(repo: Path, name: str, version: int) -> torch.jit.ScriptModule:
    return torch.jit.load(str(repo / name / str(version) / "model.ts"))


def test_server_and_model_metadata(triton: tuple[httpclient.InferenceServerClient, Path]) -> None:
    c, _ = triton
    assert c.is_server_live() and c.is_server_ready()
    meta = c.get_server_metadata()
    assert "binary_tensor_data" in meta["extensions"]
    assert c.is_model_ready("vae-z4-decoder") and c.is_model_ready("vae-z4-decoder", "1")
    assert not c.is_model_ready("vae-z4-decoder", "9")
    m = c.get_model_metadata("vae-z4-decoder", "1")
    assert m["inputs"] == [{"name": "z", "datatype": "FP32", "shape": [-1, 4]}] and m["versions"] == ["1", "2"]
    cfg = c.get_model_config("vae-z4-encoder")
    assert cfg["max_batch_size"] > 0 and cfg["input"][0]["dims"] == [1, 28, 28]
    index = c.get_model_repository_index()
    assert {"name": "vae-z4-decoder", "version": "2", "state": "READY", "reason": ""} in index


@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
def test_decoder_json_and_binary(triton: tuple[httpclient.InferenceServerClient, Path], binary_in: bool,
                                 binary_out: bool) -> None:
    c, repo = triton
    z = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    inp = httpclient.InferInput("z", list(z.shape), "FP32")
    inp.set_data_from_numpy(z, binary_data=binary_in)
    out = httpclient.InferRequestedOutput("x", binary_data=binary_out)
    result = c.infer("vae-z4-decoder", [inp], outputs=[out], request_id="r1")
    x = result.as_numpy("x")
    with torch.no_grad():
        ref = module(repo, "vae-z4", 2).decode(torch.from_numpy(z), None).numpy()
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x, ref, atol=1e-5)
    assert result.get_response()["id"] == "r1" and result.get_response()["model_version"] == "2"


def test_encoder_default_outputs_are_binary(triton: tuple[httpclient.InferenceServerClient, Path]) -> None:
    """With no outputs named, tritonclient asks for every output in binary (binary_data_output)."""
    c, repo = triton
    x = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)
    inp = httpclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = c.infer("vae-z4-encoder", [inp])
    with torch.no_grad():
        mu, logvar = module(repo, "vae-z4", 2).encode(torch.from_numpy(x), None)
    np.testing.assert_allclose(result.as_numpy("mu"), mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(result.as_numpy("logvar"), logvar.numpy(), atol=1e-5)
    assert all("binary_data_size" in o["parameters"] for o in result.get_response()["outputs"])


def test_pinned_version(triton: tuple[httpclient.InferenceServerClient, Path]) -> None:
    c, repo = triton
    z = np.zeros((1, 4), np.float32)
    inp = httpclient.InferInput("z", [1, 4], "FP32")
    inp.set_data_from_numpy(z)
    result = c.infer("vae-z4-decoder", [inp], model_version="1")
    with torch.no_grad():
        ref = module(repo, "vae-z4", 1).decode(torch.from_numpy(z), None).numpy()
    np.testing.assert_allclose(result.as_numpy("x"), ref, atol=1e-5)
    assert result.get_response()["model_version"] == "1"


def test_conditional_labels_both_halves(triton: tuple[httpclient.InferenceServerClient, Path]) -> None:
    c, repo = triton
    x = np.random.default_rng(2).random((4, 1, 28, 28), dtype=np.float32)
    labels = np.array([0, 3, 7, 9], dtype=np.int64)
    xi, li = httpclient.InferInput("x", [4, 1, 28, 28], "FP32"), httpclient.InferInput("labels", [4], "INT64")
    xi.set_data_from_numpy(x)
    li.set_data_from_numpy(labels, binary_data=False)
    enc = c.infer("cvae-z4-encoder", [xi, li])
    zi = httpclient.InferInput("z", [4, 4], "FP32")
    zi.set_data_from_numpy(enc.as_numpy("mu"))
    li.set_data_from_numpy(labels)  # binary this time
    dec = c.infer("cvae-z4-decoder", [zi, li])
    m = module(repo, "cvae-z4", 1)
    with torch.no_grad():
        mu, _ = m.encode(torch.from_numpy(x), torch.from_numpy(labels))
        ref = m.decode(mu, torch.from_numpy(labels)).numpy()
    np.testing.assert_allclose(enc.as_numpy("mu"), mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(dec.as_numpy("x"), ref, atol=1e-5)


def test_errors_reach_the_client(triton: tuple[httpclient.InferenceServerClient, Path]) -> None:
    c, _ = triton
    good = httpclient.InferInput("z", [1, 4], "FP32")
    good.set_data_from_numpy(np.zeros((1, 4), np.float32))
    with pytest.raises(InferenceServerException, match="unknown model") as unknown:
        c.infer("no-such-decoder", [good])
    assert unknown.value.status() == "404"
    wrong = httpclient.InferInput("z", [1, 7], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 7), np.float32))
    with pytest.raises(InferenceServerException, match=r"shape \[1, 7\]; expected \[-1, 4\]") as shape:
        c.infer("vae-z4-decoder", [wrong])
    assert shape.value.status() == "422"
    with pytest.raises(InferenceServerException, match="is conditional: send input labels"):
        c.infer("cvae-z4-decoder", [good])
