"""The engine: one object that serves the model repository, whatever door a request came through, made of parts
each with its own name:

  repository  which checkpoints are served (load, reload, unload, resolve, watch) and the default model
  lifecycle   loading -> ready -> draining, and the newest request's time
  scheduler   one batcher per (model, version, operation), sharing a byte budget
  runtime     torch on the device, on one worker thread
  admission   the in-flight cap and each request's ticket (one deadline)

It knows no web or RPC framework: the dataplane (service/dataplane) is what doors call; errors are the domain's
(service/engine/domain.py). A request that is cancelled (its client hung up, its gRPC call was cancelled or passed
its deadline) leaves the queue at once: the door cancels the task awaiting `run`, the batcher retires the job, and
a job already computing stops within the chunk in flight.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import AsyncIterator, Iterator

import torch

from service.engine.admission import Admission, Ticket
from service.engine.batcher import QueueFull
from service.engine.checkpoints import Checkpoint
from service.engine.domain import DeadlineExceeded, Forbidden, Overloaded
from service.engine.lifecycle import Lifecycle
from service.engine.metrics import Metrics
from service.engine.ops import Op, Rows
from service.engine.repository import Repository
from service.engine.runtime import Runtime, pick_device
from service.engine.scheduler import Scheduler
from service.settings import Settings


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        precision = "fp16" if settings.half_precision else settings.precision
        self.runtime = Runtime(pick_device(settings.device), precision, settings.torch_threads, settings.channels_last,
                               settings.cuda_streams, settings.cuda_graphs)
        self.lifecycle = Lifecycle(settings.retry_after_s)
        self.repository = Repository(settings, self.runtime, self.lifecycle, self.metrics)
        self.admission = Admission(settings.max_inflight, settings.request_timeout_s, settings.retry_after_s)
        self.scheduler = Scheduler(settings, self.runtime, self.admission, self.metrics)
        self.repository.on_retire = self.scheduler.retire
        # read at scrape time: no gauge update (and its lock) on every request (workers: refresh_gauges instead)
        self.metrics.inflight.set_function(lambda: self.admission.inflight)

    def refresh_gauges(self) -> None:
        """The gauges set from the engine's state now (at a scrape; with workers, every GAUGE_EVERY_S too, so a
        scrape answered by one worker sums fresh values of all)."""
        m, scheduler = self.metrics, self.scheduler
        m.inflight.set(self.admission.inflight)
        m.queue_rows.set(scheduler.queued_rows())
        m.queue_bytes.set(scheduler.budget.held)
        for model, seconds in scheduler.estimated_wait().items():
            m.estimated_wait.labels(model).set(seconds)

    def check_control(self, admin_key: str | None = None) -> None:
        """Repository control's policy, whatever the door: Forbidden while it is off, and (when a key is given to
        check) unless the key is the admin key."""
        s = self.settings
        if not s.model_control:
            raise Forbidden("repository control is off: the operator turns it on with VAESERVE_MODEL_CONTROL=true "
                            "and VAESERVE_ADMIN_KEY")
        if admin_key is not None and not hmac.compare_digest(admin_key.encode(), (s.admin_key or "").encode()):
            raise Forbidden("missing or wrong admin key (X-Admin-Key header, x-admin-key gRPC metadata): "
                            "repository control needs it")

    async def run(self, ckpt: Checkpoint, op: Op, rows: Rows, ticket: Ticket) -> torch.Tensor:
        """The operation's outputs for every row, before the ticket's deadline; Overloaded or DeadlineExceeded
        otherwise. Cancelling the awaiting task takes the rows out of the queue at once."""
        batcher = self.scheduler.batcher(ckpt, op)
        ticket.queued()
        try:
            return await batcher.submit(rows.x, rows.labels, ticket.deadline, ticket.priority)
        except QueueFull as exc:
            raise self._overloaded(exc) from exc
        except DeadlineExceeded as exc:
            self.metrics.rejections.labels("deadline").inc()
            raise DeadlineExceeded(f"{exc} (deadline {ticket.timeout_s:g}s for this request)") from exc

    def _overloaded(self, exc: QueueFull) -> Overloaded:
        """A full queue as the domain error (counted): 429 with Retry-After, the estimated time until it would fit
        (whole seconds, at least retry_after_s)."""
        self.metrics.rejections.labels("queue_full").inc()
        retry = max(self.settings.retry_after_s, math.ceil(exc.retry_after_s))
        return Overloaded(f"server busy: {exc}; retry after {retry}s", retry)

    def stream(self, ckpt: Checkpoint, op: Op, rows: Rows | Iterator[Rows],
               ticket: Ticket) -> AsyncIterator[torch.Tensor]:
        """Rows queued now (Overloaded at once); their outputs as parts, in order, as chunks finish. `rows` may be
        an iterator of blocks, made as the stream reaches them (a million rows never wait in memory): the first is
        admitted now, each next one queued, already admitted, when the one before has been read. The ticket is
        kept and released when the parts are all read or the reader stops (which retires the job)."""
        blocks = iter([rows]) if isinstance(rows, Rows) else rows
        batcher = self.scheduler.batcher(ckpt, op)
        first = next(blocks)
        try:
            parts = batcher.open_stream(first.x, first.labels, ticket.deadline, ticket.priority)
        except QueueFull as exc:
            raise self._overloaded(exc) from exc
        ticket.queued()
        ticket.keep()

        async def released() -> AsyncIterator[torch.Tensor]:
            current = parts
            batcher.open_streams += 1  # its model is not released between two blocks (Scheduler.retire)
            try:
                while True:
                    async for part in current:
                        yield part
                    block = next(blocks, None)
                    if block is None:
                        return
                    current = batcher.open_stream(block.x, block.labels, ticket.deadline, ticket.priority,
                                                  admitted=True)
            except DeadlineExceeded:
                self.metrics.rejections.labels("deadline").inc()
                raise
            finally:
                batcher.open_streams -= 1
                await current.aclose()  # type: ignore[attr-defined]  # retire the job now, not at garbage collection
                ticket.release()

        return released()

    async def stop(self) -> None:
        await self.scheduler.stop()
        self.runtime.shutdown()
