"""Request and response schemas of the REST door (<Verb>Request / <Verb>Response). Per-field bounds come from the
engine's rules (service/engine/rules.py), which every door applies; limits here are hard caps for the OpenAPI
contract, and the tighter, configurable limits from settings are checked by the rules."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.engine.rules import PIXEL_MAX, PIXEL_MIN, PRIORITY_MAX, Z_BOUND

# Row counts, n and steps have no bound here: their limits are settings (max_rows, max_sample, max_stream_sample,
# max_steps), checked by the handlers, so raising a setting raises the limit; max_body_bytes bounds the parse.
PNG_MAX_CHARS = 65536  # base64 of a 28x28 PNG is well under 4 KiB; this bounds hostile input

Pixel = Annotated[float, Field(ge=PIXEL_MIN, le=PIXEL_MAX, allow_inf_nan=False)]
PixelRow = Annotated[list[Pixel], Field(min_length=28, max_length=28)]
Pixels = Annotated[list[PixelRow], Field(min_length=28, max_length=28, description="28x28 floats in [0,1], or "
                                                                                 "28x28 integers 0..255 (uint8)")]
Coord = Annotated[float, Field(ge=-Z_BOUND, le=Z_BOUND, allow_inf_nan=False)]
Latent = Annotated[list[Coord], Field(min_length=1, max_length=4096, description="one latent vector of m floats")]
# Integers are strict: `true`, `2.0` and `"3"` are refused, not coerced (a `seed: false` was once seed 0).
Label = Annotated[int, Field(strict=True, ge=0, le=9)]
Seed = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]
ModelName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
ImageFormat = Literal["pixels", "png"]
# uint8: pixels as 0..255 (round(255 x)), 4x smaller .npy/.npz bodies, for pictures rather than probabilities
ImageDtype = Literal["float32", "uint8"]
DtypeField: Any = Field("float32", description="images as float32 in [0,1] (default) or uint8 0..255 (pixels and "
                                          ".npy/.npz answers; PNGs are 8-bit either way)")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Image(Strict):
    """One 28x28 image: `pixels` (floats in [0,1]) or `png` (base64 of an 8-bit grey or RGB PNG)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": ["pixels"], "properties": {"pixels": {"type": "array"}}},
                  {"required": ["png"], "properties": {"png": {"type": "string"}}}]})

    pixels: Pixels | None = None
    png: Annotated[str, Field(min_length=1, max_length=PNG_MAX_CHARS)] | None = None

    @field_validator("pixels", mode="before")
    @classmethod
    def uint8_pixels(cls, v: Any) -> Any:
        """28x28 integers 0..255 (MNIST as people load it) are read as uint8 and scaled to [0, 1]: an image is
        uint8 when any pixel is above 1, and then every pixel must be an integer 0..255."""
        if not isinstance(v, list) or not any(isinstance(r, list) and any(
                isinstance(p, int | float) and p > 1 for p in r) for r in v):
            return v
        for i, row in enumerate(v):
            if not isinstance(row, list):
                return v  # the schema's own error says what a row is
            for j, p in enumerate(row):
                if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 255:
                    raise ValueError(f"pixels[{i}][{j}] = {p!r}: pixels are floats in [0, 1], or integers 0..255 "
                                     "(uint8) for a whole image; this image has values above 1, so each must be "
                                     "an integer 0..255")
        return [[p / 255.0 for p in row] for row in v]

    @model_validator(mode="after")
    def exactly_one(self) -> Image:
        if (self.pixels is None) == (self.png is None):
            raise ValueError("give exactly one of 'pixels' (28x28 floats in [0,1]) or 'png' (base64 PNG)")
        return self


Images = Annotated[list[Image], Field(min_length=1)]


class Routed(Strict):
    model: ModelName | None = Field(None, description="model name; default: the server's default model")
    version: Annotated[int, Field(strict=True, ge=1)] | None = Field(
        None, description="pin a version; default: the newest")
    priority: Annotated[int, Field(strict=True, ge=0, le=PRIORITY_MAX)] = Field(
        0, description="1 = high, 0 = default, larger = lower (Triton's levels); higher levels are served "
                       "first, and every 4th chunk ignores levels, so no request starves")


LabelsField = Field(None, description="conditional models only: one class 0..9 per row")


# <Verb>Options: a request's scalars. A JSON body carries them beside its arrays; an array body (.npy, .npz) carries
# only arrays, and these come as query parameters (?model=vae-flow-z2&dtype=uint8): one rule for every route.

class EncodeOptions(Routed):
    sample: Annotated[bool, Field(strict=True)] = Field(False, description="also return z = mu + sigma * eps")
    seed: Seed | None = None


class EncodeRequest(EncodeOptions):
    images: Images
    labels: list[Label] | None = LabelsField


class EncodeResponse(BaseModel):
    model: str
    version: int
    mu: list[list[float]]
    logvar: list[list[float]] | None
    z: list[list[float]] | None = None


class ImageOptions(Routed):
    format: ImageFormat = "pixels"
    dtype: ImageDtype = DtypeField


DecodeOptions = ReconstructOptions = ImageOptions


class DecodeRequest(ImageOptions):
    z: Annotated[list[Latent], Field(min_length=1)]
    labels: list[Label] | None = None


class ImagesResponse(BaseModel):
    model: str
    version: int
    images: list[list[list[float]]] | list[str] = Field(description="28x28 floats, or base64 PNGs")


class SampleRequest(Routed):
    n: Annotated[int, Field(strict=True, ge=1, description="digits to draw: up to max_sample (10,000) in JSON or PNG, "
                            "up to max_stream_sample (1,000,000) as a streamed .npy answer")] = 1
    seed: Seed | None = None
    temperature: Annotated[float, Field(gt=0.0, le=10.0, allow_inf_nan=False)] = 1.0
    sharpness: Annotated[float, Field(gt=0.0, le=100.0, allow_inf_nan=False, description=(
        "pixels pushed toward black and white: sigmoid(sharpness * logit(p)) of each Bernoulli mean p; 1 (default) "
        "the means as decoded; from about 6 on, the conditional model's digits train a classifier better "
        "(docs/models.md)"))] = 1.0
    labels: list[Label] | Literal["balanced"] | None = None
    format: ImageFormat = "pixels"
    dtype: ImageDtype = DtypeField


class SampleResponse(ImagesResponse):
    z: list[list[float]]
    seed: int
    labels: list[int] | None = None


class Endpoint(Strict):
    """One end of an interpolation: a latent `z`, or an `image` (its encoder mean is used)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": ["z"], "properties": {"z": {"type": "array"}}},
                  {"required": ["image"], "properties": {"image": {"type": "object"}}}]})

    z: Latent | None = None
    image: Image | None = None

    @model_validator(mode="after")
    def exactly_one(self) -> Endpoint:
        if (self.z is None) == (self.image is None):
            raise ValueError("give exactly one of 'z' (a latent vector) or 'image'")
        return self


class InterpolateOptions(Routed):
    steps: Annotated[int, Field(strict=True, ge=2, description="points on the path, ends included: up to "
                                                                   "max_steps (256)")] = 10
    method: Literal["linear", "slerp"] = "linear"
    label: Label | None = Field(None, description="conditional models only: the class of every image on the path")
    format: ImageFormat = "pixels"
    dtype: ImageDtype = DtypeField


class InterpolateRequest(InterpolateOptions):
    start: Endpoint
    end: Endpoint


class InterpolateResponse(ImagesResponse):
    z: list[list[float]]


class ReconstructRequest(ImageOptions):
    images: Images
    labels: list[Label] | None = LabelsField


class ReconstructResponse(ImagesResponse):
    mse: list[float]


class RestyleOptions(ImageOptions):
    label: Label | None = Field(None, description="the class the drawing is; absent: the class under which the "
                                "model reconstructs it best")
    labels: list[Label] | None = Field(None, description="the classes to draw it as; absent: every class")


class RestyleRequest(RestyleOptions):
    image: Image


class RestyleResponse(ImagesResponse):
    label: int = Field(description="the class the drawing was read as")
    labels: list[int]
    z: list[list[float]]


class ErrorResponse(BaseModel):
    error: str
    detail: object | None = None
