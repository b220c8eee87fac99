"""Dynamic batching: concurrent requests for one (model, operation) share one forward pass.

Rows, not requests, are counted: a batch holds up to max_batch_rows rows, a request larger than
that is split into chunks, and the queue is bounded in rows so overload is refused at once (429)
instead of growing latency. Forwards run on the runtime's single worker thread; the event loop
only moves futures. A quiet server never waits: the batch is cut as soon as no other request is
on its way (see `arrivals`), so batching costs nothing at concurrency 1.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import torch

from service.domain import DeadlineExceeded


class QueueFull(Exception):
    """The queue holds queue_rows rows already: the caller should answer 429."""


@dataclass
class _Item:
    x: torch.Tensor  # (n, ...) rows of this chunk
    labels: torch.Tensor | None  # (n,) or None
    fut: asyncio.Future[torch.Tensor]
    deadline: float  # time.monotonic() after which nobody waits for it


Forward = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


class Batcher:
    def __init__(self, forward: Forward, executor: Executor, max_batch_rows: int, max_delay_s: float,
                 queue_rows: int, arrivals: Callable[[], int] = lambda: 0,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.forward = forward  # runs on the worker thread: (rows, labels) -> outputs, row-aligned
        self.executor = executor
        self.max_batch_rows = max_batch_rows
        self.max_delay_s = max_delay_s
        self.queue_rows = queue_rows
        self.arrivals = arrivals  # requests received but not yet queued anywhere
        self.on_batch = on_batch
        self.queue: deque[_Item] = deque()
        self.queued_rows = 0
        self.waiting = 0  # requests awaiting results from this batcher
        self._wake = asyncio.Event()  # set when the queue gets rows
        self._more = asyncio.Event()  # set on every submit, for the worker's short gathering wait
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def submit(self, x: torch.Tensor, labels: torch.Tensor | None, deadline: float) -> torch.Tensor:
        """Queue rows x (n, ...) and wait for their outputs, in order."""
        n = len(x)
        # A request bigger than the whole queue is still admitted when nothing waits (it was capped by the
        # route's own limit); refusing it would make a retry pointless, since it could never fit.
        if self.queued_rows and self.queued_rows + n > self.queue_rows:
            raise QueueFull(f"queue full ({self.queued_rows} rows waiting, capacity {self.queue_rows})")
        self.start()
        loop = asyncio.get_running_loop()
        futs = []
        for a in range(0, n, self.max_batch_rows):
            b = min(a + self.max_batch_rows, n)
            fut: asyncio.Future[torch.Tensor] = loop.create_future()
            self.queue.append(_Item(x[a:b], None if labels is None else labels[a:b], fut, deadline))
            futs.append(fut)
        self.queued_rows += n
        self._wake.set()
        self._more.set()
        self.waiting += 1
        try:
            # asyncio.timeout_at is cheaper than wait_for (no extra task); loop.time() is time.monotonic()
            async with asyncio.timeout_at(loop.time() + (deadline - time.monotonic())):
                parts = [await futs[0]] if len(futs) == 1 else await asyncio.gather(*futs)
        except TimeoutError as exc:
            for f in futs:
                f.cancel()  # the worker skips cancelled chunks
            raise DeadlineExceeded("request deadline passed while queued or computing") from exc
        finally:
            self.waiting -= 1
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _take(self) -> list[_Item]:
        """Pop queued chunks up to max_batch_rows rows, dropping those nobody waits for."""
        batch: list[_Item] = []
        rows = 0
        now = time.monotonic()
        while self.queue:
            item = self.queue[0]
            if item.fut.done() or item.deadline < now:
                self.queue.popleft()
                self.queued_rows -= len(item.x)
                if not item.fut.done():
                    item.fut.cancel()
                continue
            if rows + len(item.x) > self.max_batch_rows and batch:
                break
            self.queue.popleft()
            self.queued_rows -= len(item.x)
            batch.append(item)
            rows += len(item.x)
        return batch

    async def _gather_more(self) -> None:
        """Wait up to max_delay for rows that are already on their way (never on a quiet server)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.max_delay_s
        while self.queued_rows < self.max_batch_rows and self.arrivals() > 0 and loop.time() < end:
            self._more.clear()
            try:
                async with asyncio.timeout_at(end):
                    await self._more.wait()
            except TimeoutError:
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
            if self.max_delay_s > 0:
                await self._gather_more()
            batch = self._take()
            if not batch:
                continue
            x = batch[0].x if len(batch) == 1 else torch.cat([i.x for i in batch])
            labels = None
            if batch[0].labels is not None:
                labels = torch.cat([i.labels for i in batch if i.labels is not None])
            if self.on_batch is not None:
                self.on_batch(len(x))
            try:
                out = await loop.run_in_executor(self.executor, self.forward, x, labels)
            except Exception as exc:  # a failed forward fails its own rows, never the loop
                for item in batch:
                    if not item.fut.done():
                        item.fut.set_exception(exc)
                continue
            a = 0
            for item in batch:
                b = a + len(item.x)
                if not item.fut.done():
                    item.fut.set_result(out[a:b])
                a = b
