"""Python clients for vaeserve: `VaeClient` (sync) and `AsyncVaeClient` (asyncio), on httpx.

Both return NumPy arrays, fetch bulk images as .npy (no JSON float parsing), keep connections
pooled, retry 429/503 with exponential backoff that honours Retry-After, and raise VaeServeError
carrying the server's message. The client imports only httpx and numpy.

    with VaeClient("http://127.0.0.1:8000") as c:
        digits = c.sample(64, seed=1)              # (64, 28, 28) float32
        mu, logvar = c.encode(digits[:4], model="vae-z2")
"""

from __future__ import annotations

import asyncio
import base64
import io
import random
import time
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

NPY = "application/x-npy"
NPZ = "application/x-npz"
RETRY_STATUSES = (429, 503)


class VaeServeError(Exception):
    """A request the server refused or could not answer; `status` and `message` say why."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message, self.detail = status, message, detail


def _images_payload(images: np.ndarray | Sequence[Any]) -> list[dict[str, Any]]:
    """(B, 28, 28) floats in [0,1] -> pixel images; bytes/str items are sent as PNG."""
    out: list[dict[str, Any]] = []
    for img in images:
        if isinstance(img, bytes):
            out.append({"png": base64.b64encode(img).decode()})
        elif isinstance(img, str):
            out.append({"png": img})
        else:
            out.append({"pixels": np.asarray(img, dtype=np.float32).reshape(28, 28).tolist()})
    return out


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _error(resp: httpx.Response) -> VaeServeError:
    try:
        body = resp.json()
        return VaeServeError(resp.status_code, str(body.get("error", resp.text)), body.get("detail"))
    except ValueError:
        return VaeServeError(resp.status_code, resp.text[:500])


def _delay(resp: httpx.Response | None, attempt: int, base: float) -> float:
    retry_after = resp.headers.get("retry-after") if resp is not None else None
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    return base * (2 ** attempt) * (0.5 + random.random())  # jittered exponential backoff


def _decode(resp: httpx.Response) -> Any:
    kind = resp.headers.get("content-type", "")
    if kind.startswith(NPY):
        return np.load(io.BytesIO(resp.content), allow_pickle=False)
    if kind.startswith(NPZ):
        with np.load(io.BytesIO(resp.content), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    return resp.json()


class _Base:
    def __init__(self, base_url: str, api_key: str | None, retries: int, backoff: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"x-api-key": api_key} if api_key else {}
        self.retries, self.backoff = retries, backoff


class VaeClient(_Base):
    """Blocking client; use as a context manager or call close()."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None, timeout: float = 35.0,
                 retries: int = 5, backoff: float = 0.05, max_connections: int = 32,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, retries, backoff)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=self.headers,
                                  limits=httpx.Limits(max_connections=max_connections), transport=transport)

    def __enter__(self) -> VaeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict[str, Any], npy: bool = False, npz: bool = False) -> Any:
        headers = {"accept": NPY} if npy else {"accept": NPZ} if npz else {}
        for attempt in range(self.retries + 1):
            try:
                resp = self._http.post(path, json=_clean(body), headers=headers)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                time.sleep(_delay(None, attempt, self.backoff))
                continue
            if resp.status_code in RETRY_STATUSES and attempt < self.retries:
                time.sleep(_delay(resp, attempt, self.backoff))
                continue
            if resp.status_code >= 400:
                raise _error(resp)
            return _decode(resp)
        raise AssertionError("unreachable")

    def models(self) -> list[dict[str, Any]]:
        resp = self._http.get("/models")
        if resp.status_code >= 400:
            raise _error(resp)
        return list(resp.json()["models"])

    def encode(self, images: np.ndarray | Sequence[Any], *, model: str | None = None,
               version: int | None = None, labels: Sequence[int] | None = None
               ) -> tuple[np.ndarray, np.ndarray | None]:
        """(mu, logvar) as (B, m) arrays; logvar is None for deterministic autoencoders."""
        r = self._post("/encode", {"model": model, "version": version, "labels": labels,
                                         "images": _images_payload(images)})
        logvar = None if r["logvar"] is None else np.asarray(r["logvar"], dtype=np.float32)
        return np.asarray(r["mu"], dtype=np.float32), logvar

    def decode(self, z: np.ndarray, *, model: str | None = None, version: int | None = None,
               labels: Sequence[int] | None = None, dtype: str = "float32") -> np.ndarray:
        """(B, 28, 28) images for latents z (B, m): float32 in [0,1], or uint8 0..255 (4x less to move)."""
        return self._post("/decode", {"model": model, "version": version, "labels": labels, "dtype": _dtype(dtype),
                                      "z": np.asarray(z, dtype=np.float64).tolist()}, npy=True)

    def sample(self, n: int, *, model: str | None = None, version: int | None = None, seed: int | None = None,
               temperature: float | None = None, labels: Sequence[int] | str | None = None,
               dtype: str = "float32") -> np.ndarray:
        """n generated digits, (n, 28, 28) float32 in [0,1] or uint8 0..255; the same seed gives the same digits."""
        return self._post("/sample", {"model": model, "version": version, "n": n, "seed": seed, "dtype": _dtype(dtype),
                                      "temperature": temperature, "labels": labels}, npy=True)

    def sample_labelled(self, n: int, *, model: str | None = None, version: int | None = None,
                        seed: int | None = None, temperature: float | None = None,
                        labels: Sequence[int] | str = "balanced", dtype: str = "float32",
                        ) -> tuple[np.ndarray, np.ndarray]:
        """A labelled set from a conditional model in one .npz answer: (images (n, 28, 28), labels (n,))."""
        r = self._post("/sample", {"model": model, "version": version, "n": n, "seed": seed, "dtype": _dtype(dtype),
                                   "temperature": temperature, "labels": labels}, npz=True)
        return r["images"], r["labels"]

    def interpolate(self, start: np.ndarray, end: np.ndarray, steps: int = 10, *, method: str = "linear",
                    model: str | None = None, version: int | None = None, label: int | None = None) -> np.ndarray:
        """(steps, 28, 28) images along the path; start/end are latents (m,) or images (28, 28)."""
        return self._post("/interpolate", {"model": model, "version": version, "steps": steps, "method": method,
                                           "label": label, "start": _end(start), "end": _end(end)}, npy=True)

    def reconstruct(self, images: np.ndarray | Sequence[Any], *, model: str | None = None,
                    version: int | None = None, labels: Sequence[int] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(reconstructions (B, 28, 28), per-image MSE (B,))."""
        r = self._post("/reconstruct", {"model": model, "version": version, "labels": labels,
                                        "images": _images_payload(images)})
        return np.asarray(r["images"], dtype=np.float32), np.asarray(r["mse"], dtype=np.float32)


def _dtype(dtype: str) -> str | None:
    """The body's dtype field: left out for float32, so servers that predate it answer as before."""
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"dtype {dtype!r}: float32 or uint8")
    return None if dtype == "float32" else dtype


def _end(x: np.ndarray) -> dict[str, Any]:
    a = np.asarray(x, dtype=np.float64)
    if a.size == 784:
        return {"image": _images_payload([a])[0]}
    return {"z": a.reshape(-1).tolist()}


class AsyncVaeClient(_Base):
    """The same API as VaeClient, awaitable; share one instance across tasks."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None, timeout: float = 35.0,
                 retries: int = 5, backoff: float = 0.05, max_connections: int = 64,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, retries, backoff)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, headers=self.headers,
                                       limits=httpx.Limits(max_connections=max_connections), transport=transport)

    async def __aenter__(self) -> AsyncVaeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: dict[str, Any], npy: bool = False, npz: bool = False) -> Any:
        headers = {"accept": NPY} if npy else {"accept": NPZ} if npz else {}
        for attempt in range(self.retries + 1):
            try:
                resp = await self._http.post(path, json=_clean(body), headers=headers)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                await asyncio.sleep(_delay(None, attempt, self.backoff))
                continue
            if resp.status_code in RETRY_STATUSES and attempt < self.retries:
                await asyncio.sleep(_delay(resp, attempt, self.backoff))
                continue
            if resp.status_code >= 400:
                raise _error(resp)
            return _decode(resp)
        raise AssertionError("unreachable")

    async def models(self) -> list[dict[str, Any]]:
        resp = await self._http.get("/models")
        if resp.status_code >= 400:
            raise _error(resp)
        return list(resp.json()["models"])

    async def encode(self, images: np.ndarray | Sequence[Any], *, model: str | None = None,
                     version: int | None = None, labels: Sequence[int] | None = None
               ) -> tuple[np.ndarray, np.ndarray | None]:
        r = await self._post("/encode", {"model": model, "version": version, "labels": labels,
                                         "images": _images_payload(images)})
        logvar = None if r["logvar"] is None else np.asarray(r["logvar"], dtype=np.float32)
        return np.asarray(r["mu"], dtype=np.float32), logvar

    async def decode(self, z: np.ndarray, *, model: str | None = None, version: int | None = None,
                     labels: Sequence[int] | None = None, dtype: str = "float32") -> np.ndarray:
        return await self._post("/decode", {"model": model, "version": version, "labels": labels,
                                            "dtype": _dtype(dtype), "z": np.asarray(z, dtype=np.float64).tolist()},
                                npy=True)

    async def sample(self, n: int, *, model: str | None = None, version: int | None = None,
                     seed: int | None = None, temperature: float | None = None,
                     labels: Sequence[int] | str | None = None, dtype: str = "float32") -> np.ndarray:
        return await self._post("/sample", {"model": model, "version": version, "n": n, "seed": seed,
                                            "dtype": _dtype(dtype), "temperature": temperature, "labels": labels},
                                npy=True)

    async def sample_labelled(self, n: int, *, model: str | None = None, version: int | None = None,
                              seed: int | None = None, temperature: float | None = None,
                              labels: Sequence[int] | str = "balanced", dtype: str = "float32",
                              ) -> tuple[np.ndarray, np.ndarray]:
        r = await self._post("/sample", {"model": model, "version": version, "n": n, "seed": seed,
                                         "dtype": _dtype(dtype), "temperature": temperature, "labels": labels},
                             npz=True)
        return r["images"], r["labels"]

    async def interpolate(self, start: np.ndarray, end: np.ndarray, steps: int = 10, *, method: str = "linear",
                          model: str | None = None, version: int | None = None, label: int | None = None
                          ) -> np.ndarray:
        return await self._post("/interpolate", {"model": model, "version": version, "steps": steps,
                                                 "method": method, "label": label, "start": _end(start),
                                                 "end": _end(end)}, npy=True)

    async def reconstruct(self, images: np.ndarray | Sequence[Any], *, model: str | None = None,
                          version: int | None = None, labels: Sequence[int] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        r = await self._post("/reconstruct", {"model": model, "version": version, "labels": labels,
                                              "images": _images_payload(images)})
        return np.asarray(r["images"], dtype=np.float32), np.asarray(r["mse"], dtype=np.float32)
