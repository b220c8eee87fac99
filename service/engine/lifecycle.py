"""The server's lifecycle, whatever the door: loading -> ready -> draining. Readiness is the repository's (its default
model loaded and generative, or any model when there is no default); draining starts at SIGTERM; the newest
request's time tells the drain when arrivals have stopped."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from service.engine.domain import NotReady


async def every(interval_s: float, step: Callable[[], Awaitable[object]], log: logging.Logger, failed: str) -> None:
    """A background task: `step` every interval_s seconds until cancelled; a step that raises is logged (`failed`,
    with its traceback) and the next one runs all the same: one error must never stop the task."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await step()
        except Exception:
            log.exception(failed)


class Lifecycle:
    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        self.ready = False  # set by the repository after each load or reload
        self.draining = False
        self.reasons: list[str] = []  # why not ready (load errors, the default model's absence)
        self.last_request_at = 0.0  # time.monotonic() of the newest request

    @property
    def serving(self) -> bool:
        """Ready and not draining: what every door's readiness reports."""
        return self.ready and not self.draining

    def touch(self) -> None:
        """A request arrived (any door): the drain waits for these to stop."""
        self.last_request_at = time.monotonic()

    def drain(self) -> None:
        """From now on: readiness 503, new inference refused, `Connection: close` on every HTTP answer."""
        self.draining = True

    def check_ready(self) -> None:
        """NotReady while loading, without the default model, or draining."""
        if not self.serving:
            reason = "draining for shutdown" if self.draining else "; ".join(self.reasons) or "loading"
            raise NotReady("not ready: " + reason, self.retry_after_s)
