"""The five inference endpoints: schema -> tensor -> batcher -> response."""

from __future__ import annotations

import math
import secrets
from typing import Annotated, TypeVar

import numpy as np
import torch
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from service.errors import ApiError
from service.images import ImageError, png_to_array
from service.loader import Checkpoint
from service.respond import json_response, npy_response, respond, wants_npy
from service.schemas import (
    DecodeRequest,
    EncodeRequest,
    EncodeResponse,
    ErrorResponse,
    Image,
    ImagesResponse,
    InterpolateRequest,
    InterpolateResponse,
    ReconstructRequest,
    ReconstructResponse,
    SampleRequest,
    SampleResponse,
)
from service.state import AppState

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 404, 408, 413, 422, 429, 503, 504)}
# With `Accept: application/x-npy` the 200 answer is a NumPy .npy file instead of JSON; routes that answer
# images also give an .npz (images plus z, labels, mse, seed) for `Accept: application/x-npz`.
ERRORS[200] = {"content": {"application/x-npy": {"schema": {"type": "string", "format": "binary"}},
                           "application/x-npz": {"schema": {"type": "string", "format": "binary"}}}}
router = APIRouter(responses=ERRORS)  # type: ignore[arg-type]


def ready_state(request: Request) -> AppState:
    """The app state, or 503 while loading or draining (a plain call: cheaper than a dependency)."""
    state: AppState = request.app.state.vae
    if not state.ready or state.draining:
        raise ApiError(503, "not ready: " + ("draining for shutdown" if state.draining else
                                             "; ".join(state.load_errors) or "loading"),
                       None, {"Retry-After": str(state.settings.retry_after_s)})
    return state


State = Annotated[AppState, Depends(ready_state)]
T = TypeVar("T", bound=BaseModel)
REQUESTS: list[type[BaseModel]] = [EncodeRequest, DecodeRequest, SampleRequest, InterpolateRequest,
                                   ReconstructRequest]


def body_doc(model: type[BaseModel]) -> dict[str, object]:
    """OpenAPI text for a body the route parses itself (app.py adds the schemas to components)."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


async def parse(request: Request, model: type[T]) -> T:
    """Validate the raw body with pydantic's own JSON parser: 2-5x faster than json.loads + validate."""
    body = await request.body()
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from exc


def check_rows(state: AppState, n: int, what: str) -> None:
    if n > state.settings.max_rows:
        raise ApiError(422, f"{n} {what} in one request; at most {state.settings.max_rows} allowed")


def images_tensor(images: list[Image], state: AppState) -> torch.Tensor:
    """(B, 1, 28, 28) float32 from pixel lists and/or base64 PNGs."""
    check_rows(state, len(images), "images")
    out = np.empty((len(images), 1, 28, 28), dtype=np.float32)
    for i, img in enumerate(images):
        if img.pixels is not None:
            out[i, 0] = img.pixels
        else:
            try:
                out[i, 0] = png_to_array(img.png or "")
            except ImageError as exc:
                raise ApiError(422, f"images[{i}]: {exc}") from exc
    return torch.from_numpy(out)


def latents_tensor(z: list[list[float]], ckpt: Checkpoint, field: str = "z") -> torch.Tensor:
    bad = next((i for i, row in enumerate(z) if len(row) != ckpt.latent_dim), None)
    if bad is not None:
        raise ApiError(422, f"{field}[{bad}] has {len(z[bad])} values; model {ckpt.name} takes "
                            f"latent vectors of exactly {ckpt.latent_dim}")
    return torch.tensor(z, dtype=torch.float32)


def labels_tensor(labels: list[int] | None, ckpt: Checkpoint, n: int) -> torch.Tensor | None:
    if ckpt.num_classes == 0:
        if labels is not None:
            raise ApiError(422, f"model {ckpt.name} is not conditional: send no labels")
        return None
    if labels is None:
        raise ApiError(422, f"model {ckpt.name} is conditional: send labels, one class in "
                            f"0..{ckpt.num_classes - 1} per row")
    if len(labels) != n:
        raise ApiError(422, f"{len(labels)} labels for {n} rows; send exactly one label per row")
    return torch.tensor(labels, dtype=torch.long)


def seeded_normal(seed: int, rows: int, m: int) -> torch.Tensor:
    """N(0, I) draws that depend on the seed alone (a private CPU generator per request)."""
    return torch.randn(rows, m, generator=torch.Generator().manual_seed(seed))


@router.post("/encode", openapi_extra=body_doc(EncodeRequest), response_model=EncodeResponse)
async def encode(request: Request) -> Response:
    """Encode images to the posterior q(z|x): mu and logvar (null for deterministic autoencoders);
    with `sample`, also z = mu + sigma * eps, seeded by `seed`."""
    state = ready_state(request)
    req = await parse(request, EncodeRequest)
    ckpt = state.resolve(req.model, req.version)
    x = images_tensor(req.images, state)
    labels = labels_tensor(req.labels, ckpt, len(x))
    out = (await state.run(ckpt, "encode", x, labels, state.deadline())).numpy()
    m = ckpt.latent_dim
    mu, logvar = out[:, :m], out[:, m:]
    payload: dict[str, object] = {"model": ckpt.name, "version": ckpt.version, "mu": mu,
                                  "logvar": logvar if ckpt.stochastic else None}
    if req.sample:
        eps = seeded_normal(req.seed if req.seed is not None else secrets.randbits(63), len(mu), m).numpy()
        payload["z"] = mu + np.exp(0.5 * logvar) * eps if ckpt.stochastic else mu
    if wants_npy(request):
        return npy_response(np.asarray(payload.get("z", mu)), ckpt.name, ckpt.version)
    return json_response(payload)


@router.post("/decode", openapi_extra=body_doc(DecodeRequest), response_model=ImagesResponse)
async def decode(request: Request) -> Response:
    """Decode latent vectors to images: the mean of p(x|z), 28x28 in [0,1]."""
    state = ready_state(request)
    req = await parse(request, DecodeRequest)
    ckpt = state.resolve(req.model, req.version)
    check_rows(state, len(req.z), "latent vectors")
    z = latents_tensor(req.z, ckpt)
    labels = labels_tensor(req.labels, ckpt, len(z))
    imgs = (await state.run(ckpt, "decode", z, labels, state.deadline())).numpy()
    return await respond(request, {"model": ckpt.name, "version": ckpt.version}, imgs, req.format, ckpt.name,
                         ckpt.version)


@router.post("/sample", openapi_extra=body_doc(SampleRequest), response_model=SampleResponse)
async def sample(request: Request) -> Response:
    """Draw n digits: decode z ~ N(0, temperature^2 I). The same seed gives the same digits."""
    state = ready_state(request)
    req = await parse(request, SampleRequest)
    ckpt = state.resolve(req.model, req.version)
    if not ckpt.generative:
        raise ApiError(422, f"model {ckpt.name} ({ckpt.meta['kind']}) is not generative: it has no prior to "
                            "sample from; use a vae or cvae model")
    if req.n > state.settings.max_sample:
        raise ApiError(422, f"n={req.n}; at most {state.settings.max_sample} samples per request")
    raw_labels = req.labels
    if raw_labels == "balanced":
        if not ckpt.num_classes:
            raise ApiError(422, f"model {ckpt.name} is not conditional: labels are not accepted")
        raw_labels = [i % ckpt.num_classes for i in range(req.n)]
    labels = labels_tensor(raw_labels if isinstance(raw_labels, list) else None, ckpt, req.n)
    seed = req.seed if req.seed is not None else secrets.randbits(63)
    z = seeded_normal(seed, req.n, ckpt.latent_dim) * req.temperature
    imgs = (await state.run(ckpt, "decode", z, labels, state.deadline())).numpy()
    payload = {"model": ckpt.name, "version": ckpt.version, "z": z.numpy(), "seed": seed,
               "labels": None if labels is None else labels.tolist()}
    return await respond(request, payload, imgs, req.format, ckpt.name, ckpt.version, {"x-seed": str(seed)})


def path_points(a: torch.Tensor, b: torch.Tensor, steps: int, method: str) -> torch.Tensor:
    """steps points from a to b, ends included: straight line, or slerp (great circle, norms blended)."""
    t = torch.linspace(0, 1, steps).unsqueeze(1)  # (steps, 1)
    if method == "slerp":
        na, nb = a.norm(), b.norm()
        if na > 1e-8 and nb > 1e-8:
            cos = torch.clamp(torch.dot(a / na, b / nb), -1.0, 1.0)
            omega = torch.arccos(cos)
            if omega.item() > 1e-4 and math.pi - omega.item() > 1e-4:
                so = torch.sin(omega)
                return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b
    return (1 - t) * a + t * b


@router.post("/interpolate", openapi_extra=body_doc(InterpolateRequest), response_model=InterpolateResponse)
async def interpolate(request: Request) -> Response:
    """Walk the latent space from start to end (each a z, or an image's encoder mean) in `steps` points."""
    state = ready_state(request)
    req = await parse(request, InterpolateRequest)
    ckpt = state.resolve(req.model, req.version)
    if ckpt.num_classes and req.label is None:
        raise ApiError(422, f"model {ckpt.name} is conditional: send 'label', the class (0..{ckpt.num_classes - 1}) "
                            "of every image on the path")
    label = labels_tensor(None if req.label is None else [req.label], ckpt, 1)  # 422 for an unconditional model
    if req.steps > state.settings.max_steps:
        raise ApiError(422, f"steps={req.steps}; at most {state.settings.max_steps} allowed")
    ends: list[torch.Tensor | None] = []
    images = []
    for name, end in (("start", req.start), ("end", req.end)):
        if end.z is not None:
            ends.append(latents_tensor([end.z], ckpt, f"{name}.z")[0])
        else:
            ends.append(None)
            images.append(end.image)
    if images:
        x = images_tensor(images, state)
        lab = None if label is None else label.expand(len(x))
        mus = await state.run(ckpt, "encode", x, lab, state.deadline())
        it = iter(mus[:, : ckpt.latent_dim])
        ends = [e if e is not None else next(it) for e in ends]
    a, b = ends
    assert a is not None and b is not None
    z = path_points(a, b, req.steps, req.method)
    lab = None if label is None else label.expand(len(z))
    imgs = (await state.run(ckpt, "decode", z, lab, state.deadline())).numpy()
    return await respond(request, {"model": ckpt.name, "version": ckpt.version, "z": z.numpy()}, imgs,
                         req.format, ckpt.name, ckpt.version)


@router.post("/reconstruct", openapi_extra=body_doc(ReconstructRequest), response_model=ReconstructResponse)
async def reconstruct(request: Request) -> Response:
    """Reconstruct images through the encoder mean and decoder; also each image's MSE per pixel."""
    state = ready_state(request)
    req = await parse(request, ReconstructRequest)
    ckpt = state.resolve(req.model, req.version)
    x = images_tensor(req.images, state)
    labels = labels_tensor(req.labels, ckpt, len(x))
    imgs = (await state.run(ckpt, "reconstruct", x, labels, state.deadline())).numpy()
    mse = ((imgs - x.numpy()[:, 0]) ** 2).mean(axis=(1, 2))
    return await respond(request, {"model": ckpt.name, "version": ckpt.version, "mse": mse}, imgs, req.format,
                         ckpt.name, ckpt.version)
