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

DEFAULT_URL = "http://127.0.0.1:8000"
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
    body: dict[str, Any] | None = None  # JSON; or, with `arrays`, the options sent as query parameters
    accept: str | None = None
    arrays: dict[str, np.ndarray] | None = None  # an array body: one array as .npy, several as .npz
    rows: int = 0  # rows this call carries (for a progress bar)

    def request(self) -> dict[str, Any]:
        """httpx's request arguments."""
        headers = {"accept": self.accept} if self.accept else {}
        out: dict[str, Any] = {"headers": headers}
        options = {k: v for k, v in (self.body or {}).items() if v is not None}
        if self.arrays is not None:
            buf = io.BytesIO()
            if len(self.arrays) == 1:
                np.save(buf, next(iter(self.arrays.values())), allow_pickle=False)
            else:
                np.savez(buf, **self.arrays)
            headers["content-type"] = NPY if len(self.arrays) == 1 else NPZ
            out["content"] = buf.getvalue()
            out["params"] = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}
        elif self.body is not None:
            out["json"] = options
        return out


@dataclass(frozen=True)
class Batched(Generic[T]):
    """Calls of at most max_rows rows each, sent two at a time, answers joined in order."""

    calls: list[Call[Any]]
    join: Callable[[list[Any]], T]
    rows: int


IN_FLIGHT = 2  # pieces of a batched call on the wire at once: one computing, one on its way


def pieces(n: int, rows: int) -> list[slice]:
    if n == 0:
        raise ValueError("no rows to send: at least one")
    return [slice(i, min(n, i + rows)) for i in range(0, n, max(1, rows))]


def _image_array(images: np.ndarray | Sequence[Any]) -> np.ndarray | None:
    """Images as an array to send as one (uint8 kept: 4x less to move than float32); None for PNGs."""
    if isinstance(images, np.ndarray):
        arr = images
    elif len(images) and isinstance(images[0], bytes | str):
        return None
    else:
        arr = np.asarray(images)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"images of dtype {arr.dtype}: uint8 0..255 or floats in [0, 1]")
    if arr.dtype.kind in "iu":  # 0..255 integers of another width (int64 from a list): uint8 says what they are
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError("integer images must be 0..255")
        return arr.astype(np.uint8)
    return np.ascontiguousarray(arr, dtype=np.float32)


def progress_bar(total: int, show: bool, unit: str = "row", initial: int = 0, desc: str | None = None,
                 delay: float = 2.0) -> Any:
    """A tqdm bar (only when asked) that appears once a call has run `delay` seconds; None without tqdm."""
    if not show:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # the client needs httpx and NumPy only; the bar is a nicety
        return None
    return tqdm(total=total, initial=initial, unit=unit, unit_scale=True, desc=desc, delay=delay)


def _concat(parts: list[np.ndarray | None]) -> np.ndarray | None:
    return None if parts[0] is None else np.concatenate(parts)


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
           labels: Sequence[int] | np.ndarray | None = None,
           max_rows: int = 1024) -> Batched[tuple[np.ndarray, np.ndarray | None]]:
    """(mu, logvar) as (B, m) arrays for any number of images (uint8 0..255 or floats in [0, 1], (B, 28, 28)); logvar
    is None for deterministic autoencoders. Sent as arrays in pieces of max_rows."""
    arr = _image_array(images)
    n = len(images)
    lab = None if labels is None else np.asarray(labels, dtype=np.int64)
    options = {"model": model, "version": version}

    def read(r: Any) -> tuple[np.ndarray, np.ndarray | None]:
        if isinstance(r.get("mu"), np.ndarray):  # the .npz answer
            return r["mu"], r.get("logvar")
        logvar = None if r["logvar"] is None else np.asarray(r["logvar"], dtype=np.float32)
        return np.asarray(r["mu"], dtype=np.float32), logvar

    calls = []
    for sl in pieces(n, max_rows):
        if arr is None:  # PNGs travel in JSON
            body = {**options, "labels": None if lab is None else lab[sl].tolist(), "images": _images(images[sl])}
            calls.append(Call("POST", "/encode", read, body, rows=sl.stop - sl.start))
        else:
            got = {"images": arr[sl], **({} if lab is None else {"labels": lab[sl]})}
            calls.append(Call("POST", "/encode", read, options, NPZ, got, rows=sl.stop - sl.start))
    return Batched(calls, lambda parts: (np.concatenate([p[0] for p in parts]), _concat([p[1] for p in parts])),
                   n)


def decode(z: np.ndarray, *, model: str | None = None, version: int | None = None,
           labels: Sequence[int] | np.ndarray | None = None, dtype: str = "float32",
           max_rows: int = 1024) -> Batched[np.ndarray]:
    """(B, 28, 28) images for any number of latents z (B, m): float32 in [0,1], or uint8 0..255 (4x less to move)."""
    z = np.ascontiguousarray(z, dtype=np.float32)
    lab = None if labels is None else np.asarray(labels, dtype=np.int64)
    options = {"model": model, "version": version, "dtype": _dtype(dtype)}
    calls = [Call("POST", "/decode", _same, options, NPY, {"z": z[sl], **({} if lab is None else {"labels": lab[sl]})},
                  rows=sl.stop - sl.start) for sl in pieces(len(z), max_rows)]
    return Batched(calls, np.concatenate, len(z))


def sample(n: int, *, model: str | None = None, version: int | None = None, seed: int | None = None,
           temperature: float | None = None, labels: Sequence[int] | str | None = None,
           dtype: str = "float32", sharpness: float | None = None) -> Call[np.ndarray]:
    """n generated digits, (n, 28, 28) float32 in [0,1] or uint8 0..255; the same seed gives the same digits.
    sharpness: pixels pushed toward black and white (the server's /sample option; None: the means as decoded)."""
    return Call("POST", "/sample", _same, {"model": model, "version": version, "n": n, "seed": seed,
                                           "dtype": _dtype(dtype), "temperature": temperature, "labels": labels,
                                           "sharpness": sharpness}, NPY)


def sample_labelled(n: int, *, model: str | None = None, version: int | None = None, seed: int | None = None,
                    temperature: float | None = None, labels: Sequence[int] | str = "balanced",
                    dtype: str = "float32", sharpness: float | None = None) -> Call[tuple[np.ndarray, np.ndarray]]:
    """A labelled set from a conditional model in one .npz answer: (images (n, 28, 28), labels (n,))."""
    return Call("POST", "/sample", lambda r: (r["images"], r["labels"]),
                {"model": model, "version": version, "n": n, "seed": seed, "dtype": _dtype(dtype),
                 "temperature": temperature, "labels": labels, "sharpness": sharpness}, NPZ)


def interpolate(start: np.ndarray, end: np.ndarray, steps: int = 10, *, method: str = "linear",
                model: str | None = None, version: int | None = None, label: int | None = None) -> Call[np.ndarray]:
    """(steps, 28, 28) images along the path; start/end are latents (m,) or images (28, 28)."""
    return Call("POST", "/interpolate", _same, {"model": model, "version": version, "steps": steps,
                                                "method": method, "label": label, "start": _end(start),
                                                "end": _end(end)}, NPY)


def reconstruct(images: np.ndarray | Sequence[Any], *, model: str | None = None, version: int | None = None,
                labels: Sequence[int] | np.ndarray | None = None,
                max_rows: int = 1024) -> Batched[tuple[np.ndarray, np.ndarray]]:
    """(reconstructions (B, 28, 28) float32, per-image MSE (B,)) for any number of images."""
    arr = _image_array(images)
    lab = None if labels is None else np.asarray(labels, dtype=np.int64)
    options = {"model": model, "version": version}

    def read(r: Any) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(r["images"], dtype=np.float32), np.asarray(r["mse"], dtype=np.float32)

    calls = []
    for sl in pieces(len(images), max_rows):
        if arr is None:
            body = {**options, "labels": None if lab is None else lab[sl].tolist(), "images": _images(images[sl])}
            calls.append(Call("POST", "/reconstruct", read, body, rows=sl.stop - sl.start))
        else:
            got = {"images": arr[sl], **({} if lab is None else {"labels": lab[sl]})}
            calls.append(Call("POST", "/reconstruct", read, options, NPZ, got, rows=sl.stop - sl.start))
    return Batched(calls, lambda parts: (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])),
                   len(images))


API = (models, encode, decode, sample, sample_labelled, interpolate, reconstruct)
