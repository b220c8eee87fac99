"""The REST door's five inference endpoints: schema -> typed rows (the engine's rules) -> the dataplane -> response."""

from __future__ import annotations

import math
import secrets
from collections.abc import AsyncIterator
from typing import TypeVar

import numpy as np
import torch
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from checkpoint.sampling import SEED_BLOCK, balanced_labels, noise_blocks, seeded_normal, sharpen
from service.dataplane import DataPlane
from service.engine import rules
from service.engine.admission import Ticket
from service.engine.checkpoints import Checkpoint
from service.engine.domain import InvalidInput, NotAcceptable, UnsupportedMediaType
from service.engine.ops import Op, Rows
from service.http import arrays, zipstream
from service.http.arrays import ArraySpec
from service.http.errors import invalid_body
from service.http.images import ImageError, png_to_array
from service.http.respond import (
    NPY,
    NPZ,
    json_response,
    model_headers,
    npy_response,
    npy_stream,
    npz_of,
    npz_stream,
    respond,
    wants_npy,
    wants_npz,
    wants_png,
)
from service.http.schemas import (
    DecodeOptions,
    DecodeRequest,
    EncodeOptions,
    EncodeRequest,
    Image,
    InterpolateOptions,
    InterpolateRequest,
    ReconstructOptions,
    ReconstructRequest,
    RestyleOptions,
    RestyleRequest,
    Routed,
    SampleRequest,
)

T = TypeVar("T", bound=Routed)


ARRAY_TYPES = (NPY, NPZ)


def body_type(request: Request) -> str:
    """The body's media type: JSON (also when no Content-Type is sent, as clients that post raw bytes do), .npy or
    .npz; 415 for anything else (a form, text, XML), which would otherwise be read as JSON anyway."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not kind or kind == "application/json" or kind.endswith("+json"):
        return "application/json"
    if kind in ARRAY_TYPES:
        return kind
    raise UnsupportedMediaType(f"content type {kind[:60]!r} is not accepted; send JSON (application/json) or "
                               f"arrays ({NPY}, or {NPZ} for several), with the other options as query parameters")


async def parse(request: Request, model: type[T], ticket: Ticket) -> T:
    """Validate a JSON body with pydantic's own JSON parser (2-5x faster than json.loads + validate); the
    request's priority goes on its ticket."""
    if request.scope.get("query_string"):
        raise InvalidInput("query parameters are read only with an array body (.npy, .npz); with a JSON body, put "
                           "every option in the body")
    body = await request.body()
    try:
        req = model.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_body(exc.errors(include_url=False, include_input=False)) from exc
    ticket.priority = req.priority
    return req


async def parse_arrays(request: Request, options: type[T], ticket: Ticket,
                       specs: dict[str, ArraySpec]) -> tuple[T, dict[str, np.ndarray]]:
    """An array body: the route's arrays (a .npy is the first of `specs`; a .npz names each) and its options from
    the query string, validated by the same schema as a JSON body's."""
    try:
        opts = options.model_validate_strings(dict(request.query_params))
    except ValidationError as exc:
        raise invalid_body(exc.errors(include_url=False, include_input=False), where="query") from exc
    ticket.priority = opts.priority
    body = await request.body()
    if body_type(request) == NPY:
        first = next(iter(specs.values()))
        return opts, {first.name: arrays.read_npy(body, first)}
    got = arrays.read_npz(body, specs)
    missing = [n for n in specs if n not in got and n in REQUIRED_ARRAYS]
    if missing:
        raise InvalidInput(f"the .npz body has no {', '.join(m + '.npy' for m in missing)}; it holds "
                           f"{', '.join(got) or 'nothing'}")
    return opts, got


REQUIRED_ARRAYS = {"images", "z", "start", "end"}  # labels are optional (conditional models need them)
IMAGE_DTYPES = ("u1", "f4", "f8")
LABEL_DTYPES = ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")


def image_specs(plane: DataPlane) -> dict[str, ArraySpec]:
    rows = plane.settings.max_rows
    return {"images": ArraySpec("images", IMAGE_DTYPES, rows * 784),
            "labels": ArraySpec("labels", LABEL_DTYPES, rows, 2)}


def image_array(x: np.ndarray, plane: DataPlane, name: str = "images") -> torch.Tensor:
    """(B, 28, 28), (B, 1, 28, 28) or (B, 784) pixels: uint8 0..255 or floats in [0, 1] -> the engine's rules."""
    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(len(x), 28, 28)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) * np.float32(1 / 255)
    return rules.images(x, plane.settings.max_rows, name=name)


def images_tensor(images: list[Image], plane: DataPlane) -> torch.Tensor:
    """(B, 1, 28, 28) float32 from pixel lists and/or base64 PNGs, checked by the engine's rules."""
    rules.row_count(len(images), plane.settings.max_rows, "images")
    out = np.empty((len(images), 1, 28, 28), dtype=np.float32)
    for i, img in enumerate(images):
        if img.pixels is not None:
            out[i, 0] = img.pixels
        else:
            try:
                out[i, 0] = png_to_array(img.png or "")
            except ImageError as exc:
                raise InvalidInput(f"images[{i}]: {exc}") from exc
    return rules.images(out, plane.settings.max_rows, name="images")


def latents_tensor(z: list[list[float]], ckpt: Checkpoint, plane: DataPlane, field: str = "z") -> torch.Tensor:
    bad = next((i for i, row in enumerate(z) if len(row) != ckpt.latent_dim), None)
    if bad is not None:
        raise InvalidInput(f"{field}[{bad}] has {len(z[bad])} values; model {ckpt.name} takes "
                           f"latent vectors of exactly {ckpt.latent_dim}")
    arr = np.asarray(z, dtype=np.float32).reshape(len(z), ckpt.latent_dim)
    return rules.latents(arr, ckpt.latent_dim, ckpt.name, plane.settings.max_rows, name=field)


def labels_tensor(labels: list[int] | None, ckpt: Checkpoint, n: int) -> torch.Tensor | None:
    return rules.labels(labels, ckpt.num_classes, n, ckpt.name)


async def images_input(request: Request, json_model: type[T], options: type[T], plane: DataPlane,
                       ticket: Ticket) -> tuple[T, torch.Tensor, object]:
    """(the request's options, its images (B, 1, 28, 28) float32, its labels or None) from a JSON body or an array
    body (.npy of images; .npz of images and labels)."""
    if body_type(request) in ARRAY_TYPES:
        opts, got = await parse_arrays(request, options, ticket, image_specs(plane))
        return opts, image_array(got["images"], plane), got.get("labels")
    req = await parse(request, json_model, ticket)
    return req, images_tensor(req.images, plane), req.labels  # type: ignore[attr-defined]


async def interpolate_arrays(request: Request, plane: DataPlane, ticket: Ticket) -> InterpolateRequest:
    """Interpolate's ends as arrays: a .npz of `start` and `end` (each a latent (m,) or an image (28, 28)), or a
    .npy of both stacked ((2, m) or (2, 28, 28)); read into the JSON request (two rows: nothing to gain by more)."""
    opts, got = await parse_arrays(request, InterpolateOptions, ticket, {
        "start": ArraySpec("start", IMAGE_DTYPES, 2 * 4096, 3), "end": ArraySpec("end", IMAGE_DTYPES, 4096, 3)})
    if "end" not in got:  # a .npy: both ends stacked
        both = got["start"]
        if len(both.shape) < 2 or both.shape[0] != 2:
            raise InvalidInput(f"the .npy body has shape {list(both.shape)}; interpolate takes both ends stacked: "
                               "(2, m) latents or (2, 28, 28) images (or a .npz of start and end)")
        got = {"start": both[0], "end": both[1]}

    def end(a: np.ndarray) -> dict[str, object]:
        if a.size == 784 and a.ndim >= 2 or a.dtype == np.uint8:
            px = a.reshape(28, 28).astype(np.float32) * np.float32(1 / 255 if a.dtype == np.uint8 else 1)
            return {"image": {"pixels": px.tolist()}}
        return {"z": a.reshape(-1).astype(np.float64).tolist()}

    try:
        return InterpolateRequest.model_validate({**opts.model_dump(exclude_unset=True),
                                                  "start": end(got["start"]), "end": end(got["end"])})
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            raise invalid_body(exc.errors(include_url=False, include_input=False)) from exc
        raise InvalidInput(f"an end of the path is neither a latent (m,) nor an image (28, 28): {exc}") from exc


def decode_op(dtype: str, fmt: str) -> Op:
    """uint8 pixels are made by the forward itself (on the device), except for PNGs, which want floats."""
    return Op.DECODE_U8 if dtype == "uint8" and fmt != "png" else Op.DECODE


async def encode(request: Request, plane: DataPlane, ticket: Ticket) -> Response:
    """Encode images to the posterior q(z|x): mu and logvar (null for deterministic autoencoders);
    with `sample`, also z = mu + sigma * eps, seeded by `seed`."""
    req, x, lab = await images_input(request, EncodeRequest, EncodeOptions, plane, ticket)
    ckpt = plane.resolve(req.model, req.version)
    labels = labels_tensor(lab, ckpt, len(x))
    out = (await plane.run(ckpt, Op.ENCODE, Rows(x, labels), ticket)).numpy()
    m = ckpt.latent_dim
    mu, logvar = out[:, :m], out[:, m:]
    payload: dict[str, object] = {"model": ckpt.name, "version": ckpt.version, "mu": mu,
                                  "logvar": logvar if ckpt.stochastic else None}
    if req.sample:
        eps = seeded_normal(req.seed if req.seed is not None else secrets.randbits(63), len(mu), m).numpy()
        payload["z"] = mu + np.exp(0.5 * logvar) * eps if ckpt.stochastic else mu
    if wants_png(request):
        raise NotAcceptable(f"/encode answers codes, not images: ask for application/json, {NPY} or {NPZ}")
    if wants_npy(request):
        return npy_response(np.asarray(payload.get("z", mu)), ckpt.name, ckpt.version)
    if wants_npz(request):  # a data set's codes: mu, logvar (stochastic models), z (when sampled)
        got = {k: payload[k] for k in ("mu", "logvar", "z") if payload.get(k) is not None}
        return Response(npz_of(got), media_type=NPZ, headers=model_headers(ckpt.name, ckpt.version))
    return json_response(payload)


async def decode(request: Request, plane: DataPlane, ticket: Ticket) -> Response:
    """Decode latent vectors to images: the mean of p(x|z), 28x28 in [0,1]."""
    if body_type(request) in ARRAY_TYPES:
        rows = plane.settings.max_rows
        req, got = await parse_arrays(request, DecodeOptions, ticket, {
            "z": ArraySpec("z", ("f4", "f8"), rows * 4096), "labels": ArraySpec("labels", LABEL_DTYPES, rows, 2)})
        ckpt = plane.resolve(req.model, req.version)
        z = rules.latents(got["z"], ckpt.latent_dim, ckpt.name, rows)
        lab: object = got.get("labels")
    else:
        req = await parse(request, DecodeRequest, ticket)
        ckpt = plane.resolve(req.model, req.version)
        z, lab = latents_tensor(req.z, ckpt, plane), req.labels
    labels = labels_tensor(lab, ckpt, len(z))
    imgs = (await plane.run(ckpt, decode_op(req.dtype, req.format), Rows(z, labels), ticket)).numpy()
    return await respond(request, {"model": ckpt.name, "version": ckpt.version}, imgs, req.format, ckpt.name,
                         ckpt.version, dtype=req.dtype)


async def sample(request: Request, plane: DataPlane, ticket: Ticket) -> Response:
    """Draw n digits: decode z ~ N(0, temperature^2 I), or, for a checkpoint with a learned prior, its prior's
    latents for that noise. The same seed gives the same digits."""
    if body_type(request) in ARRAY_TYPES:  # the labels, one per digit, as an array (n is their count)
        opts, got = await parse_arrays(request, SampleRequest, ticket, {
            "labels": ArraySpec("labels", LABEL_DTYPES, plane.settings.max_stream_sample, 2)})
        lab = got.get("labels")
        if lab is None or opts.labels is not None:
            raise InvalidInput("a /sample array body is its labels (one per digit); send no labels parameter")
        n = int(lab.reshape(-1).shape[0])
        if "n" in opts.model_fields_set and opts.n != n:
            raise InvalidInput(f"n={opts.n} but the body holds {n} labels; leave n out (it is their count)")
        if n == 0:
            raise InvalidInput("the labels array is empty; at least one digit")
        req = opts.model_copy(update={"n": n, "labels": lab.reshape(-1).tolist()})
    else:
        req = await parse(request, SampleRequest, ticket)
    ckpt = plane.resolve(req.model, req.version)
    if not ckpt.generative:
        raise InvalidInput(f"model {ckpt.name} ({ckpt.meta.kind}) is not generative: it has no prior to "
                            "sample from; use a vae or cvae model")
    s = plane.settings
    npz = wants_npz(request) and not wants_npy(request) and req.n > s.max_sample  # labelled sets past max_sample
    streamed = npz or (wants_npy(request) and (req.n >= s.stream_min_rows or req.n > s.max_sample))
    if streamed and req.n > s.max_stream_sample:
        raise InvalidInput(f"n={req.n}; at most {s.max_stream_sample} samples in one streamed answer")
    if npz and req.dtype != "uint8" and req.n * 28 * 28 * 4 > zipstream.ZIP32_MAX - (1 << 26):
        raise InvalidInput(f"n={req.n} float32 images pass zip's 4 GiB (no zip64 here): ask for dtype uint8 in a "
                           ".npz, or a streamed .npy")
    if not streamed and req.n > s.max_sample:
        raise InvalidInput(f"n={req.n}; at most {s.max_sample} samples in a JSON or PNG answer; up to "
                           f"{s.max_stream_sample} as a streamed .npy or .npz answer (Accept: application/x-npy or "
                           "application/x-npz)")
    if req.labels == "balanced":
        if not ckpt.num_classes:
            raise InvalidInput(f"model {ckpt.name} is not conditional: labels are not accepted")
        all_labels = None
    else:
        all_labels = labels_tensor(req.labels if isinstance(req.labels, list) else None, ckpt, req.n)

    def labels_for(start: int, rows: int) -> torch.Tensor | None:
        if req.labels == "balanced":  # 0, 1, ..., 9, 0, 1, ... counted from the answer's first row
            return balanced_labels(start, rows, ckpt.num_classes)
        return None if all_labels is None else all_labels[start: start + rows]

    seed = req.seed if req.seed is not None else secrets.randbits(63)
    op = decode_op(req.dtype, req.format)
    if req.sharpness != 1.0:  # sharpened before quantising: the forward gives floats, uint8 is made after
        op = op.float32()
    if ckpt.has_prior and (wants_npy(request) or npz):  # images only: prior and decode in one forward (one trip)
        op = Op.SAMPLE_U8 if op == Op.DECODE_U8 else Op.SAMPLE
    blocks = noise_blocks(seed, req.n, ckpt.latent_dim, req.temperature)
    if streamed:
        ticket.scale(math.ceil(req.n / SEED_BLOCK))  # one deadline, scaled with the work
        parts = plane.stream(ckpt, op, (Rows(z, labels_for(start, len(z))) for start, z in blocks), ticket)
        if req.sharpness != 1.0:
            parts = sharpened(parts, req.sharpness)
        if npz:  # images streamed beside the labels (and the seed); z is left out: the seed remakes it
            whole = {"seed": np.asarray(seed)}
            if ckpt.num_classes:
                whole = {"labels": np.asarray(labels_for(0, req.n)), **whole}
            return npz_stream(parts, req.n, req.dtype, whole, ckpt.name, ckpt.version, {"x-seed": str(seed)})
        return npy_stream(parts, req.n, req.dtype, ckpt.name, ckpt.version, {"x-seed": str(seed)})
    z = torch.cat([z for _, z in blocks])
    labels = labels_for(0, req.n)
    if ckpt.has_prior and not wants_npy(request):  # the answer carries z: the learned prior's latents
        z = await plane.run(ckpt, Op.PRIOR, Rows(z, labels), ticket)  # p(z | y) reads the labels
    imgs = sharpen(await plane.run(ckpt, op, Rows(z, labels), ticket), req.sharpness).numpy()
    payload = {"model": ckpt.name, "version": ckpt.version, "z": z.numpy(), "seed": seed,
               "labels": None if labels is None else labels.tolist()}
    return await respond(request, payload, imgs, req.format, ckpt.name, ckpt.version, {"x-seed": str(seed)},
                         dtype=req.dtype)


async def sharpened(parts: AsyncIterator[torch.Tensor], sharpness: float) -> AsyncIterator[torch.Tensor]:
    """A stream's float parts, sharpened (checkpoint/sampling.py: sharpen) as they come."""
    try:
        async for part in parts:
            yield sharpen(part, sharpness)
    finally:  # a reader that stops early stops the stream's job too
        await parts.aclose()  # type: ignore[attr-defined]


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


async def interpolate(request: Request, plane: DataPlane, ticket: Ticket) -> Response:
    """Walk the latent space from start to end (each a z, or an image's encoder mean) in `steps` points."""
    if body_type(request) in ARRAY_TYPES:
        req = await interpolate_arrays(request, plane, ticket)
    else:
        req = await parse(request, InterpolateRequest, ticket)
    ckpt = plane.resolve(req.model, req.version)
    if ckpt.num_classes and req.label is None:
        raise InvalidInput(f"model {ckpt.name} is conditional: send 'label', the class (0..{ckpt.num_classes - 1}) "
                            "of every image on the path")
    label = labels_tensor(None if req.label is None else [req.label], ckpt, 1)  # 422 for an unconditional model
    if req.steps > plane.settings.max_steps:
        raise InvalidInput(f"steps={req.steps}; at most {plane.settings.max_steps} allowed")
    ends: list[torch.Tensor | None] = []
    images: list[Image] = []
    for name, end in (("start", req.start), ("end", req.end)):
        if end.z is not None:
            ends.append(latents_tensor([end.z], ckpt, plane, f"{name}.z")[0])
        elif end.image is not None:  # the schema guarantees exactly one of the two
            ends.append(None)
            images.append(end.image)
    if images:
        x = images_tensor(images, plane)
        lab = None if label is None else label.expand(len(x))
        mus = await plane.run(ckpt, Op.ENCODE, Rows(x, lab), ticket)
        it = iter(mus[:, : ckpt.latent_dim])
        ends = [e if e is not None else next(it) for e in ends]
    a, b = ends
    assert a is not None and b is not None
    z = path_points(a, b, req.steps, req.method)
    lab = None if label is None else label.expand(len(z))
    imgs = (await plane.run(ckpt, Op.DECODE, Rows(z, lab), ticket)).numpy()
    return await respond(request, {"model": ckpt.name, "version": ckpt.version, "z": z.numpy()}, imgs,
                         req.format, ckpt.name, ckpt.version, dtype=req.dtype)


async def reconstruct(request: Request, plane: DataPlane, ticket: Ticket) -> Response:
    """Reconstruct images through the encoder mean and decoder; also each image's MSE per pixel."""
    req, x, lab = await images_input(request, ReconstructRequest, ReconstructOptions, plane, ticket)
    ckpt = plane.resolve(req.model, req.version)
    labels = labels_tensor(lab, ckpt, len(x))
    imgs = (await plane.run(ckpt, Op.RECONSTRUCT, Rows(x, labels), ticket)).numpy()
    mse = ((imgs - x.numpy()[:, 0]) ** 2).mean(axis=(1, 2))
    return await respond(request, {"model": ckpt.name, "version": ckpt.version, "mse": mse}, imgs, req.format,
                         ckpt.name, ckpt.version, dtype=req.dtype)


async def restyle(request: Request, plane: DataPlane, ticket: Ticket) -> Response:
    """One drawing in its own style as every class (or the classes asked): encode it under the class it is (given,
    or the one whose reconstruction fits best), take its code back to the prior's noise through that class's flow,
    and push the same noise through each asked class's p(z | y) and the decoder. A conditional model only."""
    if body_type(request) in ARRAY_TYPES:
        specs = {"image": ArraySpec("image", IMAGE_DTYPES, 784, 3),
                 "labels": ArraySpec("labels", LABEL_DTYPES, 1000, 1)}
        req, got = await parse_arrays(request, RestyleOptions, ticket, specs)  # .npz: the target labels beside it
        if got["image"].size != 784:
            raise InvalidInput(f"image: shape {list(got['image'].shape)}; one 28x28 image")
        x = image_array(got["image"].reshape(1, 28, 28), plane, name="image")
        if "labels" in got:
            req = req.model_copy(update={"labels": [int(v) for v in got["labels"].reshape(-1)]})
    else:
        req = await parse(request, RestyleRequest, ticket)
        x = images_tensor([req.image], plane)
    ckpt = plane.resolve(req.model, req.version)
    classes = ckpt.num_classes
    if not classes:
        raise InvalidInput(f"model {ckpt.name} is not conditional: restyling draws a digit as other classes; use a "
                           "cvae model")
    targets = req.labels if req.labels is not None else list(range(classes))
    if not targets or max(targets) >= classes or min(targets) < 0:
        raise InvalidInput(f"labels: one or more classes in 0..{classes - 1}")
    label = req.label
    if label is None:  # the class it fits best: reconstructed under each, the smallest squared error
        every = torch.arange(classes)
        rec = await plane.run(ckpt, Op.RECONSTRUCT, Rows(x.expand(classes, -1, -1, -1).contiguous(), every), ticket)
        label = int(((rec - x[:, 0]) ** 2).mean(dim=(1, 2)).argmin())
    elif label >= classes:
        raise InvalidInput(f"label {label}: a class in 0..{classes - 1}")
    own = torch.tensor([label])
    mu = (await plane.run(ckpt, Op.ENCODE, Rows(x, own), ticket))[:, : ckpt.latent_dim]
    try:
        eps = await plane.run(ckpt, Op.NOISE, Rows(mu, own), ticket)
    except ValueError as exc:  # a file whose prior cannot be inverted
        raise InvalidInput(f"model {ckpt.name}: {exc}") from exc
    ys = torch.tensor(targets, dtype=torch.long)
    z = await plane.run(ckpt, Op.PRIOR, Rows(eps.expand(len(ys), -1).contiguous(), ys), ticket)
    imgs = (await plane.run(ckpt, decode_op(req.dtype, req.format), Rows(z, ys), ticket)).numpy()
    return await respond(request, {"model": ckpt.name, "version": ckpt.version, "label": label, "labels": targets,
                                   "z": z.numpy()}, imgs, req.format, ckpt.name, ckpt.version, dtype=req.dtype)
