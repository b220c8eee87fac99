"""A real `python -m service` process on a free port: HTTP end to end, then SIGTERM under load."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import httpx


def test_end_to_end(server: tuple[str, subprocess.Popen]) -> None:
    url, _ = server
    with httpx.Client(base_url=url) as c:
        r = c.post("/sample", json={"n": 3, "seed": 1, "format": "png"})
        assert r.status_code == 200 and len(r.json()["images"]) == 3
        r = c.post("/decode", json={"z": [[0.0] * 4]}, headers={"accept": "application/x-npy"})
        assert r.content[:6] == b"\x93NUMPY"
        assert c.post("/decode", json={"z": [[0.0] * 5]}).status_code == 422
        assert "vaeserve_requests_total" in c.get("/metrics").text


def test_sigterm_drains_every_accepted_request(server: tuple[str, subprocess.Popen]) -> None:
    url, proc = server
    results: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=20) as c:
            while not stop.is_set():
                try:
                    r = c.post("/sample", json={"n": 64})
                except httpx.ConnectError:
                    return  # the listener is closed: not an accepted request
                except httpx.HTTPError as exc:  # an accepted request that got no answer
                    errors.append(repr(exc))
                    return
                results.append(r.status_code)
                if r.headers.get("connection") == "close":
                    return

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert results and set(results) <= {200, 503}
