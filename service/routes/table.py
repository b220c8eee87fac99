"""The route table of inference: one row per endpoint (path, handler, request model, response model).

This one table drives
  routing    each row is a plain Starlette route of the app, ahead of FastAPI's own routes (no
             dependency machinery on the hottest paths), inside the one middleware stack;
  admission  every row's handler runs inside one admission step: ready check, in-flight cap, one deadline;
  OpenAPI    the bodies and answers of these paths in /openapi.json;
  metrics    the route label is the row's path template (read from the matched route by RequestContext).
Adding an endpoint: write `async def handler(request, state, ticket) -> Response` and add a row here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from service.admission import Ticket
from service.oip import InferRequest, InferResponse
from service.routes import infer, v2
from service.schemas import (
    DecodeRequest,
    EncodeRequest,
    EncodeResponse,
    ErrorResponse,
    ImagesResponse,
    InterpolateRequest,
    InterpolateResponse,
    ReconstructRequest,
    ReconstructResponse,
    SampleRequest,
    SampleResponse,
)
from service.state import AppState

Handler = Callable[[Request, AppState, Ticket], Awaitable[Response]]
BINARY = {"schema": {"type": "string", "format": "binary"}}


@dataclass(frozen=True)
class Endpoint:
    path: str
    handler: Handler
    request: type[BaseModel]
    response: type[BaseModel]
    answers: tuple[str, ...] = ()  # media types besides JSON that a 200 may carry
    tag: str = "inference"


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/encode", infer.encode, EncodeRequest, EncodeResponse, ("application/x-npy",)),
    Endpoint("/decode", infer.decode, DecodeRequest, ImagesResponse, ("application/x-npy", "application/x-npz")),
    Endpoint("/sample", infer.sample, SampleRequest, SampleResponse, ("application/x-npy", "application/x-npz")),
    Endpoint("/interpolate", infer.interpolate, InterpolateRequest, InterpolateResponse,
             ("application/x-npy", "application/x-npz")),
    Endpoint("/reconstruct", infer.reconstruct, ReconstructRequest, ReconstructResponse,
             ("application/x-npy", "application/x-npz")),
    Endpoint("/v2/models/{model}/infer", v2.infer, InferRequest, InferResponse, ("application/octet-stream",),
             "open inference protocol"),
    Endpoint("/v2/models/{model}/versions/{version}/infer", v2.infer, InferRequest, InferResponse,
             ("application/octet-stream",), "open inference protocol"),
)


def admitted(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The one admission step around an inference handler."""

    async def endpoint(request: Request) -> Response:
        state: AppState = request.app.state.vae
        state.check_ready()
        with state.admission.admit() as ticket:
            try:
                return await handler(request, state, ticket)
            except ClientDisconnect:  # nobody left to answer; 499 as nginx logs it
                return Response(status_code=499)

    return endpoint


class TableRoute(Route):
    """A Starlette route that names itself in the scope (FastAPI's router does so only for its own routes),
    so RequestContext can label metrics with the path template."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


def routes() -> list[BaseRoute]:
    return [TableRoute(e.path, admitted(e.handler), methods=["POST"], name=f"{e.handler.__name__}:{e.path}")
            for e in ENDPOINTS]


def _parameters(path: str) -> list[dict[str, Any]]:
    out = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            schema = {"type": "string", "pattern": r"^[0-9]+$"} if name == "version" else {"type": "string"}
            out.append({"name": name, "in": "path", "required": True, "schema": schema})
    return out


def openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the table's paths, bodies and answers to FastAPI's schema of the other routes."""
    ref = "#/components/schemas/{model}"
    models = [(m, mode) for e in ENDPOINTS for m, mode in ((e.request, "validation"), (e.response, "serialization"))]
    _, defs = models_json_schema([*dict.fromkeys(models), (ErrorResponse, "serialization")], ref_template=ref)
    schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
    error = {"content": {"application/json": {"schema": {"$ref": ref.format(model="ErrorResponse")}}}}
    codes = {"401": "unauthorized", "404": "unknown model", "408": "body too slow", "413": "body too large",
             "422": "invalid input", "429": "overloaded", "503": "not ready", "504": "deadline passed"}
    for e in ENDPOINTS:
        doc = (e.handler.__doc__ or "").strip()
        ok = {"application/json": {"schema": {"$ref": ref.format(model=e.response.__name__)}},
              **{media: BINARY for media in e.answers}}
        op_id = "".join(c if c.isalnum() else "_" for c in e.path.strip("/")).replace("__", "_")
        op = {"tags": [e.tag], "summary": doc.split("\n")[0].rstrip("."), "description": doc, "operationId": op_id,
              "parameters": _parameters(e.path),
              "requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"$ref": ref.format(model=e.request.__name__)}}}},
              "responses": {"200": {"description": "OK", "content": ok},
                            **{c: {"description": d, **error} for c, d in codes.items()}}}
        schema.setdefault("paths", {})[e.path] = {"post": op}
    return schema
