"""Every call of the API, described once and sent by neither: path, body, the media type to ask for, and how to read
the answer. VaeClient and AsyncVaeClient turn each builder here into a method (vaeclient/sync.py, vaeclient/aio.py).
"""

from __future__ import annotations

import base64
import io
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
import numpy as np

NPY = "application/x-npy"
NPZ = "application/x-npz"
RETRY_STATUSES = (429, 503)
T = TypeVar("T")


class VaeServeError(Exception):
    """A request the server refused or could not answer; `status` and `message` say why."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message, self.detail = status, message, detail


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer (the decoded body: JSON, an array, or a dict of arrays)."""

    method: str
    path: str
    read: Callable[[Any], T]
    body: dict[str, Any] | None = None
    accept: str | None = None

    def request(self) -> dict[str, Any]:
        """httpx's request arguments."""
        out: dict[str, Any] = {"headers": {"accept": self.accept} if self.accept else {}}
        if self.body is not None:
            out["json"] = {k: v for k, v in self.body.items() if v is not None}
        return out


def http_options(base_url: str, api_key: str | None, timeout: float, max_connections: int) -> dict[str, Any]:
    """What both clients give httpx: base URL, the key header, timeout, a pool size."""
    return {"base_url": base_url.rstrip("/"), "timeout": timeout, "headers": {"x-api-key": api_key} if api_key else {},
            "limits": httpx.Limits(max_connections=max_connections)}


def answer(resp: httpx.Response) -> Any:
    """The decoded body of a success; VaeServeError for anything else."""
    if resp.status_code >= 400:
        try:
            body = resp.json()
            raise VaeServeError(resp.status_code, str(body.get("error", resp.text)), body.get("detail"))
        except ValueError:
            raise VaeServeError(resp.status_code, resp.text[:500]) from None
    kind = resp.headers.get("content-type", "")
    if kind.startswith(NPY):
        return np.load(io.BytesIO(resp.content), allow_pickle=False)
    if kind.startswith(NPZ):
        with np.load(io.BytesIO(resp.content), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    return resp.json()


def retry_delay(resp: httpx.Response | None, attempt: int, base: float) -> float:
    """Retry-After when the server says it, else jittered exponential backoff."""
    retry_after = resp.headers.get("retry-after") if resp is not None else None
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    return base * (2 ** attempt) * (0.5 + random.random())


def _images(images: np.ndarray | Sequence[Any]) -> list[dict[str, Any]]:
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


def _dtype(dtype: str) -> str | None:
    """The body's dtype field, left out for float32 (the default)."""
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"dtype {dtype!r}: float32 or uint8")
    return None if dtype == "float32" else dtype


def _end(x: np.ndarray) -> dict[str, Any]:
    a = np.asarray(x, dtype=np.float64)
    if a.size == 784:
        return {"image": _images([a])[0]}
    return {"z": a.reshape(-1).tolist()}


def _same(x: Any) -> Any:
    return x


# -- the API ---------------------------------------------------------------------------------------------------

def models() -> Call[list[dict[str, Any]]]:
    """Every model the server has, with its meta and measured figures."""
    return Call("GET", "/models", lambda r: list(r["models"]))


def encode(images: np.ndarray | Sequence[Any], *, model: str | None = None, version: int | None = None,
           labels: Sequence[int] | None = None) -> Call[tuple[np.ndarray, np.ndarray | None]]:
    """(mu, logvar) as (B, m) arrays; logvar is None for deterministic autoencoders."""
    def read(r: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
        logvar = None if r["logvar"] is None else np.asarray(r["logvar"], dtype=np.float32)
        return np.asarray(r["mu"], dtype=np.float32), logvar

    return Call("POST", "/encode", read, {"model": model, "version": version, "labels": labels,
                                          "images": _images(images)})


def decode(z: np.ndarray, *, model: str | None = None, version: int | None = None,
           labels: Sequence[int] | None = None, dtype: str = "float32") -> Call[np.ndarray]:
    """(B, 28, 28) images for latents z (B, m): float32 in [0,1], or uint8 0..255 (4x less to move)."""
    return Call("POST", "/decode", _same, {"model": model, "version": version, "labels": labels,
                                           "dtype": _dtype(dtype), "z": np.asarray(z, dtype=np.float64).tolist()},
                NPY)


def sample(n: int, *, model: str | None = None, version: int | None = None, seed: int | None = None,
           temperature: float | None = None, labels: Sequence[int] | str | None = None,
           dtype: str = "float32") -> Call[np.ndarray]:
    """n generated digits, (n, 28, 28) float32 in [0,1] or uint8 0..255; the same seed gives the same digits."""
    return Call("POST", "/sample", _same, {"model": model, "version": version, "n": n, "seed": seed,
                                           "dtype": _dtype(dtype), "temperature": temperature, "labels": labels}, NPY)


def sample_labelled(n: int, *, model: str | None = None, version: int | None = None, seed: int | None = None,
                    temperature: float | None = None, labels: Sequence[int] | str = "balanced",
                    dtype: str = "float32") -> Call[tuple[np.ndarray, np.ndarray]]:
    """A labelled set from a conditional model in one .npz answer: (images (n, 28, 28), labels (n,))."""
    return Call("POST", "/sample", lambda r: (r["images"], r["labels"]),
                {"model": model, "version": version, "n": n, "seed": seed, "dtype": _dtype(dtype),
                 "temperature": temperature, "labels": labels}, NPZ)


def interpolate(start: np.ndarray, end: np.ndarray, steps: int = 10, *, method: str = "linear",
                model: str | None = None, version: int | None = None, label: int | None = None) -> Call[np.ndarray]:
    """(steps, 28, 28) images along the path; start/end are latents (m,) or images (28, 28)."""
    return Call("POST", "/interpolate", _same, {"model": model, "version": version, "steps": steps,
                                                "method": method, "label": label, "start": _end(start),
                                                "end": _end(end)}, NPY)


def reconstruct(images: np.ndarray | Sequence[Any], *, model: str | None = None, version: int | None = None,
                labels: Sequence[int] | None = None) -> Call[tuple[np.ndarray, np.ndarray]]:
    """(reconstructions (B, 28, 28), per-image MSE (B,))."""
    return Call("POST", "/reconstruct",
                lambda r: (np.asarray(r["images"], dtype=np.float32), np.asarray(r["mse"], dtype=np.float32)),
                {"model": model, "version": version, "labels": labels, "images": _images(images)})


API = (models, encode, decode, sample, sample_labelled, interpolate, reconstruct)
