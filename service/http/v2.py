"""The Open Inference Protocol (KServe v2) over HTTP: health, metadata, Triton's model configuration, repository
index and control, statistics, and inference (`infer`, a row of the route table in service/http/table.py).
What a v2 model is lives in the dataplane (service/dataplane/oip.py), shared with the gRPC door; this module
only speaks HTTP.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from service.dataplane import DataPlane
from service.engine.admission import Ticket
from service.http.admin import guard
from service.http.oip_codec import HEADER, decode_request, encode_response
from service.http.respond import json_response
from service.http.schemas import ErrorResponse

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (401, 404, 422, 503)}
router = APIRouter(prefix="/v2", responses=ERRORS)


def _plane(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.plane
    return plane


@router.get("/health/live")
async def live() -> Response:
    """Liveness (Open Inference Protocol)."""
    return json_response({"live": True})


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    """Readiness (Open Inference Protocol): 503 while loading or draining."""
    _plane(request).check_ready_all()  # NotReady: 503 with Retry-After and the reason
    return json_response({"ready": True})


@router.get("")
async def server_metadata(request: Request) -> Response:
    """Server metadata, with the protocol extensions this server speaks."""
    return json_response(_plane(request).server_metadata())


@router.get("/models/stats")
async def all_stats(request: Request) -> Response:
    """Triton's inference statistics of every loaded v2 model."""
    return json_response({"model_stats": _plane(request).statistics()})


def _about(request: Request, model: str, version: str | None, what: str) -> Response:
    """The dataplane's `what` (model_metadata, model_config) of a v2 model (newest version, or the pinned one)."""
    return json_response(getattr(_plane(request), what)(model, version))


@router.get("/models/{model}")
async def model_metadata(model: str, request: Request) -> Response:
    """A v2 model's inputs and outputs (newest version)."""
    return _about(request, model, None, "model_metadata")


@router.get("/models/{model}/versions/{version}")
async def version_metadata(model: str, version: str, request: Request) -> Response:
    """A pinned version's inputs and outputs."""
    return _about(request, model, version, "model_metadata")


async def _model_ready(request: Request, model: str, version: str | None) -> Response:
    ckpt, _ = _plane(request).model_ready(model, version)  # UnknownModel 404, NotReady (draining) 503
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
    return _about(request, model, None, "model_config")


@router.get("/models/{model}/versions/{version}/config")
async def version_config(model: str, version: str, request: Request) -> Response:
    """Triton's model configuration of a pinned version."""
    return _about(request, model, version, "model_config")


@router.get("/models/{model}/stats")
async def model_stats(model: str, request: Request) -> Response:
    """Triton's inference statistics of one v2 model (every version)."""
    return json_response({"model_stats": _plane(request).statistics(model)})


@router.get("/models/{model}/versions/{version}/stats")
async def version_stats(model: str, version: str, request: Request) -> Response:
    """Triton's inference statistics of one version."""
    return json_response({"model_stats": _plane(request).statistics(model, version)})


@router.post("/repository/index")
async def repository_index(request: Request) -> Response:
    """Triton's repository index: every v2 model and version with its state."""
    body = await request.body()
    try:
        ready_only = bool(orjson.loads(body).get("ready", False)) if body.strip() else False
    except (orjson.JSONDecodeError, AttributeError):
        ready_only = False
    return Response(orjson.dumps(_plane(request).repository_index(ready_only)), media_type="application/json")


@router.post("/repository/models/{model}/load", responses={403: {"model": ErrorResponse}})
async def load_model(model: str, request: Request) -> Response:
    """Triton's repository load: (re)load a model's versions from the repository directory and serve them.
    Needs VAESERVE_MODEL_CONTROL=true and the admin key (X-Admin-Key)."""
    guard(request)
    return json_response(await _plane(request).load_model(model))


@router.post("/repository/models/{model}/unload", responses={403: {"model": ErrorResponse}})
async def unload_model(model: str, request: Request) -> Response:
    """Triton's repository unload: stop serving a model until it is loaded again.
    Needs VAESERVE_MODEL_CONTROL=true and the admin key (X-Admin-Key)."""
    guard(request)
    return json_response(await _plane(request).unload_model(model))


# -- inference (a row of the route table) ---------------------------------------------------------

async def infer(request: Request, plane: DataPlane, ticket: Ticket) -> Response:
    """Tensor in, tensor out, per the Open Inference Protocol; JSON or binary tensors (binary_tensor_data)."""
    params = request.path_params
    plane.model(params["model"], params.get("version"))  # 404 before the body is read
    decoded = decode_request(await request.body(), request.headers.get(HEADER))
    name, version, arrays = await plane.infer(params["model"], params.get("version"), decoded.tensors,
                                              (decoded.header.parameters or {}).get("priority"), ticket)
    return encode_response(name, version, decoded.header, arrays, {n: "FP32" for n in arrays})
