"""checkpoint.Meta: the contract's fields typed once, refused with a message that names the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkpoint import CheckpointError, Meta, load_model

GOOD = {"format": 1, "name": "m", "version": 2, "kind": "vae", "latent_dim": 4, "image_shape": [1, 28, 28],
        "stochastic": True, "generative": True, "num_classes": 0, "likelihood": "bernoulli",
        "config": {"spec": {"width": 8}}, "weights_sha256": "ab", "metrics": {"old": 1}}


def test_typed_fields_and_listing() -> None:
    m = Meta.parse(GOOD)
    assert (m.name, m.version, m.latent_dim, m.num_classes, m.prior) == ("m", 2, 4, 0, "normal")
    assert not m.conditional and m.config == {"spec": {"width": 8}} and m.raw["weights_sha256"] == "ab"
    assert "config" not in m.listing() and "metrics" not in m.listing() and m.listing()["kind"] == "vae"
    assert Meta.parse({**GOOD, "num_classes": 10, "prior": "flow"}).conditional


@pytest.mark.parametrize(("change", "message"), [
    ({"latent_dim": "4"}, "latent_dim"), ({"num_classes": True}, "num_classes"), ({"generative": 1}, "generative"),
    ({"format": 2}, "format"), ({"image_shape": [3, 32, 32]}, "image_shape")])
def test_bad_fields_are_named(change: dict, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        Meta.parse({**GOOD, **change})
    missing = {k: v for k, v in GOOD.items() if k != "likelihood"}
    with pytest.raises(CheckpointError, match="likelihood"):
        Meta.parse(missing)


def test_load_model_gives_the_typed_meta(tiny_repo: Path) -> None:
    module, meta = load_model(tiny_repo / "cvae-z4" / "1" / "model.ts")
    assert isinstance(meta, Meta) and meta.conditional and meta.num_classes == 10 and meta.latent_dim == 4
    assert hasattr(module, "decode")
