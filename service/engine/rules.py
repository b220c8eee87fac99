"""The rules every door's input meets, in one place: latents, pixels, labels, row counts, priority.

Each door decodes its own wire format (REST JSON, OIP JSON or binary tensors, gRPC protobuf) into NumPy arrays and
hands them here; what comes back is the engine's typed input (float32 / int64 tensors). REST's pydantic schemas
take their per-field bounds (for OpenAPI and early 422s) from the constants below, so the rule is written once.
Every refusal is an InvalidInput that names the field and says what is allowed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from service.engine.domain import InvalidInput

Z_BOUND = 1e3  # latent coordinates beyond +-1000 are refused: far outside any prior's support
PIXEL_MIN, PIXEL_MAX = 0.0, 1.0
PRIORITY_MAX = 1000  # 1 = high, 0 = default, larger = lower (Triton's levels)
IMAGE_TAIL = (1, 28, 28)


def row_count(n: int, limit: int, what: str) -> None:
    if not 1 <= n <= limit:
        raise InvalidInput(f"{n} {what} in one request; at least 1, at most {limit} allowed")


def _float32(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype != np.float32:
        if arr.dtype.kind not in "fiu":
            raise InvalidInput(f"{name}: numbers expected, got {arr.dtype}")
        arr = arr.astype(np.float32)
    return arr


def _not_finite(arr: np.ndarray, name: str) -> InvalidInput | None:
    return None if np.isfinite(arr).all() else InvalidInput(f"{name}: NaN or infinity in data")


def _owned(arr: np.ndarray) -> np.ndarray:
    """Own, writable, contiguous memory for torch (a request body's bytes are read-only); no copy when it is."""
    if arr.flags.writeable and arr.flags.c_contiguous and arr.flags.owndata:
        return arr
    return np.array(arr, dtype=np.float32, copy=True, order="C")


def latents(z: np.ndarray, m: int, model: str, max_rows: int, name: str = "z") -> torch.Tensor:
    """(B, m) latents as float32, finite, within +-Z_BOUND."""
    if z.ndim != 2 or z.shape[1] != m:
        raise InvalidInput(f"{name}: shape {list(z.shape)}; expected [-1, {m}] (model {model} takes latent vectors "
                           f"of exactly {m})")
    row_count(len(z), max_rows, f"{name} rows")
    z = _float32(z, name)
    # one reduction checks both rules on the common path: NaN fails every comparison, infinity the bound
    if not float(np.abs(z).max()) <= Z_BOUND:
        raise _not_finite(z, name) or InvalidInput(f"{name}: values must lie in [-{Z_BOUND:g}, {Z_BOUND:g}]")
    return torch.from_numpy(_owned(z))


def images(x: np.ndarray, max_rows: int, name: str = "x") -> torch.Tensor:
    """(B, 1, 28, 28) pixels (or (B, 28, 28)) as float32 in [0, 1]."""
    if x.ndim == 3 and x.shape[1:] == IMAGE_TAIL[1:]:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1:] != IMAGE_TAIL:
        raise InvalidInput(f"{name}: shape {list(x.shape)}; expected [-1, 1, 28, 28]")
    row_count(len(x), max_rows, f"{name} rows")
    x = _float32(x, name)
    if not (float(x.min()) >= PIXEL_MIN and float(x.max()) <= PIXEL_MAX):  # NaN fails both comparisons
        raise _not_finite(x, name) or InvalidInput(f"{name}: pixels must lie in [{PIXEL_MIN:g}, {PIXEL_MAX:g}]")
    return torch.from_numpy(_owned(x))


def labels(lab: Any, num_classes: int, rows: int, model: str, name: str = "labels") -> torch.Tensor | None:
    """One class per row for a conditional model (int64 (rows,)); None for an unconditional one, which takes none."""
    if num_classes == 0:
        if lab is not None:
            raise InvalidInput(f"model {model} is not conditional: send no {name}")
        return None
    if lab is None:
        raise InvalidInput(f"model {model} is conditional: send {name}, one class in 0..{num_classes - 1} per row")
    arr = np.asarray(lab)
    if arr.ndim == 2 and arr.shape[1] == 1:  # [-1, 1], as Triton's dims [1] give it
        arr = arr.reshape(-1)
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):
        raise InvalidInput(f"{name}: integers expected (INT64), got {arr.dtype}")
    if arr.ndim != 1 or len(arr) != rows:
        raise InvalidInput(f"{len(arr) if arr.ndim else 0} {name} for {rows} rows; send exactly one label per row")
    if rows and (int(arr.min()) < 0 or int(arr.max()) >= num_classes):
        raise InvalidInput(f"{name}: each in 0..{num_classes - 1}")
    return torch.from_numpy(arr.astype(np.int64, copy=True))


def priority(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= PRIORITY_MAX:
        raise InvalidInput(f"priority {value!r}: an integer 0..{PRIORITY_MAX} (1 = high, 0 = default, "
                           "larger = lower)")
    return value
