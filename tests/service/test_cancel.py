"""Cancellation on every door: a client that goes away stops its work. A live server (uvicorn and the gRPC door in a
thread of this process) over a forward made slow on purpose (50 ms a chunk of 100 rows), so a 10,000-row request is
100 chunks; the client leaves after a few, and the rows computed after that grow by at most the one chunk in flight.
No timing is asserted beyond that: the counter is read before the client leaves (it counts a chunk as it starts)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import orjson
import pytest
import uvicorn

from service.app import create_app
from service.engine.engine import Engine
from service.rpc import messages
from tests.helpers import free_port, make_settings

CHUNK = 100
CHUNK_S = 0.05
ROWS = 10_000


class Live:
    def __init__(self, repo: Path) -> None:
        self.port, self.grpc_port = free_port(), free_port()
        settings = make_settings(repo, port=self.port, grpc_port=self.grpc_port, max_rows=ROWS, max_sample=ROWS,
                                 max_batch_rows=CHUNK, stream_min_rows=2048)
        self.app = create_app(settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, loop="asyncio",
                                                    log_config=None, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        assert self.server.started
        runtime = self.engine.runtime
        real = runtime.run

        def slow(ckpt: Any, op: Any, x: Any, labels: Any) -> Any:
            time.sleep(CHUNK_S)
            return real(ckpt, op, x, labels)

        runtime.run = slow  # type: ignore[method-assign]

    @property
    def engine(self) -> Engine:
        return self.app.state.plane._engine

    def computed(self) -> float:
        return sum(s.value for metric in self.engine.metrics.rows_computed.collect() for s in metric.samples
                   if s.name.endswith("_total"))

    def status_count(self, route: str, status: str) -> float:
        return self.engine.metrics.requests.labels(route, status)._value.get()  # noqa: SLF001

    def settle(self) -> float:
        """The counter once nothing more is computing (two reads a chunk apart agree)."""
        last = -1.0
        while (now := self.computed()) != last:
            last = now
            time.sleep(3 * CHUNK_S)
        return now

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def live(tiny_repo: Path) -> Iterator[Live]:
    server = Live(tiny_repo)
    yield server
    server.stop()


def http_request(port: int, path: str, body: dict[str, Any], accept: str = "application/json") -> socket.socket:
    raw = orjson.dumps(body)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\naccept: {accept}\r\n"
              f"content-length: {len(raw)}\r\n\r\n".encode() + raw)
    return s


@pytest.mark.parametrize("accept", ["application/json", "application/x-npy"])
def test_http_client_gone_stops_the_work(live: Live, accept: str) -> None:
    base = live.settle()
    gone_before = live.status_count("/sample", "499")
    s = http_request(live.port, "/sample", {"n": ROWS, "seed": 1}, accept)
    time.sleep(8 * CHUNK_S)  # a few chunks computed
    at_leave = live.computed()
    assert base < at_leave < base + ROWS / 2
    s.close()  # the client hangs up
    final = live.settle()
    assert final - at_leave <= CHUNK, f"{final - at_leave} rows computed after the client left"
    deadline = time.time() + 5
    while live.status_count("/sample", "499") == gone_before and time.time() < deadline:
        time.sleep(0.05)
    assert live.status_count("/sample", "499") == gone_before + 1
    assert live.engine.scheduler.queued_rows() == 0 and live.engine.admission.inflight == 0


def test_http_other_requests_unaffected(live: Live) -> None:
    """A request beside one whose client left is answered in full."""
    live.settle()
    leaving = http_request(live.port, "/sample", {"n": ROWS, "seed": 2})
    staying = http_request(live.port, "/decode", {"z": [[0.0] * 4] * 300})
    time.sleep(4 * CHUNK_S)
    leaving.close()
    staying.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 1000:
        data += staying.recv(65536)
    assert data.startswith(b"HTTP/1.1 200")
    staying.close()


def _infer_request(rows: int) -> Any:
    req = messages.ModelInferRequest(model_name="vae-z4-decoder")
    req.inputs.add(name="z", datatype="FP32", shape=[rows, 4])
    req.raw_input_contents.append(np.zeros((rows, 4), np.float32).tobytes())
    return req


@pytest.mark.parametrize("how", ["cancel", "deadline"])
def test_grpc_cancel_and_deadline_stop_the_work(live: Live, how: str) -> None:
    base = live.settle()
    route = f"/{messages.SERVICE}/ModelInfer"
    gone_before = live.status_count(route, "499")
    with grpc.insecure_channel(f"127.0.0.1:{live.grpc_port}",
                               options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
        call = ch.unary_unary(route, request_serializer=messages.ModelInferRequest.SerializeToString,
                              response_deserializer=messages.ModelInferResponse.FromString)
        if how == "cancel":
            future = call.future(_infer_request(ROWS))
            time.sleep(8 * CHUNK_S)
            at_leave = live.computed()
            future.cancel()
            assert future.cancelled()
        else:
            with pytest.raises(grpc.RpcError) as err:
                call(_infer_request(ROWS), timeout=8 * CHUNK_S)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            at_leave = live.computed()
    assert base < at_leave < base + ROWS / 2
    final = live.settle()
    assert final - at_leave <= CHUNK, f"{final - at_leave} rows computed after the call ended"
    assert final < base + ROWS / 2
    deadline = time.time() + 5
    while live.status_count(route, "499") + live.status_count(route, "504") == gone_before and time.time() < deadline:
        time.sleep(0.05)
    assert live.engine.scheduler.queued_rows() == 0 and live.engine.admission.inflight == 0
