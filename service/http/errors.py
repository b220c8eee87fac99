"""The service's errors as HTTP answers: {"error": ..., "detail": ...}.

Domain errors (service/engine/domain.py) map by class through the one table (service/dataplane/errors.py, which the
gRPC door reads too); FastAPI's own validation and HTTP exceptions (the
non-inference routes) are rewritten into the same body shape, so every error a client sees says what
was wrong, and the Open Inference Protocol's `{"error": "..."}` is met by the same body.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from service.dataplane.errors import answer
from service.engine.domain import BodyRefused, InvalidInput, Retryable, ServiceError


def json_error(status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": message, "detail": detail}, default=str)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def status_of(exc: ServiceError) -> tuple[int, dict[str, str]]:
    """HTTP status (service/dataplane/errors.py's table) and the headers that go with it."""
    headers = {}
    if isinstance(exc, Retryable):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, BodyRefused):  # the rest of the body is not read: the connection cannot be reused
        headers["Connection"] = "close"
    return answer(exc).http, headers


def error_response(exc: ServiceError) -> Response:
    status, headers = status_of(exc)
    return json_error(status, exc.message, exc.detail, headers)


def clean(errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic errors without echoing the (possibly huge) input back."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors[:20]]


def invalid_body(errors: list[Any], where: str = "") -> InvalidInput:
    """A pydantic validation failure as one InvalidInput naming the first bad field (`where`: "query" for the query
    parameters of an array body)."""
    errs = clean(errors)
    first = errs[0] if errs else {"loc": [], "msg": "invalid body"}
    field = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
    return InvalidInput(f"invalid request: {where + ' parameter ' if where else ''}{field}: {first['msg']}", errs)


def install(app: FastAPI) -> None:
    """Exception handlers of the one app: every route, inference or not, answers errors the same way."""

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        return error_response(invalid_body(list(exc.errors())))

    @app.exception_handler(Exception)
    async def bug(_: Request, exc: Exception) -> Response:  # logged by Starlette; the client gets JSON
        return json_error(500, "internal server error")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            # FastAPI's answer when the JSON parser itself fails (e.g. nesting deeper than it recurses)
            return json_error(422, "invalid request: body is not JSON this server can parse (too deeply nested?)")
        return json_error(exc.status_code, str(exc.detail), None, getattr(exc, "headers", None))
