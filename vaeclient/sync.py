"""The blocking client: each builder of vaeclient/calls.py as a method that sends it and waits."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from vaeclient import calls
from vaeclient.calls import RETRY_STATUSES, Call, answer, http_options, retry_delay

P = ParamSpec("P")
T = TypeVar("T")


def _method(build: Callable[P, Call[T]]) -> Callable[Concatenate[VaeClient, P], T]:
    @functools.wraps(build)
    def method(self: VaeClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.send(build(*args, **kwargs))

    return method


class VaeClient:
    """Blocking client; use as a context manager or call close()."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None, timeout: float = 35.0,
                 retries: int = 5, backoff: float = 0.05, max_connections: int = 32,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url, self.retries, self.backoff = base_url.rstrip("/"), retries, backoff
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

    def synthetic_set(self, out: str | Path, n: int, **kwargs: Any) -> dict[str, Any]:
        """Write n balanced labelled digits to an MNIST-shaped .npz (vaeclient/synthetic.py); resumable."""
        from vaeclient.synthetic import write_synthetic

        return write_synthetic(self, Path(out), n, **kwargs)

    models = _method(calls.models)
    encode = _method(calls.encode)
    decode = _method(calls.decode)
    sample = _method(calls.sample)
    sample_labelled = _method(calls.sample_labelled)
    interpolate = _method(calls.interpolate)
    reconstruct = _method(calls.reconstruct)
