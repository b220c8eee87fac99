"""What workers share (service/workers.py): the ports, by SO_REUSEPORT, and their readiness, by a directory where
each ready worker keeps a mark."""

from __future__ import annotations

import os
import socket
from pathlib import Path

PEERS_ENV = "VAESERVE_PEERS_DIR"  # set by the parent for its workers: where each marks itself ready
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's multiprocess mode reads and writes here
GAUGE_EVERY_S = 0.5  # each worker's gauges refreshed this often, for scrapes another worker answers


class Peers:
    """The workers' shared readiness: one file per ready worker in a directory the parent made."""

    def __init__(self, directory: Path, expected: int) -> None:
        self.directory, self.expected = directory, expected
        self.mine = directory / f"ready-{os.getpid()}"

    @classmethod
    def from_env(cls) -> Peers | None:
        where = os.environ.get(PEERS_ENV)
        return cls(Path(where), int(os.environ.get("VAESERVE_WORKERS", "1"))) if where else None

    def mark(self, ready: bool) -> None:
        if ready:
            self.mine.touch()
        else:
            self.mine.unlink(missing_ok=True)

    def ready(self) -> int:
        return sum(1 for _ in self.directory.glob("ready-*"))

    def all_ready(self) -> bool:
        return self.ready() >= self.expected


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening-to-be socket on host:port that other workers may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock
