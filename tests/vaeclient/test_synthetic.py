"""python -m vaeclient synth: a synthetic training set from a live server, equal to one /sample answer, resumable."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest

from checkpoint import sampling
from vaeclient import VaeClient
from vaeclient import synthetic as synth
from vaeclient.__main__ import main

N = 20_020  # three chunks: each starts at one of the server's seed blocks


def _one_answer(url: str, n: int, seed: int, temperature: float) -> np.ndarray:
    r = httpx.post(f"{url}/sample", json={"model": "cvae-z4", "n": n, "seed": seed, "temperature": temperature,
                                          "labels": "balanced", "dtype": "uint8"},
                   headers={"accept": "application/x-npy"}, timeout=60)
    assert r.status_code == 200, r.text
    return np.load(io.BytesIO(r.content))


def test_block_rule_is_the_servers() -> None:
    assert synth.SEED_BLOCK == sampling.SEED_BLOCK
    for seed, k in ((0, 0), (7, 1), (2**63 - 1, 5), (123, 99)):
        assert synth.block_seed(seed, k) == sampling.block_seed(seed, k)


def test_set_equals_one_answer_and_resumes(server: tuple[str, object], tmp_path: Path) -> None:
    url, _ = server
    out = tmp_path / "digits.npz"
    pulled: list[int] = []

    def stop_after_first(rows: int) -> None:
        pulled.append(rows)
        raise KeyboardInterrupt  # the user's Ctrl-C, after one chunk is on disk

    with VaeClient(url) as c:
        with pytest.raises(KeyboardInterrupt):
            c.synthetic_set(out, N, model="cvae-z4", seed=3, temperature=0.9, workers=1, progress=False,
                            on_chunk=stop_after_first)
        on_disk = len(list((tmp_path / "digits.npz.parts").glob("0*.npy")))
        assert not out.exists() and on_disk in (1, 2)  # the one handed over, and at most one then in flight
        with pytest.raises(ValueError, match="other arguments"):  # a different set is not mixed into it
            c.synthetic_set(out, N, model="cvae-z4", seed=4, temperature=0.9, progress=False)
        pulled.clear()
        prov = c.synthetic_set(out, N, model="cvae-z4", seed=3, temperature=0.9, progress=False,
                               on_chunk=pulled.append)
    assert sum(pulled) == N - on_disk * 10_000 and len(pulled) == 3 - on_disk  # only the missing chunks
    assert not (tmp_path / "digits.npz.parts").exists()
    with np.load(out, allow_pickle=False) as f:
        x, y = f["x"], f["y"]
        assert str(f["model"]) == "cvae-z4" and int(f["version"]) == prov["version"] == 1
        assert int(f["seed"]) == 3 and float(f["temperature"]) == 0.9 and str(f["server"]) == url
    assert x.shape == (N, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [N // 10] * 10
    np.testing.assert_array_equal(x, _one_answer(url, N, 3, 0.9))


def test_cli_and_its_refusals(server: tuple[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = server
    out = tmp_path / "set.npz"
    assert main(["synth", str(out), "-n", "30", "--model", "cvae-z4", "--url", url, "--quiet"]) == 0
    assert "30 digits from cvae-z4 v1" in capsys.readouterr().out
    with np.load(out) as f:
        np.testing.assert_array_equal(f["x"], _one_answer(url, 30, 0, 1.0))
    sharp = tmp_path / "sharp.npz"  # pixels pushed toward black and white: the server's answer with that option
    assert main(["synth", str(sharp), "-n", "30", "--model", "cvae-z4", "--url", url, "--quiet", "--sharpness",
                 "6"]) == 0
    assert "sharpness 6.0" in capsys.readouterr().out
    r = httpx.post(f"{url}/sample", json={"model": "cvae-z4", "n": 30, "seed": 0, "labels": "balanced",
                                          "dtype": "uint8", "sharpness": 6}, headers={"accept": "application/x-npy"})
    with np.load(sharp) as f:
        np.testing.assert_array_equal(f["x"], np.load(io.BytesIO(r.content)))
        assert float(f["sharpness"]) == 6.0
        contrast = lambda a: float(np.abs(a.astype(np.float64) - 127.5).mean())  # noqa: E731  (untrained: greys)
        assert contrast(f["x"]) > contrast(_one_answer(url, 30, 0, 1.0))
    assert main(["synth", str(out), "-n", "30", "--model", "vae-z4", "--url", url, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not conditional" in err and "conditional models here: cvae-z4" in err
    # no --model: the server's default (vae-z4 here) is not conditional, so its one conditional model
    named = tmp_path / "named.npz"
    assert main(["synth", str(named), "-n", "30", "--url", url, "--quiet"]) == 0
    assert "30 digits from cvae-z4 v1" in capsys.readouterr().out
    with np.load(named) as f:
        np.testing.assert_array_equal(f["x"], _one_answer(url, 30, 0, 1.0))
    assert main(["synth", str(out), "-n", "35", "--model", "cvae-z4", "--url", url, "--quiet"]) == 2
    assert "multiple of 10" in capsys.readouterr().err
    assert main(["synth", str(out), "-n", "30", "--model", "nope", "--url", url, "--quiet"]) == 2
    assert "no model 'nope'" in capsys.readouterr().err


def test_cli_help_names_each_default_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "(default: False)" not in text
    assert text.count("(default: 60000)") == 1 and text.count("http://127.0.0.1:8000") == 1


def test_async_client_writes_the_same_set(server: tuple[str, object], tmp_path: Path) -> None:
    import asyncio

    from vaeclient import AsyncVaeClient

    url, _ = server

    async def go() -> dict:
        async with AsyncVaeClient(url) as c:
            return await c.synthetic_set(tmp_path / "a.npz", 20, model="cvae-z4", seed=2, progress=False)

    prov = asyncio.run(go())
    with VaeClient(url) as c:
        c.synthetic_set(tmp_path / "s.npz", 20, model="cvae-z4", seed=2, progress=False)
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "s.npz") as s:
        np.testing.assert_array_equal(a["x"], s["x"])
        assert a["y"].tolist() == s["y"].tolist() and prov["model"] == "cvae-z4"


def test_without_a_model_the_one_conditional_model_or_a_request_to_name_one() -> None:
    from vaeclient.synthetic import resolve

    class Listing:
        def __init__(self, *models: dict[str, object]) -> None:
            self.listed = list(models)

        def models(self) -> list[dict[str, object]]:
            return self.listed

    plain = {"name": "vae", "version": 1, "default": True, "num_classes": 0}
    a, a2, b = ({"name": "ca", "version": 1, "num_classes": 10}, {"name": "ca", "version": 2, "num_classes": 10},
                {"name": "cb", "version": 1, "num_classes": 10})
    assert resolve(Listing(plain, a, a2), None) == a2  # the one conditional model, its newest version
    assert resolve(Listing({**a, "default": True}, b), None)["name"] == "ca"  # a conditional default first
    with pytest.raises(ValueError, match=r"several conditional models \(ca, cb\): name one"):
        resolve(Listing(plain, a, b), None)
    with pytest.raises(ValueError, match="conditional models here: none"):
        resolve(Listing(plain), None)
