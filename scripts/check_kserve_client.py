"""KServe's own Python clients (kserve.InferenceRESTClient, v2, and kserve.InferenceGRPCClient) against a running
vaeserve.

KServe's package pulls in its whole server stack (grpcio, kubernetes, pandas...), so it is not a test dependency;
run this from a separate environment:
    python3 -m venv /tmp/ks && /tmp/ks/bin/pip install "kserve==0.21.0"
    .venv/bin/python -m service &   # or any deployment
    /tmp/ks/bin/python scripts/check_kserve_client.py http://127.0.0.1:8000 127.0.0.1:8001
Exits non-zero on the first check that fails. The second argument (the gRPC address) is optional.
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest
from kserve.inference_client import RESTConfig
from kserve.protocol.infer_type import RequestedOutput


async def main(base: str, model: str = "vae-flow-z20") -> int:
    c = InferenceRESTClient(RESTConfig(protocol="v2"))
    assert await c.is_server_live(base) and await c.is_server_ready(base)
    assert await c.is_model_ready(base, f"{model}-decoder")
    z = np.random.default_rng(0).standard_normal((8, 20)).astype(np.float32)
    answers = []
    for binary in (False, True):  # JSON tensors, then the binary tensor data extension both ways
        inp = InferInput("z", list(z.shape), "FP32")
        inp.set_data_from_numpy(z, binary_data=binary)
        outputs = [RequestedOutput("x", parameters={"binary_data": True})] if binary else None
        res = await c.infer(base, InferRequest(f"{model}-decoder", [inp], request_outputs=outputs),
                            model_name=f"{model}-decoder")
        x = res.outputs[0].as_numpy()
        assert x.shape == (8, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
        answers.append(x)
        print(f"decoder, binary={binary}: {x.shape} {x.dtype}, id {res.id}")
    np.testing.assert_array_equal(answers[0], answers[1])
    img = InferInput("x", [2, 1, 28, 28], "FP32")
    img.set_data_from_numpy(answers[0][:2], binary_data=True)
    res = await c.infer(base, InferRequest(f"{model}-encoder", [img]), model_name=f"{model}-encoder")
    assert [(o.name, o.as_numpy().shape) for o in res.outputs] == [("mu", (2, 20)), ("logvar", (2, 20))]
    print("encoder: mu, logvar (2, 20)")
    bad = InferInput("z", [1, 5], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 5), np.float32))
    try:
        await c.infer(base, InferRequest(f"{model}-decoder", [bad]), model_name=f"{model}-decoder")
        raise AssertionError("a wrong shape was accepted")
    except Exception as exc:  # httpx.HTTPStatusError carrying the server's {"error": ...}
        assert "expected [-1, 20]" in str(exc), exc
        print("wrong shape:", str(exc).split(",")[0])
    await c.close()
    print("KServe REST client: all checks passed")
    return 0


async def check_grpc(address: str, model: str = "vae-flow-z20") -> int:
    """The same checks through KServe's gRPC client (typed contents in; the answer read as KServe reads it)."""
    c = InferenceGRPCClient(address, timeout=30)
    assert await c.is_server_live() and await c.is_server_ready()
    assert await c.is_model_ready(f"{model}-decoder")
    z = np.random.default_rng(0).standard_normal((8, 20)).astype(np.float32)
    inp = InferInput("z", list(z.shape), "FP32")
    inp.set_data_from_numpy(z)
    res = await c.infer(InferRequest(f"{model}-decoder", [inp]))
    x = res.outputs[0].as_numpy()
    assert x.shape == (8, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    print(f"gRPC decoder: {x.shape} {x.dtype}")
    img = InferInput("x", [2, 1, 28, 28], "FP32")
    img.set_data_from_numpy(x[:2])
    res = await c.infer(InferRequest(f"{model}-encoder", [img]))
    assert [(o.name, o.as_numpy().shape) for o in res.outputs] == [("mu", (2, 20)), ("logvar", (2, 20))]
    print("gRPC encoder: mu, logvar (2, 20)")
    bad = InferInput("z", [1, 5], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 5), np.float32))
    try:
        await c.infer(InferRequest(f"{model}-decoder", [bad]))
        raise AssertionError("a wrong shape was accepted")
    except Exception as exc:  # grpc.aio.AioRpcError: INVALID_ARGUMENT with the server's message
        assert "INVALID_ARGUMENT" in str(exc) and "expected [-1, 20]" in str(exc), exc
        print("gRPC wrong shape: INVALID_ARGUMENT")
    try:
        await c.infer(InferRequest("no-such-decoder", [inp]))
        raise AssertionError("an unknown model was accepted")
    except Exception as exc:
        assert "NOT_FOUND" in str(exc), exc
        print("gRPC unknown model: NOT_FOUND")
    await c.close()
    print("KServe gRPC client: all checks passed")
    return 0


async def run(argv: list[str]) -> int:
    await main(argv[1] if len(argv) > 1 else "http://127.0.0.1:8000")
    if len(argv) > 2:
        await check_grpc(argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(run(sys.argv)))
