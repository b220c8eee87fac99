"""What workers share (service/workers.py): the ports, by SO_REUSEPORT; their readiness, by a directory where
each ready worker keeps a mark; and repository control, by a log of control calls in that directory."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import IO, Any

PEERS_ENV = "VAESERVE_PEERS_DIR"  # set by the parent for its workers: where each marks itself ready
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's multiprocess mode reads and writes here
GAUGE_EVERY_S = 0.5  # each worker's gauges refreshed this often, for scrapes another worker answers
STATS_EVERY_S = 0.1  # each worker's Triton statistics published this often (when they changed), for the others
CONTROL_EVERY_S = 0.1  # each worker looks for control calls another worker answered this often


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

    def ready_pids(self) -> list[str]:
        """The process ids of the workers that serve now (their marks)."""
        return [p.name.removeprefix("ready-") for p in self.directory.glob("ready-*")]

    def ready(self) -> int:
        return len(self.ready_pids())

    def all_ready(self) -> bool:
        return self.ready() >= self.expected

    def publish(self, snapshot: Any) -> None:
        """This worker's Triton statistics, for a statistics call another worker answers."""
        write_whole(self.directory / f"stats-{os.getpid()}.json", json.dumps(snapshot))

    def others_stats(self) -> list[Any]:
        """Every other worker's last published statistics, a dead one's too (its inferences happened, as its
        counters stay in /metrics)."""
        out = []
        for path in self.directory.glob("stats-*.json"):
            if path.name != f"stats-{os.getpid()}.json":
                try:
                    out.append(json.loads(path.read_text()))
                except (FileNotFoundError, ValueError):
                    pass
        return out


class ControlLog:
    """Repository control across workers. A load, reload or unload reaches one worker (the kernel picks it), so the
    worker that carried it out appends it to a log in the workers' directory; every worker applies the calls it has
    not seen, in order (polled every CONTROL_EVERY_S; a worker that starts, or restarts, replays the whole log before
    it serves), and records how many it has applied, so the worker that answered can wait until every ready worker
    has applied its call. Control calls are serialised across workers by a file lock around catching up, applying
    and appending."""

    def __init__(self, peers: Peers) -> None:
        self.peers, directory = peers, peers.directory
        self.path, self.lock_path = directory / "control.jsonl", directory / "control.lock"
        self.mine = directory / f"applied-{os.getpid()}"
        self.applied = 0  # calls of the log applied here

    def acquire(self) -> IO[str]:
        """The lock one worker's control call holds at a time; blocks (call it off the event loop)."""
        f = self.lock_path.open("a")
        fcntl.flock(f, fcntl.LOCK_EX)
        return f

    @staticmethod
    def release(f: IO[str]) -> None:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()

    def pending(self) -> list[dict[str, Any]]:
        """The calls appended since this worker's last one applied (whole lines only: one may be half written)."""
        try:
            lines = self.path.read_text().split("\n")[:-1]
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines[self.applied:]]

    def append(self, call: dict[str, Any]) -> int:
        """Record a call this worker applied (it has applied every one before it); its number in the log."""
        with self.path.open("a") as f:
            f.write(json.dumps(call) + "\n")
        self.done(1)
        return self.applied

    def done(self, calls: int) -> None:
        """Say how far this worker got: `calls` more applied."""
        self.applied += calls
        write_whole(self.mine, str(self.applied))

    def applied_by_ready(self, number: int) -> tuple[int, int]:
        """(ready workers that applied call `number`, ready workers)."""
        ready = self.peers.ready_pids()
        done = 0
        for pid in ready:
            try:
                done += int((self.peers.directory / f"applied-{pid}").read_text() or 0) >= number
            except (FileNotFoundError, ValueError):
                pass
        return done, len(ready)


def write_whole(path: Path, text: str) -> None:
    """Write-then-rename: a worker reading the file never sees half of it."""
    part = path.with_name(path.name + ".part")
    part.write_text(text)
    part.replace(path)


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening-to-be socket on host:port that other workers may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock
