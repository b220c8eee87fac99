"""Open Inference Protocol (KServe v2) bodies as its clients send them: a JSON inference header, then,
with the binary tensor data extension, the raw bytes of each binary tensor in input order.

  request:  [JSON header][binary tensors...]  with `Inference-Header-Content-Length: <len(JSON)>`
            (no header: the whole body is JSON, whatever Content-Type says: tritonclient sends none)
  response: the same layout when any output is asked for in binary (`binary_data_output` on the request,
            or `binary_data` on an output); the header then carries `binary_data_size` per binary output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from service.engine.domain import InvalidInput
from service.http.errors import invalid_body

HEADER = "inference-header-content-length"
DTYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "INT64": np.dtype("<i8"), "FP64": np.dtype("<f8"),
                                    "INT32": np.dtype("<i4")}


class TensorHeader(BaseModel):
    """An input tensor's description; `data` (JSON) or `parameters.binary_data_size` (binary)."""

    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(min_length=1, max_length=64)]
    shape: Annotated[list[Annotated[int, Field(strict=True, ge=0, le=1_000_000)]], Field(max_length=8)]
    datatype: Annotated[str, Field(max_length=16)]
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(min_length=1, max_length=64)]
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """POST /v2/models/{model}[/versions/{version}]/infer (JSON part)."""

    model_config = ConfigDict(extra="allow")
    id: Annotated[str, Field(max_length=256)] | None = None
    inputs: Annotated[list[TensorHeader], Field(min_length=1, max_length=4)]
    outputs: Annotated[list[RequestedOutput], Field(max_length=8)] | None = None
    parameters: dict[str, Any] | None = None


class OutputTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[float] | None = None
    parameters: dict[str, Any] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[OutputTensor]


@dataclass
class Decoded:
    header: InferRequest
    tensors: dict[str, np.ndarray]  # by input name, shaped as declared


def decode_request(body: bytes, header_length: str | None) -> Decoded:
    """Split and check a request body; every tensor comes back as a NumPy array of its declared shape."""
    if header_length is None:
        json_part, rest = body, b""
    else:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise InvalidInput(f"Inference-Header-Content-Length {header_length[:20]!r}: must be the length of "
                               f"the JSON header, at most the body's {len(body)} bytes")
        n = int(header_length)
        json_part, rest = body[:n], body[n:]
    try:
        header = InferRequest.model_validate_json(json_part)
    except ValidationError as exc:
        raise invalid_body(exc.errors(include_url=False, include_input=False)) from exc
    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for t in header.inputs:
        if t.name in tensors:
            raise InvalidInput(f"input {t.name!r} given twice")
        dtype = DTYPES.get(t.datatype)
        if dtype is None:
            raise InvalidInput(f"input {t.name}: datatype {t.datatype!r} unsupported; use one of {sorted(DTYPES)}")
        count = math.prod(t.shape)
        size = (t.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size != count * dtype.itemsize:
                raise InvalidInput(f"input {t.name}: binary_data_size {size!r}; shape {t.shape} of {t.datatype} "
                                   f"is {count * dtype.itemsize} bytes")
            if offset + size > len(rest):
                raise InvalidInput(f"input {t.name}: {size} bytes of binary data declared, "
                                   f"{len(rest) - offset} left in the body")
            arr = np.frombuffer(rest, dtype=dtype, count=count, offset=offset)
            offset += size
        elif t.data is not None:
            try:
                arr = np.asarray(t.data, dtype=dtype).reshape(-1)
            except (ValueError, TypeError, OverflowError) as exc:
                raise InvalidInput(f"input {t.name}: data must be a (nested) list of numbers ({exc})") from exc
            if arr.size != count:
                raise InvalidInput(f"input {t.name}: {arr.size} values for shape {t.shape}")
        else:
            raise InvalidInput(f"input {t.name}: give 'data' or parameters.binary_data_size with binary data")
        tensors[t.name] = arr.reshape(t.shape)
    if offset != len(rest):
        raise InvalidInput(f"{len(rest) - offset} bytes of binary data after the last binary input")
    return Decoded(header, tensors)


def encode_response(model_name: str, version: int, request: InferRequest, arrays: dict[str, np.ndarray],
                    datatypes: dict[str, str]) -> Response:
    """The answer with the outputs asked for (all when none are named), each JSON or binary as asked."""
    default_binary = bool((request.parameters or {}).get("binary_data_output", False))
    wanted: list[tuple[str, bool]]
    if request.outputs:
        wanted = [(o.name, bool((o.parameters or {}).get("binary_data", default_binary))) for o in request.outputs]
    else:
        wanted = [(name, default_binary) for name in arrays]
    unknown = [n for n, _ in wanted if n not in arrays]
    if unknown:
        raise InvalidInput(f"unknown outputs {unknown}; this model gives {list(arrays)}")
    outputs: list[dict[str, Any]] = []
    blobs: list[memoryview] = []
    for name, binary in wanted:
        arr = np.ascontiguousarray(arrays[name], dtype=DTYPES[datatypes[name]])
        out: dict[str, Any] = {"name": name, "datatype": datatypes[name], "shape": list(arr.shape)}
        if binary:
            out["parameters"] = {"binary_data_size": arr.nbytes}
            blobs.append(memoryview(arr).cast("B"))  # type: ignore[arg-type]  # joined once below: one copy of the data in all
        else:
            out["data"] = arr.reshape(-1)
        outputs.append(out)
    payload: dict[str, Any] = {"model_name": model_name, "model_version": str(version), "outputs": outputs}
    if request.id is not None:
        payload["id"] = request.id
    head = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return Response(head, media_type="application/json")
    return Response(b"".join([head, *blobs]), media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(head))})
