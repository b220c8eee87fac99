"""The asyncio client: each builder of vaeclient/calls.py as a coroutine method; share one instance across tasks."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

import httpx

from vaeclient import calls
from vaeclient.calls import RETRY_STATUSES, Call, answer, http_options, retry_delay

P = ParamSpec("P")
T = TypeVar("T")


def _method(build: Callable[P, Call[T]]) -> Callable[Concatenate[AsyncVaeClient, P], Awaitable[T]]:
    @functools.wraps(build)
    async def method(self: AsyncVaeClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.send(build(*args, **kwargs))

    return method


class AsyncVaeClient:
    """The same API as VaeClient, awaitable."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None, timeout: float = 35.0,
                 retries: int = 5, backoff: float = 0.05, max_connections: int = 64,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url, self.retries, self.backoff = base_url.rstrip("/"), retries, backoff
        self._http = httpx.AsyncClient(**http_options(base_url, api_key, timeout, max_connections), transport=transport)

    async def __aenter__(self) -> AsyncVaeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call[T]) -> T:
        """One call, retried on 429/503 and on transport errors (Retry-After honoured)."""
        for attempt in range(self.retries + 1):
            try:
                resp = await self._http.request(call.method, call.path, **call.request())
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                await asyncio.sleep(retry_delay(None, attempt, self.backoff))
                continue
            if resp.status_code in RETRY_STATUSES and attempt < self.retries:
                await asyncio.sleep(retry_delay(resp, attempt, self.backoff))
                continue
            return call.read(answer(resp))
        raise AssertionError("unreachable")

    models = _method(calls.models)
    encode = _method(calls.encode)
    decode = _method(calls.decode)
    sample = _method(calls.sample)
    sample_labelled = _method(calls.sample_labelled)
    interpolate = _method(calls.interpolate)
    reconstruct = _method(calls.reconstruct)
