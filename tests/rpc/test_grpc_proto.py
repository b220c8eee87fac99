"""The gRPC door's descriptor set is the committed .proto compiled, and its messages keep the protocol's published
names and field numbers (read from tritonclient's own definitions), so unmodified clients interoperate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2, service_pb2

from service.rpc import messages

PROTO = Path(messages.__file__).parent / "proto"


def test_descriptor_set_is_the_proto_compiled(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    out = tmp_path / "inference.binpb"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}", f"--descriptor_set_out={out}",
                    str(PROTO / "inference.proto")], check=True)
    assert out.read_bytes() == (PROTO / "inference.binpb").read_bytes(), "run: bash scripts/gen_proto.sh"


def _fields(desc: object) -> dict[str, tuple[int, int]]:
    return {f.name: (f.number, f.type) for f in desc.fields}  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted({m.input_type.name for m in messages.POOL.FindServiceByName(
    messages.SERVICE).methods} | {m.output_type.name for m in messages.POOL.FindServiceByName(
        messages.SERVICE).methods} | {"InferParameter", "InferTensorContents", "ModelConfig", "ModelInput",
                                       "ModelOutput", "ModelStatistics", "InferStatistics"}))
def test_fields_match_the_published_protocol(name: str) -> None:
    ours = messages.POOL.FindMessageTypeByName(f"inference.{name}")
    theirs = (service_pb2.DESCRIPTOR.message_types_by_name.get(name)
              or model_config_pb2.DESCRIPTOR.message_types_by_name[name])
    mine, published = _fields(ours), _fields(theirs)
    assert {k: v for k, v in published.items() if k in mine} == mine  # a subset, same numbers and types
    for nested in ours.nested_types:
        if not nested.GetOptions().map_entry:
            assert _fields(nested).items() <= _fields(theirs.nested_types_by_name[nested.name]).items()


def test_every_rpc_is_the_published_one() -> None:
    published = {m.name: (m.input_type.name, m.output_type.name)
                 for m in service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods}
    ours = messages.POOL.FindServiceByName(messages.SERVICE)
    assert {m.name: (m.input_type.name, m.output_type.name) for m in ours.methods}.items() <= published.items()
