"""The engine: one object that serves the model repository, whatever door a request came through.

It holds the loaded checkpoints (load, reload, load/unload one model, resolve a name and version), the admission
step, one batcher per (model, version, operation), the runtime that runs torch, and the metrics. It knows no web or
RPC framework: doors (service/http, service/rpc) decode a request into typed rows (service/engine/rules.py), call
`run` or `stream`, and encode the answer; errors are the domain's (service/engine/domain.py).

A request that is cancelled (its client hung up, its gRPC call was cancelled or passed its deadline) leaves the
queue at once: the door cancels the task awaiting `run`, the batcher retires the job, and a job already computing
stops within the chunk in flight. `rows_computed` counts the work, so anyone can see it stop.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import torch

from service.engine.admission import Admission, Ticket
from service.engine.batcher import Batcher, Budget, QueueFull
from service.engine.domain import DeadlineExceeded, Forbidden, InvalidInput, NotReady, Overloaded, UnknownModel
from service.engine.metrics import Metrics
from service.engine.ops import Op, Rows
from service.engine.repository import Checkpoint, scan
from service.engine.runtime import Runtime, pick_device
from service.settings import SHIPPED_DEFAULT, Settings

log = logging.getLogger(__name__)

Models = dict[str, dict[int, Checkpoint]]


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        precision = "fp16" if settings.half_precision else settings.precision
        self.runtime = Runtime(pick_device(settings.device), precision, settings.torch_threads, settings.channels_last,
                               settings.cuda_streams, settings.cuda_graphs)
        self.models: Models = {}
        self.unloaded: set[str] = set()  # names an operator unloaded: reloads and the watcher leave them out
        self.load_errors: list[str] = []
        self.batchers: dict[tuple[str, int, Op], Batcher] = {}
        self.budget = Budget(settings.queue_bytes)  # bytes held by queued requests, all batchers
        self.default_model: str | None = settings.default_model  # settled at load: _update_readiness
        self.ready = False
        self.draining = False
        self.last_request_at = 0.0  # time.monotonic() of the newest request: the drain waits for quiet
        self.admission = Admission(settings.max_inflight, settings.request_timeout_s, settings.retry_after_s)
        # read at scrape time: no gauge update (and its lock) on every request
        self.metrics.inflight.set_function(lambda: self.admission.inflight)
        self._reload_lock = asyncio.Lock()

    # -- repository -------------------------------------------------------------------------

    def load(self, repository: Path) -> None:
        models, errors = scan(repository)
        for versions in models.values():
            for ckpt in versions.values():
                self.runtime.place(ckpt)
        self.models, self.load_errors = models, errors
        self.metrics.load_failures.inc(len(errors))
        self._update_readiness()
        if models:
            log.info("loaded %d models on %s: %s", len(models), self.runtime.device, ", ".join(sorted(models)))
        else:
            log.warning("no models loaded from %s: %s", repository.resolve(), "; ".join(self.load_errors))

    async def reload(self, only: str | None = None) -> dict[str, object]:
        """Pick up new or changed versions without a restart (all models, or `only` one, which is then served
        again if it was unloaded). Loading runs off the event loop; the swap is one assignment, so requests in
        flight finish on the version they started with. A bad file is refused (logged, counted) and whatever
        served before keeps serving."""
        async with self._reload_lock:
            if only is not None:
                self.unloaded.discard(only)
            current = self.models
            models, errors = await asyncio.to_thread(scan, self.settings.model_repository, current)
            if only is not None:  # the others stay exactly as they are
                if only not in models:
                    self.load_errors = errors
                    why = "; ".join(e for e in errors if f"/{only}/" in e) or "no such model in the repository"
                    raise UnknownModel(f"cannot load {only!r}: {why}",
                                       {"repository": str(self.settings.model_repository)})
                models = {**{n: v for n, v in current.items() if n != only}, only: models[only]}
            models = {n: v for n, v in models.items() if n not in self.unloaded}
            added = [(c.name, c.version) for v in models.values() for c in v.values()
                     if current.get(c.name, {}).get(c.version) is not c]
            for name, version in added:
                await asyncio.to_thread(self.runtime.place, models[name][version])
            # a refused file never removes what already served: keep old versions whose file broke
            for name, versions in current.items():
                for version, ckpt in versions.items():
                    if version not in models.get(name, {}) and ckpt.path.exists() and name not in self.unloaded:
                        models.setdefault(name, {})[version] = ckpt
            self.models = models
            self.metrics.load_failures.inc(len(errors))
            self.load_errors = errors
            self._update_readiness()  # a reload that brings the default model makes the server ready
            for name, version in added:
                log.info("serving %s version %d", name, version)
            return {"added": [f"{n}/{v}" for n, v in added], "refused": errors,
                    "models": {n: sorted(v) for n, v in sorted(models.items())}}

    async def unload(self, name: str) -> dict[str, object]:
        """Stop serving a model (every version) until it is loaded again; requests in flight finish."""
        async with self._reload_lock:
            if name == self.default_model:
                raise InvalidInput(f"{name!r} is the default model and cannot be unloaded; set "
                                   "VAESERVE_DEFAULT_MODEL to another model first")
            if name not in self.models:
                raise UnknownModel(f"model {name!r} is not loaded", {"loaded": sorted(self.models)})
            self.unloaded.add(name)
            # new requests no longer resolve it; its batchers stay, so the requests already queued there finish
            self.models = {n: v for n, v in self.models.items() if n != name}
            log.info("unloaded %s", name)
            return {"unloaded": name, "models": {n: sorted(v) for n, v in sorted(self.models.items())}}

    def check_control(self, admin_key: str | None = None) -> None:
        """Repository control's policy, whatever the door: Forbidden while it is off, and (when a key is given to
        check) unless the key is the admin key. Doors check their own transport's concerns in between."""
        s = self.settings
        if not s.model_control:
            raise Forbidden("repository control is off: the operator turns it on with VAESERVE_MODEL_CONTROL=true "
                            "and VAESERVE_ADMIN_KEY")
        if admin_key is not None and not hmac.compare_digest(admin_key.encode(), (s.admin_key or "").encode()):
            raise Forbidden("missing or wrong admin key (X-Admin-Key header, x-admin-key gRPC metadata): "
                            "repository control needs it")

    def _pick_default(self) -> str | None:
        """The model a request naming none gets: the setting when set; else the shipped default when present, else
        the newest generative model (by file time); None when the repository holds no generative model."""
        if self.settings.default_model is not None:
            return self.settings.default_model
        if SHIPPED_DEFAULT in self.models and self.newest(SHIPPED_DEFAULT).generative:
            return SHIPPED_DEFAULT
        generative = [(self.newest(n).stamp[0], n) for n in self.models if self.newest(n).generative]
        return max(generative)[1] if generative else None

    def _update_readiness(self) -> None:
        """Ready when the default model is loaded and generative (an unset default: when any model is loaded);
        the reason otherwise joins load_errors."""
        default, repo = self._pick_default(), self.settings.model_repository
        if default != self.default_model or not self.ready:
            how = "VAESERVE_DEFAULT_MODEL" if self.settings.default_model else "unset VAESERVE_DEFAULT_MODEL: " + (
                "the shipped default" if default == SHIPPED_DEFAULT else "the newest generative model")
            log.info("default model: %s (%s)", default, how) if default else log.warning(
                "no default model: %s holds no generative model; requests must name a model", repo)
        self.default_model = default
        if default is None:
            self.ready = bool(self.models)
            if not self.ready:
                self.load_errors.append(f"no models in {repo}")
            return
        if default not in self.models:
            self.load_errors.append(f"default model {default!r} is not in {repo}")
        elif not self.newest(default).generative:
            self.load_errors.append(f"default model {default!r} is not generative")
        self.ready = default in self.models and self.newest(default).generative

    @property
    def serving(self) -> bool:
        """Ready and not draining: what every door's readiness reports."""
        return self.ready and not self.draining

    def check_ready(self) -> None:
        """NotReady while loading, without the default model, or draining."""
        if not self.serving:
            reason = "draining for shutdown" if self.draining else "; ".join(self.load_errors) or "loading"
            raise NotReady("not ready: " + reason, self.settings.retry_after_s)

    async def watch(self, interval_s: float) -> None:
        """Poll the repository every interval_s seconds and reload on change."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.reload()
            except Exception:  # a broken repository must never stop the watcher
                log.exception("reload failed")

    def newest(self, name: str) -> Checkpoint:
        versions = self.models[name]
        return versions[max(versions)]

    def resolve(self, name: str | None, version: int | None = None) -> Checkpoint:
        """The checkpoint a request names (default model, newest version unless pinned); UnknownModel otherwise."""
        name = name or self.default_model
        if name is None:
            raise UnknownModel("this server has no default model (its repository holds no generative model): name "
                               "one", {"available": sorted(self.models)})
        if name not in self.models:
            raise UnknownModel(f"unknown model {name!r}", {"available": sorted(self.models)})
        if version is None:
            return self.newest(name)
        if version not in self.models[name]:
            raise UnknownModel(f"model {name!r} has no version {version}", {"versions": sorted(self.models[name])})
        return self.models[name][version]

    # -- batching ---------------------------------------------------------------------------

    def batcher(self, ckpt: Checkpoint, op: Op) -> Batcher:
        key = (ckpt.name, ckpt.version, op)
        b = self.batchers.get(key)
        if b is None:
            s = self.settings
            hist = self.metrics.batch_rows.labels(ckpt.name, op.value)
            computed = self.metrics.rows_computed.labels(ckpt.name, op.value)
            runtime = self.runtime

            def forward(x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
                return runtime.run(ckpt, op, x, labels)

            def on_batch(rows: int) -> None:
                hist.observe(rows)
                computed.inc(rows)

            wait = self.metrics.queue_wait

            def on_wait(level: int, seconds: float) -> None:
                wait.labels(ckpt.name, str(level)).observe(seconds)

            # a uint8 op costs what its float32 twin does until its own chunks say otherwise
            cost = runtime.row_cost.get(key) or runtime.row_cost.get((ckpt.name, ckpt.version, op.float32()), 0.0)
            admission = self.admission
            b = Batcher(forward, runtime.executor, s.max_batch_rows, s.max_delay_ms / 1000, self.budget,
                        op.out_row_bytes(ckpt.latent_dim), arrivals=lambda: admission.arriving, on_batch=on_batch,
                        target_s=s.chunk_target_ms / 1000, row_cost_s=cost, on_wait=on_wait)
            self.batchers[key] = b
        return b

    async def run(self, ckpt: Checkpoint, op: Op, rows: Rows, ticket: Ticket) -> torch.Tensor:
        """The operation's outputs for every row, before the ticket's deadline; Overloaded or DeadlineExceeded
        otherwise. Cancelling the awaiting task takes the rows out of the queue at once."""
        batcher = self.batcher(ckpt, op)
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
        batcher = self.batcher(ckpt, op)
        first = next(blocks)
        try:
            parts = batcher.open_stream(first.x, first.labels, ticket.deadline, ticket.priority)
        except QueueFull as exc:
            raise self._overloaded(exc) from exc
        ticket.queued()
        ticket.keep()

        async def released() -> AsyncIterator[torch.Tensor]:
            current = parts
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
                await current.aclose()  # type: ignore[attr-defined]  # retire the job now, not at garbage collection
                ticket.release()

        return released()

    def queued_rows(self) -> int:
        return sum(b.queued_rows for b in self.batchers.values())

    def estimated_wait(self) -> dict[str, float]:
        """Seconds of work waiting per model (the longest of its operations' queues)."""
        out: dict[str, float] = {}
        for (name, _, _), b in self.batchers.items():
            out[name] = max(out.get(name, 0.0), b.wait_s())
        return out

    async def stop(self) -> None:
        for b in self.batchers.values():
            await b.stop()
        self.runtime.shutdown()
