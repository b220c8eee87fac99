"""A small closed-loop HTTP/1.1 load generator (keep-alive, fixed concurrency) on asyncio protocols.

Fast enough to saturate a one-core Python server from the other core; reports req/s and latency
quantiles. Used by benchmarks/serve.py; `python benchmarks/loadgen.py URL BODY_JSON -c 64 -d 10`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    ok_latencies: list[float] = field(default_factory=list)  # 200s only
    statuses: dict[int, int] = field(default_factory=dict)
    bytes_in: int = 0
    seconds: float = 0.0

    def quantile(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


class _Conn(asyncio.Protocol):
    """One keep-alive connection: send a request, read one Content-Length response, repeat."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, int]] | None = None
        self.transport: asyncio.Transport | None = None
        self.status = 0
        self.need = -1  # total bytes of the response being read, once its head is parsed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._check()

    def _check(self) -> None:
        if self.waiter is None:
            return
        if self.need < 0:  # parse the head once; then only count bytes (bulk bodies are megabytes)
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            self.status = int(head[9:12])
            i = head.find(b"\r\ncontent-length:")  # at a line start: not inference-header-content-length
            length = int(head[i + 17: head.find(b"\r\n", i + 2)].strip()) if i >= 0 else 0
            self.need = end + 4 + length
        if len(self.buf) >= self.need:
            n = self.need
            del self.buf[:n]
            self.need = -1
            w, self.waiter = self.waiter, None
            if not w.done():
                w.set_result((self.status, n))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    async def request(self, raw: bytes) -> tuple[int, int]:
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(raw)
        return await self.waiter


def build_request(url: str, body: bytes, accept: str = "application/json", headers: str = "") -> bytes:
    """One raw HTTP/1.1 POST; `headers` is extra header lines, each ending in CRLF."""
    u = urlparse(url)
    return (f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nContent-Type: application/json\r\n"
            f"Accept: {accept}\r\n{headers}Content-Length: {len(body)}\r\n\r\n").encode() + body


async def run(url: str, body: bytes, concurrency: int, seconds: float, warmup: float = 1.0,
              accept: str = "application/json", headers: str = "") -> Result:
    u = urlparse(url)
    raw = build_request(url, body, accept, headers)
    loop = asyncio.get_running_loop()
    res = Result()
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds

    async def worker() -> None:
        _, conn = await loop.create_connection(_Conn, u.hostname, u.port)
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                break
            try:
                status, n = await conn.request(raw)
            except ConnectionError:
                _, conn = await loop.create_connection(_Conn, u.hostname, u.port)
                continue
            t1 = time.perf_counter()
            if t0 >= measure_from:
                res.latencies.append(t1 - t0)
                if status == 200:
                    res.ok_latencies.append(t1 - t0)
                res.statuses[status] = res.statuses.get(status, 0) + 1
                res.bytes_in += n
        if conn.transport is not None:
            conn.transport.close()

    await asyncio.gather(*[worker() for _ in range(concurrency)])
    res.seconds = seconds
    return res


def measure(url: str, body: bytes, concurrency: int, seconds: float, accept: str = "application/json",
            headers: str = "") -> Result:
    runner = uvloop.run if uvloop is not None else asyncio.run
    return runner(run(url, body, concurrency, seconds, accept=accept, headers=headers))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("body")
    p.add_argument("-c", type=int, default=64)
    p.add_argument("-d", type=float, default=10)
    a = p.parse_args()
    r = measure(a.url, a.body.encode(), a.c, a.d)
    print(f"{r.rps:.0f} req/s  p50 {r.quantile(.5) * 1e3:.2f} ms  p99 {r.quantile(.99) * 1e3:.2f} ms  {r.statuses}")
