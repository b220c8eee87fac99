"""One server process: uvicorn serving the app (and its gRPC door), with a drain on SIGTERM. `python -m service`
runs one of these, or several (service/workers.py), each on a shared socket.

SIGTERM/SIGINT drain, so that no connection that carried a request is reset:
  1. /readyz and /v2/health/ready turn 503 at once; the listener stays open. Requests already queued are
     served; new inference requests get 503; every answer carries `Connection: close`, so each client's
     connection ends after an answer, never under a request.
  2. Once no request has started for DRAIN_QUIET_S (or DRAIN_WINDOW_S has passed), the listener closes:
     closing it earlier resets connections the kernel had already accepted into its backlog.
  3. uvicorn's own shutdown: idle connections close, requests in flight finish (drain_timeout_s), exit 0.
The gRPC door follows the same engine state: from step 1 its health service says NOT_SERVING and new calls get
UNAVAILABLE ("draining"); in the app's lifespan shutdown it stops taking calls and lets those in flight finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

import uvicorn

from service.logs import configure

DRAIN_QUIET_S = 0.5  # no request started for this long: nobody is still sending to us
DRAIN_WINDOW_S = 10.0  # the listener closes after this long even under steady arrivals


class DrainingServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.drain()
        await super().shutdown(sockets)

    async def drain(self) -> None:
        """Step 2 above: wait, listener open, until arrivals stop."""
        plane = self._plane()
        if plane is None:
            return
        plane.drain()
        window = min(DRAIN_WINDOW_S, self.config.timeout_graceful_shutdown or DRAIN_WINDOW_S)
        end = time.monotonic() + window
        while time.monotonic() < end and not self.force_exit:
            if plane.quiet_for() >= DRAIN_QUIET_S:
                return
            await asyncio.sleep(0.05)

    def _plane(self):  # type: ignore[no-untyped-def]
        app = self.config.loaded_app
        while hasattr(app, "app") and not hasattr(app, "state"):
            app = app.app  # unwrap uvicorn's proxy middlewares
        return getattr(getattr(app, "state", None), "plane", None)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Handle SIGTERM/SIGINT as a drain, and exit 0 after it (uvicorn would re-raise the signal)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        plane = self._plane()
        if plane is not None:
            plane.drain()  # step 1, at once: readiness 503, Connection: close on every answer
        super().handle_exit(sig, frame)


def run_one(argv: list[str], worker: int | None = None) -> int:
    """One server until SIGTERM: settings from the environment and argv (a wrong one stops here in a few lines);
    a worker (`worker` its index) listens on a shared socket (SO_REUSEPORT), as its siblings do."""
    from service.startup import BadSettings, check_default_model, load_settings

    try:
        s = load_settings(argv)
        configure(s.log_level)
        check_default_model(s)
    except BadSettings as bad:
        print(bad.message, file=sys.stderr)
        return 2
    from service.app import create_app  # after the settings: a bad one never pays for torch's import

    config = uvicorn.Config(create_app(s), host=s.host, port=s.port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=math.ceil(s.drain_timeout_s), timeout_keep_alive=5,
                            limit_concurrency=None, backlog=2048)
    sockets = None
    if worker is not None:
        from service.shared import reuseport_socket

        sockets = [reuseport_socket(s.host, s.port)]
    DrainingServer(config).run(sockets=sockets)
    return 0
