"""The protocol's message classes, built at import from the compiled descriptor set (proto/inference.binpb, made from
proto/inference.proto by scripts/gen_proto.sh) in a private descriptor pool.

A private pool rather than generated *_pb2 modules: tritonclient and KServe register their own `inference.*`
messages in protobuf's default pool, and two definitions of one name in that pool refuse to load; here both can live
in one process (a test, a notebook, a service that serves and calls).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

DESCRIPTOR_SET = Path(__file__).parent / "proto" / "inference.binpb"
PACKAGE = "inference"
SERVICE = f"{PACKAGE}.GRPCInferenceService"

_files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
POOL = descriptor_pool.DescriptorPool()
for _file in _files.file:
    POOL.Add(_file)


def message(name: str) -> Any:
    """The class of inference.<name>."""
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{PACKAGE}.{name}"))


def methods() -> dict[str, tuple[Any, Any]]:
    """Every RPC of the service: name -> (request class, response class)."""
    service = POOL.FindServiceByName(SERVICE)
    return {m.name: (message_factory.GetMessageClass(m.input_type), message_factory.GetMessageClass(m.output_type))
            for m in service.methods}


ModelInferRequest = message("ModelInferRequest")
ModelInferResponse = message("ModelInferResponse")
ModelConfig = message("ModelConfig")
