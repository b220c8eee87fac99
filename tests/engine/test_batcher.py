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
from service.engine.batcher import Batcher, Budget, DeadlineExceeded, QueueFull
from tests.helpers import make_settings


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
        b = Batcher(rec, executor, max_batch_rows=16, max_delay_s=0, budget=Budget(1 << 40))
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
        b = Batcher(rec, executor, max_batch_rows=8, max_delay_s=0, budget=Budget(1 << 40))
        x = torch.arange(30, dtype=torch.float32).unsqueeze(1)
        out = await b.submit(x, None, far())
        assert torch.equal(out, x * 2) and max(rec.sizes) == 8 and sum(rec.sizes) == 30
        await b.stop()

    asyncio.run(go())


def test_admission_by_time_refuses_what_would_miss_its_deadline(executor: ThreadPoolExecutor) -> None:
    """A fake forward of known cost (10 ms a row, set, not timed): a request is taken when the rows served before
    it plus its own fit its deadline, and refused at once otherwise, with the time until it would fit."""
    async def go() -> None:
        rec = Recorder()
        rec.gate.clear()
        b = Batcher(rec, executor, max_batch_rows=4, max_delay_s=0, budget=Budget(1 << 40), row_cost_s=0.01,
                    target_s=0.04)
        b._learn = lambda rows, seconds: None  # type: ignore[method-assign]  # keep the known cost
        first = asyncio.create_task(b.submit(torch.zeros(4, 1), None, far()))
        await asyncio.sleep(0.02)  # the worker took these 4 rows and is held: one chunk in flight
        queued = asyncio.create_task(b.submit(torch.zeros(10, 1), None, far()))
        await asyncio.sleep(0.01)
        # 40 rows, 0.45 s to go: (10 ahead + 40 own) x 10 ms + the chunk in flight (40 ms) = 0.54 s
        assert b.estimate_s(40, 2) == pytest.approx(0.54)
        t0 = time.perf_counter()
        with pytest.raises(QueueFull, match="after its deadline") as refused:
            await b.submit(torch.zeros(40, 1), None, time.monotonic() + 0.45)
        assert time.perf_counter() - t0 < 0.05
        assert refused.value.retry_after_s == pytest.approx(0.09, abs=0.02)  # until 0.54 s of work fits 0.45 s
        # rows with a deadline they fit are taken; so is one row (it goes before the bulk)
        assert b.estimate_s(1, 2) == pytest.approx(0.06)
        one = asyncio.create_task(b.submit(torch.zeros(1, 1), None, time.monotonic() + 0.5))
        bulk = asyncio.create_task(b.submit(torch.zeros(100, 1), None, time.monotonic() + 30))
        await asyncio.sleep(0.01)
        # a higher priority counts every waiting row of lower levels only as its share of the fair chunks
        assert b.estimate_s(10, 1) == pytest.approx((10 + 10 // 4 + 1 // 4 + 10 // 4) * 0.01 + 0.04)
        rec.gate.set()
        await asyncio.gather(first, queued, one, bulk)
        await b.stop()

    asyncio.run(go())


def test_byte_budget_bounds_memory_and_small_requests_keep_a_lane(executor: ThreadPoolExecutor) -> None:
    """Bytes held (input and answer to come) are counted across batchers sharing one Budget; past it, 429 with
    the time until enough rows are computed to free the excess; an empty queue takes anything."""
    async def go() -> None:
        rec = Recorder()
        budget = Budget(1000)  # bytes; rows here are 4 bytes in and 4 out
        b = Batcher(rec, executor, max_batch_rows=4, max_delay_s=0, budget=budget, out_row_bytes=4,
                    row_cost_s=0.01, small_rows=2)
        b._learn = lambda rows, seconds: None  # type: ignore[method-assign]
        out = await b.submit(torch.ones(250, 1), None, far())  # 2,000 bytes > 1,000, queue empty: served
        assert out.shape == (250, 1) and budget.held == 0
        rec.gate.clear()
        held = asyncio.create_task(b.submit(torch.zeros(4, 1), None, far()))
        await asyncio.sleep(0.02)  # the worker holds those 4 rows (32 bytes still held: the job is not done)
        waiting = asyncio.create_task(b.submit(torch.zeros(100, 1), None, far()))  # 800 bytes
        await asyncio.sleep(0.01)
        assert budget.held == 832
        with pytest.raises(QueueFull, match="VAESERVE_QUEUE_BYTES") as refused:
            await b.submit(torch.zeros(25, 1), None, far())  # 200 more: 1,032 > 1,000
        # 32 bytes over; the queue frees 832 / 100 waiting rows = 8.32 bytes a row: ~3.8 rows of 10 ms
        assert refused.value.retry_after_s == pytest.approx(32 / 8.32 * 0.01, rel=0.01)
        # the next refused comes back after the first one's work has run too (25 rows x 10 ms): a virtual line
        with pytest.raises(QueueFull) as second:
            await b.submit(torch.zeros(25, 1), None, far())
        assert second.value.retry_after_s == pytest.approx(32 / 8.32 * 0.01 + 0.25, abs=0.01)
        lane = asyncio.create_task(b.submit(torch.zeros(2, 1), None, far()))  # 16 bytes: within the eighth
        await asyncio.sleep(0.01)
        other = Batcher(rec, executor, max_batch_rows=4, max_delay_s=0, budget=budget, out_row_bytes=4)
        assert budget.held == 848
        rec.gate.set()
        await asyncio.gather(held, waiting, lane)
        assert budget.held == 0
        await other.stop()
        await b.stop()

    asyncio.run(go())


def test_deadline_gives_deadline_exceeded(executor: ThreadPoolExecutor) -> None:
    async def go() -> None:
        rec = Recorder()
        rec.gate.clear()
        b = Batcher(rec, executor, max_batch_rows=4, max_delay_s=0, budget=Budget(1 << 40))
        with pytest.raises(DeadlineExceeded):
            await b.submit(torch.zeros(2, 1), None, time.monotonic() + 0.05)
        rec.gate.set()
        await b.stop()

    asyncio.run(go())


def test_one_timer_answers_each_deadline_in_its_own_time(executor: ThreadPoolExecutor) -> None:
    """The batcher's one deadline timer (Batcher._watch): a sooner deadline arriving after later ones re-arms it, a
    later one after it is answered when the timer re-arms for it, and a request with time left is still served."""
    async def go() -> None:
        rec = Recorder()
        rec.gate.clear()
        b = Batcher(rec, executor, max_batch_rows=1, max_delay_s=0, budget=Budget(1 << 40))
        t0 = time.monotonic()
        patient = asyncio.ensure_future(b.submit(torch.ones(1, 1), None, far()))
        soon = asyncio.ensure_future(b.submit(torch.zeros(1, 1), None, t0 + 0.1))
        later = asyncio.ensure_future(b.submit(torch.zeros(1, 1), None, t0 + 0.3))
        with pytest.raises(DeadlineExceeded):
            await asyncio.wait_for(soon, 2)
        assert 0.09 < time.monotonic() - t0 < 0.25 and not later.done() and not patient.done()
        with pytest.raises(DeadlineExceeded):
            await asyncio.wait_for(later, 2)
        assert 0.29 < time.monotonic() - t0 < 0.45 and not patient.done()
        rec.gate.set()
        assert torch.equal(await asyncio.wait_for(patient, 2), torch.full((1, 1), 2.0))
        assert b.budget.held == 0 and not b.jobs
        await b.stop()

    asyncio.run(go())


class ShiftedClock:
    """The batcher's `time`, running `ahead` seconds past the real clock once asked: the worker then sees a
    deadline as passed while the deadline timers (on the loop's real clock) have not fired."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.ahead

    def perf_counter(self) -> float:
        return time.perf_counter()


def test_a_job_the_worker_expires_is_answered_with_the_deadline_not_cancelled(
        executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ordering that failed a clean-clone run once: the worker retires an expired job before the waiter's
    timeout fires. The waiter must get DeadlineExceeded (504), not a CancelledError (a 500 or a dropped line)."""
    import service.engine.batcher as batcher_module

    clock = ShiftedClock()
    monkeypatch.setattr(batcher_module, "time", clock)

    async def go() -> None:
        rec = Recorder()
        rec.gate.clear()
        b = Batcher(rec, executor, max_batch_rows=1, max_delay_s=0, budget=Budget(1 << 40))
        first = asyncio.ensure_future(b.submit(torch.zeros(1, 1), None, far() + 3600))
        await asyncio.sleep(0.05)  # the first job is on the worker, held by the gate
        late = asyncio.ensure_future(b.submit(torch.zeros(1, 1), None, time.monotonic() + 5))
        stream = b.open_stream(torch.zeros(1, 1), None, time.monotonic() + 5)
        part = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)
        clock.ahead = 60.0  # the worker's next look finds both past their deadline; their timers have 5 s
        rec.gate.set()
        assert (await first).shape == (1, 1)
        with pytest.raises(DeadlineExceeded):
            await asyncio.wait_for(late, 2)  # before the fix: CancelledError
        with pytest.raises(DeadlineExceeded):
            await asyncio.wait_for(part, 2)  # before the fix: its 5 s timer
        assert b.budget.held == 0 and not b.jobs
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
        b = Batcher(flaky, executor, max_batch_rows=4, max_delay_s=0, budget=Budget(1 << 40))
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
        b = Batcher(rec, executor, max_batch_rows=10, max_delay_s=0, budget=Budget(1 << 40))
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
        b = Batcher(rec, executor, max_batch_rows=8, max_delay_s=0, budget=Budget(1 << 40), fair_every=4)
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
        b = Batcher(rec, executor, max_batch_rows=4, max_delay_s=0, budget=Budget(1 << 40), fair_every=4)
        high = [(rows(100 * (i + 1), 20), 1) for i in range(3)]  # enough high-priority rows to fill many chunks
        low = (rows(9000, 1), 5)
        await held_then_released(rec, b, [(rows(0, 4), 0), *high, low])
        served = next(i for i, c in enumerate(rec.chunks) if 9000 in c)
        assert served <= 4, rec.chunks[:6]  # the starvation bound: within fair_every chunks of arriving
        assert all(v // 100 in (1, 2, 3) for c in rec.chunks[1:served] for v in c)  # high first until then
        await b.stop()

    asyncio.run(go())


def test_chunks_are_sized_by_time_and_the_cost_adapts(executor: ThreadPoolExecutor) -> None:
    async def go() -> None:
        rec = Chunks()
        b = Batcher(rec, executor, max_batch_rows=1024, max_delay_s=0, budget=Budget(1 << 40), target_s=0.05,
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
        b = Batcher(rec, executor, max_batch_rows=4, max_delay_s=0, budget=Budget(1 << 40))
        parts = b.open_stream(rows(0, 100), None, far())
        await asyncio.sleep(0.05)  # nobody reads: the job runs at most STREAM_AHEAD chunks ahead of its reader
        from service.engine.batcher import STREAM_AHEAD
        assert len(rec.chunks) == STREAM_AHEAD
        first = await parts.__anext__()  # the first part, long before the last rows are computed
        assert torch.equal(first, rows(0, 4) * 2) and len(rec.chunks) < 25
        rest = [p async for p in parts]
        assert torch.equal(torch.cat([first, *rest]), rows(0, 100) * 2)
        assert b.queued_rows == 0 and b.budget.held == 0 and not b.jobs
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
    hist = app.state.plane._engine.metrics.batch_rows.labels("vae-z4", "decode")
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
    app = create_app(make_settings(tiny_repo, queue_bytes=1 << 20, max_batch_rows=4))

    async def go():  # each 630 kB: the megabyte holds one at a time
        return await _concurrent(app, [("/sample", {"n": 200, "seed": i}) for i in range(30)])

    rs = _with_lifespan(app, go)
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 429} and 429 in codes and 200 in codes
    busy = next(r for r in rs if r.status_code == 429)
    assert int(busy.headers["retry-after"]) >= 1 and "queue full" in busy.json()["error"]
    assert app.state.plane._engine.scheduler.budget.held == 0


def test_deadline_answers_504(tiny_repo: Path) -> None:
    app = create_app(make_settings(tiny_repo, request_timeout_s=0.001))

    async def go():
        return await _concurrent(app, [("/sample", {"n": 500, "seed": i}) for i in range(4)])

    rs = _with_lifespan(app, go)
    assert any(r.status_code == 504 for r in rs)
    assert all(r.status_code in (200, 429, 504) for r in rs)  # 429: the work ahead would make it late
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
    """A request above the byte budget must not get a 429 that no retry could ever pass."""
    app = create_app(make_settings(tiny_repo, queue_bytes=1 << 20, max_batch_rows=4))

    async def go():  # 1,000 rows: 3.1 MB of answer
        return await _concurrent(app, [("/sample", {"n": 1000, "seed": 1})])

    (r,) = _with_lifespan(app, go)
    assert r.status_code == 200, r.text
    assert len(r.json()["images"]) == 1000


def test_a_fair_chunk_with_every_stream_waiting_for_its_reader(executor: ThreadPoolExecutor) -> None:
    """Every job's reader behind (nothing to schedule) at the turn of a fair chunk: the worker sleeps, it does not
    die (a ZeroDivisionError here once stopped every request of the batcher)."""
    async def go() -> None:
        b = Batcher(Recorder(), executor, max_batch_rows=4, max_delay_s=0, budget=Budget(1 << 40), fair_every=2)
        parts = b.open_stream(rows(0, 100), None, far())
        await asyncio.sleep(0.05)  # nobody reads: STREAM_AHEAD chunks, then the line is empty on every turn
        assert b._task is not None and not b._task.done()
        got = [p async for p in parts]
        assert torch.equal(torch.cat(got), rows(0, 100) * 2)
        await b.stop()

    asyncio.run(go())


def test_small_quick_chunks_run_on_the_loop_and_slow_ones_on_the_worker(
        executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk of a few rows whose forward is quick runs on the event loop's thread (the hop costs more than it);
    after a slow forward the next goes to the worker thread, and a quick one there brings them back; a big chunk
    always goes to the worker, so the loop is never held long. (Bounds widened tenfold: a busy machine's timing noise
    must not decide the test.)"""
    import service.engine.batcher as batcher_module

    monkeypatch.setattr(batcher_module, "INLINE_MAX_S", 0.005)
    threads: list[str] = []
    delay = [0.0]

    def forward(x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        threads.append(threading.current_thread().name)
        time.sleep(delay[0])
        return x * 2

    async def go() -> None:
        b = Batcher(forward, executor, max_batch_rows=64, max_delay_s=0.002, budget=Budget(1 << 40),
                    row_cost_s=1e-6, inline_rows=8)
        await b.submit(torch.zeros(2, 1), None, far())  # quick: on the loop
        delay[0] = 0.1
        await b.submit(torch.zeros(2, 1), None, far())  # on the loop, and slow: the next goes to the worker
        delay[0] = 0.0
        await b.submit(torch.zeros(2, 1), None, far())  # on the worker, and quick: the next comes back
        await b.submit(torch.zeros(2, 1), None, far())
        await b.submit(torch.zeros(32, 1), None, far())  # more rows than inline_rows: the worker
        await b.stop()

    asyncio.run(go())
    main = threading.main_thread().name
    assert [t == main for t in threads] == [True, True, False, True, False]


def test_rows_that_trickle_in_a_few_loop_turns_apart_share_one_forward(executor: ThreadPoolExecutor) -> None:
    """grpcio's asyncio server walks each call to its handler over several turns of the loop, one call at a time;
    the batcher waits out a few empty turns before cutting a chunk, so calls already on their way share a forward
    (with one turn's patience each of these was its own forward); a quiet loop still cuts at once."""
    rec = Recorder()

    async def go() -> None:
        b = Batcher(rec, executor, max_batch_rows=64, max_delay_s=0.002, budget=Budget(1 << 40))
        calls = []
        for _ in range(6):
            calls.append(asyncio.ensure_future(b.submit(torch.ones(1, 1), None, far())))
            for _ in range(3):  # the turns a gRPC call takes from its accept to the queue
                await asyncio.sleep(0)
        outs = await asyncio.gather(*calls)
        assert all(torch.equal(o, torch.full((1, 1), 2.0)) for o in outs)
        t0 = time.perf_counter()
        await b.submit(torch.ones(1, 1), None, far())  # alone: waits only its few empty turns
        assert time.perf_counter() - t0 < 0.5
        await b.stop()

    asyncio.run(go())
    assert rec.sizes == [6, 1]


def test_a_lone_request_on_a_quiet_server_skips_the_queue_until_others_come(executor: ThreadPoolExecutor) -> None:
    """After LONELY_CHUNKS chunks of one request each, a lone small request runs its forward at once, in its own
    task's first step (no hand-off to the batcher's task, no settle, no future); every PROBE_EVERY-th takes the
    queue, so calls that trickle in unseen (gRPC's) find a settle that gathers them and batching comes back."""
    from service.engine.batcher import LONELY_CHUNKS, PROBE_EVERY

    rec = Recorder()

    async def go() -> None:
        b = Batcher(rec, executor, max_batch_rows=64, max_delay_s=0.002, budget=Budget(1 << 40), inline_rows=8,
                    row_cost_s=1e-6)
        for _ in range(LONELY_CHUNKS):  # the streak that says the server is quiet, through the queue
            await b.submit(torch.ones(1, 1), None, far())
        first_step = []
        for i in range(2 * PROBE_EVERY):
            call = asyncio.ensure_future(b.submit(torch.full((1, 1), float(i)), None, far()))
            await asyncio.sleep(0)  # one turn: the call's first step
            first_step.append(call.done())
            assert torch.equal(await call, torch.full((1, 1), 2.0 * i))
        assert first_step.count(False) == 2  # the probes, PROBE_EVERY apart
        assert first_step[PROBE_EVERY - 1] is False and all(first_step[:PROBE_EVERY - 1])
        with pytest.raises(DeadlineExceeded):  # the lone path keeps the deadline
            await b.submit(torch.ones(1, 1), None, time.monotonic() - 1)
        rec.sizes.clear()
        calls = []
        for _ in range(48):  # then a crowd that trickles in as gRPC's calls do
            calls.append(asyncio.ensure_future(b.submit(torch.ones(1, 1), None, far())))
            for _ in range(3):
                await asyncio.sleep(0)
        await asyncio.gather(*calls)
        await b.stop()

    asyncio.run(go())
    assert sum(rec.sizes) == 48
    assert len(rec.sizes) <= PROBE_EVERY + 4  # lone forwards until a probe's settle gathers the crowd
    assert max(rec.sizes) > 1
