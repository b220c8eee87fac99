"""The dataplane with no transport at all (as KServe's test_dataplane.py tests its DataPlane): what every door
calls, called directly: admission and readiness, the run, the OIP model view, control, and the one error table."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch

from service.dataplane import DataPlane, Part
from service.dataplane.errors import TABLE, answer, openapi_responses
from service.engine import domain
from service.engine.domain import Forbidden, NotReady, ServiceError, UnknownModel
from service.engine.engine import Engine
from service.engine.ops import Op, Rows
from tests.helpers import make_settings


@pytest.fixture()
def plane(tiny_repo: Path) -> Iterator[DataPlane]:
    p = DataPlane(Engine(make_settings(tiny_repo, model_control=True, admin_key="k" * 16)))
    p.start()
    yield p
    asyncio.run(p.stop())


def test_a_request_is_admitted_resolved_and_run(plane: DataPlane) -> None:
    async def go() -> torch.Tensor:
        with plane.admit() as ticket:
            ckpt = plane.resolve(None)  # the default model
            return await plane.run(ckpt, Op.DECODE, Rows(torch.zeros(3, 4), None), ticket)

    assert tuple(asyncio.run(go()).shape) == (3, 28, 28)


def test_draining_refuses_new_requests_and_says_why(plane: DataPlane) -> None:
    assert plane.serving and plane.readiness()[0]
    plane.drain()
    with pytest.raises(NotReady, match="draining"):
        plane.admit()
    assert plane.readiness() == (False, {"error": "draining for shutdown"})


def test_oip_infer_and_statistics(plane: DataPlane) -> None:
    async def go() -> tuple[str, int, dict[str, np.ndarray]]:
        with plane.admit() as ticket:
            return await plane.infer("vae-z4-encoder", "", {"x": np.zeros((2, 1, 28, 28), np.float32)}, 1, ticket)

    name, version, out = asyncio.run(go())
    assert (name, version) == ("vae-z4-encoder", 2) and out["mu"].shape == (2, 4)
    (stats,) = plane.statistics("vae-z4-encoder", "2")
    assert stats["inference_count"] == 2 and stats["inference_stats"]["success"]["count"] == 1
    with pytest.raises(UnknownModel, match="no sampler"):
        plane.model("deep-ae-z4-sampler")
    assert plane.model("vae-z4-sampler")[1] is Part.SAMPLER
    meta = plane.model_metadata("cvae-z4-decoder")
    assert [i["name"] for i in meta["inputs"]] == ["z", "labels"]


def test_an_unloaded_model_keeps_every_part_in_the_index(plane: DataPlane) -> None:
    """Once listed with PARTS[:2]: an unloaded generative model's sampler disappeared from the index."""
    with pytest.raises(Forbidden):
        asyncio.run(plane.unload_model("cvae-z4", "wrong key 123456"))
    asyncio.run(plane.unload_model("cvae-z4", "k" * 16))
    gone = {i["name"] for i in plane.repository_index() if i["state"] == "UNAVAILABLE"}
    assert gone == {"cvae-z4-encoder", "cvae-z4-decoder", "cvae-z4-sampler"}
    assert "cvae-z4" not in plane.names()
    asyncio.run(plane.load_model("cvae-z4-sampler", "k" * 16))
    assert "cvae-z4" in plane.names() and all(i["state"] == "READY" for i in plane.repository_index())


def test_one_error_table_for_both_doors_and_the_openapi() -> None:
    errors = [c for c in vars(domain).values() if isinstance(c, type) and issubclass(c, ServiceError)
              and c not in (ServiceError, domain.Retryable, domain.BodyRefused)]
    for cls in errors:  # every concrete domain error has its row, and its gRPC code exists
        a = answer(cls.__new__(cls))
        assert a.error is not ServiceError, cls
        assert hasattr(grpc.StatusCode, a.grpc)
    assert {str(a.http) for a in TABLE} == set(openapi_responses())
