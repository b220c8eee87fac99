"""The blocking client: each builder of vaeclient/calls.py as a method that sends it and waits."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


def _method(build: Callable[P, Call[T]]) -> Callable[Concatenate[VaeClient, P], T]:
    @functools.wraps(build)
    def method(self: VaeClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.send(build(*args, **kwargs))

    return method


def _batched(build: Callable[P, Batched[T]]) -> Callable[..., T]:
    """A builder of pieces as a method: any number of rows, in pieces of the client's max_rows, two in flight,
    answers in order; progress=True shows a bar once it runs a few seconds."""
    @functools.wraps(build)
    def method(self: VaeClient, /, *args: Any, progress: bool = False, **kwargs: Any) -> T:
        kwargs.setdefault("max_rows", self.max_rows)
        return self.send_batched(build(*args, **kwargs), progress)

    return method


class VaeClient:
    """Blocking client; use as a context manager or call close(). The address: base_url, else $VAESERVE_URL, else
    http://127.0.0.1:8000."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, timeout: float = 35.0,
                 retries: int = 5, backoff: float = 0.05, max_connections: int = 32, max_rows: int = 1024,
                 transport: httpx.BaseTransport | None = None) -> None:
        base_url = base_url or os.environ.get("VAESERVE_URL") or DEFAULT_URL
        self.base_url, self.retries, self.backoff = base_url.rstrip("/"), retries, backoff
        self.max_rows = max_rows  # rows per request of a batched call: the server's VAESERVE_MAX_ROWS
        self._http = httpx.Client(**http_options(base_url, api_key, timeout, max_connections), transport=transport)

    def __enter__(self) -> VaeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call[T]) -> T:
        """One call, retried on 429/503 and on transport errors (Retry-After honoured)."""
        for attempt in range(self.retries + 1):
            try:
                resp = self._http.request(call.method, call.path, **call.request())
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                time.sleep(retry_delay(None, attempt, self.backoff))
                continue
            if resp.status_code in RETRY_STATUSES and attempt < self.retries:
                time.sleep(retry_delay(resp, attempt, self.backoff))
                continue
            return call.read(answer(resp))
        raise AssertionError("unreachable")

    def send_batched(self, batch: Batched[T], progress: bool = False) -> T:
        """The pieces, IN_FLIGHT at a time, joined in order; a stop (Ctrl-C, an error) sends nothing more."""
        if len(batch.calls) == 1:
            return batch.join([self.send(batch.calls[0])])
        bar = progress_bar(batch.rows, progress)
        pool = ThreadPoolExecutor(IN_FLIGHT)
        parts = []
        try:
            for call, part in zip(batch.calls, pool.map(self.send, batch.calls), strict=True):
                parts.append(part)
                if bar is not None:
                    bar.update(call.rows)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()
        return batch.join(parts)

    def synthetic_set(self, out: str | Path, n: int, **kwargs: Any) -> dict[str, Any]:
        """Write n balanced labelled digits to an MNIST-shaped .npz (vaeclient/synthetic.py); resumable."""
        from vaeclient.synthetic import write_synthetic

        return write_synthetic(self, Path(out), n, **kwargs)

    models = _method(calls.models)
    encode = _batched(calls.encode)
    decode = _batched(calls.decode)
    sample = _method(calls.sample)
    sample_labelled = _method(calls.sample_labelled)
    interpolate = _method(calls.interpolate)
    reconstruct = _batched(calls.reconstruct)
