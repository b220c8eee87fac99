"""python -m service: serve the model repository with uvicorn (settings from VAESERVE_* env vars).

SIGTERM/SIGINT: /readyz turns 503 at once, the listener closes, requests already received are
answered (with Connection: close) for up to drain_timeout_s, then the process exits 0.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import uvicorn

from service.app import create_app
from service.logs import configure
from service.settings import get_settings


class DrainingServer(uvicorn.Server):
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
        app = self.config.loaded_app
        while hasattr(app, "app") and not hasattr(app, "state"):
            app = app.app  # unwrap uvicorn's proxy middlewares
        if hasattr(app, "state") and hasattr(app.state, "vae"):
            app.state.vae.draining = True
        super().handle_exit(sig, frame)


def main() -> int:
    s = get_settings()
    configure(s.log_level)
    config = uvicorn.Config(create_app(s), host=s.host, port=s.port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=s.drain_timeout_s, timeout_keep_alive=5,
                            limit_concurrency=None, backlog=2048)
    DrainingServer(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
