"""Slow clients (slow-loris): trickled headers or bodies must not tie up the server."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from tests.helpers import launch


def test_trickled_headers_and_bodies_do_not_block_others(tiny_repo: Path, tmp_path: Path) -> None:
    url, proc = launch(["-m", "service"], tiny_repo, tmp_path / "log", VAESERVE_BODY_TIMEOUT_S="1")
    port = int(url.rsplit(":", 1)[1])
    try:
        loris = []
        for _ in range(100):  # headers that never finish
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /decode HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            loris.append(s)
        slow_body = socket.create_connection(("127.0.0.1", port))
        slow_body.sendall(b"POST /decode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 1000\r\n\r\n{\"z\": [")
        t0 = time.perf_counter()
        r = httpx.post(url + "/decode", json={"z": [[0.0] * 4]}, timeout=5)
        assert r.status_code == 200 and time.perf_counter() - t0 < 2
        slow_body.settimeout(5)
        answer = slow_body.recv(4096)  # the trickled body is cut off with 408 after body_timeout_s
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        for s in loris + [slow_body]:
            s.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
