"""Response bodies: orjson for JSON (NumPy arrays serialised natively), .npy on request, PNG images."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson
import torch
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from checkpoint.sampling import to_uint8 as tensor_to_uint8
from service.engine.domain import NotAcceptable
from service.http import zipstream
from service.http.images import array_to_png, npy_header

NPY = "application/x-npy"
NPZ = "application/x-npz"
NPZ_FIELDS = ("z", "labels", "mse", "seed")  # what travels beside the images in an .npz answer


def wants_npy(request: Request) -> bool:
    return NPY in request.headers.get("accept", "")


def wants_png(request: Request) -> bool:
    """image/png asked for, and neither JSON nor arrays accepted beside it (a browser's */* is not asking)."""
    accept = request.headers.get("accept", "")
    return "image/png" in accept and "json" not in accept and "x-np" not in accept and "*/*" not in accept


def wants_npz(request: Request) -> bool:
    return NPZ in request.headers.get("accept", "")


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float pixels in [0,1] -> uint8 0..255, by the same rule the forward uses for decode_u8."""
    return tensor_to_uint8(torch.from_numpy(images)).numpy()


def npz_body(images: np.ndarray, payload: dict[str, Any]) -> bytes:
    """An uncompressed .npz: `images` (B, 28, 28) float32 or uint8, plus z, labels, mse, seed where the answer
    has them."""
    arrays = {"images": images}
    for key in NPZ_FIELDS:
        if payload.get(key) is not None:
            arrays[key] = np.asarray(payload[key])
    return npz_of(arrays)


def npz_of(arrays: dict[str, Any]) -> bytes:
    """Named arrays as an uncompressed .npz."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def _fallback(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):  # non-contiguous views: orjson serialises only C-contiguous arrays
        return np.ascontiguousarray(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


OFFLOAD_ROWS = 64  # bigger answers are serialised on a thread so the event loop keeps serving others


def json_response(payload: dict[str, Any]) -> Response:
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY, default=_fallback)
    return Response(body, media_type="application/json")


async def respond(request: Request, payload: dict[str, Any], images: np.ndarray, fmt: str,
                  model: str, version: int, extra: dict[str, str] | None = None, dtype: str = "float32") -> Response:
    """An images answer: .npy or .npz when asked for, else JSON with `images` as pixels or PNGs;
    pixels and arrays as float32 in [0,1] or, with dtype uint8, 0..255."""
    if wants_png(request):  # one image as a plain image/png body; several have no single picture to be
        if len(images) != 1:
            raise NotAcceptable(f"Accept: image/png gives one image, and this answer has {len(images)}; ask for "
                                f"application/json (format png gives base64 PNGs), {NPY} or {NPZ}")
        png = base64.b64decode(array_to_png(images[0]))
        return Response(png, media_type="image/png", headers=model_headers(model, version, extra))
    if dtype == "uint8" and fmt != "png" and images.dtype != np.uint8:
        images = to_uint8(images)
    if wants_npy(request):
        return npy_response(images, model, version, extra)
    npz = wants_npz(request)

    def build() -> Response:
        if npz:
            return Response(npz_body(images, payload), media_type=NPZ, headers=model_headers(model, version, extra))
        return json_response({**payload, "images": images_field(images, fmt)})

    return await asyncio.to_thread(build) if len(images) > OFFLOAD_ROWS else build()


def model_headers(model: str, version: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The headers that name the answering model on a binary (.npy/.npz) answer."""
    return {"x-model": model, "x-model-version": str(version), **(extra or {})}


class NpyResponse(Response):
    """An array as a .npy body sent as two messages, header then the array's own memory: no copy of a
    multi-megabyte answer into one bytes object (a tenth of the bulk path's time on this CPU)."""

    media_type = NPY

    def __init__(self, array: np.ndarray, headers: dict[str, str]) -> None:
        self.array = np.ascontiguousarray(array)
        self.head = npy_header(self.array.shape, self.array.dtype)
        super().__init__(None, headers={**headers, "content-length": str(len(self.head) + self.array.nbytes)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.head, "more_body": True})
        body = memoryview(self.array).cast("B")  # type: ignore[arg-type]
        await send({"type": "http.response.body", "body": body, "more_body": False})


def npy_response(array: np.ndarray, model: str, version: int, extra: dict[str, str] | None = None) -> Response:
    if array.dtype != np.uint8:
        array = array.astype(np.float32, copy=False)
    return NpyResponse(array, model_headers(model, version, extra))


def _arrays(parts: AsyncIterator[torch.Tensor], dtype: str) -> tuple[np.dtype, AsyncIterator[np.ndarray]]:
    """A stream's parts as arrays of the answer's dtype (uint8 parts made on the device pass as they are)."""
    np_dtype = np.dtype(np.uint8) if dtype == "uint8" else np.dtype("<f4")

    async def arrays() -> AsyncIterator[np.ndarray]:
        async for part in parts:  # (rows, 28, 28), in row order
            arr = part.numpy()
            if arr.dtype != np_dtype:
                arr = to_uint8(arr) if dtype == "uint8" else arr.astype(np.float32)
            yield arr

    return np_dtype, arrays()


def npy_stream(parts: AsyncIterator[torch.Tensor], n: int, dtype: str, model: str, version: int,
               extra: dict[str, str] | None = None) -> StreamingResponse:
    """A large .npy answer streamed as its chunks finish: the header knows the shape up front, so the first
    bytes leave before the last rows are computed, and memory holds a few chunks, not the whole answer."""
    np_dtype, arrays = _arrays(parts, dtype)
    head = npy_header((n, 28, 28), np_dtype)

    async def body() -> AsyncIterator[bytes]:
        yield head
        async for arr in arrays:
            yield np.ascontiguousarray(arr).tobytes()

    length = len(head) + n * 28 * 28 * np_dtype.itemsize
    return StreamingResponse(body(), media_type=NPY, headers={**model_headers(model, version, extra),
                                                              "content-length": str(length)})


def npz_stream(parts: AsyncIterator[torch.Tensor], n: int, dtype: str, whole: dict[str, np.ndarray], model: str,
               version: int, extra: dict[str, str] | None = None) -> StreamingResponse:
    """A large .npz answer streamed as its chunks finish: `whole` (labels, seed) first, then the images
    (service/http/zipstream.py); exact Content-Length, memory of a few chunks."""
    np_dtype, arrays = _arrays(parts, dtype)
    length = zipstream.npz_length(whole, n, (28, 28), np_dtype)
    return StreamingResponse(zipstream.npz_body(whole, arrays, n, (28, 28), np_dtype), media_type=NPZ,
                             headers={**model_headers(model, version, extra), "content-length": str(length)})


def images_field(images: np.ndarray, fmt: str) -> Any:
    """(B, 28, 28) float32 -> the `images` field: the array itself (pixels) or base64 PNG strings."""
    if fmt == "png":
        return [array_to_png(img) for img in images]
    return images
