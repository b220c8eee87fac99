"""Model listing, health, readiness, metrics and the guarded reload."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from service.dataplane import DataPlane
from service.engine.checkpoints import Checkpoint
from service.http.admin import guard
from service.http.errors import json_error
from service.http.respond import json_response
from service.http.schemas import ErrorResponse

router = APIRouter()


def summary(ckpt: Checkpoint) -> dict[str, Any]:
    return {**ckpt.meta.listing(), "metrics": ckpt.metrics, "name": ckpt.name, "version": ckpt.version}


def _state(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.plane
    return plane


@router.get("/models")
async def list_models(request: Request) -> Response:
    """Every model in the repository (newest version) with its meta; `versions` lists all versions."""
    st = _state(request)
    out = [{**summary(st.newest(n)), "versions": st.versions(n), "default": n == st.default_model}
           for n in st.names()]
    return json_response({"models": out})


@router.get("/models/{name}", responses={404: {"model": ErrorResponse}})
async def get_model(name: str, request: Request, version: int | None = None) -> Response:
    """One model's full meta (training config and measured metrics included)."""
    st = _state(request)
    ckpt = st.resolve(name, version)
    full = {k: v for k, v in ckpt.meta.raw.items() if k != "metrics"}  # legacy figures live in "metrics" below
    return json_response({**full, "metrics": ckpt.metrics, "name": ckpt.name, "version": ckpt.version,
                          "versions": st.versions(ckpt.name)})


@router.post("/admin/reload", responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse},
                                         415: {"model": ErrorResponse}})
async def reload(request: Request) -> Response:
    """Load new or changed versions from the repository now; refused files are listed, old ones keep serving.
    Needs VAESERVE_MODEL_CONTROL=true and the admin key (X-Admin-Key)."""
    guard(request)
    return json_response(await _state(request).reload())


@router.get("/healthz")
async def healthz() -> Response:
    """Liveness: the process answers."""
    return json_response({"status": "ok"})


@router.get("/readyz", responses={503: {"model": ErrorResponse}})
async def readyz(request: Request) -> Response:
    """Readiness: models loaded and not draining; 503 otherwise."""
    st = _state(request)
    ready, said = st.readiness()
    if not ready:
        return json_error(503, said["error"], said.get("detail"), {"Retry-After": str(st.settings.retry_after_s)})
    return json_response(said)


@router.get("/metrics", responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    return Response(_state(request).metrics_text(), media_type=CONTENT_TYPE_LATEST)
