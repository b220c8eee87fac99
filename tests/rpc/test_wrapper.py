"""The one wrapper every RPC goes through, without a transport: what it does when grpcio can no longer send."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from service.dataplane import DataPlane
from service.engine.engine import Engine
from service.rpc import messages
from service.rpc.server import GrpcDoor
from tests.helpers import make_settings


class EndedCall:
    """A ServicerContext whose call grpcio's core has already ended (its deadline passed there first)."""

    def __init__(self) -> None:
        self.aborts = 0

    def time_remaining(self) -> float:
        return 0.0

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborts += 1
        raise grpc.aio.InternalError("Failed \"execute_batch\"")  # what cygrpc's ExecuteBatchError derives from


def test_an_error_for_a_call_that_already_ended_ends_quietly_and_is_counted(tiny_repo: Path) -> None:
    """A domain error (here the deadline) for a call grpcio's core had already ended: abort cannot send, and the
    handler ends as a cancelled call does (grpcio logs that at debug) instead of raising abort's failure (which
    grpcio logged as a servicer error); the request is still counted, with the domain error's status."""
    async def go() -> None:
        plane = DataPlane(Engine(make_settings(tiny_repo)))
        plane.start()
        door = GrpcDoor(plane)
        req_cls, resp_cls = messages.methods()["ModelInfer"]
        handle = door._unary("ModelInfer", door.ModelInfer, req_cls, resp_cls).unary_unary
        req = req_cls(model_name="vae-z4-decoder")
        req.inputs.add(name="z", datatype="FP32", shape=[1, 4])
        req.raw_input_contents.append(np.zeros((1, 4), np.float32).tobytes())
        context = EndedCall()
        with pytest.raises(asyncio.CancelledError):
            await handle(req, context)  # time_remaining() 0: the ticket's deadline has passed before it queues
        assert context.aborts == 1
        route = f"/{messages.SERVICE}/ModelInfer"
        assert plane._metrics.requests.labels(route, "504")._value.get() == 1
        await plane.stop()

    asyncio.run(go())
