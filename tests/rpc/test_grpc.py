"""The Open Inference Protocol over gRPC with Triton's own client (tritonclient.grpc, unmodified) against a live
server: metadata, configuration, index, readiness, encoder and decoder (raw and typed contents), a conditional model's
labels, a pinned version, errors as gRPC status codes, statistics, health, and repository control behind its key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from service.rpc import messages
from tests.helpers import free_port, launch

ADMIN = "grpc-admin-key-0123456789"


@pytest.fixture(scope="module")
def triton(tiny_repo: Path, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[tuple[grpcclient.InferenceServerClient, Path, str]]:
    port = free_port()
    url, proc = launch(["-m", "service"], tiny_repo, tmp_path_factory.mktemp("grpc") / "server.log",
                       VAESERVE_GRPC_PORT=str(port), VAESERVE_MODEL_CONTROL="true", VAESERVE_ADMIN_KEY=ADMIN)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    yield client, tiny_repo, f"127.0.0.1:{port}"
    client.close()
    proc.terminate()
    proc.wait(timeout=30)


def module(repo: Path, name: str, version: int) -> torch.jit.ScriptModule:
    return torch.jit.load(str(repo / name / str(version) / "model.ts"))


def test_metadata_config_index_readiness(triton: tuple[grpcclient.InferenceServerClient, Path, str]) -> None:
    c, _, _ = triton
    assert c.is_server_live() and c.is_server_ready()
    meta = c.get_server_metadata(as_json=True)
    assert meta["name"] == "vaeserve" and "model_repository" in meta["extensions"]
    assert c.is_model_ready("vae-z4-decoder") and c.is_model_ready("vae-z4-decoder", "1")
    assert not c.is_model_ready("vae-z4-decoder", "9") and not c.is_model_ready("nothing-decoder")
    m = c.get_model_metadata("vae-z4-decoder", "1", as_json=True)
    assert m["inputs"] == [{"name": "z", "datatype": "FP32", "shape": ["-1", "4"]}] and m["versions"] == ["1", "2"]
    cfg = c.get_model_config("vae-z4-encoder", as_json=True)["config"]
    assert int(cfg["max_batch_size"]) > 0 and cfg["input"][0]["dims"] == ["1", "28", "28"]
    assert cfg["input"][0]["data_type"] == "TYPE_FP32"
    index = c.get_model_repository_index(as_json=True)["models"]
    assert {"name": "vae-z4-decoder", "version": "2", "state": "READY"} in index


@pytest.mark.parametrize("raw", [True, False])
def test_decoder_raw_and_typed_contents(triton: tuple[grpcclient.InferenceServerClient, Path, str],
                                        raw: bool) -> None:
    c, repo, address = triton
    z = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    with torch.no_grad():
        ref = module(repo, "vae-z4", 2).decode(torch.from_numpy(z), None).numpy()
    if raw:  # what tritonclient sends: raw_input_contents, and it reads raw_output_contents
        inp = grpcclient.InferInput("z", list(z.shape), "FP32")
        inp.set_data_from_numpy(z)
        result = c.infer("vae-z4-decoder", [inp], outputs=[grpcclient.InferRequestedOutput("x")], request_id="r1")
        x, resp = result.as_numpy("x"), result.get_response()
        assert resp.id == "r1" and resp.model_version == "2"
    else:  # a plain client's typed contents, answered in kind
        req = messages.ModelInferRequest(model_name="vae-z4-decoder")
        req.inputs.add(name="z", datatype="FP32", shape=[5, 4]).contents.fp32_contents.extend(z.reshape(-1))
        with grpc.insecure_channel(address) as ch:
            call = ch.unary_unary(f"/{messages.SERVICE}/ModelInfer", request_serializer=type(req).SerializeToString,
                                  response_deserializer=messages.ModelInferResponse.FromString)
            resp = call(req)
        assert not resp.raw_output_contents and list(resp.outputs[0].shape) == [5, 1, 28, 28]
        x = np.array(resp.outputs[0].contents.fp32_contents, np.float32).reshape(5, 1, 28, 28)
    np.testing.assert_allclose(x, ref, atol=1e-5)


def test_encoder_pinned_version(triton: tuple[grpcclient.InferenceServerClient, Path, str]) -> None:
    c, repo, _ = triton
    x = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)
    inp = grpcclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = c.infer("vae-z4-encoder", [inp], model_version="1")
    with torch.no_grad():
        mu, logvar = module(repo, "vae-z4", 1).encode(torch.from_numpy(x), None)
    np.testing.assert_allclose(result.as_numpy("mu"), mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(result.as_numpy("logvar"), logvar.numpy(), atol=1e-5)
    assert result.get_response().model_version == "1"


def test_conditional_labels(triton: tuple[grpcclient.InferenceServerClient, Path, str]) -> None:
    c, repo, _ = triton
    z = np.random.default_rng(2).standard_normal((4, 4)).astype(np.float32)
    labels = np.array([0, 3, 7, 9], dtype=np.int64)
    zi, li = grpcclient.InferInput("z", [4, 4], "FP32"), grpcclient.InferInput("labels", [4], "INT64")
    zi.set_data_from_numpy(z)
    li.set_data_from_numpy(labels)
    with torch.no_grad():
        ref = module(repo, "cvae-z4", 1).decode(torch.from_numpy(z), torch.from_numpy(labels)).numpy()
    np.testing.assert_allclose(c.infer("cvae-z4-decoder", [zi, li]).as_numpy("x"), ref, atol=1e-5)


def test_errors_are_grpc_status_codes(triton: tuple[grpcclient.InferenceServerClient, Path, str]) -> None:
    c, _, _ = triton
    good = grpcclient.InferInput("z", [1, 4], "FP32")
    good.set_data_from_numpy(np.zeros((1, 4), np.float32))
    with pytest.raises(InferenceServerException, match="unknown model") as unknown:
        c.infer("no-such-decoder", [good])
    assert unknown.value.status() == "StatusCode.NOT_FOUND"
    wrong = grpcclient.InferInput("z", [1, 7], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 7), np.float32))
    with pytest.raises(InferenceServerException, match=r"shape \[1, 7\]; expected \[-1, 4\]") as shape:
        c.infer("vae-z4-decoder", [wrong])
    assert shape.value.status() == "StatusCode.INVALID_ARGUMENT"
    far = grpcclient.InferInput("z", [1, 4], "FP32")
    far.set_data_from_numpy(np.full((1, 4), 1e6, np.float32))
    with pytest.raises(InferenceServerException, match=r"values must lie in \[-1000, 1000\]"):
        c.infer("vae-z4-decoder", [far])
    with pytest.raises(InferenceServerException, match="is conditional: send input labels"):
        c.infer("cvae-z4-decoder", [good])
    with pytest.raises(InferenceServerException, match="unknown model"):
        c.get_model_metadata("vae-z4")


def test_statistics_count_inferences(triton: tuple[grpcclient.InferenceServerClient, Path, str]) -> None:
    c, _, _ = triton
    inp = grpcclient.InferInput("z", [3, 4], "FP32")
    inp.set_data_from_numpy(np.zeros((3, 4), np.float32))
    before = c.get_inference_statistics("vae-z4-decoder", "2", as_json=True)["model_stats"][0]
    c.infer("vae-z4-decoder", [inp])
    after = c.get_inference_statistics("vae-z4-decoder", "2", as_json=True)["model_stats"][0]
    assert int(after["inference_count"]) == int(before.get("inference_count", 0)) + 3
    assert int(after["inference_stats"]["queue"]["count"]) > int(before["inference_stats"]["queue"].get("count", 0))


def test_health_service(triton: tuple[grpcclient.InferenceServerClient, Path, str]) -> None:
    _, _, address = triton
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for service in ("", "inference.GRPCInferenceService"):
            assert stub.Check(health_pb2.HealthCheckRequest(service=service)).status == \
                health_pb2.HealthCheckResponse.SERVING


def test_load_and_unload_need_the_admin_key(triton: tuple[grpcclient.InferenceServerClient, Path, str]) -> None:
    c, _, _ = triton
    with pytest.raises(InferenceServerException, match="admin key") as denied:
        c.unload_model("vae-z2-decoder")
    assert denied.value.status() == "StatusCode.PERMISSION_DENIED" and c.is_model_ready("vae-z2-decoder")
    key = {"x-admin-key": ADMIN}
    c.unload_model("vae-z2-decoder", headers=key)
    assert not c.is_model_ready("vae-z2-decoder")
    index = c.get_model_repository_index(as_json=True)["models"]
    assert {"name": "vae-z2-decoder", "state": "UNAVAILABLE", "reason": "unloaded"} in index
    c.load_model("vae-z2-decoder", headers=key)
    assert c.is_model_ready("vae-z2-decoder") and c.is_model_ready("vae-z2-encoder")
    with pytest.raises(InferenceServerException, match="default model") as default:
        c.unload_model("vae-z4", headers=key)
    assert default.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_sigterm_drains_grpc(tiny_repo: Path, tmp_path: Path) -> None:
    """SIGTERM while gRPC clients call in a loop: every call is answered, OK until the drain, then UNAVAILABLE
    saying so (a client retries elsewhere) or refused at connect once the server has gone; the process exits 0."""
    import signal
    import threading
    import time

    port = free_port()
    _, proc = launch(["-m", "service"], tiny_repo, tmp_path / "server.log", VAESERVE_GRPC_PORT=str(port),
                     VAESERVE_DRAIN_TIMEOUT_S="10")
    req = messages.ModelInferRequest(model_name="vae-z4-decoder")
    req.inputs.add(name="z", datatype="FP32", shape=[64, 4])
    req.raw_input_contents.append(np.zeros((64, 4), np.float32).tobytes())
    outcomes: list[tuple[str, str]] = []

    def caller() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary(f"/{messages.SERVICE}/ModelInfer",
                                  request_serializer=messages.ModelInferRequest.SerializeToString,
                                  response_deserializer=messages.ModelInferResponse.FromString)
            while True:
                try:
                    call(req, timeout=10)
                    outcomes.append(("OK", ""))
                except grpc.RpcError as exc:
                    outcomes.append((exc.code().name, exc.details() or ""))
                    return

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=30)
    assert proc.wait(timeout=30) == 0
    ends = [o for o in outcomes if o[0] != "OK"]
    assert sum(o[0] == "OK" for o in outcomes) > 0 and len(ends) == 4
    for code, details in ends:
        assert code == "UNAVAILABLE", (code, details)
        assert "draining" in details or "connect" in details.lower(), details
    assert any("draining" in d for _, d in ends), ends


def test_sampler_pulls_digits_in_chunks(triton: tuple[grpcclient.InferenceServerClient, Path, str]) -> None:
    """<name>-sampler decodes the caller's N(0, I) noise as /sample does (the prior applied where there is one):
    bulk digits over gRPC as a documented chunked call; a model with nothing to sample has no sampler."""
    c, repo, _ = triton
    rng = np.random.default_rng(5)
    chunks = []
    for _ in range(3):  # three chunks of a larger pull
        eps = rng.standard_normal((256, 4)).astype(np.float32)
        inp = grpcclient.InferInput("eps", list(eps.shape), "FP32")
        inp.set_data_from_numpy(eps)
        chunks.append((eps, c.infer("vae-z4-sampler", [inp]).as_numpy("x")))
    with torch.no_grad():
        for eps, x in chunks:  # vae-z4 has the N(0, I) prior: sampling is decoding the noise
            ref = module(repo, "vae-z4", 2).decode(torch.from_numpy(eps), None).numpy()
            np.testing.assert_allclose(x, ref, atol=1e-5)
    meta = c.get_model_metadata("vae-z4-sampler", as_json=True)
    assert meta["inputs"][0]["name"] == "eps" and meta["outputs"][0]["shape"] == ["-1", "1", "28", "28"]
    with pytest.raises(InferenceServerException, match="not generative") as none:
        c.get_model_metadata("deep-ae-z4-sampler")
    assert none.value.status() == "StatusCode.NOT_FOUND"
