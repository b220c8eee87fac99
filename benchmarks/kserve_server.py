"""KServe 0.21's own model server (kserve.ModelServer, its HTTP and gRPC v2 doors) serving the same decoder as
vaeserve's OIP model `decoder`: z (B, m) FP32 in, x (B, 1, 28, 28) FP32 out, one torch thread. The reference of
benchmarks/kserve_compare.py; it runs in .venv-kserve (kserve brings its own server stack; add torch there:
`.venv-kserve/bin/pip install torch==2.13.0`), never in the service's venv.

Usage: .venv-kserve/bin/python benchmarks/kserve_server.py CHECKPOINT --http-port P --grpc-port Q
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
import kserve
import kserve.protocol.grpc.server as kserve_grpc
import torch
from google.protobuf import json_format
from kserve import InferOutput, InferRequest, InferResponse
from kserve.utils.utils import generate_uuid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from service.rpc import messages  # noqa: E402  (protobuf only: the message types of Triton's ModelConfig)

MODEL = "decoder"


class Decoder(kserve.Model):
    """The model's decode as the KServe docs write a v2 predictor: numpy in, numpy out."""

    def __init__(self, checkpoint: str) -> None:
        super().__init__(MODEL)
        self.checkpoint = checkpoint
        self.module: torch.jit.ScriptModule | None = None

    def load(self) -> bool:
        torch.set_num_threads(1)
        self.module = torch.jit.load(self.checkpoint).eval()
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict]:
        return [{"name": "z", "datatype": "FP32", "shape": [-1, int(self.module.latent_dim)]}]

    def get_output_types(self) -> list[dict]:
        return [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]

    async def predict(self, payload: InferRequest, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> InferResponse:
        z = torch.from_numpy(payload.inputs[0].as_numpy())
        with torch.inference_mode():
            x = self.module.decode(z, None).numpy()
        out = InferOutput(name="x", shape=list(x.shape), datatype="FP32")
        out.set_data_from_numpy(x, binary_data=payload.from_grpc is False)
        return InferResponse(model_name=MODEL, infer_outputs=[out], response_id=payload.id or generate_uuid(),
                             use_binary_outputs=True)


def add_model_config(latent_dim: int) -> None:
    """perf_analyzer asks Triton's ModelConfig before it sends a call, and KServe's gRPC door has no such method
    (`failed to get model config: Method not found`). Beside KServe's own servicer, untouched, a handler answers
    that one method; every ModelInfer still goes through KServe's InferenceServicer and DataPlane."""
    config = {"config": {"name": MODEL, "max_batch_size": 1024,
                         "input": [{"name": "z", "data_type": "TYPE_FP32", "dims": [latent_dim]}],
                         "output": [{"name": "x", "data_type": "TYPE_FP32", "dims": [1, 28, 28]}]}}
    request, response = messages.methods()["ModelConfig"]

    async def model_config(req: object, ctx: object) -> object:
        return json_format.ParseDict(config, response())

    method = grpc.unary_unary_rpc_method_handler(model_config, request_deserializer=request.FromString,
                                                 response_serializer=response.SerializeToString)
    handler = grpc.method_handlers_generic_handler(messages.SERVICE, {"ModelConfig": method})
    kserve_add = kserve_grpc.grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server

    def add_both(servicer: object, server: grpc.aio.Server) -> None:
        kserve_add(servicer, server)
        server.add_generic_rpc_handlers((handler,))

    kserve_grpc.grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server = add_both


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--grpc-port", type=int, required=True)
    a = p.parse_args()
    model = Decoder(a.checkpoint)
    model.load()
    add_model_config(int(model.module.latent_dim))
    kserve.ModelServer(http_port=a.http_port, grpc_port=a.grpc_port, workers=1).start([model])


if __name__ == "__main__":
    main()
