"""The route table of inference: one row per endpoint (path, handler, request model, response model).

This one table drives
  routing    each row is a plain Starlette route, matched ahead of FastAPI's own routes (TableRouter, the
             innermost layer of the one middleware stack);
  admission  every row's handler runs inside one admission step: ready check, in-flight cap, one deadline;
  OpenAPI    the bodies and answers of these paths in /openapi.json;
  metrics    the route label is the row's path template (read from the matched route by RequestContext).
Adding an endpoint: write `async def handler(request, plane, ticket) -> Response` (service/http/rest.py) and add
a row here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.dataplane import DataPlane
from service.dataplane.errors import openapi_responses
from service.engine.admission import Ticket
from service.engine.domain import ServiceError
from service.http import rest, v2
from service.http.errors import error_response, json_error
from service.http.middleware import GONE
from service.http.oip_codec import InferRequest, InferResponse
from service.http.schemas import (
    DecodeRequest,
    EncodeRequest,
    EncodeResponse,
    ErrorResponse,
    ImagesResponse,
    InterpolateRequest,
    InterpolateResponse,
    ReconstructRequest,
    ReconstructResponse,
    RestyleRequest,
    RestyleResponse,
    SampleRequest,
    SampleResponse,
)

Handler = Callable[[Request, DataPlane, Ticket], Awaitable[Response]]
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
    Endpoint("/encode", rest.encode, EncodeRequest, EncodeResponse, ("application/x-npy",)),
    Endpoint("/decode", rest.decode, DecodeRequest, ImagesResponse, ("application/x-npy", "application/x-npz")),
    Endpoint("/sample", rest.sample, SampleRequest, SampleResponse, ("application/x-npy", "application/x-npz")),
    Endpoint("/interpolate", rest.interpolate, InterpolateRequest, InterpolateResponse,
             ("application/x-npy", "application/x-npz")),
    Endpoint("/reconstruct", rest.reconstruct, ReconstructRequest, ReconstructResponse,
             ("application/x-npy", "application/x-npz")),
    Endpoint("/restyle", rest.restyle, RestyleRequest, RestyleResponse, ("application/x-npy", "application/x-npz")),
    Endpoint("/v2/models/{model}/infer", v2.infer, InferRequest, InferResponse, ("application/octet-stream",),
             "open inference protocol"),
    Endpoint("/v2/models/{model}/versions/{version}/infer", v2.infer, InferRequest, InferResponse,
             ("application/octet-stream",), "open inference protocol"),
)


DISCONNECT_WATCH_S = 0.02  # a request still running after this long starts watching for its client leaving


class Admitted:
    """The ASGI app of one row: ready check and admission around the handler, then the answer.

    A plain ASGI app rather than a Starlette function endpoint: domain errors are answered here by
    errors.error_response (the same mapping the app's exception handlers use), so the hottest routes skip
    the per-request exception-wrapping machinery; anything else propagates to the app's handlers (500).

    Cancellation: a request still running after DISCONNECT_WATCH_S, its body read, starts a watcher on the
    connection; when the client goes away the handler's task is cancelled, which takes its rows out of the
    engine's queue at once (and stops a running job within one chunk). Answers that come sooner never pay for
    the watcher: joining and leaving a set is all they cost.
    """

    def __init__(self, handler: Handler, watch: DisconnectWatch) -> None:
        self.handler, self.watch = handler, watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plane: DataPlane = scope["app"].state.plane
        cancel = _CancelOnDisconnect(scope, receive, self.watch)
        request = Request(scope, cancel.receive)
        try:
            with plane.admit() as ticket:
                response = await self.handler(request, plane, ticket)
        except ServiceError as exc:
            response = error_response(exc)
        except ClientDisconnect:  # nobody left to answer
            scope[GONE] = True
            return
        except asyncio.CancelledError:
            if not cancel.gone:
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]  # ours, not the server's: we end here
            return
        finally:
            cancel.stop()
        await response(scope, receive, send)


class DisconnectWatch:
    """One app's requests still running, looked over by one sweeper task every DISCONNECT_WATCH_S (BodyWatch's
    pattern: a timer per request cost more than the watch saves on short requests); those running longer, their
    body in, get a watcher on their connection."""

    def __init__(self) -> None:
        self.running: set[_CancelOnDisconnect] = set()
        self._task: asyncio.Task[None] | None = None

    def enter(self, req: _CancelOnDisconnect) -> None:
        self.running.add(req)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        idle = 0
        loop = asyncio.get_running_loop()
        while idle < 50:  # exits after ~1 s with nothing running; enter() starts it again
            await asyncio.sleep(DISCONNECT_WATCH_S)
            idle = idle + 1 if not self.running else 0
            old = time.monotonic() - DISCONNECT_WATCH_S
            for req in [r for r in self.running if r.watcher is None and r.body_done and r.since <= old]:
                req.watcher = loop.create_task(req.watch())  # only one receive() at a time: the body is in


class _CancelOnDisconnect:
    """One request's connection, watched once its body is in: the handler's task is cancelled if the client leaves."""

    __slots__ = ("scope", "_receive", "body_done", "gone", "task", "since", "watcher", "_watch")

    def __init__(self, scope: Scope, receive: Receive, watch: DisconnectWatch) -> None:
        self.scope, self._receive, self._watch = scope, receive, watch
        self.body_done = self.gone = False
        self.task = asyncio.current_task()
        self.since = time.monotonic()
        self.watcher: asyncio.Task[None] | None = None
        watch.enter(self)

    async def receive(self) -> Message:
        msg = await self._receive()
        if msg["type"] != "http.request" or not msg.get("more_body", False):
            self.body_done = True
        return msg

    async def watch(self) -> None:
        msg = await self._receive()  # after the body, the next message is the client leaving
        if msg["type"] == "http.disconnect" and self.task is not None:
            self.gone = True
            self.scope[GONE] = True
            self.task.cancel()

    def stop(self) -> None:
        self._watch.running.discard(self)
        if self.watcher is not None:
            self.watcher.cancel()


def routes(watch: DisconnectWatch) -> list[BaseRoute]:
    return [Route(e.path, Admitted(e.handler, watch), methods=["POST"], name=f"{e.handler.__name__}:{e.path}")
            for e in ENDPOINTS]


class TableRouter:
    """The table's routes, matched ahead of FastAPI's router (which serves everything else).

    Installed as the innermost layer of the app's one middleware stack, so every concern (request context,
    authentication, body limits, CORS) applies to these routes as to any other; a plain Starlette Router
    with FastAPI's router as its default, so the hottest routes skip FastAPI's per-request layers (exception
    wrapping, exit stack, dependency solving): about 20 us of a ~150 us single-row /decode on this CPU.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        table = routes(DisconnectWatch())  # one per app: its sweeper lives on the app's event loop
        self.router = Router(table, default=app, redirect_slashes=False)
        # Paths without parameters are looked up by equality: no regex on the hottest routes.
        self.exact = {r.path: r for r in table if isinstance(r, Route) and not r.param_convertors}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan belongs to the app, not to this router
            await self.app(scope, receive, send)
            return
        route = self.exact.get(scope["path"])
        try:
            if route is not None:
                scope["route"], scope["endpoint"], scope["path_params"] = route, route.endpoint, {}
                await route.handle(scope, receive, send)
            elif scope["path"].startswith("/v2/models/"):
                await self.router.app(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        except HTTPException as exc:  # 405 from a row's route (a method other than POST), outside FastAPI's handlers
            if exc.status_code != 405:
                raise
            await json_error(405, f"method {scope['method']} not allowed; {scope['path']} takes POST", None,
                             {"Allow": "POST"})(scope, receive, send)


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
    _, defs = models_json_schema([*dict.fromkeys(models), (ErrorResponse, "serialization")],  # type: ignore[list-item]
                                 ref_template=ref)
    schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
    error = {"content": {"application/json": {"schema": {"$ref": ref.format(model="ErrorResponse")}}}}
    codes = {c: d for c, d in openapi_responses().items() if c != "403"}  # 403: repository control only
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
