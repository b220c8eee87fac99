"""The asyncio client: each builder of vaeclient/calls.py as a coroutine method; share one instance across tasks."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from vaeclient import calls
from vaeclient.calls import (
    DEFAULT_URL,
    IN_FLIGHT,
    RETRY_STATUSES,
    Batched,
    Call,
    answer,
    http_options,
    progress_bar,
    retry_delay,
)

P = ParamSpec("P")
T = TypeVar("T")


def _method(build: Callable[P, Call[T]]) -> Callable[Concatenate[AsyncVaeClient, P], Awaitable[T]]:
    @functools.wraps(build)
    async def method(self: AsyncVaeClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.send(build(*args, **kwargs))

    return method


def _batched(build: Callable[P, Batched[T]]) -> Callable[..., Awaitable[T]]:
    """As VaeClient's: any number of rows, in pieces of max_rows, two in flight, answers in order."""
    @functools.wraps(build)
    async def method(self: AsyncVaeClient, /, *args: Any, progress: bool = False, **kwargs: Any) -> T:
        kwargs.setdefault("max_rows", self.max_rows)
        return await self.send_batched(build(*args, **kwargs), progress)

    return method


class AsyncVaeClient:
    """The same API as VaeClient, awaitable (the address: base_url, else $VAESERVE_URL, else
    http://127.0.0.1:8000)."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, timeout: float = 35.0,
                 retries: int = 5, backoff: float = 0.05, max_connections: int = 64, max_rows: int = 1024,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        base_url = base_url or os.environ.get("VAESERVE_URL") or DEFAULT_URL
        self.base_url, self.retries, self.backoff = base_url.rstrip("/"), retries, backoff
        self.api_key, self.timeout, self.max_rows = api_key, timeout, max_rows
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

    async def send_batched(self, batch: Batched[T], progress: bool = False) -> T:
        """The pieces, IN_FLIGHT at a time, joined in order; cancelled, nothing more is sent."""
        if len(batch.calls) == 1:
            return batch.join([await self.send(batch.calls[0])])
        bar = progress_bar(batch.rows, progress)
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(call: Call[Any]) -> Any:
            async with gate:
                out = await self.send(call)
            if bar is not None:
                bar.update(call.rows)
            return out

        try:
            async with asyncio.TaskGroup() as tg:  # one failure cancels the rest
                tasks = [tg.create_task(one(c)) for c in batch.calls]
        finally:
            if bar is not None:
                bar.close()
        return batch.join([t.result() for t in tasks])

    async def synthetic_set(self, out: str | Path, n: int, **kwargs: Any) -> dict[str, Any]:
        """VaeClient.synthetic_set from asyncio: the same resumable writer, run on a thread with a blocking client
        of the same address and key (the file's chunks are written by blocking code either way)."""
        from vaeclient.sync import VaeClient
        from vaeclient.synthetic import write_synthetic

        def run() -> dict[str, Any]:
            with VaeClient(self.base_url, api_key=self.api_key, timeout=self.timeout, max_rows=self.max_rows) as c:
                return write_synthetic(c, Path(out), n, **kwargs)

        return await asyncio.to_thread(run)

    models = _method(calls.models)
    encode = _batched(calls.encode)
    decode = _batched(calls.decode)
    sample = _method(calls.sample)
    sample_labelled = _method(calls.sample_labelled)
    interpolate = _method(calls.interpolate)
    reconstruct = _batched(calls.reconstruct)
