"""Repository control (reload, load one, unload one) as the whole server carries it out, one process or several.

With workers (service/workers.py) a control call reaches the one worker the kernel gave its connection to; alone,
that worker would unload a model the others keep serving (seen: after an unload with two workers, about half of the
requests still got 200). So the worker that carries a call out records it in the workers' log (service/shared.py:
ControlLog) and answers once every ready worker has applied it; the others follow the log, and a worker that starts
replays it before it serves. A call another worker recorded is applied here as it was there; one that fails here
(its model already gone, say) is logged and counted as applied, since what it asked for is already the case or was
refused where it was answered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from service.engine.domain import ServiceError
from service.engine.lifecycle import every
from service.engine.repository import Repository
from service.shared import CONTROL_EVERY_S, ControlLog

log = logging.getLogger(__name__)

WAIT_FOR_WORKERS_S = 30.0  # a control call's answer waits at most this long for the other workers to apply it
ACK_POLL_S = 0.02


class Control:
    def __init__(self, repository: Repository, shared: ControlLog | None) -> None:
        self.repository, self.shared = repository, shared
        self._applying = asyncio.Lock()  # the follower and a control call never apply the log's calls twice
        self._running: set[asyncio.Task[dict[str, Any]]] = set()

    async def reload(self, only: str | None) -> dict[str, Any]:
        return await self._shielded({"op": "reload", "model": only})

    async def unload(self, name: str) -> dict[str, Any]:
        return await self._shielded({"op": "unload", "model": name})

    async def _shielded(self, call: dict[str, Any]) -> dict[str, Any]:
        """A control call, once begun, is carried out whole even if its caller goes (a cancelled gRPC call): half
        of one would leave the workers' lock taken or the workers apart."""
        task = asyncio.get_running_loop().create_task(self._carry_out(call))
        self._running.add(task)  # a strong reference while it runs: the event loop keeps only weak ones
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    async def _apply(self, call: dict[str, Any]) -> dict[str, Any]:
        if call["op"] == "unload":
            return await self.repository.unload(call["model"])
        return await self.repository.reload(call["model"])

    async def _carry_out(self, call: dict[str, Any]) -> dict[str, Any]:
        shared = self.shared
        if shared is None:  # one process: the call is the whole server's
            return await self._apply(call)
        lock = await asyncio.to_thread(shared.acquire)  # one control call at a time across workers
        try:
            async with self._applying:
                await self._follow(shared)  # first every call recorded before this one, in order
                report = await self._apply(call)  # refused here: refused everywhere, nothing recorded
                number = shared.append({**call, "pid": os.getpid()})
        finally:
            shared.release(lock)
        deadline = time.monotonic() + WAIT_FOR_WORKERS_S
        while True:
            done, ready = shared.applied_by_ready(number)
            if done >= ready or time.monotonic() > deadline:
                break
            await asyncio.sleep(ACK_POLL_S)
        if done < ready:
            log.warning("control call %s: %d of %d ready workers applied it within %gs", call, done, ready,
                        WAIT_FOR_WORKERS_S)
        return {**report, "workers": {"applied": done, "ready": ready}}

    async def catch_up(self) -> None:
        """Apply the calls other workers recorded (at start, before serving, and every CONTROL_EVERY_S after)."""
        if self.shared is not None:
            async with self._applying:
                await self._follow(self.shared)

    async def _follow(self, shared: ControlLog) -> None:
        for call in shared.pending():
            try:
                await self._apply(call)
                log.info("applied %s %s (recorded by worker pid %s)", call["op"], call["model"] or "all models",
                         call.get("pid"))
            except ServiceError as exc:
                log.warning("control call %s recorded by another worker: %s", call, exc)
            shared.done(1)

    async def follow(self) -> None:
        """The background task of a worker: keep up with the log (a broken line never stops it)."""
        await every(CONTROL_EVERY_S, self.catch_up, log, "following the workers' control log failed")
