"""Several server processes on one machine (VAESERVE_WORKERS=N, `--workers N`): each its own engine and batchers,
all sharing the HTTP port and the gRPC port (SO_REUSEPORT on both: the kernel spreads connections), supervised
by the parent.

- The workers are spawned, not forked: each starts a fresh interpreter, so no torch thread pool or gRPC object
  crosses a fork (grpcio's own multiprocessing example forks before any gRPC object exists; spawning is that,
  always), and prometheus-client's multiprocess mode is on before it is imported.
- /metrics adds every worker's counters and histograms (prometheus-client's multiprocess mode; gauges are summed
  over live workers, each refreshed every GAUGE_EVERY_S), so one scrape tells the whole truth.
- Readiness means every worker serves: each marks itself ready in a shared directory once its models are loaded,
  and /readyz (and the OIP's) answer 200 only when all N are.
- SIGTERM (or Ctrl-C) is passed to every worker, each drains as a single server does (service/__main__.py), and
  the parent exits when they all have. A worker that dies otherwise is restarted, and the log says so.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from service.server import run_one
from service.shared import METRICS_ENV, PEERS_ENV, reuseport_socket

log = logging.getLogger("service.workers")

RESTART_PAUSE_S = 1.0  # a worker that dies at once is not restarted in a tight loop


def _worker(index: int, argv: list[str]) -> None:
    """A spawned worker: the single-process server on a shared socket (service/server.py)."""

    sys.exit(run_one(argv, worker=index))


def serve(argv: list[str], workers: int, host: str, port: int) -> int:
    """Run `workers` server processes until SIGTERM/SIGINT; restart any that dies otherwise."""
    try:  # the port must be ours (or free): a process holding it without SO_REUSEPORT makes every worker fail
        reuseport_socket(host, port).close()
    except OSError as exc:
        print(f"vaeserve: cannot bind {host}:{port} for {workers} workers ({exc})", file=sys.stderr)
        return 2
    shared = Path(tempfile.mkdtemp(prefix="vaeserve-workers-"))
    (shared / "metrics").mkdir()
    (shared / "peers").mkdir()
    os.environ[METRICS_ENV] = str(shared / "metrics")
    os.environ[PEERS_ENV] = str(shared / "peers")
    os.environ["VAESERVE_WORKERS"] = str(workers)
    ctx = mp.get_context("spawn")
    procs: dict[int, mp.process.BaseProcess] = {}
    stopping = False

    def start(i: int) -> None:
        p = ctx.Process(target=_worker, args=(i, argv), name=f"vaeserve-worker-{i}")
        p.start()
        procs[i] = p
        log.info("worker %d started (pid %d)", i, p.pid)

    def stop(sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs.values():
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM)  # each drains as a single server does

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for i in range(workers):
            start(i)
        while procs:
            time.sleep(0.2)
            for i, p in list(procs.items()):
                if p.is_alive():
                    continue
                p.join()
                _dead(shared, p.pid)
                if stopping:
                    del procs[i]
                    continue
                log.warning("worker %d (pid %s) exited with code %s; restarting it", i, p.pid, p.exitcode)
                time.sleep(RESTART_PAUSE_S)
                start(i)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    return 0


def _dead(shared: Path, pid: int | None) -> None:
    """A worker gone: its live gauges leave the sum, its readiness mark goes (counters and histograms stay)."""
    if pid is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(shared / "metrics"))
    (shared / "peers" / f"ready-{pid}").unlink(missing_ok=True)
