"""What the app holds while it runs: the loaded repository, the runtime, one batcher per (model, op)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import torch

from service.batcher import Batcher, DeadlineExceeded, QueueFull
from service.errors import ApiError
from service.loader import Checkpoint, scan
from service.metrics import Metrics
from service.runtime import Runtime, pick_device
from service.settings import Settings

log = logging.getLogger(__name__)


class AppState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.runtime = Runtime(pick_device(settings.device), settings.half_precision, settings.torch_threads)
        self.models: dict[str, dict[int, Checkpoint]] = {}
        self.load_errors: list[str] = []
        self.batchers: dict[tuple[str, int, str], Batcher] = {}
        self.ready = False
        self.draining = False
        self.arriving = 0  # inference requests received whose rows are not yet queued
        self.inflight = 0  # inference requests anywhere in the server
        self._reload_lock = asyncio.Lock()

    # -- repository -------------------------------------------------------------------------

    def load(self, repository: Path) -> None:
        models, errors = scan(repository)
        for versions in models.values():
            for ckpt in versions.values():
                self.runtime.place(ckpt)
        self.models, self.load_errors = models, errors
        self.metrics.load_failures.inc(len(errors))
        default = self.settings.default_model
        if default not in models:
            self.load_errors.append(f"default model {default!r} is not in {repository}")
        elif not self.newest(default).generative:
            self.load_errors.append(f"default model {default!r} is not generative")
        self.ready = default in models and self.newest(default).generative
        log.info("loaded %d models on %s: %s", len(models), self.runtime.device, ", ".join(sorted(models)))

    async def reload(self) -> dict[str, object]:
        """Pick up new or changed versions without a restart. Loading runs off the event loop; the
        swap is one assignment, so requests in flight finish on the version they started with. A bad
        file is refused (logged, counted) and whatever served before keeps serving."""
        async with self._reload_lock:
            current = self.models
            models, errors = await asyncio.to_thread(scan, self.settings.model_repository, current)
            added = [(c.name, c.version) for v in models.values() for c in v.values()
                     if current.get(c.name, {}).get(c.version) is not c]
            for name, version in added:
                await asyncio.to_thread(self.runtime.place, models[name][version])
            # a refused file never removes what already served: keep old versions whose file broke
            for name, versions in current.items():
                for version, ckpt in versions.items():
                    if version not in models.get(name, {}) and ckpt.path.exists():
                        models.setdefault(name, {})[version] = ckpt
            self.models = models
            self.metrics.load_failures.inc(len(errors))
            for name, version in added:
                log.info("serving %s version %d", name, version)
            return {"added": [f"{n}/{v}" for n, v in added], "refused": errors,
                    "models": {n: sorted(v) for n, v in sorted(models.items())}}

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
        """The checkpoint a request names (default model, newest version unless pinned); 404 otherwise."""
        name = name or self.settings.default_model
        if name not in self.models:
            raise ApiError(404, f"unknown model {name!r}", {"available": sorted(self.models)})
        if version is None:
            return self.newest(name)
        if version not in self.models[name]:
            raise ApiError(404, f"model {name!r} has no version {version}", {"versions": sorted(self.models[name])})
        return self.models[name][version]

    # -- batching ---------------------------------------------------------------------------

    def batcher(self, ckpt: Checkpoint, op: str) -> Batcher:
        key = (ckpt.name, ckpt.version, op)
        b = self.batchers.get(key)
        if b is None:
            s = self.settings
            hist = self.metrics.batch_rows.labels(ckpt.name, op)

            def forward(x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
                return self.runtime.run(ckpt, op, x, labels)

            b = Batcher(forward, self.runtime.executor, s.max_batch_rows, s.max_delay_ms / 1000, s.queue_rows,
                        arrivals=lambda: self.arriving, on_batch=hist.observe)
            self.batchers[key] = b
        return b

    async def run(self, ckpt: Checkpoint, op: str, x: torch.Tensor, labels: torch.Tensor | None,
                  deadline: float) -> torch.Tensor:
        """Rows through the batcher; queue full -> 429, deadline -> 504."""
        s = self.settings
        batcher = self.batcher(ckpt, op)
        self.arriving -= 1
        try:
            return await batcher.submit(x, labels, deadline)
        except QueueFull as exc:
            self.metrics.rejections.labels("queue_full").inc()
            raise ApiError(429, f"server busy: {exc}; retry after {s.retry_after_s}s", None,
                           {"Retry-After": str(s.retry_after_s)}) from exc
        except DeadlineExceeded as exc:
            self.metrics.rejections.labels("deadline").inc()
            raise ApiError(504, f"{exc} (deadline {s.request_timeout_s}s)") from exc
        finally:
            self.arriving += 1  # balanced by the route's own decrement when it finishes

    def queued_rows(self) -> int:
        return sum(b.queued_rows for b in self.batchers.values())

    def deadline(self) -> float:
        return time.monotonic() + self.settings.request_timeout_s

    async def stop(self) -> None:
        for b in self.batchers.values():
            await b.stop()
        self.runtime.shutdown()
