"""What a newcomer met on the way: transparent PNGs are refused with a reason, Accept: image/png is honoured for one
image (406 listing what is offered otherwise)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from tests.helpers import pixels


def png_b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_a_transparent_png_is_refused_with_a_reason_and_an_opaque_one_served(client: TestClient) -> None:
    ink = np.zeros((28, 28, 4), np.uint8)
    ink[8:20, 12:16] = (0, 0, 0, 255)  # black ink on a transparent background: as a canvas exports it
    r = client.post("/encode", json={"images": [{"png": png_b64(Image.fromarray(ink, "RGBA"))}]})
    assert r.status_code == 422 and "transparent" in r.json()["error"] and "flatten" in r.json()["error"]
    opaque = ink.copy()
    opaque[..., :3] = 255 - opaque[..., :3]
    opaque[..., 3] = 255
    ok = client.post("/encode", json={"images": [{"png": png_b64(Image.fromarray(opaque, "RGBA"))}]})
    assert ok.status_code == 200


def test_accept_image_png_gives_one_image_or_406(client: TestClient) -> None:
    one = client.post("/sample", json={"n": 1, "seed": 2}, headers={"accept": "image/png"})
    assert one.status_code == 200 and one.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(one.content)).size == (28, 28)
    many = client.post("/sample", json={"n": 3}, headers={"accept": "image/png"})
    assert many.status_code == 406 and "application/x-npy" in many.json()["error"]
    codes = client.post("/encode", json={"images": [{"pixels": pixels()}]}, headers={"accept": "image/png"})
    assert codes.status_code == 406
    assert client.post("/sample", json={"n": 2}, headers={"accept": "*/*"}).status_code == 200


def test_the_readme_examples_write_only_ignored_files() -> None:
    """Files the README's examples write (digits.npy, path.npy, labelled.npz, synthetic.npz, ...) are ignored."""
    import re
    import subprocess

    root = Path(__file__).resolve().parents[2]
    written = set(re.findall(r"(?:-o |synth |\")([\w-]+\.np[yz])", (root / "README.md").read_text()))
    assert written, "the README's examples write files"
    ignored = subprocess.run(["git", "check-ignore", *sorted(written)], cwd=root, capture_output=True, text=True)
    assert set(ignored.stdout.split()) == written
