"""Repository control as the whole server carries it out (service/dataplane/control.py): a call, once begun, is
carried out whole even if its caller goes away, and with workers it is recorded for the others and the shared lock
is free afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from service.dataplane.control import Control
from service.shared import ControlLog, Peers


class SlowRepository:
    """A repository whose unload waits for a go-ahead (what a reload's file reading and placing does)."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.done: list[str] = []

    async def unload(self, name: str) -> dict[str, Any]:
        await self.go.wait()
        self.done.append(name)
        return {"unloaded": name}

    async def reload(self, only: str | None) -> dict[str, Any]:
        self.done.append(f"reload {only}")
        return {"added": []}


@pytest.mark.parametrize("workers", [False, True])
def test_a_control_call_whose_caller_goes_is_carried_out_whole(tmp_path: Path, workers: bool) -> None:
    async def scenario() -> None:
        repo = SlowRepository()
        shared = None
        if workers:
            peers = Peers(tmp_path, 1)
            peers.mark(True)  # this process is the one ready worker
            shared = ControlLog(peers)
        control = Control(repo, shared)  # type: ignore[arg-type]
        caller = asyncio.ensure_future(control.unload("m"))
        await asyncio.sleep(0.05)
        caller.cancel()  # e.g. the gRPC client cancelled its call
        with pytest.raises(asyncio.CancelledError):
            await caller
        repo.go.set()
        await asyncio.sleep(0.05)
        assert repo.done == ["m"]  # the unload happened all the same
        if workers:
            assert '"op": "unload"' in (tmp_path / "control.jsonl").read_text()  # recorded for the other workers
            report = await asyncio.wait_for(control.reload(None), timeout=5)  # the shared lock is free again
            assert report["workers"] == {"applied": 1, "ready": 1} and repo.done[-1] == "reload None"

    asyncio.run(scenario())
