"""The scheduler: one batcher per (checkpoint, operation), sharing one byte budget and the runtime's worker
thread, each wired to the metrics once when it is made (service/engine/batcher.py does the batching).

A checkpoint the repository stops serving (unloaded, deleted, replaced by a changed file) is retired: its batchers
finish the requests already queued, then stop, and the runtime forgets its module, so its memory is freed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import torch

from service.engine.admission import Admission
from service.engine.batcher import Batcher, Budget
from service.engine.checkpoints import Checkpoint
from service.engine.domain import UnknownModel
from service.engine.metrics import Metrics
from service.engine.ops import Op
from service.engine.runtime import Runtime
from service.settings import Settings

INLINE_ROWS = 8  # CPU: chunks this small run on the event loop's thread (Batcher.inline_rows)
DRAIN_POLL_S = 0.05  # how often a retired checkpoint's batchers are looked at until they are idle

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, settings: Settings, runtime: Runtime, admission: Admission, metrics: Metrics) -> None:
        self.settings, self.runtime, self.admission, self.metrics = settings, runtime, admission, metrics
        self.budget = Budget(settings.queue_bytes)  # bytes held by queued requests, all batchers
        # keyed by the checkpoint object (its id, kept alive by the entry): a changed file is a new checkpoint
        self._batchers: dict[tuple[int, Op], tuple[Checkpoint, Batcher]] = {}
        self._drains: set[asyncio.Task[None]] = set()

    def batcher(self, ckpt: Checkpoint, op: Op) -> Batcher:
        entry = self._batchers.get((id(ckpt), op))
        if entry is not None:
            return entry[1]
        if ckpt.retired:  # resolved before it was unloaded or replaced, and its batchers are gone since
            raise UnknownModel(f"model {ckpt.name!r} version {ckpt.version} stopped being served while this request "
                               "waited (unloaded, deleted or replaced): send it again", {"model": ckpt.name})
        b = self._make(ckpt, op)
        self._batchers[(id(ckpt), op)] = (ckpt, b)
        return b

    def retire(self, ckpt: Checkpoint) -> None:
        """The repository no longer serves ckpt: no new batcher for it; its batchers stop once the requests queued
        there are answered, and then the runtime releases its module."""
        ckpt.retired = True
        task = asyncio.get_running_loop().create_task(self._drain(ckpt))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _drain(self, ckpt: Checkpoint) -> None:
        while True:
            mine = [(k, b) for k, (c, b) in self._batchers.items() if c is ckpt]
            if all(not b.jobs and not b.busy and not b.open_streams for _, b in mine):
                break
            await asyncio.sleep(DRAIN_POLL_S)
        for k, _ in mine:  # in the same step as the check: no request can join them in between
            del self._batchers[k]
        for _, b in mine:
            await b.stop()
        await asyncio.get_running_loop().run_in_executor(self.runtime.executor, self.runtime.release, ckpt)
        log.info("released %s version %d", ckpt.name, ckpt.version)

    def _make(self, ckpt: Checkpoint, op: Op) -> Batcher:
        s, runtime, admission = self.settings, self.runtime, self.admission
        hist = self.metrics.batch_rows.labels(ckpt.name, op.value)
        computed = self.metrics.rows_computed.labels(ckpt.name, op.value)
        wait = self.metrics.queue_wait

        def forward(x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
            return runtime.run(ckpt, op, x, labels)

        def on_batch(rows: int) -> None:
            hist.observe(rows)
            computed.inc(rows)

        waits: dict[int, Any] = {}  # the histogram's child per priority level, looked up once

        def on_wait(level: int, seconds: float) -> None:
            child = waits.get(level)
            if child is None:
                child = waits[level] = wait.labels(ckpt.name, str(level))
            child.observe(seconds)

        # a uint8 op costs what its float32 twin does until its own chunks say otherwise
        key = (ckpt.name, ckpt.version, op)
        cost = runtime.row_cost.get(key) or runtime.row_cost.get((ckpt.name, ckpt.version, op.float32()), 0.0)
        return Batcher(forward, runtime.executor, s.max_batch_rows, s.max_delay_ms / 1000, self.budget,
                       op.out_row_bytes(ckpt.latent_dim), arrivals=lambda: admission.arriving, on_batch=on_batch,
                       target_s=s.chunk_target_ms / 1000, row_cost_s=cost, on_wait=on_wait,
                       inline_rows=INLINE_ROWS if runtime.device.type == "cpu" else 0)

    def queued_rows(self) -> int:
        return sum(b.queued_rows for _, b in self._batchers.values())

    def estimated_wait(self) -> dict[str, float]:
        """Seconds of work waiting per model (the longest of its operations' queues)."""
        out: dict[str, float] = {}
        for ckpt, b in self._batchers.values():
            out[ckpt.name] = max(out.get(ckpt.name, 0.0), b.wait_s())
        return out

    async def stop(self) -> None:
        for task in list(self._drains):
            task.cancel()
        for _, b in list(self._batchers.values()):
            await b.stop()
