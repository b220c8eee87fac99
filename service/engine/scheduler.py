"""The scheduler: one batcher per (model, version, operation), sharing one byte budget and the runtime's worker
thread, each wired to the metrics once when it is made (service/engine/batcher.py does the batching)."""

from __future__ import annotations

from typing import Any

import torch

from service.engine.admission import Admission
from service.engine.batcher import Batcher, Budget
from service.engine.checkpoints import Checkpoint
from service.engine.metrics import Metrics
from service.engine.ops import Op
from service.engine.runtime import Runtime
from service.settings import Settings

INLINE_ROWS = 8  # CPU: chunks this small run on the event loop's thread (Batcher.inline_rows)


class Scheduler:
    def __init__(self, settings: Settings, runtime: Runtime, admission: Admission, metrics: Metrics) -> None:
        self.settings, self.runtime, self.admission, self.metrics = settings, runtime, admission, metrics
        self.budget = Budget(settings.queue_bytes)  # bytes held by queued requests, all batchers
        self._batchers: dict[tuple[str, int, Op], Batcher] = {}

    def batcher(self, ckpt: Checkpoint, op: Op) -> Batcher:
        key = (ckpt.name, ckpt.version, op)
        b = self._batchers.get(key)
        if b is None:
            b = self._batchers[key] = self._make(ckpt, op)
        return b

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
        return sum(b.queued_rows for b in self._batchers.values())

    def estimated_wait(self) -> dict[str, float]:
        """Seconds of work waiting per model (the longest of its operations' queues)."""
        out: dict[str, float] = {}
        for (name, _, _), b in self._batchers.items():
            out[name] = max(out.get(name, 0.0), b.wait_s())
        return out

    async def stop(self) -> None:
        for b in self._batchers.values():
            await b.stop()
