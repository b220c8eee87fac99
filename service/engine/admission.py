"""One admission step for every inference request, REST or v2: the in-flight cap, the count of
requests whose rows are on their way (the batcher's reason to wait a moment), and one deadline.

A Ticket lives from the moment a request is routed until its answer is built:
  admit -> parse the body -> ticket.queued() as rows enter a batcher -> ... -> release.
"""

from __future__ import annotations

import time
from types import TracebackType

from service.engine.domain import Overloaded


class Admission:
    """Counts what is in the server; the batchers read `arriving`."""

    def __init__(self, max_inflight: int, timeout_s: float, retry_after_s: int) -> None:
        self.max_inflight, self.timeout_s, self.retry_after_s = max_inflight, timeout_s, retry_after_s
        self.inflight = 0  # inference requests anywhere in the server
        self.arriving = 0  # admitted requests whose rows are not yet queued

    def admit(self) -> Ticket:
        """A ticket for one request, or Overloaded at once (before its body is read)."""
        if self.inflight >= self.max_inflight:
            raise Overloaded(f"server busy: {self.inflight} requests in flight (at most {self.max_inflight}); "
                             f"retry after {self.retry_after_s}s", self.retry_after_s)
        return Ticket(self)


class Ticket:
    """One request's place in the server: released exactly once, however the request ends."""

    __slots__ = ("admission", "deadline", "timeout_s", "priority", "_arriving", "_held", "_kept")

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.timeout_s = admission.timeout_s
        self.deadline = time.monotonic() + admission.timeout_s  # one deadline for every step of the request
        self.priority = 0  # 1 = high, 0 = default, larger = lower (Triton's levels); set from the request
        admission.inflight += 1
        admission.arriving += 1
        self._arriving = self._held = True
        self._kept = False

    def within(self, seconds: float | None) -> None:
        """The client's own deadline (a gRPC call's), when it is sooner than the server's."""
        if seconds is not None and seconds < self.timeout_s:
            self.timeout_s = max(0.0, seconds)
            self.deadline = time.monotonic() + self.timeout_s

    def scale(self, factor: int) -> None:
        """A request that is many requests' work (a long stream): its deadline is factor times the usual."""
        if factor > 1:
            self.deadline += self.timeout_s * (factor - 1)
            self.timeout_s *= factor

    def queued(self) -> None:
        """Its rows are in a batcher now: no longer a reason for a batch to wait."""
        if self._arriving:
            self._arriving = False
            self.admission.arriving -= 1

    def keep(self) -> Ticket:
        """The request goes on after its handler returns (a streamed answer): whoever keeps it releases it."""
        self._kept = True
        return self

    def release(self) -> None:
        if not self._held:
            return
        self.queued()
        self._held = False
        self.admission.inflight -= 1

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if not self._kept or e is not None:
            self.release()
