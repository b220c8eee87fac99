"""Batching and scheduling invariants: order, no mixing, splitting, seeds, 429 when full, 504 past the deadline;
interleaving of small and bulk requests, priority and its starvation bound, shared room, chunk sizing by time.
The scheduling tests hold the worker shut with a gate and read which rows each chunk carried: nothing in them
depends on how long anything takes."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from service.app import create_app
from service.engine.batcher import Batcher, DeadlineExceeded, QueueFull
from tests.service.conftest import make_settings


def far() -> float:
    return time.monotonic() + 30


class Recorder:
    """A forward that doubles its rows, records every batch size, and can be held shut."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        self.gate.wait(10)
        self.sizes.append(len(x))
        return x * 2


@pytest.fixture()
def executor():
    ex = ThreadPoolExecutor(1)
    yield ex
    ex.shutdown()


def test_rows_come_back_in_order_and_unmixed(executor: ThreadPoolExecutor) -> None:
    async def go() -> None:
        rec = Recorder()
        b = Batcher(rec, executor, max_batch_rows=16, max_delay_s=0, queue_rows=1000)
        rec.gate.clear()  # hold the worker so requests pile up and share batches
        inputs = [torch.arange(i * 100, i * 100 + 1 + i % 5, dtype=torch.float32).unsqueeze(1) for i in range(40)]
        tasks = [asyncio.create_task(b.submit(x, None, far())) for x in inputs]
        await asyncio.sleep(0.05)
        rec.gate.set()
        outs = await asyncio.gather(*tasks)
        for x, out in zip(inputs, outs, strict=False):
            assert torch.equal(out, x * 2)
        assert max(rec.sizes) <= 16 and len(rec.sizes) < 40  # batched, within the row limit
        await b.stop()

    asyncio.run(go())


def test_big_requests_are_split(executor: ThreadPoolExecutor) -> None:
    async def go() -> None:
        rec = Recorder()
        b = Batcher(rec, executor, max_batch_rows=8, max_delay_s=0, queue_rows=1000)
        x = torch.arange(30, dtype=torch.float32).unsqueeze(1)
        out = await b.submit(x, None, far())
        assert torch.equal(out, x * 2) and max(rec.sizes) == 8 and sum(rec.sizes) == 30
        await b.stop()

    asyncio.run(go())


def test_full_queue_refuses_at_once(executor: ThreadPoolExecutor) -> None:
    async def go() -> None:
        rec = Recorder()
        rec.gate.clear()
        b = Batcher(rec, executor, max_batch_rows=4, max_delay_s=0, queue_rows=10, share_rows=10, small_rows=0)
        first = asyncio.create_task(b.submit(torch.zeros(4, 1), None, far()))
        await asyncio.sleep(0.02)  # the worker took these 4 rows and is held
        queued = asyncio.create_task(b.submit(torch.zeros(10, 1), None, far()))
        await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        with pytest.raises(QueueFull):
            await b.submit(torch.zeros(1, 1), None, far())
        assert time.perf_counter() - t0 < 0.05
        rec.gate.set()
        await asyncio.gather(first, queued)
        await b.stop()

    asyncio.run(go())


def test_request_bigger_than_the_queue_runs_when_nothing_waits(executor: ThreadPoolExecutor) -> None:
    async def go() -> None:
        rec = Recorder()
        b = Batcher(rec, executor, max_batch_rows=4, max_delay_s=0, queue_rows=10, share_rows=10, small_rows=0)
        out = await b.submit(torch.ones(25, 1), None, far())  # 25 rows > capacity 10, queue empty
        assert out.shape == (25, 1) and float(out.sum()) == 50
        rec.gate.clear()
        held = asyncio.create_task(b.submit(torch.zeros(4, 1), None, far()))
        await asyncio.sleep(0.02)  # the worker holds those 4 rows
        waiting = asyncio.create_task(b.submit(torch.zeros(2, 1), None, far()))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull):  # now rows wait, and 25 more would overflow
            await b.submit(torch.zeros(25, 1), None, far())
        rec.gate.set()
        await asyncio.gather(held, waiting)
        await b.stop()

    asyncio.run(go())


def test_deadline_gives_deadline_exceeded(executor: ThreadPoolExecutor) -> None:
    async def go() -> None:
        rec = Recorder()
        rec.gate.clear()
        b = Batcher(rec, executor, max_batch_rows=4, max_delay_s=0, queue_rows=100)
        with pytest.raises(DeadlineExceeded):
            await b.submit(torch.zeros(2, 1), None, time.monotonic() + 0.05)
        rec.gate.set()
        await b.stop()

    asyncio.run(go())


def test_a_failed_forward_fails_only_its_batch(executor: ThreadPoolExecutor) -> None:
    calls = []

    def flaky(x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return x

    async def go() -> None:
        b = Batcher(flaky, executor, max_batch_rows=4, max_delay_s=0, queue_rows=100)
        with pytest.raises(RuntimeError, match="boom"):
            await b.submit(torch.zeros(1, 1), None, far())
        assert torch.equal(await b.submit(torch.ones(2, 1), None, far()), torch.ones(2, 1))
        await b.stop()

    asyncio.run(go())


class Chunks(Recorder):
    """Also records the rows (values) of every chunk; values identify the job they came from."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[list[int]] = []

    def __call__(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        self.gate.wait(10)
        self.chunks.append([int(v) for v in x[:, 0]])
        return x * 2


def rows(start: int, n: int) -> torch.Tensor:
    return torch.arange(start, start + n, dtype=torch.float32).unsqueeze(1)


async def held_then_released(rec: Chunks, b: Batcher, jobs: list[tuple[torch.Tensor, int]]) -> list[torch.Tensor]:
    """Submit jobs in order while the worker is held on the first chunk, then release it."""
    rec.gate.clear()
    tasks = []
    for x, priority in jobs:
        tasks.append(asyncio.create_task(b.submit(x, None, far(), priority)))
        await asyncio.sleep(0.01)  # the first job's first chunk is taken before the others arrive
    rec.gate.set()
    return await asyncio.gather(*tasks)


def test_a_small_request_rides_in_the_next_chunk_not_after_the_bulk_job(executor: ThreadPoolExecutor) -> None:
    async def go() -> None:
        rec = Chunks()
        b = Batcher(rec, executor, max_batch_rows=10, max_delay_s=0, queue_rows=10_000)
        bulk, small = rows(0, 100), rows(1000, 1)
        out = await held_then_released(rec, b, [(bulk, 0), (small, 0)])
        assert torch.equal(out[0], bulk * 2) and torch.equal(out[1], small * 2)
        assert rec.chunks[0] == list(range(10))  # taken before the small one arrived
        assert 1000 in rec.chunks[1]  # ... which rides in the very next chunk, beside bulk rows
        assert rec.chunks[1] == [1000, *range(10, 19)] or rec.chunks[1] == [*range(10, 19), 1000]
        assert sum(len(c) for c in rec.chunks) == 101 and max(len(c) for c in rec.chunks) <= 10
        await b.stop()

    asyncio.run(go())


def test_smallest_remaining_goes_first_and_every_fourth_chunk_is_shared(executor: ThreadPoolExecutor) -> None:
    async def go() -> None:
        rec = Chunks()
        b = Batcher(rec, executor, max_batch_rows=8, max_delay_s=0, queue_rows=10_000, fair_every=4)
        await held_then_released(rec, b, [(rows(0, 40), 0), (rows(100, 24), 0), (rows(200, 40), 0)])
        owners = [{v // 100 for v in chunk} for chunk in rec.chunks]
        assert owners[0] == {0}  # taken before the others arrived
        assert owners[1] == owners[2] == {1}  # the job with the fewest rows left goes first, whole chunks
        assert owners[3] == {0, 1, 2}  # a fair chunk: every waiting job gets rows
        await b.stop()

    asyncio.run(go())


def test_priority_is_served_first_but_every_fourth_chunk_ignores_it(executor: ThreadPoolExecutor) -> None:
    async def go() -> None:
        rec = Chunks()
        b = Batcher(rec, executor, max_batch_rows=4, max_delay_s=0, queue_rows=10_000, fair_every=4)
        high = [(rows(100 * (i + 1), 20), 1) for i in range(3)]  # enough high-priority rows to fill many chunks
        low = (rows(9000, 1), 5)
        await held_then_released(rec, b, [(rows(0, 4), 0), *high, low])
        served = next(i for i, c in enumerate(rec.chunks) if 9000 in c)
        assert served <= 4, rec.chunks[:6]  # the starvation bound: within fair_every chunks of arriving
        assert all(v // 100 in (1, 2, 3) for c in rec.chunks[1:served] for v in c)  # high first until then
        await b.stop()

    asyncio.run(go())


def test_one_bulk_request_cannot_fill_the_room(executor: ThreadPoolExecutor) -> None:
    async def go() -> None:
        rec = Chunks()
        rec.gate.clear()
        b = Batcher(rec, executor, max_batch_rows=10, max_delay_s=0, queue_rows=100, share_rows=25,
                    small_rows=4, small_lane_rows=8)
        bulk = asyncio.create_task(b.submit(rows(0, 1000), None, far()))  # far more rows than the room
        await asyncio.sleep(0.01)
        assert b.held_rows == 25  # it holds its share; the rest flows through as chunks finish
        smalls = [asyncio.create_task(b.submit(rows(5000 + i, 1), None, far())) for i in range(50)]
        await asyncio.sleep(0.01)  # 50 single rows beside it: no 429
        others = [asyncio.create_task(b.submit(rows(2000, 100), None, far()))]  # holds 25 more: the room is full
        await asyncio.sleep(0.01)
        assert b.held_rows == 100
        with pytest.raises(QueueFull):  # real overload is still refused at once
            await b.submit(rows(8000, 100), None, far())
        lane = asyncio.create_task(b.submit(rows(9000, 2), None, far()))  # small requests have their own lane
        await asyncio.sleep(0.01)
        rec.gate.set()
        await asyncio.gather(bulk, *smalls, *others, lane)
        assert b.held_rows == 0 and b.small_held == 0
        await b.stop()

    asyncio.run(go())


def test_chunks_are_sized_by_time_and_the_cost_adapts(executor: ThreadPoolExecutor) -> None:
    async def go() -> None:
        rec = Chunks()
        b = Batcher(rec, executor, max_batch_rows=1024, max_delay_s=0, queue_rows=10_000, target_s=0.05,
                    row_cost_s=0.005)
        assert b.chunk_rows() == 10  # 50 ms at 5 ms a row
        b._learn(20, 20 * 0.025)  # a chunk that took 25 ms a row: the cost moves towards it
        assert b.row_cost_s == pytest.approx(0.8 * 0.005 + 0.2 * 0.025)
        assert b.chunk_rows() == 5
        b.row_cost_s = 0.005
        await held_then_released(rec, b, [(rows(0, 35), 0)])
        assert len(rec.chunks[0]) == 10  # later chunks follow the cost learnt from the (fast) fake forward
        b.row_cost_s = 1e-7  # a cheap model: max_batch_rows bounds the chunk
        assert b.chunk_rows() == 1024
        await b.stop()

    asyncio.run(go())


def test_a_stream_yields_parts_as_chunks_finish_and_a_slow_reader_holds_it_back(
        executor: ThreadPoolExecutor) -> None:
    async def go() -> None:
        rec = Chunks()
        b = Batcher(rec, executor, max_batch_rows=4, max_delay_s=0, queue_rows=10_000)
        parts = b.open_stream(rows(0, 100), None, far())
        await asyncio.sleep(0.05)  # nobody reads: the job runs at most STREAM_AHEAD chunks ahead of its reader
        from service.engine.batcher import STREAM_AHEAD
        assert len(rec.chunks) == STREAM_AHEAD
        first = await parts.__anext__()  # the first part, long before the last rows are computed
        assert torch.equal(first, rows(0, 4) * 2) and len(rec.chunks) < 25
        rest = [p async for p in parts]
        assert torch.equal(torch.cat([first, *rest]), rows(0, 100) * 2)
        assert b.queued_rows == 0 and b.held_rows == 0 and not b.jobs
        await b.stop()

    asyncio.run(go())


# -- through the app, with real concurrency ---------------------------------------------------


async def _concurrent(app, requests: list[tuple[str, dict]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await asyncio.gather(*[c.post(p, json=b) for p, b in requests])


def _with_lifespan(app, coro_fn):
    async def go():
        async with app.router.lifespan_context(app):
            return await coro_fn()

    return asyncio.run(go())


def test_concurrent_single_rows_equal_one_batch(tiny_repo: Path) -> None:
    app = create_app(make_settings(tiny_repo, max_batch_rows=64))
    z = torch.randn(48, 4)

    async def go():
        single = await _concurrent(app, [("/decode", {"z": [row.tolist()]}) for row in z])
        whole = await _concurrent(app, [("/decode", {"z": z.tolist()})])
        return single, whole

    single, whole = _with_lifespan(app, go)
    rows = np.array([r.json()["images"][0] for r in single])
    np.testing.assert_allclose(rows, np.array(whole[0].json()["images"]), atol=1e-5)
    hist = app.state.engine.metrics.batch_rows.labels("vae-z4", "decode")
    assert hist._sum.get() == 96  # every row went through a batch exactly once


def test_seeded_samples_do_not_depend_on_batch_mates(tiny_repo: Path) -> None:
    app = create_app(make_settings(tiny_repo))

    async def go():
        alone = await _concurrent(app, [("/sample", {"n": 3, "seed": 42})])
        crowd = await _concurrent(app, [("/sample", {"n": 3 + i % 4, "seed": i}) for i in range(30)]
                                  + [("/sample", {"n": 3, "seed": 42})])
        return alone[0].json(), crowd[-1].json()

    alone, crowd = _with_lifespan(app, go)
    assert alone["z"] == crowd["z"]
    np.testing.assert_allclose(alone["images"], crowd["images"], atol=1e-5)


def test_overload_answers_429_with_retry_after(tiny_repo: Path) -> None:
    app = create_app(make_settings(tiny_repo, queue_rows=8, max_batch_rows=4))

    async def go():
        return await _concurrent(app, [("/sample", {"n": 4, "seed": i}) for i in range(60)])

    rs = _with_lifespan(app, go)
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 429} and 429 in codes and 200 in codes
    busy = next(r for r in rs if r.status_code == 429)
    assert busy.headers["retry-after"] == "1" and "queue full" in busy.json()["error"]


def test_deadline_answers_504(tiny_repo: Path) -> None:
    app = create_app(make_settings(tiny_repo, request_timeout_s=0.001))

    async def go():
        return await _concurrent(app, [("/sample", {"n": 500, "seed": i}) for i in range(4)])

    rs = _with_lifespan(app, go)
    assert any(r.status_code == 504 for r in rs)
    assert all(r.status_code in (200, 504) for r in rs)
    assert "deadline" in next(r for r in rs if r.status_code == 504).json()["error"]


def test_too_many_in_flight_is_429_at_the_door(tiny_repo: Path) -> None:
    app = create_app(make_settings(tiny_repo, max_inflight=3))

    async def go():
        return await _concurrent(app, [("/sample", {"n": 64, "seed": i}) for i in range(30)])

    rs = _with_lifespan(app, go)
    codes = [r.status_code for r in rs]
    assert 429 in codes and 200 in codes and set(codes) <= {200, 429}
    busy = next(r for r in rs if r.status_code == 429)
    assert "in flight" in busy.json()["error"] and busy.headers["retry-after"] == "1"


def test_sample_bigger_than_the_queue_is_served(tiny_repo: Path) -> None:
    """n above queue_rows must not get a 429 that no retry could ever pass."""
    app = create_app(make_settings(tiny_repo, queue_rows=8, max_batch_rows=4))

    async def go():
        return await _concurrent(app, [("/sample", {"n": 50, "seed": 1})])

    (r,) = _with_lifespan(app, go)
    assert r.status_code == 200, r.text
    assert len(r.json()["images"]) == 50
