"""A streamed .npz answer: a zip archive (stored, not compressed, as numpy's savez writes it) whose last member, the
images, is written as its chunks finish. Every size is known before the first byte, so Content-Length is exact;
the images' CRC-32 is computed on the way and written after them in a data descriptor (zip's bit 3), which
zipfile, and so numpy.load, read from the central directory at the end.

  [labels.npy, seed.npy: header, data]  [images.npy: header, .npy header + rows..., descriptor]  [directory]
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator

import numpy as np

from service.http.images import npy_header

DOS_TIME, DOS_DATE = 0, (1980 - 1980) << 9 | 1 << 5 | 1  # 1980-01-01 00:00, as zip wants a date
ZIP32_MAX = 0xFFFFFFFF  # sizes past this need zip64, which this writer does not speak


def _local(name: bytes, crc: int, size: int, descriptor: bool) -> bytes:
    flags = 0x08 if descriptor else 0
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 0, DOS_TIME, DOS_DATE,
                       0 if descriptor else crc, 0 if descriptor else size, 0 if descriptor else size,
                       len(name), 0) + name


def _central(name: bytes, crc: int, size: int, offset: int, descriptor: bool) -> bytes:
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0x08 if descriptor else 0, 0, DOS_TIME, DOS_DATE,
                       crc, size, size, len(name), 0, 0, 0, 0, 0, offset) + name


def npz_length(whole: dict[str, np.ndarray], rows: int, row_shape: tuple[int, ...], dtype: np.dtype) -> int:
    """The archive's exact size: every member's headers and bytes, the descriptor, the directory."""
    total = 0
    names = [*whole, "images"]
    for key, arr in whole.items():
        total += 30 + len(f"{key}.npy") + len(npy_header(arr.shape, arr.dtype)) + arr.nbytes
    image_bytes = len(npy_header((rows, *row_shape), dtype)) + rows * int(np.prod(row_shape)) * dtype.itemsize
    total += 30 + len("images.npy") + image_bytes + 16
    total += sum(46 + len(f"{k}.npy") for k in names) + 22
    return total


async def npz_body(whole: dict[str, np.ndarray], parts: AsyncIterator[np.ndarray], rows: int,
                   row_shape: tuple[int, ...], dtype: np.dtype) -> AsyncIterator[bytes]:
    """The archive: the arrays known up front, then the images as `parts` (rows, *row_shape) of `dtype` arrive."""
    offset, directory = 0, []
    for key, arr in whole.items():
        name = f"{key}.npy".encode()
        data = npy_header(arr.shape, arr.dtype) + np.ascontiguousarray(arr).tobytes()
        crc = zlib.crc32(data)
        head = _local(name, crc, len(data), descriptor=False)
        directory.append(_central(name, crc, len(data), offset, descriptor=False))
        offset += len(head) + len(data)
        yield head + data
    name = b"images.npy"
    start = offset
    head = npy_header((rows, *row_shape), dtype)
    crc, size = zlib.crc32(head), len(head)
    yield _local(name, 0, 0, descriptor=True) + head
    async for part in parts:
        data = np.ascontiguousarray(part, dtype=dtype).tobytes()
        crc, size = zlib.crc32(data, crc), size + len(data)
        yield data
    offset += 30 + len(name) + size + 16
    directory.append(_central(name, crc, size, start, descriptor=True))
    cd = b"".join(directory)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(directory), len(directory), len(cd), offset, 0)
    yield struct.pack("<IIII", 0x08074B50, crc, size, size) + cd + end
