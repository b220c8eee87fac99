"""One pure-ASGI middleware (cheaper than a stack of BaseHTTPMiddleware): request id, body-size
limit (413 before the body is read whole), API key, draining, metrics and access logs."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ApiError, api_error_response, invalid_response
from service.state import AppState

log = logging.getLogger("vaeserve.access")

INFER = {"/encode", "/decode", "/sample", "/interpolate", "/reconstruct"}
OPEN = {"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready", "/"}
OPEN_PREFIX = "/explorer/"  # the explorer's static files; the calls the page makes still need the key


class BodyRefused(Exception):
    """The body was too large or too slow; the answer is in the middleware's `body_error`."""


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, state: AppState,
                 fast_routes: dict[str, Callable[[Request], Awaitable[Response]]] | None = None) -> None:
        self.app = app
        self.state = state
        # POST endpoints that parse their own body: called directly, skipping FastAPI's routing and
        # dependency machinery (~25 % of a single-row request). They stay registered with FastAPI too,
        # for the OpenAPI schema and any method other than POST.
        self.fast_routes = fast_routes or {}
        self._counters: dict[tuple[str, int], Any] = {}  # labelled children, looked up once
        self._timers: dict[str, Any] = {}

    def _observe(self, route: str, status: int, elapsed: float) -> None:
        m = self.state.metrics
        c = self._counters.get((route, status))
        if c is None:
            c = self._counters[(route, status)] = m.requests.labels(route, str(status))
        t = self._timers.get(route)
        if t is None:
            t = self._timers[route] = m.latency.labels(route)
        c.inc()
        t.observe(elapsed)

    async def _reject(self, send: Send, status: int, message: str, rid: str, extra: list[Any] | None = None) -> None:
        body = orjson.dumps({"error": message, "detail": None})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"x-request-id", rid.encode()), *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _call_fast(self, endpoint: Callable[[Request], Awaitable[Response]], scope: Scope,
                         receive: Receive, send: Send) -> None:
        try:
            response = await endpoint(Request(scope, receive))
        except ApiError as exc:
            response = api_error_response(exc)
        except RequestValidationError as exc:
            response = invalid_response(exc)
        except BodyRefused:
            raise
        except ClientDisconnect:  # nobody to answer
            return
        except Exception:  # a bug: same answer FastAPI's ServerErrorMiddleware would give, logged
            log.exception("unhandled error")
            response = Response(b'{"error":"internal server error","detail":null}', status_code=500,
                                media_type="application/json")
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        st, s = self.state, self.state.settings
        path: str = scope["path"]
        headers = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"").decode("latin1")[:64] or uuid.uuid4().hex
        route = path if path in INFER or path in OPEN or path == "/models" else (
            "/v2/models/*" if path.startswith("/v2/") else "/models/*" if path.startswith("/models/") else "other")
        t0 = time.perf_counter()
        status_box = [500]
        # (status, message) once the body was refused while streaming in. It replaces whatever the app
        # answers (FastAPI turns an exception from receive() into its own 400) or, when the exception
        # comes through, is sent by the handler below.
        body_error: list[tuple[int, str]] = []

        async def send_body_error() -> None:
            status_box[0], message = body_error[0]
            await self._reject(send, status_box[0], message, rid, [(b"connection", b"close")])

        async def send_wrapped(msg: Message) -> None:
            if body_error:
                if msg["type"] == "http.response.start":
                    await send_body_error()
                return
            if msg["type"] == "http.response.start":
                status_box[0] = msg["status"]
                hdrs = list(msg.get("headers", []))
                hdrs.append((b"x-request-id", rid.encode()))
                if st.draining:
                    hdrs.append((b"connection", b"close"))
                msg = {**msg, "headers": hdrs}
            await send(msg)

        try:
            if (s.api_key and path not in OPEN and not path.startswith(OPEN_PREFIX)
                    and scope["method"] != "OPTIONS"):
                given = headers.get(b"x-api-key", b"")
                if not hmac.compare_digest(given, s.api_key.encode()):
                    st.metrics.rejections.labels("unauthorized").inc()
                    status_box[0] = 401
                    await self._reject(send, 401, "missing or wrong X-API-Key header", rid)
                    return
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > s.max_body_bytes):
                st.metrics.rejections.labels("body_too_large").inc()
                status_box[0] = 413
                await self._reject(send, 413, f"body of {length.decode('latin1')[:20]} bytes; at most "
                                   f"{s.max_body_bytes} bytes allowed", rid, [(b"connection", b"close")])
                return
            received = 0
            body_deadline = asyncio.get_running_loop().time() + s.body_timeout_s

            def refuse(reason: str, status: int, message: str) -> None:
                st.metrics.rejections.labels(reason).inc()
                body_error.append((status, message))

            async def receive_limited() -> Message:
                nonlocal received
                try:
                    async with asyncio.timeout_at(body_deadline):
                        msg = await receive()
                except TimeoutError as exc:
                    refuse("body_timeout", 408, f"body not received within {s.body_timeout_s}s")
                    raise BodyRefused from exc
                if msg["type"] == "http.request":
                    received += len(msg.get("body", b""))
                    if received > s.max_body_bytes:
                        refuse("body_too_large", 413, f"body larger than {s.max_body_bytes} bytes allowed")
                        raise BodyRefused
                return msg


            infer = path in INFER
            if infer and st.inflight >= s.max_inflight:
                # Shed at the door: the HTTP layer, not only the batch queue, is where latency piles up
                # when parsing is the bottleneck.
                st.metrics.rejections.labels("inflight").inc()
                status_box[0] = 429
                await self._reject(send, 429, f"server busy: {st.inflight} requests in flight (at most "
                                   f"{s.max_inflight}); retry after {s.retry_after_s}s", rid,
                                   [(b"retry-after", str(s.retry_after_s).encode())])
                return
            if infer:
                st.inflight += 1
                st.arriving += 1
                st.metrics.inflight.inc()
            try:
                fast = self.fast_routes.get(path) if scope["method"] == "POST" else None
                if fast is not None:
                    await self._call_fast(fast, scope, receive_limited, send_wrapped)
                else:
                    await self.app(scope, receive_limited, send_wrapped)
            except BodyRefused:  # came through before the app answered
                await send_body_error()
            finally:
                if infer:
                    st.inflight -= 1
                    st.arriving -= 1
                    st.metrics.inflight.dec()
        finally:
            elapsed = time.perf_counter() - t0
            self._observe(route, status_box[0], elapsed)
            if status_box[0] >= 400 or log.isEnabledFor(logging.DEBUG):
                log.info("request", extra={"request_id": rid, "method": scope["method"], "path": path,
                                           "status": status_box[0], "ms": round(elapsed * 1000, 2)})
