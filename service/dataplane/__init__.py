"""The dataplane: what every door calls to serve a request, so that a door only decodes its wire format, calls, and
encodes the answer or the error (service/dataplane/errors.py says which status or code).

    plane.touch()                               # every request, any door: the drain's clock
    with plane.admit(timeout_s) as ticket:      # readiness, the in-flight cap, one deadline
        ckpt = plane.resolve(name, version)     # or, for the Open Inference Protocol:
        out = await plane.run(ckpt, op, rows, ticket)   # name, version, arrays = await plane.infer(...)
    plane.observe(route, status, seconds)       # request metrics, whatever the door

Beside that: the repository's listing and control (reload, unload, both behind the admin key's policy), readiness
and draining, the OIP model view (metadata, Triton's configuration, the index, statistics), and the metrics
scrape. The engine's parts stay behind it; doors hold a DataPlane, never an Engine.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import torch
from prometheus_client import CONTENT_TYPE_LATEST

from service.dataplane import oip
from service.dataplane.control import Control
from service.dataplane.oip import Part
from service.engine.admission import Ticket
from service.engine.checkpoints import Checkpoint
from service.engine.domain import NotReady, Unauthorized
from service.engine.engine import Engine
from service.engine.ops import Op, Rows
from service.settings import Settings
from service.shared import GAUGE_EVERY_S, STATS_EVERY_S, ControlLog, Peers

__all__ = ["CONTENT_TYPE_LATEST", "DataPlane", "Part"]


class DataPlane:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.settings: Settings = engine.settings
        self.stats = oip.Statistics()  # Triton's per-model statistics, whichever door asked
        self._lifecycle, self._repository = engine.lifecycle, engine.repository
        self._metrics = engine.metrics
        self.peers = Peers.from_env()  # with workers: their shared readiness
        # with workers: every worker carries a control call out
        self.control = Control(engine.repository, None if self.peers is None else ControlLog(self.peers))

    def mark_serving(self, serving: bool) -> None:
        """With workers: this one serves (its models loaded) or no longer does (draining)."""
        if self.peers is not None:
            self.peers.mark(serving and self._lifecycle.ready)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Load the repository (in the app's lifespan: never at import)."""
        self._repository.load()

    async def stop(self) -> None:
        self._lifecycle.drain()
        await self._engine.stop()

    @property
    def serving(self) -> bool:
        return self._lifecycle.serving

    @property
    def draining(self) -> bool:
        return self._lifecycle.draining

    def drain(self) -> None:
        self._lifecycle.drain()
        self.mark_serving(False)

    def quiet_for(self) -> float:
        """Seconds since the newest request, any door (the drain waits for quiet)."""
        return time.monotonic() - self._lifecycle.last_request_at

    def touch(self) -> None:
        self._lifecycle.touch()

    def check_ready(self) -> None:
        self._lifecycle.check_ready()

    def check_ready_all(self) -> None:
        """NotReady unless this server (with workers: every worker) serves: the readiness probes' rule, with the
        lifecycle's reasons (load errors, draining) when it is this server that does not."""
        self._lifecycle.check_ready()
        if self.peers is not None and not self.peers.all_ready():
            raise NotReady(self._peers_waiting(), self.settings.retry_after_s)

    def _peers_waiting(self) -> str:
        assert self.peers is not None
        return f"not ready: {self.peers.ready()} of {self.peers.expected} workers serve"

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, what /readyz says): the reason when not, the device and models when so. With workers, ready
        means every worker serves."""
        if self._lifecycle.draining:
            return False, {"error": "draining for shutdown"}
        if not self._lifecycle.ready:
            return False, {"error": "not ready", "detail": self._repository.load_errors}
        if self.peers is not None and not self.peers.all_ready():
            return False, {"error": self._peers_waiting()}
        return True, {"status": "ready", "device": str(self._engine.runtime.device),
                      "models": self._repository.names()}

    async def watch(self, interval_s: float) -> None:
        await self._repository.watch(interval_s)

    # -- one request -----------------------------------------------------------------------------

    def admit(self, timeout_s: float | None = None) -> Ticket:
        """The request's ticket (use as a context manager): NotReady while loading or draining, Overloaded past
        the in-flight cap, both before anything is read; a client's own deadline when sooner than the server's.
        (The drain's clock is the door's `touch`, once for every request it takes, inference or not.)"""
        self._lifecycle.check_ready()
        ticket = self._engine.admission.admit()
        ticket.within(timeout_s)
        return ticket

    def resolve(self, name: str | None, version: int | None = None) -> Checkpoint:
        return self._repository.resolve(name, version)

    async def run(self, ckpt: Checkpoint, op: Op, rows: Rows, ticket: Ticket) -> torch.Tensor:
        return await self._engine.run(ckpt, op, rows, ticket)

    def stream(self, ckpt: Checkpoint, op: Op, rows: Rows | Iterator[Rows],
               ticket: Ticket) -> AsyncIterator[torch.Tensor]:
        return self._engine.stream(ckpt, op, rows, ticket)

    def observe(self, route: str, status: int, seconds: float) -> None:
        """One request's metrics (route template, HTTP status or its twin for a gRPC outcome, duration)."""
        self._metrics.observe_request(route, status, seconds)

    def reject(self, reason: str) -> None:
        """A request turned away at a door (unauthorized, body too large or too slow): counted by reason."""
        self._metrics.rejections.labels(reason).inc()

    def check_api_key(self, given: bytes) -> None:
        """Unauthorized (counted) unless `given` is the API key; doors call it only when a key is set."""
        if not hmac.compare_digest(given, (self.settings.api_key or "").encode()):
            self.reject("unauthorized")
            raise Unauthorized("missing or wrong API key (X-API-Key header, x-api-key gRPC metadata)")

    # -- the repository --------------------------------------------------------------------------

    @property
    def default_model(self) -> str | None:
        return self._repository.default_model

    def names(self) -> list[str]:
        return self._repository.names()

    def versions(self, name: str) -> list[int]:
        return self._repository.versions(name)

    def newest(self, name: str) -> Checkpoint:
        return self._repository.newest(name)

    def check_control(self, admin_key: str | None = None) -> None:
        self._engine.check_control(admin_key)

    async def reload(self, only: str | None = None, admin_key: str | None = None) -> dict[str, object]:
        """Repository control: pick up new or changed versions (all, or one model, served again if unloaded)."""
        self._engine.check_control(admin_key)
        return await self.control.reload(only)

    async def unload(self, name: str, admin_key: str | None = None) -> dict[str, object]:
        self._engine.check_control(admin_key)
        return await self.control.unload(name)

    def metrics_text(self) -> bytes:
        """The Prometheus scrape, gauges read now (queue rows and bytes, estimated wait per model); with workers,
        every worker's series added up."""
        self._engine.refresh_gauges()
        return self._metrics.exposition()

    async def refresh_gauges(self) -> None:
        """With workers: keep this worker's gauges fresh for a scrape another worker answers, and its Triton
        statistics for a statistics call another worker answers."""
        assert self.peers is not None
        published, turns = -1, round(GAUGE_EVERY_S / STATS_EVERY_S)
        for turn in itertools.count():
            if turn % turns == 0:
                self._engine.refresh_gauges()
            if self.stats.changes != published:
                published = self.stats.changes
                self.peers.publish(self.stats.snapshot())
            await asyncio.sleep(STATS_EVERY_S)

    # -- the Open Inference Protocol's model view ------------------------------------------------

    def server_metadata(self) -> dict[str, Any]:
        return {**oip.SERVER, "extensions": oip.extensions(self._engine)}

    def model(self, name: str, version: str | None = None) -> tuple[Checkpoint, Part]:
        """A v2 model name (<name>-encoder, -decoder, -sampler) and version string -> (checkpoint, part)."""
        return oip.split_name(self._engine, name, version)

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        ckpt, part = self.model(name, version)
        return oip.describe(self._engine, ckpt, part)

    def model_config(self, name: str, version: str | None = None) -> dict[str, Any]:
        ckpt, part = self.model(name, version)
        return oip.triton_config(self._engine, ckpt, part)

    def model_ready(self, name: str, version: str | None = None) -> tuple[Checkpoint, Part]:
        """UnknownModel, or NotReady while draining; else the model."""
        found = self.model(name, version)
        if self._lifecycle.draining:
            self._lifecycle.check_ready()
        return found

    def repository_index(self, ready_only: bool = False) -> list[dict[str, str]]:
        return oip.repository_index(self._engine, ready_only)

    def statistics(self, name: str = "", version: str = "") -> list[dict[str, Any]]:
        stats = self.stats if self.peers is None else self.stats.merged(self.peers.others_stats())
        return stats.report(self._engine, name, version)  # with workers: theirs published at most STATS_EVERY_S ago

    async def load_model(self, name: str, admin_key: str | None = None) -> dict[str, object]:
        return await self.reload(oip.base_name(name), admin_key)

    async def unload_model(self, name: str, admin_key: str | None = None) -> dict[str, object]:
        return await self.unload(oip.base_name(name), admin_key)

    async def infer(self, name: str, version: str | None, tensors: dict[str, np.ndarray], priority: Any,
                    ticket: Ticket) -> tuple[str, int, dict[str, np.ndarray]]:
        """One v2 inference: (the v2 model's name, the version that answered, outputs by name, FP32), counted in
        Triton's statistics as a success or a failure; InvalidInput names what is wrong."""
        ckpt, part = self.model(name, version)
        ticket.priority = oip.request_priority(priority)
        arrays = await oip.infer(self._engine, self.stats, ckpt, part, tensors, ticket)
        return f"{ckpt.name}-{part}", ckpt.version, arrays
