"""Images in and out: pixel lists and base64 PNGs <-> float32 arrays; NumPy .npy bodies."""

from __future__ import annotations

import base64
import binascii
import io
import struct

import numpy as np
from PIL import Image as PILImage

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk every complete PNG ends with


class ImageError(ValueError):
    """An image that cannot be accepted; the message says why and what is allowed."""


def png_to_array(b64: str) -> np.ndarray:
    """base64 PNG of 28x28 (8-bit grey, grey+alpha, RGB or RGBA) -> float32 (28, 28) in [0,1]."""
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"png is not valid base64 ({exc})") from exc
    if not raw.startswith(PNG_SIGNATURE) or len(raw) < 33 or raw[12:16] != b"IHDR":
        raise ImageError("png is not a PNG file (bad signature or header)")
    if not raw.endswith(PNG_END):
        raise ImageError("png could not be decoded (truncated: no IEND chunk at the end)")
    # Read the size from the header before decoding anything: a 'bomb' never gets decompressed.
    width, height, depth = struct.unpack(">IIB", raw[16:25])
    if (width, height) != (28, 28):
        raise ImageError(f"png is {width}x{height}; only 28x28 images are accepted")
    if depth != 8:
        raise ImageError(f"png has bit depth {depth}; only 8-bit PNGs are accepted")
    try:
        with PILImage.open(io.BytesIO(raw), formats=["PNG"]) as img:
            img.load()
            if img.mode not in ("L", "LA", "RGB", "RGBA", "P"):
                raise ImageError(f"png mode {img.mode} unsupported; use grey or RGB")
            # Transparency has no meaning for a digit (light ink on black): guessing what is under it would turn a
            # black-ink-on-transparent drawing into a blank image, silently. Fully opaque alpha is ignored.
            if img.mode in ("LA", "RGBA") or "transparency" in img.info:
                alpha = img.convert("RGBA").getchannel("A")
                if alpha.getextrema()[0] < 255:
                    raise ImageError("png has transparent pixels (alpha below 255); a digit is light ink on an opaque "
                                     "black background: flatten it (ink white, background black) and send grey or "
                                     "RGB")
            grey = img.convert("L")
    except ImageError:
        raise
    except Exception as exc:  # truncated or corrupt data
        raise ImageError(f"png could not be decoded ({exc})") from exc
    return np.asarray(grey, dtype=np.float32) / 255.0


def array_to_png(img: np.ndarray) -> str:
    """float (28, 28) in [0,1] -> base64 of an 8-bit greyscale PNG."""
    buf = io.BytesIO()
    PILImage.fromarray(np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The .npy header (format 1.0) of a C-ordered array of this shape and dtype."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                "fortran_order": False, "shape": shape})
    return head.getvalue()
