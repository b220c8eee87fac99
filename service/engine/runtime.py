"""Where torch runs: device choice, the single worker thread, the forwards of each operation.

Everything in this module that touches a model runs on the worker thread, under inference_mode.
On CUDA: models are warmed up at load, inputs go through reused pinned host buffers with
non-blocking copies, uint8 pixels are made on the device; fp16/bf16 and channels_last are optional
(bf16 and channels_last on a CPU too). A CUDA out-of-memory error on a batch splits the batch
in halves and retries, so a big batch degrades to smaller ones instead of failing every row.
"""

from __future__ import annotations

import copy
import ctypes
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from checkpoint import latents, prior_noise
from checkpoint.sampling import to_uint8
from service.engine.checkpoints import Checkpoint
from service.engine.domain import UnknownModel
from service.engine.gpu import GraphCache, pipelined
from service.engine.ops import Op

log = logging.getLogger(__name__)

# fp32 keeps the < 1e-4 contract; bf16 (CPU or GPU) and fp16 (GPU) trade ~1e-2 of a pixel for speed
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PIPELINE_MIN_ROWS = 128  # rows per stream at least: smaller parts gain less overlap than they cost in launches
GRAPH_MAX_ROWS = 256  # CUDA graphs for batches up to this many rows (buckets 1, 2, 4, ..., 256)
CALIBRATION_ROWS = 32  # rows timed per operation at load: enough for the per-row cost to dominate


PRIOR_OPS = (Op.PRIOR, Op.NOISE, Op.SAMPLE, Op.SAMPLE_U8)  # their input is the prior's noise (NOISE: its z)


class Fp32Prior:
    """A module served in bf16 or fp16 whose learned prior stays fp32, on fp32 input. A flow prior amplifies
    rounding: in bf16 the default's z moved by up to 0.25 (and by 0.19 with only its noise rounded to bf16), its
    pixels as much, where the bf16 decoder alone moves a pixel by under 0.05. The prior is a small share of a
    sample's cost; the runtime hands PRIOR_OPS their input in fp32, `full` runs the prior, and the decoder gets z in
    its own precision."""

    def __init__(self, low: Any, full: Any, dtype: torch.dtype) -> None:
        self.low, self.full, self.dtype = low, full, dtype

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None) -> Any:
        return self.low.encode(x, labels)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.low.decode(z.to(self.dtype), labels)  # z from the fp32 prior (SAMPLE), or lowered already


def _prior_of(module: Any) -> Any:
    """The module a prior operation runs on: the fp32 copy kept beside a lower-precision one, else the module."""
    return module.full if isinstance(module, Fp32Prior) else module


def compute(module: Any, op: Op, xd: torch.Tensor, lab: torch.Tensor | None) -> torch.Tensor:
    """The forward of one operation on device tensors (the one dispatch every path of _forward uses)."""
    if op == Op.ENCODE:
        mu, logvar = module.encode(xd, lab)
        return torch.cat([mu, logvar], dim=1)  # (B, 2m): one tensor splits cleanly by row
    if op == Op.DECODE:
        return module.decode(xd, lab)[:, 0]  # (B, 28, 28)
    if op == Op.DECODE_U8:  # converted where the pixels are: 4x less to copy off a GPU
        return to_uint8(module.decode(xd, lab)[:, 0])
    if op == Op.RECONSTRUCT:
        mu, _ = module.encode(xd, lab)
        return module.decode(mu, lab)[:, 0]
    if op == Op.PRIOR:
        return latents(_prior_of(module), xd, lab)  # (B, m): prior(eps), or prior(eps, labels) for p(z | y)
    if op == Op.NOISE:
        return prior_noise(_prior_of(module), xd, lab)  # (B, m): eps with prior(eps) = z
    if op in (Op.SAMPLE, Op.SAMPLE_U8):
        out = module.decode(latents(_prior_of(module), xd, lab), lab)[:, 0]
        return to_uint8(out) if op == Op.SAMPLE_U8 else out
    raise ValueError(f"unknown operation {op!r}")


def _trim_heap() -> None:
    """Hand freed heap pages back to the system (glibc's malloc_trim): without it a released model's weights stay
    in the process's resident memory, reusable by the process only. Elsewhere than glibc, nothing."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _graph_key(ckpt: Checkpoint) -> tuple[int, str, int]:
    """A checkpoint's key in the CUDA graph cache: the object (as in Runtime.modules), and its name for the log."""
    return (id(ckpt), ckpt.name, ckpt.version)


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("VAESERVE_DEVICE=cuda but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class HostStaging:
    """Reused (pinned, on CUDA) host buffers for host-to-device copies, one per dtype and row shape, grown by
    doubling: no page-locked allocation per batch. Safe because one batch is in flight per worker and every
    forward ends with a blocking device-to-host copy, so the host-to-device copy out of a buffer has finished
    before the buffer is refilled."""

    def __init__(self, pin: bool) -> None:
        self.pin = pin
        self.buffers: dict[tuple[torch.dtype, tuple[int, ...]], torch.Tensor] = {}

    def stage(self, t: torch.Tensor) -> torch.Tensor:
        """t's values in a view of the reused buffer."""
        key = (t.dtype, tuple(t.shape[1:]))
        buf = self.buffers.get(key)
        if buf is None or len(buf) < len(t):
            rows = max(len(t), 2 * (len(buf) if buf is not None else 0))
            buf = self.buffers[key] = torch.empty((rows, *t.shape[1:]), dtype=t.dtype, pin_memory=self.pin)
        view = buf[: len(t)]
        view.copy_(t)
        return view


class Runtime:
    """One device, one worker thread; placed models keyed by (name, version)."""

    def __init__(self, device: torch.device, precision: str = "fp32", threads: int = 1,
                 channels_last: bool = False, cuda_streams: int = 1, cuda_graphs: bool = False) -> None:
        self.device = device
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("precision fp16 needs CUDA; on a CPU use bf16")
        self.dtype = PRECISIONS[precision]
        self.channels_last = channels_last
        self.staging = HostStaging(pin=device.type == "cuda")
        cuda = device.type == "cuda"
        # Off unless asked for, and CUDA only (service/gpu.py): built without a GPU at hand, measured by cuda_check.sh
        self.streams = [torch.cuda.Stream() for _ in range(cuda_streams)] if cuda and cuda_streams > 1 else []
        self.graphs = GraphCache(GRAPH_MAX_ROWS) if cuda and cuda_graphs else None
        if device.type == "cuda" and self.dtype == torch.float32:
            # fp32 means fp32: TF32 convs moved pixels by ~1e-3 between batch sizes on an H100, and the
            # contract allows only float32 noise (< 1e-4) unless a lower precision is asked for.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        torch.set_num_threads(threads)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torch-worker")
        # placed modules by the checkpoint object (id, kept with it): a file replaced at the same version is a new
        # checkpoint, so requests queued on the old one finish on the old weights, and each is released on its own
        self.modules: dict[int, tuple[Checkpoint, Any]] = {}
        self.row_cost: dict[tuple[str, int, Op], float] = {}  # seconds of forward per row, measured at load
        self.oom_splits = 0

    def place(self, ckpt: Checkpoint) -> None:
        """Move a checkpoint's module to the device, in the precision and memory format asked for, and warm it up."""
        module = ckpt.module.to(self.device)
        full = copy.deepcopy(module) if self.dtype != torch.float32 and ckpt.has_prior else None
        if self.dtype != torch.float32:
            module = module.to(self.dtype)  # in place: ckpt.module too
        if self.channels_last:  # NHWC convolutions; fp32 outputs moved by < 2e-5 on the shipped models
            module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.modules[id(ckpt)] = (ckpt, module if full is None else Fp32Prior(module, full, self.dtype))
        if self.device.type == "cuda":  # first CUDA calls compile/allocate: pay that before serving
            labels = torch.zeros(8, dtype=torch.long) if ckpt.num_classes else None
            for rows in (1, 8):
                lab = None if labels is None else labels[:rows]
                self.run(ckpt, Op.RECONSTRUCT, torch.zeros(rows, 1, 28, 28), lab)
                self.run(ckpt, Op.DECODE, torch.zeros(rows, ckpt.latent_dim), lab)
        self.calibrate(ckpt)

    def calibrate(self, ckpt: Checkpoint) -> None:
        """Time each operation on CALIBRATION_ROWS rows (after one untimed call): the batchers size their
        chunks by time from these costs, and adapt them while serving."""
        n = CALIBRATION_ROWS
        labels = torch.zeros(n, dtype=torch.long) if ckpt.num_classes else None
        image, latent = torch.rand(n, 1, 28, 28), torch.randn(n, ckpt.latent_dim)
        ops = [(Op.ENCODE, image), (Op.DECODE, latent), (Op.RECONSTRUCT, image)]
        if ckpt.has_prior:
            ops += [(Op.PRIOR, latent), (Op.SAMPLE, latent)]
        for op, x in ops:
            self.run(ckpt, op, x, labels)
            t0 = time.perf_counter()
            self.run(ckpt, op, x, labels)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            self.row_cost[(ckpt.name, ckpt.version, op)] = (time.perf_counter() - t0) / n

    def _to_device(self, t: torch.Tensor, float_input: bool) -> torch.Tensor:
        return self._copy_to_device(self.staging.stage(t) if self.device.type != "cpu" else t, float_input)

    def run(self, ckpt: Checkpoint, op: Op, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The forward of one operation on a batch; returns float32 CPU rows aligned with x."""
        try:
            return self._forward(ckpt, op, x, labels)
        except RuntimeError as exc:
            if not is_oom(exc) or len(x) == 1:
                raise
            self.oom_splits += 1
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            half = len(x) // 2
            log.warning("out of memory on a %d-row %s batch of %s: splitting", len(x), op, ckpt.name)
            lo = self.run(ckpt, op, x[:half], None if labels is None else labels[:half])
            hi = self.run(ckpt, op, x[half:], None if labels is None else labels[half:])
            return torch.cat([lo, hi])

    def release(self, ckpt: Checkpoint) -> None:
        """Forget a checkpoint no longer served (its batchers idle and gone): its placed module, its CUDA graphs,
        and its measured costs unless a newer file at the same version has them. Runs on the worker thread, so no
        forward reads these tables while they change."""
        self.modules.pop(id(ckpt), None)
        if self.graphs is not None:
            self.graphs.drop(_graph_key(ckpt))
        if not any(c.name == ckpt.name and c.version == ckpt.version for c, _ in self.modules.values()):
            for op in Op:
                self.row_cost.pop((ckpt.name, ckpt.version, op), None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()  # the freed weights go back to the device, not just to torch's cache
        _trim_heap()

    def _forward(self, ckpt: Checkpoint, op: Op, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        placed = self.modules.get(id(ckpt))
        if placed is None:  # released: no batcher hands it rows after that, but say so rather than fail if one did
            raise UnknownModel(f"model {ckpt.name!r} version {ckpt.version} is no longer served (unloaded, deleted "
                               "or replaced)", {"model": ckpt.name})
        module = placed[1]
        # a float input goes in the forward's precision, except the noise of a prior kept in fp32 (Fp32Prior)
        lower = not (isinstance(module, Fp32Prior) and op in PRIOR_OPS)
        with torch.inference_mode():
            if self.streams and len(x) >= 2 * PIPELINE_MIN_ROWS:  # CUDA: parts on streams, copies overlap compute
                return pipelined(module, op, self.staging.stage(x), None if labels is None else
                                 self.staging.stage(labels), self.streams, PIPELINE_MIN_ROWS,
                                 lambda t, floats: self._copy_to_device(t, floats and lower),
                                 compute, self._on_stream, lambda s: s.synchronize(), pin=True)
            xd = self._to_device(x, lower)
            lab = None if labels is None else self._to_device(labels, False)
            out = None
            if self.graphs is not None:  # CUDA graphs for small batches: one launch for the whole forward
                out = self.graphs.run(_graph_key(ckpt), module, op, xd, lab, compute)
            if out is None:
                out = compute(module, op, xd, lab)
            return (out if out.dtype == torch.uint8 else out.float()).cpu()

    def _copy_to_device(self, t: torch.Tensor, float_input: bool) -> torch.Tensor:
        """A host tensor (page-locked, off a CPU) to the device, queued on the current stream, in the forward's
        precision when it is a float input."""
        t = t.to(self.device, non_blocking=True)
        return t.to(self.dtype) if (float_input and self.dtype != torch.float32) else t

    @staticmethod
    def _on_stream(stream: Any) -> Any:
        stream.wait_stream(torch.cuda.current_stream())  # after whatever the default stream queued before
        return torch.cuda.stream(stream)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True)
