"""Open Inference Protocol (KServe v2) over the same batchers: each model's encoder and decoder are
tensor-in/tensor-out models named <name>-encoder and <name>-decoder.

  <name>-encoder: input  x  FP32 [-1, 1, 28, 28] in [0,1] -> outputs mu, logvar FP32 [-1, m]
  <name>-decoder: input  z  FP32 [-1, m] -> x FP32 [-1, 1, 28, 28]
  a conditional model's encoder and decoder also take labels INT64 [-1] (one class per row)

Metadata, readiness and Triton's model configuration and repository index are plain routes here;
inference (`infer`) is an entry of the one route table (service/routes/table.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import torch
from fastapi import APIRouter, Request
from starlette.responses import Response

from service.admission import Ticket
from service.domain import InvalidInput, UnknownModel
from service.errors import json_error
from service.loader import Checkpoint
from service.oip import HEADER, decode_request, encode_response
from service.respond import json_response
from service.schemas import ErrorResponse
from service.state import AppState

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (401, 404, 422, 503)}
router = APIRouter(prefix="/v2", responses=ERRORS)
PARTS = ("encoder", "decoder")
EXTENSIONS = ["binary_tensor_data", "model_repository", "model_configuration"]


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.vae
    return state


def _version(version: str | None) -> int | None:
    if version is None:
        return None
    if not version.isdigit() or int(version) < 1:
        raise UnknownModel(f"version {version[:20]!r}: versions are positive integers")
    return int(version)


def split_name(state: AppState, model: str, version: str | None = None) -> tuple[Checkpoint, str]:
    """<name>-encoder / <name>-decoder -> (checkpoint, part); UnknownModel otherwise."""
    for part in PARTS:
        if model.endswith("-" + part):
            return state.resolve(model[: -len(part) - 1], _version(version)), part
    raise UnknownModel(f"unknown model {model!r}; v2 models are <name>-encoder and <name>-decoder",
                       {"available": [f"{n}-{p}" for n in sorted(state.models) for p in PARTS]})


def io_spec(ckpt: Checkpoint, part: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(inputs, outputs) as name, datatype, shape with -1 for the batch."""
    m = ckpt.latent_dim
    image = {"datatype": "FP32", "shape": [-1, 1, 28, 28]}
    latent = {"datatype": "FP32", "shape": [-1, m]}
    if part == "encoder":
        inputs, outputs = [{"name": "x", **image}], [{"name": "mu", **latent}, {"name": "logvar", **latent}]
    else:
        inputs, outputs = [{"name": "z", **latent}], [{"name": "x", **image}]
    if ckpt.num_classes:  # conditional: one class per row, on both halves
        inputs.append({"name": "labels", "datatype": "INT64", "shape": [-1]})
    return inputs, outputs


def describe(state: AppState, ckpt: Checkpoint, part: str) -> dict[str, Any]:
    inputs, outputs = io_spec(ckpt, part)
    return {"name": f"{ckpt.name}-{part}", "versions": [str(v) for v in sorted(state.models[ckpt.name])],
            "platform": "pytorch_torchscript", "inputs": inputs, "outputs": outputs}


def triton_config(state: AppState, ckpt: Checkpoint, part: str) -> dict[str, Any]:
    """Triton's model configuration: batch dimension implicit (max_batch_size), dims per row."""
    inputs, outputs = io_spec(ckpt, part)

    def entry(t: dict[str, Any]) -> dict[str, Any]:
        dims = t["shape"][1:]
        out = {"name": t["name"], "data_type": "TYPE_" + t["datatype"], "dims": dims or [1]}
        if not dims:
            out["reshape"] = {"shape": []}  # a per-row scalar: [batch] on the wire
        return out

    s = state.settings
    return {"name": f"{ckpt.name}-{part}", "platform": "pytorch_libtorch", "backend": "pytorch",
            "version_policy": {"latest": {"num_versions": len(state.models[ckpt.name])}},
            "max_batch_size": s.max_rows, "input": [entry(t) for t in inputs], "output": [entry(t) for t in outputs],
            "dynamic_batching": {"max_queue_delay_microseconds": int(s.max_delay_ms * 1000),
                                 "preferred_batch_size": [s.max_batch_rows]},
            "instance_group": [{"count": 1, "kind": "KIND_GPU" if state.runtime.device.type == "cuda" else "KIND_CPU"}],
            "parameters": {"latent_dim": {"string_value": str(ckpt.latent_dim)},
                           "kind": {"string_value": str(ckpt.meta.get("kind", ""))}}}


@router.get("/health/live")
async def live() -> Response:
    """Liveness (Open Inference Protocol)."""
    return json_response({"live": True})


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    """Readiness (Open Inference Protocol): 503 while loading or draining."""
    _state(request).check_ready()  # NotReady: 503 with Retry-After and the reason
    return json_response({"ready": True})


@router.get("")
async def server_metadata() -> Response:
    """Server metadata, with the protocol extensions this server speaks."""
    return json_response({"name": "vaeserve", "version": "0.1.0", "extensions": EXTENSIONS})


def _about(request: Request, model: str, version: str | None,
           build: Callable[[AppState, Checkpoint, str], dict[str, Any]]) -> Response:
    """What `build` says of a v2 model (newest version, or the pinned one)."""
    st = _state(request)
    ckpt, part = split_name(st, model, version)
    return json_response(build(st, ckpt, part))


@router.get("/models/{model}")
async def model_metadata(model: str, request: Request) -> Response:
    """A v2 model's inputs and outputs (newest version)."""
    return _about(request, model, None, describe)


@router.get("/models/{model}/versions/{version}")
async def version_metadata(model: str, version: str, request: Request) -> Response:
    """A pinned version's inputs and outputs."""
    return _about(request, model, version, describe)


async def _model_ready(request: Request, model: str, version: str | None) -> Response:
    st = _state(request)
    ckpt, _ = split_name(st, model, version)
    if st.draining:
        return json_error(503, "draining for shutdown", None, {"Retry-After": str(st.settings.retry_after_s)})
    return json_response({"name": model, "version": str(ckpt.version), "ready": True})


@router.get("/models/{model}/ready")
async def model_ready(model: str, request: Request) -> Response:
    """200 when the model can serve (newest version)."""
    return await _model_ready(request, model, None)


@router.get("/models/{model}/versions/{version}/ready")
async def version_ready(model: str, version: str, request: Request) -> Response:
    """200 when the pinned version can serve."""
    return await _model_ready(request, model, version)


@router.get("/models/{model}/config")
async def model_config(model: str, request: Request) -> Response:
    """Triton's model configuration (newest version)."""
    return _about(request, model, None, triton_config)


@router.get("/models/{model}/versions/{version}/config")
async def version_config(model: str, version: str, request: Request) -> Response:
    """Triton's model configuration of a pinned version."""
    return _about(request, model, version, triton_config)


@router.post("/repository/index")
async def repository_index(request: Request) -> Response:
    """Triton's repository index: every v2 model and version with its state (all READY once loaded)."""
    st = _state(request)
    out = [{"name": f"{name}-{part}", "version": str(v), "state": "READY", "reason": ""}
           for name in sorted(st.models) for part in PARTS for v in sorted(st.models[name])]
    return Response(orjson.dumps(out), media_type="application/json")


# -- inference (an entry of the route table) ------------------------------------------------------

def _rows(arr: np.ndarray, name: str, tail: list[int], max_rows: int) -> np.ndarray:
    if list(arr.shape[1:]) != tail or arr.ndim != 1 + len(tail):
        want = ", ".join(map(str, [-1, *tail]))
        raise InvalidInput(f"input {name}: shape {list(arr.shape)}; expected [{want}]")
    if not 1 <= len(arr) <= max_rows:
        raise InvalidInput(f"input {name}: {len(arr)} rows; 1..{max_rows} allowed")
    return arr


def _labels(tensors: dict[str, np.ndarray], ckpt: Checkpoint, rows: int, part: str) -> torch.Tensor | None:
    """The INT64 'labels' input of a conditional model (one per row), or None for an unconditional one."""
    if not ckpt.num_classes:
        if "labels" in tensors:
            raise InvalidInput(f"{ckpt.name} is not conditional: send no 'labels' input")
        return None
    if "labels" not in tensors:
        raise InvalidInput(f"conditional {part} needs input 'labels', INT64 [-1]")
    lab = tensors["labels"]
    if lab.dtype != np.int64:
        raise InvalidInput(f"input labels: datatype must be INT64, not {lab.dtype}")
    lab = lab.reshape(-1) if lab.ndim == 2 and lab.shape[1:] == (1,) else lab  # [-1, 1] as Triton's dims [1]
    if lab.ndim != 1 or len(lab) != rows or lab.min() < 0 or lab.max() >= ckpt.num_classes:
        raise InvalidInput(f"labels: one per row ({rows}), each in 0..{ckpt.num_classes - 1}")
    return torch.from_numpy(lab.copy())


def _float_input(tensors: dict[str, np.ndarray], name: str, tail: list[int], max_rows: int) -> torch.Tensor:
    if name not in tensors:
        raise InvalidInput(f"this model takes an input named {name!r}, FP32 {[-1, *tail]}")
    arr = tensors[name]
    if arr.dtype != np.float32:
        raise InvalidInput(f"input {name}: datatype must be FP32")
    arr = _rows(arr, name, tail, max_rows)
    if not np.isfinite(arr).all():
        raise InvalidInput(f"input {name}: NaN or infinity in data")
    return torch.from_numpy(arr.copy())  # own, writable memory: the body's bytes are read-only


async def infer(request: Request, state: AppState, ticket: Ticket) -> Response:
    """Tensor in, tensor out, per the Open Inference Protocol; JSON or binary tensors (binary_tensor_data)."""
    params = request.path_params
    ckpt, part = split_name(state, params["model"], params.get("version"))
    body = await request.body()
    decoded = decode_request(body, request.headers.get(HEADER))
    t, max_rows = decoded.tensors, state.settings.max_rows
    priority = (decoded.header.parameters or {}).get("priority", 0)  # tritonclient's infer(priority=...)
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 1000:
        raise InvalidInput(f"parameters.priority {priority!r}: an integer 0..1000 (1 = high, 0 = default)")
    ticket.priority = priority
    extra = set(t) - {"x" if part == "encoder" else "z", "labels"}
    if extra:
        raise InvalidInput(f"unknown inputs {sorted(extra)}; see GET /v2/models/{ckpt.name}-{part}")
    if part == "encoder":
        x = _float_input(t, "x", [1, 28, 28], max_rows)
        if x.min() < 0 or x.max() > 1:
            raise InvalidInput("input x: pixels must lie in [0, 1]")
        out = await state.run(ckpt, "encode", x, _labels(t, ckpt, len(x), part), ticket)
        m = ckpt.latent_dim
        arrays = {"mu": out[:, :m].numpy(), "logvar": out[:, m:].numpy()}
    else:
        z = _float_input(t, "z", [ckpt.latent_dim], max_rows)
        if z.abs().max() > 1e3:
            raise InvalidInput("input z: values must lie in [-1000, 1000]")
        out = await state.run(ckpt, "decode", z, _labels(t, ckpt, len(z), part), ticket)
        arrays = {"x": out.numpy()[:, None]}
    return encode_response(f"{ckpt.name}-{part}", ckpt.version, decoded.header, arrays,
                           {name: "FP32" for name in arrays})
