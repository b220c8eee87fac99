"""ModelInfer's tensors between protobuf and NumPy: typed `contents` or `raw_input_contents` in, and out the way the
request came (raw when it sent raw, as tritonclient does; typed `contents` otherwise, for simple clients)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from service.engine.domain import InvalidInput
from service.rpc.messages import ModelInferResponse

MAX_DIM = 1_000_000
# datatype -> (NumPy dtype, the InferTensorContents field that carries it)
DTYPES: dict[str, tuple[np.dtype[Any], str]] = {
    "FP32": (np.dtype("<f4"), "fp32_contents"), "FP64": (np.dtype("<f8"), "fp64_contents"),
    "INT64": (np.dtype("<i8"), "int64_contents"), "INT32": (np.dtype("<i4"), "int_contents"),
}


def parameter(params: Any, key: str) -> Any:
    """An InferParameter's value (whichever of its oneof is set), or None."""
    if key not in params:
        return None
    p = params[key]
    which = p.WhichOneof("parameter_choice")
    return None if which is None else getattr(p, which)


def decode_inputs(req: Any) -> dict[str, np.ndarray]:
    """Inputs by name, shaped as declared; InvalidInput names the first problem."""
    raw = req.raw_input_contents
    if raw and len(raw) != len(req.inputs):
        raise InvalidInput(f"{len(raw)} raw_input_contents for {len(req.inputs)} inputs; send one per input")
    if len(req.inputs) > 4:
        raise InvalidInput(f"{len(req.inputs)} inputs; at most 4")
    tensors: dict[str, np.ndarray] = {}
    for i, t in enumerate(req.inputs):
        if t.name in tensors:
            raise InvalidInput(f"input {t.name[:64]!r} given twice")
        spec = DTYPES.get(t.datatype)
        if spec is None:
            raise InvalidInput(f"input {t.name[:64]}: datatype {t.datatype[:16]!r} unsupported; use one of "
                               f"{sorted(DTYPES)}")
        dtype, field = spec
        shape = list(t.shape)
        if len(shape) > 8 or any(d < 0 or d > MAX_DIM for d in shape):
            raise InvalidInput(f"input {t.name[:64]}: shape {shape[:8]}; at most 8 dims, each 0..{MAX_DIM}")
        count = math.prod(shape)
        if raw:
            data = raw[i]
            if len(data) != count * dtype.itemsize:
                raise InvalidInput(f"input {t.name[:64]}: {len(data)} bytes of raw contents; shape {shape} of "
                                   f"{t.datatype} is {count * dtype.itemsize} bytes")
            arr = np.frombuffer(data, dtype=dtype)
        else:
            values = getattr(t.contents, field)
            if len(values) != count:
                raise InvalidInput(f"input {t.name[:64]}: {len(values)} values in contents.{field} for shape {shape}")
            arr = np.array(values, dtype=dtype)
        tensors[t.name] = arr.reshape(shape)
    return tensors


def encode_outputs(req: Any, model: str, version: int, arrays: dict[str, np.ndarray]) -> Any:
    """The outputs asked for (all when none are named), FP32."""
    names = [o.name for o in req.outputs] or list(arrays)
    unknown = [n for n in names if n not in arrays]
    if unknown:
        raise InvalidInput(f"unknown outputs {unknown}; this model gives {list(arrays)}")
    resp = ModelInferResponse(model_name=model, model_version=str(version), id=req.id)
    raw = bool(req.raw_input_contents)
    for name in names:
        arr = np.ascontiguousarray(arrays[name], dtype=np.float32)
        out = resp.outputs.add(name=name, datatype="FP32", shape=arr.shape)
        if raw:
            resp.raw_output_contents.append(arr.tobytes())
        else:
            out.contents.fp32_contents.extend(arr.reshape(-1).tolist())
    return resp
