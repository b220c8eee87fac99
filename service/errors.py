"""Errors as JSON bodies that say what was wrong and what is allowed: {"error": ..., "detail": ...}."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response


class ApiError(Exception):
    def __init__(self, status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.detail, self.headers = status, message, detail, headers or {}


def json_error(status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": message, "detail": detail}, default=str)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _clean(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors without echoing the (possibly huge) input back."""
    out = []
    for e in errors[:20]:
        item = {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        out.append(item)
    return out


def api_error_response(exc: ApiError) -> Response:
    return json_error(exc.status, exc.message, exc.detail, exc.headers)


def invalid_response(exc: RequestValidationError) -> Response:
    errs = _clean(list(exc.errors()))
    first = errs[0] if errs else {"loc": [], "msg": "invalid body"}
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
    return json_error(422, f"invalid request: {where}: {first['msg']}", errs)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return api_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        return invalid_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            # FastAPI's answer when the JSON parser itself fails (e.g. nesting deeper than it recurses)
            return json_error(422, "invalid request: body is not JSON this server can parse (too deeply nested?)")
        return json_error(exc.status_code, str(exc.detail), None, getattr(exc, "headers", None))
