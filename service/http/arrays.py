"""Array request bodies: `.npy` (one array) and `.npz` (several, by name), read as hostile input.

Nothing is unpickled (object and structured dtypes are refused by the header, before any data), and every
array's dtype and shape are checked against the route's limits from its header before a byte of data is
touched: a `.npy`'s data is viewed in place in the body (np.frombuffer, no copy); a `.npz` member is read only up
to the size its checked header promises (plus one byte, to see a lie), so a zip bomb or a member claiming
gigabytes costs no more memory than the array the route allows. A truncated, malformed or lying file is an
InvalidInput (422) that says what is wrong; nothing here raises anything else.
"""

from __future__ import annotations

import ast
import io
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from service.engine.domain import InvalidInput

MAGIC = b"\x93NUMPY"
MAX_HEADER = 4096  # numpy writes ~128 bytes; a longer header is not a .npy of ours to read
MAX_MEMBERS = 4  # a request carries at most images/z, labels (interpolate: start, end)


@dataclass(frozen=True)
class ArraySpec:
    """What one named array of a route may be: its dtype kinds ('u' unsigned, 'i' signed, 'f' float) and
    itemsizes, and the most elements it may hold (rows limit x row size)."""

    name: str
    dtypes: tuple[str, ...]  # numpy dtype strings in native or little-endian form: "u1", "f4", ...
    max_elements: int
    max_ndim: int = 4

    def check(self, shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
        if dtype.str.lstrip("<>|=") not in self.dtypes or dtype.byteorder == ">":
            raise InvalidInput(f"{where}: dtype {dtype.str} is not accepted; {self.name} is one of "
                               f"{', '.join(self.dtypes)} (little-endian)")
        if len(shape) > self.max_ndim:
            raise InvalidInput(f"{where}: {len(shape)} dimensions; at most {self.max_ndim}")
        if math.prod(shape) > self.max_elements:
            raise InvalidInput(f"{where}: shape {list(shape)} holds {math.prod(shape)} values; at most "
                               f"{self.max_elements} in one request (VAESERVE_MAX_ROWS rows)")


def _header(read: Callable[[int], bytes], where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from a .npy header, read with `read(n)`; InvalidInput for anything else."""
    magic = read(8)
    if len(magic) < 8 or magic[:6] != MAGIC:
        raise InvalidInput(f"{where}: not a .npy file (it must start with \\x93NUMPY)")
    major = magic[6]
    if major not in (1, 2, 3):
        raise InvalidInput(f"{where}: .npy format version {major}.{magic[7]} is not known (1, 2 or 3)")
    size_bytes = 2 if major == 1 else 4
    raw = read(size_bytes)
    if len(raw) < size_bytes:
        raise InvalidInput(f"{where}: truncated in its header")
    length = int.from_bytes(raw, "little")
    if length > MAX_HEADER:
        raise InvalidInput(f"{where}: header of {length} bytes; at most {MAX_HEADER}")
    text = read(length)
    if len(text) < length:
        raise InvalidInput(f"{where}: truncated in its header")
    try:  # a Python literal, by the format's definition: literal_eval runs no code
        d = ast.literal_eval(text.decode("utf-8" if major == 3 else "latin1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError, TypeError) as exc:
        raise InvalidInput(f"{where}: header is not a Python literal ({type(exc).__name__})") from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise InvalidInput(f"{where}: header must be a dict of exactly descr, fortran_order and shape")
    descr, fortran, shape = d["descr"], d["fortran_order"], d["shape"]
    if not isinstance(descr, str):
        raise InvalidInput(f"{where}: structured dtypes are not accepted; a plain numeric dtype is")
    if not isinstance(fortran, bool):
        raise InvalidInput(f"{where}: fortran_order must be True or False")
    if (not isinstance(shape, tuple) or len(shape) > 8
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**40 for s in shape)):
        raise InvalidInput(f"{where}: shape must be a tuple of non-negative integers")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: dtype {descr[:40]!r} is not a dtype") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise InvalidInput(f"{where}: object and structured arrays are not accepted (nothing is unpickled)")
    return shape, fortran, dtype


def _shaped(flat: np.ndarray, shape: tuple[int, ...], fortran: bool) -> np.ndarray:
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


def read_npy(body: bytes, spec: ArraySpec) -> np.ndarray:
    """The one array of a .npy body, viewed in place (read-only)."""
    where = f"the .npy body ({spec.name})"
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        out = body[pos: pos + n]
        pos += len(out)
        return out

    shape, fortran, dtype = _header(read, where)
    spec.check(shape, dtype, where)
    need = math.prod(shape) * dtype.itemsize
    have = len(body) - pos
    if have != need:
        raise InvalidInput(f"{where}: its header promises {need} bytes of data ({list(shape)} {dtype.str}), the "
                           f"body holds {have}" + (" (truncated)" if have < need else " (trailing bytes)"))
    return _shaped(np.frombuffer(body, dtype=dtype, count=math.prod(shape), offset=pos), shape, fortran)


def read_npz(body: bytes, specs: dict[str, ArraySpec]) -> dict[str, np.ndarray]:
    """The named arrays of a .npz body (stored or deflated), each checked by its spec before it is read."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(body))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as exc:
        raise InvalidInput(f"the .npz body is not a zip archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise InvalidInput(f"the .npz body holds {len(infos)} files; at most {MAX_MEMBERS} "
                               f"({', '.join(specs)})")
        out: dict[str, np.ndarray] = {}
        for info in infos:
            name = info.filename.removesuffix(".npy")
            if name not in specs:
                raise InvalidInput(f"the .npz body holds {info.filename!r}; this route takes "
                                   f"{', '.join(n + '.npy' for n in specs)}")
            if name in out:
                raise InvalidInput(f"the .npz body holds {info.filename!r} twice")
            out[name] = _member(zf, info, specs[name])
    return out


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, spec: ArraySpec) -> np.ndarray:
    where = f"{info.filename} in the .npz body"
    try:
        with zf.open(info) as f:
            shape, fortran, dtype = _header(f.read, where)
            spec.check(shape, dtype, where)
            need = math.prod(shape) * dtype.itemsize
            data = f.read(need + 1)  # never more than the checked array (and one byte to see a lie)
    except InvalidInput:
        raise
    except Exception as exc:  # zlib.error, BadZipFile (CRC), EOFError, RuntimeError (encrypted), ...: all the input's
        raise InvalidInput(f"{where}: cannot be read ({type(exc).__name__}: {str(exc)[:120]})") from None
    if len(data) != need:
        raise InvalidInput(f"{where}: its header promises {need} bytes of data, it holds "
                           f"{'more' if len(data) > need else len(data)}")
    return _shaped(np.frombuffer(data, dtype=dtype), shape, fortran)
