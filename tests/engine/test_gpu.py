"""The CUDA-only paths of a forward (service/gpu.py), their logic run on the CPU with the CUDA calls injected:
batches split over streams, and CUDA graphs for small batches. No timing; nothing here needs a GPU."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import torch

from model import ModelSpec, build, script
from service.engine.gpu import Captured, GraphCache, buckets, pipelined, split_rows
from service.engine.runtime import compute


@pytest.fixture(scope="module")
def modules() -> dict[str, Any]:
    torch.manual_seed(0)
    vae = script(build(ModelSpec("vae", latent_dim=4, arch="mlp", width=16, depth=2, prior="flow")))
    cvae = script(build(ModelSpec("cvae", latent_dim=4, width=8)))
    return {"vae": vae, "cvae": cvae}


def test_split_rows_covers_every_row_once_in_order() -> None:
    for rows in (1, 127, 256, 257, 1000, 1024, 4097):
        for parts in (1, 2, 3):
            ranges = split_rows(rows, parts, 128)
            assert ranges[0][0] == 0 and ranges[-1][1] == rows
            assert all(a < b for a, b in ranges) and all(r[1] == n[0] for r, n in zip(ranges, ranges[1:], strict=False))
            assert len(ranges) <= max(1, min(parts, rows // 128))
            if len(ranges) > 1:
                assert min(b - a for a, b in ranges) >= 128 or rows < 128 * len(ranges)
    assert split_rows(1024, 2, 128) == [(0, 512), (512, 1024)]
    assert split_rows(200, 2, 128) == [(0, 200)]  # too few rows for two parts of 128


class FakeGraphs:
    """capture() as CUDA graphs behave: a static output that every replay overwrites in place."""

    def __init__(self, fail_ops: tuple[str, ...] = ()) -> None:
        self.captures = 0
        self.fail_ops = fail_ops

    def __call__(self, module: Any, op: str, x: torch.Tensor, labels: torch.Tensor | None, fn: Any) -> Captured:
        self.captures += 1
        if op in self.fail_ops:
            raise RuntimeError("operation not permitted when stream is capturing")
        out = fn(module, op, x, labels).clone()

        def replay() -> None:
            out.copy_(fn(module, op, x, labels))

        return Captured(x, labels, out, replay)


def test_graphs_pad_to_a_bucket_and_copy_their_rows_out(modules: dict[str, Any]) -> None:
    assert buckets(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    fake = FakeGraphs()
    cache = GraphCache(256, capture=fake)
    vae = modules["vae"]
    with torch.inference_mode():
        for rows in (1, 3, 5, 200, 3):
            z = torch.randn(rows, 4)
            for op in ("decode", "sample_u8", "prior"):
                got = cache.run("vae", vae, op, z, None, compute)
                torch.testing.assert_close(got, compute(vae, op, z, None))
        assert fake.captures == 3 * 4  # buckets 1, 4, 8, 256 for each op: each captured once, then replayed
        first = cache.run("vae", vae, "decode", torch.randn(3, 4), None, compute)
        kept = first.clone()
        cache.run("vae", vae, "decode", torch.randn(3, 4), None, compute)  # same graph, replayed again
        torch.testing.assert_close(first, kept)  # the first answer is not the graph's (overwritten) static output
        assert cache.run("vae", vae, "decode", torch.randn(257, 4), None, compute) is None  # past every bucket
        cache.run("other", vae, "decode", torch.randn(1, 4), None, compute)
        cache.drop("vae")  # no longer served: its graphs go, another model's stay
        assert {k[0] for k in cache.graphs} == {"other"}
        cache.run("vae", vae, "decode", torch.randn(3, 4), None, compute)
        assert fake.captures == 3 * 4 + 2  # captured anew after the drop


def test_graphs_take_labels_and_fall_back_when_capture_fails(modules: dict[str, Any]) -> None:
    cvae = modules["cvae"]
    cache = GraphCache(8, capture=FakeGraphs())
    z, labels = torch.randn(5, 4), torch.tensor([3, 1, 4, 1, 5])
    with torch.inference_mode():
        expect = compute(cvae, "decode", z, labels)
        torch.testing.assert_close(cache.run("c", cvae, "decode", z, labels, compute), expect)
        failing = FakeGraphs(fail_ops=("decode",))
        cache = GraphCache(8, capture=failing)
        assert cache.run("c", cvae, "decode", z, labels, compute) is None
        assert cache.run("c", cvae, "decode", z, labels, compute) is None and failing.captures == 1  # not retried


def test_pipelined_parts_give_the_whole_batch_in_order(modules: dict[str, Any]) -> None:
    seen: list[tuple[str, int]] = []

    def on_stream(name: str) -> Any:
        seen.append(("enter", name))
        return contextlib.nullcontext()

    synced: list[str] = []
    with torch.inference_mode():
        for name, op, x, labels in (("vae", "sample_u8", torch.randn(600, 4), None),
                                    ("vae", "decode", torch.randn(300, 4), None),
                                    ("cvae", "reconstruct", torch.rand(260, 1, 28, 28), torch.randint(0, 10, (260,)))):
            seen.clear()
            synced.clear()
            got = pipelined(modules[name], op, x, labels, ["s0", "s1"], 128, lambda t, f: t, compute, on_stream,
                            synced.append, pin=False)
            torch.testing.assert_close(got, compute(modules[name], op, x, labels))
            assert seen == [("enter", "s0"), ("enter", "s1")] and synced == ["s0", "s1"]  # every stream waited on


def test_streams_and_graphs_stay_off_on_a_cpu() -> None:
    from service.engine.runtime import Runtime

    rt = Runtime(torch.device("cpu"), cuda_streams=2, cuda_graphs=True)
    assert rt.streams == [] and rt.graphs is None
    rt.executor.shutdown()
