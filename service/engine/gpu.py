"""The CUDA-only parts of a forward: batches split over CUDA streams, and CUDA graphs for small batches.

Both sit behind the runtime's one `_forward` seam and are off unless asked for (`cuda_streams`, `cuda_graphs`):
they have CPU tests of their logic (tests/service/test_gpu.py: the CUDA calls are injected) but were built
without a GPU at hand; `benchmarks/cuda_check.sh` measures them on and off in one run.

- Streams: a batch of at least 2 x `min_rows` rows is cut into one part per stream. Each part's host-to-device
  copy, forward and device-to-host copy (into page-locked memory) are queued on its own stream, so the copies of
  one part overlap the compute of another: two batches in flight on the device instead of copy, compute, copy.
- Graphs: the forward of a small batch is mostly kernel-launch time. A CUDA graph per (model, operation,
  bucket) replays the whole forward in one launch; a batch is padded up to the next bucket (powers of two up to
  `max_rows`), rows being independent, and its rows are copied out of the graph's static output (which the next
  replay overwrites).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from service.engine.ops import Op

log = logging.getLogger(__name__)
Compute = Callable[[Any, str, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def split_rows(rows: int, parts: int, min_rows: int) -> list[tuple[int, int]]:
    """Row ranges [a, b) for `parts` streams: equal parts of at least `min_rows` rows (one part when too few)."""
    parts = max(1, min(parts, rows // max(min_rows, 1)))
    step = -(-rows // parts)
    return [(a, min(a + step, rows)) for a in range(0, rows, step)]


def buckets(max_rows: int) -> list[int]:
    """Batch sizes that get a graph: 1, 2, 4, ... up to max_rows."""
    out, b = [], 1
    while b <= max_rows:
        out.append(b)
        b *= 2
    return out


@dataclass
class Captured:
    """One graph: its static input (and labels), its static output, and replay()."""

    x: torch.Tensor
    labels: torch.Tensor | None
    out: torch.Tensor
    replay: Callable[[], None]


def capture_cuda_graph(module: Any, op: Op, x: torch.Tensor, labels: torch.Tensor | None,
                       compute: Compute) -> Captured:
    """Record compute(module, op, x, labels) as a CUDA graph over the static tensors x and labels (on the device)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the graph: lazy initialisation must not be recorded
        for _ in range(2):
            compute(module, op, x, labels)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = compute(module, op, x, labels)
    return Captured(x, labels, out, graph.replay)


class GraphCache:
    """Graphs keyed by (model key, operation, bucket), captured on a bucket's first use."""

    def __init__(self, max_rows: int, capture: Callable[..., Captured] = capture_cuda_graph) -> None:
        self.sizes = buckets(max_rows)
        self.capture = capture
        self.graphs: dict[tuple[Any, str, int], Captured | None] = {}  # None: this forward cannot be captured

    def drop(self, key: Any) -> None:
        """Forget a model's graphs (it is no longer served): their static buffers and the weights they read."""
        for k in [k for k in self.graphs if k[0] == key]:
            del self.graphs[k]

    def bucket(self, rows: int) -> int | None:
        return next((b for b in self.sizes if b >= rows), None)

    def run(self, key: Any, module: Any, op: Op, x: torch.Tensor, labels: torch.Tensor | None,
            compute: Compute) -> torch.Tensor | None:
        """compute's rows for x (already on the device) through a graph; None when x is larger than every bucket."""
        size = self.bucket(len(x))
        if size is None:
            return None
        if (key, op, size) not in self.graphs:
            static_x = x.new_zeros((size, *x.shape[1:]))
            static_l = None if labels is None else labels.new_zeros((size, *labels.shape[1:]))
            try:
                self.graphs[(key, op, size)] = self.capture(module, op, static_x, static_l, compute)
            except RuntimeError as exc:  # e.g. a forward that synchronises with the host (one_hot checks its labels)
                log.warning("no CUDA graph for %s %s at %d rows (%s): plain forwards instead", key, op, size,
                            str(exc).splitlines()[0][:160])
                self.graphs[(key, op, size)] = None
        g = self.graphs[(key, op, size)]
        if g is None:
            return None
        g.x[: len(x)].copy_(x)  # rows past len(x) keep stale values: rows are independent, and sliced off
        if labels is not None and g.labels is not None:
            g.labels[: len(x)].copy_(labels)
        g.replay()
        return g.out[: len(x)].clone()  # the next replay overwrites g.out


def pipelined(module: Any, op: Op, x: torch.Tensor, labels: torch.Tensor | None, streams: list[Any],
              min_rows: int, to_device: Callable[[torch.Tensor, bool], torch.Tensor], compute: Compute,
              stream_context: Callable[[Any], Any], sync: Callable[[Any], None], pin: bool) -> torch.Tensor:
    """compute over x in one part per stream, each part's copies and forward queued on its own stream; returns the
    rows on the host in order. x and labels are host tensors already in reused page-locked buffers (the caller
    keeps them unchanged until this returns: every stream is synchronised before it does)."""
    ranges = split_rows(len(x), len(streams), min_rows)
    host: torch.Tensor | None = None
    used = []
    for stream, (a, b) in zip(streams, ranges, strict=False):
        with stream_context(stream):
            lab = None if labels is None else to_device(labels[a:b], False)
            out = compute(module, op, to_device(x[a:b], True), lab)
            if out.dtype not in (torch.uint8, torch.float32):
                out = out.float()
            if host is None:  # one host answer for every part: no concatenation afterwards
                host = torch.empty((len(x), *out.shape[1:]), dtype=out.dtype, pin_memory=pin)
            host[a:b].copy_(out, non_blocking=pin)
        used.append(stream)
    for stream in used:
        sync(stream)
    assert host is not None
    return host
