"""Open Inference Protocol (KServe v2) over the same batchers: each model's encoder and decoder are
tensor-in/tensor-out models named <name>-encoder and <name>-decoder.

  <name>-encoder: input  x  FP32 [-1, 1, 28, 28] in [0,1] -> outputs mu, logvar FP32 [-1, m]
  <name>-decoder: input  z  FP32 [-1, m] (+ labels INT64 [-1] for conditional models) -> x FP32 [-1, 1, 28, 28]
  (the encoder of a conditional model takes the same 'labels' input beside x)
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import torch
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from service.errors import ApiError, json_error
from service.loader import Checkpoint
from service.respond import json_response
from service.routes.infer import ERRORS, State
from service.state import AppState

router = APIRouter(prefix="/v2", responses={k: v for k, v in ERRORS.items() if k != 200})  # type: ignore[arg-type]


class InferTensor(BaseModel):
    name: Annotated[str, Field(max_length=64)]
    shape: Annotated[list[Annotated[int, Field(ge=0, le=1_000_000)]], Field(max_length=8)]
    datatype: Annotated[str, Field(max_length=16)]
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    id: str | None = None
    inputs: Annotated[list[InferTensor], Field(min_length=1, max_length=4)]
    outputs: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] | None = None


def split_name(state: AppState, model: str, version: int | None = None) -> tuple[Checkpoint, str]:
    for part in ("encoder", "decoder"):
        if model.endswith("-" + part):
            return state.resolve(model[: -len(part) - 1], version), part
    raise ApiError(404, f"unknown model {model!r}; v2 models are <name>-encoder and <name>-decoder",
                   {"available": [f"{n}-{p}" for n in sorted(state.models) for p in ("encoder", "decoder")]})


def describe(ckpt: Checkpoint, part: str) -> dict[str, Any]:
    m = ckpt.latent_dim
    image = {"datatype": "FP32", "shape": [-1, 1, 28, 28]}
    latent = {"datatype": "FP32", "shape": [-1, m]}
    if part == "encoder":
        inputs, outputs = [{"name": "x", **image}], [{"name": "mu", **latent}, {"name": "logvar", **latent}]
    else:
        inputs, outputs = [{"name": "z", **latent}], [{"name": "x", **image}]
    if ckpt.num_classes:  # conditional: one class per row, on both halves
        inputs.append({"name": "labels", "datatype": "INT64", "shape": [-1]})
    return {"name": f"{ckpt.name}-{part}", "versions": [str(ckpt.version)], "platform": "pytorch_torchscript",
            "inputs": inputs, "outputs": outputs}


def _tensor(t: InferTensor, expected_tail: list[int], datatype: str, max_rows: int) -> np.ndarray:
    if t.datatype != datatype:
        raise ApiError(422, f"input {t.name}: datatype {t.datatype}; expected {datatype}")
    if len(t.shape) != 1 + len(expected_tail) or t.shape[1:] != expected_tail:
        raise ApiError(422, f"input {t.name}: shape {t.shape}; expected [-1, {', '.join(map(str, expected_tail))}]"
                       .replace(", ]", "]"))
    if not 1 <= t.shape[0] <= max_rows:
        raise ApiError(422, f"input {t.name}: {t.shape[0]} rows; 1..{max_rows} allowed")
    try:
        arr = np.asarray(t.data, dtype=np.float64 if datatype == "FP32" else np.int64).reshape(-1)
    except (ValueError, TypeError) as exc:
        raise ApiError(422, f"input {t.name}: data must be numbers ({exc})") from exc
    if arr.size != int(np.prod(t.shape)):
        raise ApiError(422, f"input {t.name}: {arr.size} values for shape {t.shape}")
    if datatype == "FP32" and not np.isfinite(arr).all():
        raise ApiError(422, f"input {t.name}: NaN or infinity in data")
    return arr.reshape(t.shape)


@router.get("/health/live")
async def live() -> Response:
    return json_response({"live": True})


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    st: AppState = request.app.state.vae
    if not st.ready or st.draining:
        return json_error(503, "not ready", None, {"Retry-After": str(st.settings.retry_after_s)})
    return json_response({"ready": True})


@router.get("")
async def server_metadata() -> Response:
    return json_response({"name": "vaeserve", "version": "0.1.0", "extensions": []})


@router.get("/models/{model}")
async def model_metadata(model: str, state: State) -> Response:
    ckpt, part = split_name(state, model)
    return json_response(describe(ckpt, part))


@router.get("/models/{model}/ready")
async def model_ready(model: str, state: State) -> Response:
    split_name(state, model)
    return json_response({"name": model, "ready": True})


def _labels(inputs: dict[str, InferTensor], ckpt: Checkpoint, rows: int, part: str,
            max_rows: int) -> torch.Tensor | None:
    """The INT64 'labels' input of a conditional model (one per row), or None for an unconditional one."""
    if not ckpt.num_classes:
        if "labels" in inputs:
            raise ApiError(422, f"{ckpt.name} is not conditional: send no 'labels' input")
        return None
    if "labels" not in inputs:
        raise ApiError(422, f"conditional {part} needs input 'labels', INT64 [-1]")
    lab = _tensor(inputs["labels"], [], "INT64", max_rows)
    if len(lab) != rows or lab.min() < 0 or lab.max() >= ckpt.num_classes:
        raise ApiError(422, f"labels: one per row, each in 0..{ckpt.num_classes - 1}")
    return torch.from_numpy(lab)


async def _infer(model: str, version: int | None, req: InferRequest, state: AppState) -> Response:
    ckpt, part = split_name(state, model, version)
    inputs = {t.name: t for t in req.inputs}
    max_rows = state.settings.max_rows
    if part == "encoder":
        if "x" not in inputs:
            raise ApiError(422, "encoder takes one input named 'x', FP32 [-1, 1, 28, 28]")
        x = _tensor(inputs["x"], [1, 28, 28], "FP32", max_rows)
        if x.min() < 0 or x.max() > 1:
            raise ApiError(422, "input x: pixels must lie in [0, 1]")
        labels = _labels(inputs, ckpt, len(x), part, max_rows)
        out = (await state.run(ckpt, "encode", torch.from_numpy(x.astype(np.float32)), labels, state.deadline()))
        m = ckpt.latent_dim
        arrays = {"mu": out[:, :m].numpy(), "logvar": out[:, m:].numpy()}
    else:
        if "z" not in inputs:
            raise ApiError(422, f"decoder takes an input named 'z', FP32 [-1, {ckpt.latent_dim}]")
        z = _tensor(inputs["z"], [ckpt.latent_dim], "FP32", max_rows)
        if np.abs(z).max() > 1e3:
            raise ApiError(422, "input z: values must lie in [-1000, 1000]")
        labels = _labels(inputs, ckpt, len(z), part, max_rows)
        out = await state.run(ckpt, "decode", torch.from_numpy(z.astype(np.float32)), labels, state.deadline())
        arrays = {"x": out.numpy()[:, None]}
    wanted = [o.get("name") for o in (req.outputs or [])] or list(arrays)
    unknown = [w for w in wanted if w not in arrays]
    if unknown:
        raise ApiError(422, f"unknown outputs {unknown}; this model gives {list(arrays)}")
    outputs = [{"name": n, "datatype": "FP32", "shape": list(arrays[n].shape), "data": arrays[n].reshape(-1)}
               for n in wanted]
    return json_response({"model_name": f"{ckpt.name}-{part}", "model_version": str(ckpt.version),
                          "id": req.id, "outputs": outputs})


@router.post("/models/{model}/infer")
async def infer(model: str, req: InferRequest, state: State) -> Response:
    """Tensor in, tensor out, per the Open Inference Protocol."""
    return await _infer(model, None, req, state)


@router.post("/models/{model}/versions/{version}/infer")
async def infer_version(model: str, version: int, req: InferRequest, state: State) -> Response:
    """Tensor in, tensor out, for a pinned version."""
    return await _infer(model, version, req, state)
