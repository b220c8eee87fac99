"""The middleware stack, one concern each, all pure ASGI (cheaper than BaseHTTPMiddleware). None of
them knows an endpoint: labels come from the route the router matched.

  RequestContext  request id, `Connection: close` while draining, metrics by route, access log
  ApiKeyAuth      X-API-Key on everything but health, metrics and the explorer's files
  BodyLimit       413 before a too-large body is read, 408 for a body that arrives too slowly
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.dataplane import DataPlane
from service.engine.domain import BodyRefused, BodyTooLarge, BodyTooSlow, Unauthorized
from service.http.errors import error_response

log = logging.getLogger("vaeserve.access")

GONE = "vaeserve.client_gone"  # set in the scope when the client left before its answer: counted as 499
CLIENT_CLOSED = 499  # nginx's "client closed request": the work stopped, nothing was delivered
OPEN = {"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready", "/"}
OPEN_PREFIX = "/explorer/"  # the explorer's static files; the calls the page makes still need the key


_ID_PREFIX = os.urandom(6).hex()  # per process: ids stay unique across replicas and restarts
_ID_COUNTER = itertools.count(1)


def next_request_id() -> bytes:
    """A unique request id, ~10x cheaper than uuid4 (it is made for every request)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}".encode()


def route_label(scope: Scope) -> str:
    """The matched route's path template (bounded label set), or 'other' when nothing matched."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "other"


class RequestContext:
    def __init__(self, app: ASGIApp, state: DataPlane) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = b""
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                rid = v[:64]
                break
        rid = rid or next_request_id()
        status = 500
        state = self.state
        complete = False  # the whole answer was handed to the server

        async def send_with_context(msg: Message) -> None:
            nonlocal status, complete
            if msg["type"] == "http.response.start":
                status = msg["status"]
                headers = [*msg.get("headers", ()), (b"x-request-id", rid)]
                if state.draining:  # every answer while draining tells the client to reconnect elsewhere
                    headers.append((b"connection", b"close"))
                msg = {**msg, "headers": headers}
            elif msg["type"] == "http.response.body" and not msg.get("more_body", False):
                complete = True
            await send(msg)

        async def receive_watching() -> Message:
            msg = await receive()
            if msg["type"] == "http.disconnect" and not complete:  # gone before its answer (a stream cut short)
                scope[GONE] = True
            return msg

        t0 = time.perf_counter()
        state.touch()
        try:
            await self.app(scope, receive_watching, send_with_context)
        except (OSError, ClientDisconnect):  # could not send: the client has gone (uvicorn's ClientDisconnected)
            scope[GONE] = True
        finally:
            if scope.get(GONE) and not complete:
                status = CLIENT_CLOSED
            elapsed = time.perf_counter() - t0
            state.observe(route_label(scope), status, elapsed)
            if status >= 400 or log.isEnabledFor(logging.DEBUG):
                log.info("request", extra={"request_id": rid.decode("latin1"), "method": scope["method"],
                                           "path": scope["path"], "status": status, "ms": round(elapsed * 1000, 2)})


class ApiKeyAuth:
    def __init__(self, app: ASGIApp, state: DataPlane) -> None:
        self.app, self.state = app, state
        self.key = bool(state.settings.api_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] == "http" and self.key and path not in OPEN and not path.startswith(OPEN_PREFIX)
                and scope["method"] != "OPTIONS"):
            given = next((v for k, v in scope["headers"] if k == b"x-api-key"), b"")
            try:
                self.state.check_api_key(given)
            except Unauthorized as exc:
                await error_response(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    def __init__(self, app: ASGIApp, state: DataPlane) -> None:
        self.app, self.state = app, state
        self.watch = BodyWatch(state.settings.body_timeout_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        s = self.state.settings
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > s.max_body_bytes):
            self.state.reject("body_too_large")
            refused = BodyTooLarge(f"body of {length.decode('latin1')[:20]} bytes; at most {s.max_body_bytes} bytes "
                                   "allowed")
            await error_response(refused)(scope, receive, send)
            return
        await _LimitedBody(self, scope, receive, send).run()


class BodyWatch:
    """Deadlines for bodies still arriving, checked by one watchdog task rather than a timer per receive():
    an asyncio.timeout around every receive cost ~9 us of a ~100 us single-row request. The watchdog looks
    every `interval` seconds, so a trickled body is cut off within body_timeout_s + interval."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.interval = min(0.5, timeout_s / 4)
        self.waiting: set[_LimitedBody] = set()  # bodies blocked in receive() right now
        self._task: asyncio.Task[None] | None = None

    def enter(self, body: _LimitedBody) -> None:
        self.waiting.add(body)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        idle = 0
        while idle < 10:  # exits after ~10 quiet intervals; enter() starts it again
            await asyncio.sleep(self.interval)
            idle = idle + 1 if not self.waiting else 0
            now = time.monotonic()
            for body in [b for b in self.waiting if now >= b.deadline]:
                body.expire()


class _LimitedBody:
    """One request's body, counted and timed as it streams in. A refusal raised from receive() may be
    swallowed by whoever reads the body (FastAPI turns it into a 400), so the refusal is remembered and
    replaces whatever answer the app starts; if nothing was answered, it is sent here."""

    def __init__(self, limit: BodyLimit, scope: Scope, receive: Receive, send: Send) -> None:
        self.app, self.state, self.watch = limit.app, limit.state, limit.watch
        self.scope, self._receive, self._send = scope, receive, send
        self.received = 0
        self.deadline = time.monotonic() + self.watch.timeout_s
        self.refused: BodyRefused | None = None
        self.answered = self.expired = self.body_done = False
        self._task: asyncio.Task[Any] | None = None

    def _refuse(self, reason: str, exc: BodyRefused) -> BodyRefused:
        self.state.reject(reason)
        self.refused = exc
        return exc

    def expire(self) -> None:
        """Called by the watchdog: the body is overdue; interrupt the receive() it is blocked in."""
        self.watch.waiting.discard(self)
        if self._task is not None and not self.expired:
            self.expired = True
            self._task.cancel()

    async def receive(self) -> Message:
        if self.body_done:  # the body is in: later receives wait for a disconnect (streamed answers), not data
            return await self._receive()
        s = self.state.settings
        if self._task is None:
            self._task = asyncio.current_task()
        self.watch.enter(self)
        try:
            msg = await self._receive()
        except asyncio.CancelledError:
            if not self.expired:
                raise
            if self._task is not None:
                self._task.uncancel()
            raise self._refuse("body_timeout", BodyTooSlow(f"body not received within {s.body_timeout_s}s")) from None
        finally:
            self.watch.waiting.discard(self)
        if msg["type"] == "http.request":
            self.body_done = not msg.get("more_body", False)
            self.received += len(msg.get("body", b""))
            if self.received > s.max_body_bytes:
                raise self._refuse("body_too_large", BodyTooLarge(
                    f"body larger than {s.max_body_bytes} bytes allowed"))
        return msg

    async def send(self, msg: Message) -> None:
        if self.refused is not None:
            if msg["type"] == "http.response.start" and not self.answered:
                self.answered = True
                await error_response(self.refused)(self.scope, self._receive, self._send)
            return
        if msg["type"] == "http.response.start":
            self.answered = True
        await self._send(msg)

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except BodyRefused:
            if not self.answered:
                self.answered = True
                refused = self.refused or BodyTooLarge("body refused")
                await error_response(refused)(self.scope, self._receive, self._send)
