"""Dynamic batching with fair scheduling: concurrent requests for one (model, operation) share forward
passes, and a small request never waits behind a bulk one.

Rows, not requests, are counted. Each request is a job; each forward ("chunk") is filled smallest
remaining job first, so a single-row request rides in the next chunk after the one in flight, however
many rows a bulk job still has, and of two bulk jobs one finishes before the other (both finishing late
would help neither). Every `fair_every`-th chunk is filled by deficit round-robin instead (every waiting
job gets a quantum, priority ignored): no job waits more than that many chunks for rows, however large or
low-priority it is (the starvation bound). Priority (1 = high, 0 = default, larger = lower, as in Triton)
orders the other chunks.

Chunks are sized by time as well as rows: at most `target_s` of forward time, from a per-row cost measured
at load (`row_cost_s`) and adapted from every chunk's own timing, so a chunk of the conv default is ~30
rows and one of the MLP 1,024.

Admission is by time: a job is taken when its estimated finish (the rows that will be served before its own, at
its priority, plus its own, times the learned per-row cost, plus the chunk in flight) fits its deadline; otherwise
QueueFull at once, saying how long until it would fit. What bounds memory is bytes held (each queued job's input
and its answer to come), counted in a Budget shared by every batcher of the engine; requests of at most
`small_rows` rows may go an eighth past it (the interactive lane). An empty queue takes anything, so a request
larger than any bound is served rather than refused forever.

A quiet server never waits: a chunk is cut as soon as no other request is on its way (`arrivals`), and once the
last few chunks held one request each, a lone small request skips the queue and runs its forward in its own task
(`_alone`), so batching costs nothing at concurrency 1. Forwards run on the runtime's single worker thread, the
event loop only moving futures; except, on a CPU, chunks of at most `inline_rows` rows, whose forward costs less
than the hop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import torch

from service.engine.domain import DeadlineExceeded


class QueueFull(Exception):
    """This request would not finish in time, or memory is spoken for: the caller answers 429 with Retry-After."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # the estimated time until the same request would be taken


@dataclass
class Budget:
    """Bytes held by queued requests across the batchers of one engine: inputs waiting and answers to come."""

    limit: int
    held: int = 0


Forward = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]
DEFAULT_LEVEL = 2  # priority 0 (unset) sits between 1 (high) and 2+ (low)
COST_EWMA = 0.2  # weight of each new chunk's per-row cost
INLINE_MAX_S = 0.0005  # a chunk expected to take longer never blocks the event loop (Batcher._inline)
SETTLE_TURNS = 256  # loop turns a chunk may wait while they bring rows (Batcher._settle)
SETTLE_PATIENCE = 6  # turns in a row without new rows that end the wait: more than a gRPC call's walk to the queue
SETTLE_MAX_S = 0.005  # and never longer than this
LONELY_CHUNKS = 4  # chunks in a row of one request each before a lone request may skip the queue (Batcher._alone)
PROBE_EVERY = 16  # and every this-many-th of those goes through the queue anyway, to see whether others come
STREAM_AHEAD = 4  # a streamed job gets no new chunk while this many finished parts wait for its reader


def level(priority: int) -> int:
    return priority if priority > 0 else DEFAULT_LEVEL


@dataclass(eq=False)
class _Job:
    x: torch.Tensor  # (n, ...) all its rows
    n: int  # len(x), kept as an int: Tensor.__len__ costs a microsecond
    labels: torch.Tensor | None
    deadline: float  # time.monotonic() after which nobody waits for it
    level: int
    fut: asyncio.Future[torch.Tensor]
    submitted: float = field(default_factory=time.monotonic)
    handed: int = 0  # rows given to chunks so far (in order)
    parts: list[torch.Tensor] = field(default_factory=list)  # outputs, in row order
    done_rows: int = 0
    bytes: int = 0  # charged against the Budget while the job is queued
    sink: asyncio.Queue[torch.Tensor | BaseException] | None = None  # streaming: parts go here as they finish

    @property
    def waiting(self) -> int:
        return self.n - self.handed


class Batcher:
    def __init__(self, forward: Forward, executor: Executor, max_batch_rows: int, max_delay_s: float,
                 budget: Budget, out_row_bytes: int = 0, arrivals: Callable[[], int] = lambda: 0,
                 on_batch: Callable[[int], None] | None = None, target_s: float = 0.05,
                 row_cost_s: float = 0.0, fair_every: int = 4, small_rows: int = 64,
                 on_wait: Callable[[int, float], None] | None = None, inline_rows: int = 0) -> None:
        self.forward = forward  # runs on the worker thread: (rows, labels) -> outputs, row-aligned
        self.executor = executor
        self.max_batch_rows = max_batch_rows
        self.max_delay_s = max_delay_s
        self.budget = budget
        self.out_row_bytes = out_row_bytes  # bytes of one row's answer (the forward's output)
        self.small_rows = small_rows  # requests this small may go an eighth past the byte budget
        self.target_s = target_s  # forward time one chunk may take
        self.row_cost_s = row_cost_s  # seconds of forward per row (0 = unknown: chunks of max_batch_rows)
        self.fair_every = fair_every
        self.arrivals = arrivals  # requests received but not yet queued anywhere
        self.on_batch = on_batch
        self.on_wait = on_wait  # (priority level, seconds from submit to first rows in a chunk)
        # chunks this small run on the event loop's own thread: the hop to the worker thread and back (a wake-up,
        # the GIL passed twice, a self-pipe write) cost more than the forward of a few rows (CPU only)
        self.inline_rows = inline_rows
        self._inline_ok = True
        self._lonely = 0  # chunks in a row that held one request: the server is quiet (Batcher._alone)
        self._alone_runs = 0
        self.jobs: list[_Job] = []  # in service order: served jobs move to the back
        self.queued_rows = 0  # rows waiting for a chunk, all jobs
        self.busy = False  # a chunk is on the worker now
        self.open_streams = 0  # streams of blocks reading from this batcher (Engine.stream): whatever the moment
        # between two of its blocks, a stream keeps its model from being released (Scheduler.retire)
        self.horizon = 0.0  # time.monotonic() by which the requests already told to come back would have run
        self.chunks = 0
        self._timer: asyncio.TimerHandle | None = None  # the one deadline timer (Batcher._watch)
        self._timer_at = 0.0
        self._wake = asyncio.Event()  # set when a job arrives
        self._more = asyncio.Event()  # set on every submit, for the worker's short gathering wait
        self._task: asyncio.Task[None] | None = None

    # -- what callers see ---------------------------------------------------------------------

    def chunk_rows(self) -> int:
        """The most rows in one forward: max_batch_rows, or fewer where that would pass target_s."""
        if self.row_cost_s <= 0:
            return self.max_batch_rows
        return max(1, min(self.max_batch_rows, int(self.target_s / self.row_cost_s)))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._timer is not None and not self.jobs:  # a request still waiting keeps its deadline's answer coming
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def _enqueue(self, x: torch.Tensor, labels: torch.Tensor | None, deadline: float, priority: int,
                 stream: bool, admitted: bool = False) -> _Job:
        job = _Job(x, x.shape[0], labels, deadline, level(priority), asyncio.get_running_loop().create_future())
        if stream:
            job.sink = asyncio.Queue()
        self._admit(job, admitted)  # QueueFull now, before anything is answered
        self.start()
        self.jobs.append(job)
        self.queued_rows += job.n
        self._wake.set()
        self._more.set()
        return job

    def open_stream(self, x: torch.Tensor, labels: torch.Tensor | None, deadline: float,
                    priority: int = 0, admitted: bool = False) -> AsyncIterator[torch.Tensor]:
        """Queue rows x now (QueueFull at once, unless `admitted`: the next block of a request already taken) and
        return their outputs as an iterator of parts, in row order, each yielded as soon as its chunk finishes; a
        slow reader holds the job back (bounded memory)."""
        return self._parts(self._enqueue(x, labels, deadline, priority, stream=True, admitted=admitted))

    async def _parts(self, job: _Job) -> AsyncIterator[torch.Tensor]:
        assert job.sink is not None
        loop = asyncio.get_running_loop()
        delivered = 0
        try:
            while delivered < job.n:
                try:
                    async with asyncio.timeout_at(loop.time() + (job.deadline - time.monotonic())):
                        part = await job.sink.get()
                except TimeoutError as exc:
                    raise DeadlineExceeded("request deadline passed while streaming") from exc
                if isinstance(part, BaseException):
                    raise part
                self._wake.set()  # room in the reader's buffer: the job may be scheduled again
                delivered += len(part)
                yield part
        finally:
            self._retire(job)

    async def submit(self, x: torch.Tensor, labels: torch.Tensor | None, deadline: float,
                     priority: int = 0) -> torch.Tensor:
        """Queue rows x (n, ...) and wait for their outputs, in order."""
        if self._alone(x.shape[0]):
            return self._run_alone(x, labels, deadline, level(priority))
        job = self._enqueue(x, labels, deadline, priority, stream=False)
        self._watch(deadline)  # the batcher's one timer answers it with DeadlineExceeded (_expire) if it is late
        try:
            return await job.fut
        finally:
            self._retire(job)

    # -- deadlines ------------------------------------------------------------------------------

    def _watch(self, deadline: float) -> None:
        """Arm the batcher's one deadline timer for this deadline when it is sooner than the one armed. One timer
        for every waiting request rather than a timer each: a request's own asyncio.timeout (a timer handle made,
        pushed on the heap and cancelled, and the task's cancel bookkeeping) was the largest single cost of a
        single-row gRPC call at concurrency 64 (benchmarks/handler_cost.py: 110 -> 81 us a call without it);
        deadlines nearly always arrive in order, so nearly every request only compares two floats."""
        if self._timer is not None and deadline >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer_at = deadline
        # at least a millisecond ahead: uvloop's clock has millisecond steps, an earlier firing would re-arm at once
        self._timer = loop.call_at(loop.time() + max(deadline - time.monotonic(), 0.001), self._deadline_passed)

    def _deadline_passed(self) -> None:
        """The timer: answer every job past its deadline (queued or in a forward) with DeadlineExceeded, then arm
        for the soonest deadline left."""
        self._timer = None
        now = time.monotonic()
        for job in [j for j in self.jobs if j.deadline <= now and j.sink is None]:
            self._expire(job)
        waiting = [j.deadline for j in self.jobs if j.sink is None]
        if waiting:
            self._watch(min(waiting))

    # -- admission ------------------------------------------------------------------------------

    def estimate_s(self, n: int, level: int) -> float:
        """Seconds until a new job of n rows at this level would finish: the rows served before its own (all of a
        higher level's; of its own level, what smallest-remaining-first serves first, at most n of each job; of a
        lower level, their share of the fair chunks) and its own, times the per-row cost, plus the chunk in flight."""
        ahead = 0
        for j in self.jobs:
            w = j.waiting
            if j.level < level:
                ahead += w
            elif j.level == level:
                ahead += min(w, n)
            elif self.fair_every:
                ahead += min(w, n) // self.fair_every
        return (ahead + n) * self.row_cost_s + (self.target_s if self.busy else 0.0)

    def wait_s(self) -> float:
        """Seconds of work waiting now (Prometheus' estimated wait): every waiting row, plus the chunk in flight."""
        return self.queued_rows * self.row_cost_s + (self.target_s if self.busy else 0.0)

    def _come_back(self, job: _Job, fits_in_s: float) -> float:
        """Retry-After for a refused job: when it would fit, counting the work of those already refused before it
        (a virtual line), so a crowd told to come back returns spread over the time the queue takes to drain, not
        all at once to be refused again."""
        now = time.monotonic()
        self.horizon = max(self.horizon, now + fits_in_s)
        retry = self.horizon - now
        self.horizon += job.n * self.row_cost_s
        return retry

    def _job_bytes(self, job: _Job) -> int:
        """Input and answer: the whole answer, or for a stream the parts its reader may leave waiting."""
        out_rows = job.n if job.sink is None else min(job.n, (STREAM_AHEAD + 1) * self.chunk_rows())
        labels = 0 if job.labels is None else job.labels.element_size() * job.n
        return job.x.element_size() * job.x.numel() + labels + out_rows * self.out_row_bytes

    def _admit(self, job: _Job, admitted: bool = False) -> None:
        """Take the job, or QueueFull saying how long until it would fit. An empty queue takes anything: refusing
        then would make a retry pointless."""
        job.bytes = self._job_bytes(job)
        if self.jobs and not admitted:
            room = job.deadline - time.monotonic()
            # every waiting row before this one is the bound: when even that fits (nearly always), skip the count
            if self.row_cost_s > 0 and (self.queued_rows + job.n) * self.row_cost_s + self.target_s > room:
                est = self.estimate_s(job.n, job.level)
                # refused only when the work ahead is what makes it late: a request too big for its own deadline
                # would never fit, so it is taken and the deadline answers it (504), as on an empty queue
                if est > room >= job.n * self.row_cost_s:
                    raise QueueFull(f"queue full: this request would finish in about {est:.1f}s, after its "
                                    f"deadline ({room:.1f}s); {self.queued_rows} rows wait in {len(self.jobs)} "
                                    "requests", self._come_back(job, est - room))
            limit = self.budget.limit * (1.125 if job.n <= self.small_rows else 1.0)
            over = self.budget.held + job.bytes - limit
            if over > 0:
                per_row = max(1.0, self.budget.held / max(1, self.queued_rows))  # bytes one computed row frees
                raise QueueFull(f"queue full: {self.budget.held} bytes held by queued requests and {job.bytes} "
                                f"more asked, {self.budget.limit} allowed (VAESERVE_QUEUE_BYTES)",
                                self._come_back(job, over / per_row * self.row_cost_s))
        self.budget.held += job.bytes

    def _retire(self, job: _Job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
            self.queued_rows -= job.waiting
        if job.bytes:
            self.budget.held -= job.bytes
            job.bytes = 0
        if not job.fut.done():
            job.fut.cancel()

    def _expire(self, job: _Job) -> None:
        """Retire a job past its deadline (found by the worker, or by the deadline timer), answering it with the
        deadline error: its waiter must see DeadlineExceeded, never a bare cancellation (that escaped the handlers
        as a 500 or a dropped connection)."""
        if not job.fut.done():
            exc = DeadlineExceeded("request deadline passed while queued or computing")
            if job.sink is not None:
                job.sink.put_nowait(exc)  # the stream's reader raises it; nobody awaits a stream's future
                job.fut.cancel()
            else:
                job.fut.set_exception(exc)
        self._retire(job)

    # -- the chunk ------------------------------------------------------------------------------

    def _groups(self) -> tuple[list[list[_Job]], bool]:
        """Jobs with rows waiting, grouped in the order groups are served this chunk, and whether this is a fair
        chunk: one group per priority level, highest first; every fair_every-th chunk, one group of all."""
        now = time.monotonic()
        for job in [j for j in self.jobs if j.fut.done() or j.deadline < now]:
            self._expire(job)
        line = [j for j in self.jobs if j.waiting and (j.sink is None or j.sink.qsize() < STREAM_AHEAD)]
        if self.fair_every and self.chunks % self.fair_every == self.fair_every - 1:
            return [line], True
        return [[j for j in line if j.level == lv] for lv in sorted({j.level for j in line})], False

    def _take(self) -> list[tuple[_Job, int, int]]:
        """(job, first row, end row) slices for one chunk.

        Ordinary chunks: smallest remaining first, within each priority level (a stable sort keeps the line
        for equals): a single row goes in the next chunk, and of two bulk requests one finishes before the other
        instead of both finishing late. Fair chunks (every fair_every-th): deficit round-robin over every waiting
        job, priority ignored: each gets a quantum (the chunk's rows / the jobs waiting), the rest fills in line
        order, so no job, however large or low, waits more than fair_every chunks for rows."""
        room = self.chunk_rows()
        plan: dict[_Job, int] = {}
        groups, fair = self._groups()
        for group in groups:  # higher priority levels first; the rest of the chunk goes on down
            if room <= 0:
                break
            if not group:  # a fair chunk while every job with rows waits for its reader
                continue
            if fair:
                quantum = max(1, room // len(group))
                for job in group:
                    take = min(job.waiting, quantum, room)
                    if take > 0:
                        plan[job] = take
                        room -= take
            else:
                group = sorted(group, key=lambda j: j.waiting)
            for job in group:  # fill: whatever room is left, in this order
                extra = min(job.waiting - plan.get(job, 0), room)
                if extra > 0:
                    plan[job] = plan.get(job, 0) + extra
                    room -= extra
        out = []
        for job, rows in plan.items():
            out.append((job, job.handed, job.handed + rows))
            if job.handed == 0 and self.on_wait is not None:
                self.on_wait(job.level, time.monotonic() - job.submitted)
            job.handed += rows
            self.queued_rows -= rows
        served = set(plan)  # round-robin: those served go to the back of the line, in their order
        self.jobs = [j for j in self.jobs if j not in served] + [j for j in self.jobs if j in served]
        self.chunks += 1
        return out

    async def _gather_more(self) -> None:
        """Wait up to max_delay for rows that are already on their way (never on a quiet server)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.max_delay_s
        while self.queued_rows < self.chunk_rows() and self.arrivals() > 0 and loop.time() < end:
            self._more.clear()
            try:
                async with asyncio.timeout_at(end):
                    await self._more.wait()
            except TimeoutError:
                return

    async def _settle(self) -> None:
        """Let the event loop deliver what is already in hand before cutting the chunk: a turn of the loop at a time
        while turns bring more rows (at most SETTLE_TURNS or SETTLE_MAX_S; SETTLE_PATIENCE turns in a row without
        one end it). grpcio's asyncio server accepts one call per turn of the loop and walks it to its handler over
        about four more (the accept's completion, the task, the message's receipt: benchmarks/kserve_compare.py's
        profile in docs/benchmarks.md), so a patience of one turn cut every forward at one row and each call paid a
        whole forward; six turns let the calls already in flight arrive. A quiet server pays six empty turns
        (microseconds: HTTP and gRPC p50 at concurrency 1 did not move)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + SETTLE_MAX_S
        idle = 0
        for _ in range(SETTLE_TURNS):
            before = self.queued_rows
            await asyncio.sleep(0)
            if self.queued_rows >= self.chunk_rows():
                return
            idle = idle + 1 if self.queued_rows == before else 0
            if idle >= SETTLE_PATIENCE or loop.time() > end:
                return

    def _alone(self, rows: int) -> bool:
        """A request on a quiet server: nothing queued, in flight or on its way, the last LONELY_CHUNKS chunks one
        request each, and a forward small enough for the loop's thread. Such a request would be a chunk of its own
        anyway; through the queue it also paid the hand-off to the batcher's task, the settle's empty turns and the
        future's wake-up (about eight loop turns: benchmarks/serve.py at c=1). gRPC's arrivals are invisible
        until their handler runs (Batcher._settle), so every PROBE_EVERY-th lone request takes the queue and its
        settle: if others were on their way they join its chunk, which ends the streak."""
        if self.jobs or self.busy or self._lonely < LONELY_CHUNKS or self.arrivals() > 0 or not self._inline(rows):
            return False
        self._alone_runs += 1
        return self._alone_runs % PROBE_EVERY != 0

    def _run_alone(self, x: torch.Tensor, labels: torch.Tensor | None, deadline: float, lvl: int) -> torch.Tensor:
        """The forward of a lone request, here and now, counted like a chunk of one job."""
        if deadline < time.monotonic():
            raise DeadlineExceeded("request deadline passed while queued or computing")
        rows = x.shape[0]  # as in the chunk loop: Tensor.__len__ costs a microsecond
        if self.on_batch is not None:
            self.on_batch(rows)
        if self.on_wait is not None:
            self.on_wait(lvl, 0.0)
        out, seconds = self._inline_forward(x, labels)  # nothing else runs meanwhile: no need to say busy
        self._learn(rows, seconds)
        self.chunks += 1
        return out

    def _inline(self, rows: int) -> bool:
        """Run this chunk on the event loop's thread: few rows, an expected forward under INLINE_MAX_S, and the
        last inline forward as quick (a slow model, or a slow moment, goes to the worker thread)."""
        return rows <= self.inline_rows and self._inline_ok and self.row_cost_s * rows <= INLINE_MAX_S

    def _inline_forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        """The forward on the loop's own thread, timed; a slow one sends the next small chunk to the worker."""
        out, seconds = self._timed_forward(x, labels)
        self._inline_ok = seconds <= 2 * INLINE_MAX_S
        return out, seconds

    def _timed_forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        """The forward on the worker thread, timed there (time queued behind other models does not count)."""
        t0 = time.perf_counter()
        out = self.forward(x, labels)
        return out, time.perf_counter() - t0

    def _learn(self, rows: int, seconds: float) -> None:
        """Adapt the per-row cost from a chunk big enough for rows to dominate its fixed overhead."""
        if rows >= 8 or self.row_cost_s <= 0:
            cost = seconds / rows
            self.row_cost_s = cost if self.row_cost_s <= 0 else (1 - COST_EWMA) * self.row_cost_s + COST_EWMA * cost

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.queued_rows:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.max_delay_s > 0:
                await self._gather_more()
                await self._settle()
            plan = self._take()
            if not plan:  # every job with rows waits for its reader: sleep until one reads or a job arrives
                self._wake.clear()
                await self._wake.wait()
                continue
            self._lonely = self._lonely + 1 if len(plan) == 1 and not self.queued_rows else 0
            # a job wholly in this chunk goes in as it is: a slice costs a microsecond, and most jobs are one row
            xs = [job.x if b - a == job.n else job.x[a:b] for job, a, b in plan]
            x = xs[0] if len(xs) == 1 else torch.cat(xs)
            rows = x.shape[0]  # Tensor.__len__ is Python and costs a microsecond
            labels = None
            if plan[0][0].labels is not None:
                labels = torch.cat([job.labels[a:b] for job, a, b in plan if job.labels is not None])
            if self.on_batch is not None:
                self.on_batch(rows)
            self.busy = True
            try:
                if self._inline(rows):
                    out, seconds = self._inline_forward(x, labels)
                    for job, _, _ in plan:  # the loop was busy with it: no timer fired, so look at the clock
                        if not job.fut.done() and job.deadline < time.monotonic():
                            self._expire(job)
                else:
                    out, seconds = await loop.run_in_executor(self.executor, self._timed_forward, x, labels)
                    if rows <= self.inline_rows:  # quick again: small chunks may come back to the loop
                        self._inline_ok = seconds <= INLINE_MAX_S
            except Exception as exc:  # a failed forward fails its own jobs, never the loop
                for job, _, _ in plan:
                    if job.sink is not None:
                        job.sink.put_nowait(exc)
                    if not job.fut.done():
                        job.fut.set_exception(exc)
                continue
            finally:
                self.busy = False
            self._learn(rows, seconds)
            offset = 0
            for job, a, b in plan:
                part = out if len(plan) == 1 else out[offset: offset + b - a]
                offset += b - a
                if job.fut.done():
                    continue
                job.done_rows += b - a
                if job.sink is not None:  # streamed: the reader takes it from here
                    job.sink.put_nowait(part)
                    if job.done_rows == job.n:
                        job.fut.set_result(part)
                    continue
                job.parts.append(part)
                if job.done_rows == job.n:
                    job.fut.set_result(job.parts[0] if len(job.parts) == 1 else torch.cat(job.parts))
