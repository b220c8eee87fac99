"""The Open Inference Protocol's view of the repository, the dataplane's (both doors, HTTP's service/http/v2.py and
gRPC's service/rpc/server.py, ask it through service/dataplane): each checkpoint is two tensor-in/tensor-out
models, <name>-encoder and <name>-decoder, and a generative one a third, <name>-sampler.

  <name>-encoder: input  x  FP32 [-1, 1, 28, 28] in [0,1] -> outputs mu, logvar FP32 [-1, m]
  <name>-decoder: input  z  FP32 [-1, m] -> x FP32 [-1, 1, 28, 28]
  <name>-sampler: input  eps FP32 [-1, m], N(0, I) noise (times a temperature) -> x FP32 [-1, 1, 28, 28]: what
                  /sample decodes, the learned prior applied when the checkpoint has one; a caller pulls digits in
                  bulk over either door by sending its own noise in chunks
  a conditional model's encoder, decoder and sampler also take labels INT64 [-1] (one class per row)

Metadata, Triton's model configuration, the repository index and statistics are plain values here, which each door
encodes its own way; `compute` runs one v2 model's inputs through the engine.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from service.engine import rules
from service.engine.admission import Ticket
from service.engine.checkpoints import Checkpoint
from service.engine.domain import InvalidInput, UnknownModel
from service.engine.engine import Engine
from service.engine.ops import Op, Rows
from service.engine.repository import Unloaded

SERVER = {"name": "vaeserve", "version": "0.1.0"}


class Part(StrEnum):
    """The v2 models of one checkpoint, named <name>-<part>."""

    ENCODER = "encoder"
    DECODER = "decoder"
    SAMPLER = "sampler"

    @property
    def input(self) -> str:
        """Its one tensor input (beside a conditional model's labels)."""
        return _INPUTS[self]


_INPUTS = {Part.ENCODER: "x", Part.DECODER: "z", Part.SAMPLER: "eps"}
_BY_SUFFIX = {part.value: part for part in Part}  # "decoder" -> Part.DECODER: every inference call splits a name


def parts(ckpt: Checkpoint | Unloaded) -> tuple[Part, ...]:
    """The v2 models of a checkpoint: a sampler only where there is a prior to sample."""
    return tuple(Part) if ckpt.generative else (Part.ENCODER, Part.DECODER)


# model_repository is announced only where load and unload work (VAESERVE_MODEL_CONTROL=true)
EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics"]


def extensions(engine: Engine) -> list[str]:
    return EXTENSIONS + (["model_repository"] if engine.settings.model_control else [])


def version_number(version: str | None) -> int | None:
    """'' or None: the newest; otherwise a positive integer."""
    if not version:
        return None
    if not version.isdigit() or int(version) < 1:
        raise UnknownModel(f"version {version[:20]!r}: versions are positive integers")
    return int(version)


def split_name(engine: Engine, model: str, version: str | None = None) -> tuple[Checkpoint, Part]:
    """<name>-encoder / -decoder / -sampler -> (checkpoint, part); UnknownModel otherwise."""
    repo = engine.repository
    base, dash, suffix = model.rpartition("-")
    part = _BY_SUFFIX.get(suffix) if dash else None
    if part is not None:
        ckpt = repo.resolve(base, version_number(version))
        if part is Part.SAMPLER and not ckpt.generative:
            raise UnknownModel(f"{ckpt.name} is not generative: it has no sampler")
        return ckpt, part
    raise UnknownModel(f"unknown model {model[:200]!r}; v2 models are <name>-encoder, -decoder and -sampler",
                       {"available": [f"{n}-{p}" for n in repo.names() for p in parts(repo.newest(n))]})


def base_name(model: str) -> str:
    """The checkpoint behind a v2 name (load/unload take either form)."""
    for part in Part:
        if model.endswith("-" + part):
            return model[: -len(part) - 1]
    return model


def io_spec(ckpt: Checkpoint, part: Part) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(inputs, outputs) as name, datatype, shape with -1 for the batch."""
    m = ckpt.latent_dim
    image = {"datatype": "FP32", "shape": [-1, 1, 28, 28]}
    latent = {"datatype": "FP32", "shape": [-1, m]}
    if part is Part.ENCODER:
        inputs, outputs = [{"name": "x", **image}], [{"name": "mu", **latent}, {"name": "logvar", **latent}]
    else:
        inputs, outputs = [{"name": part.input, **latent}], [{"name": "x", **image}]
    if ckpt.num_classes:  # conditional: one class per row, on both halves
        inputs.append({"name": "labels", "datatype": "INT64", "shape": [-1]})
    return inputs, outputs


def describe(engine: Engine, ckpt: Checkpoint, part: Part) -> dict[str, Any]:
    inputs, outputs = io_spec(ckpt, part)
    return {"name": f"{ckpt.name}-{part}", "versions": [str(v) for v in engine.repository.versions(ckpt.name)],
            "platform": "pytorch_torchscript", "inputs": inputs, "outputs": outputs}


def triton_config(engine: Engine, ckpt: Checkpoint, part: Part) -> dict[str, Any]:
    """Triton's model configuration (its JSON form): batch dimension implicit (max_batch_size), dims per row."""
    inputs, outputs = io_spec(ckpt, part)

    def entry(t: dict[str, Any]) -> dict[str, Any]:
        dims = t["shape"][1:]
        out = {"name": t["name"], "data_type": "TYPE_" + t["datatype"], "dims": dims or [1]}
        if not dims:
            out["reshape"] = {"shape": []}  # a per-row scalar: [batch] on the wire
        return out

    s = engine.settings
    return {"name": f"{ckpt.name}-{part}", "platform": "pytorch_libtorch", "backend": "pytorch",
            "version_policy": {"latest": {"num_versions": len(engine.repository.versions(ckpt.name))}},
            "max_batch_size": s.max_rows, "input": [entry(t) for t in inputs], "output": [entry(t) for t in outputs],
            "dynamic_batching": {"max_queue_delay_microseconds": int(s.max_delay_ms * 1000),
                                 "preferred_batch_size": [s.max_batch_rows]},
            "instance_group": [{"count": 1, "kind": "KIND_GPU" if engine.runtime.device.type == "cuda"
                                else "KIND_CPU"}],
            "parameters": {"latent_dim": {"string_value": str(ckpt.latent_dim)},
                           "kind": {"string_value": ckpt.meta.kind}}}


def repository_index(engine: Engine, ready_only: bool = False) -> list[dict[str, str]]:
    """Every v2 model and version: READY when served, UNAVAILABLE (unloaded by an operator) otherwise."""
    repo = engine.repository
    out = [{"name": f"{c.name}-{part}", "version": str(c.version), "state": "READY", "reason": ""}
           for name in repo.names() for part in parts(repo.newest(name)) for c in
           (repo.resolve(name, v) for v in repo.versions(name))]
    if not ready_only:  # an unloaded model keeps its parts in the index, its sampler too
        out += [{"name": f"{c.name}-{part}", "version": "", "state": "UNAVAILABLE", "reason": "unloaded"}
                for c in repo.unloaded() for part in parts(c)]
    return out


@dataclass
class Counts:
    """Triton's per-model inference statistics, as far as this server measures them."""

    success: int = 0
    success_ns: int = 0
    fail: int = 0
    fail_ns: int = 0
    inferences: int = 0  # rows
    last_ms: int = 0  # wall-clock ms of the newest inference

    def add(self, other: Counts) -> None:
        self.success, self.success_ns = self.success + other.success, self.success_ns + other.success_ns
        self.fail, self.fail_ns = self.fail + other.fail, self.fail_ns + other.fail_ns
        self.inferences, self.last_ms = self.inferences + other.inferences, max(self.last_ms, other.last_ms)


@dataclass
class Statistics:
    counts: dict[tuple[str, str], Counts] = field(default_factory=dict)
    changes: int = 0  # records so far: a worker publishes its counts only when this moved

    def record(self, model: str, version: int, rows: int, seconds: float, ok: bool) -> None:
        key = (model, str(version))
        c = self.counts.get(key)
        if c is None:  # setdefault would build a Counts on every call
            c = self.counts[key] = Counts()
        self.changes += 1
        ns = int(seconds * 1e9)
        if ok:
            c.success, c.success_ns, c.inferences = c.success + 1, c.success_ns + ns, c.inferences + rows
        else:
            c.fail, c.fail_ns = c.fail + 1, c.fail_ns + ns
        c.last_ms = int(time.time() * 1000)

    def snapshot(self) -> list[list[Any]]:
        """The counts as JSON (what a worker publishes for the others: service/shared.py)."""
        return [[name, ver, *asdict(c).values()] for (name, ver), c in self.counts.items()]

    def merged(self, snapshots: list[list[list[Any]]]) -> Statistics:
        """These counts plus other workers' snapshots."""
        total = Statistics()
        for snap in (self.snapshot(), *snapshots):
            for name, ver, *values in snap:
                total.counts.setdefault((name, ver), Counts()).add(Counts(*values))
        return total

    def report(self, engine: Engine, model: str = "", version: str = "") -> list[dict[str, Any]]:
        """Triton's statistics JSON: every loaded v2 model (or one, or one version)."""
        repo = engine.repository
        if model:
            ckpt, part = split_name(engine, model, version)
            names = [(f"{ckpt.name}-{part}", str(v)) for v in ([ckpt.version] if version else
                                                                repo.versions(ckpt.name))]
        else:
            names = [(f"{n}-{p}", str(v)) for n in repo.names() for p in parts(repo.newest(n))
                     for v in repo.versions(n)]
        out = []
        for name, ver in names:
            c = self.counts.get((name, ver), Counts())
            ok = {"count": c.success, "ns": c.success_ns}
            # every request passes the queue (perf_analyzer finds the version it measured by the queue count
            # growing); time in queue and in copies is not measured apart from the whole: 0 ns
            zero = {"count": c.success, "ns": 0}
            out.append({"name": name, "version": ver, "last_inference": c.last_ms, "inference_count": c.inferences,
                        "execution_count": c.success,
                        "inference_stats": {"success": ok, "fail": {"count": c.fail, "ns": c.fail_ns},
                                            "queue": zero, "compute_input": zero, "compute_infer": ok,
                                            "compute_output": zero},
                        "batch_stats": []})
        return out


def request_priority(value: Any) -> int:
    """tritonclient's infer(priority=...), which travels as the request parameter `priority` (absent: 0)."""
    return rules.priority(0 if value is None else value)


async def infer(engine: Engine, stats: Statistics, ckpt: Checkpoint, part: Part, tensors: dict[str, np.ndarray],
                ticket: Ticket) -> dict[str, np.ndarray]:
    """Inputs by name -> outputs by name (FP32), through the engine, counted in Triton's statistics as a success
    or a failure whichever door asked; InvalidInput names what is wrong."""
    t0 = time.perf_counter()
    try:
        arrays = await _compute(engine, ckpt, part, tensors, ticket)
    except Exception:
        stats.record(f"{ckpt.name}-{part}", ckpt.version, 0, time.perf_counter() - t0, ok=False)
        raise
    rows = len(next(iter(arrays.values())))
    stats.record(f"{ckpt.name}-{part}", ckpt.version, rows, time.perf_counter() - t0, ok=True)
    return arrays


async def _compute(engine: Engine, ckpt: Checkpoint, part: Part, tensors: dict[str, np.ndarray],
                   ticket: Ticket) -> dict[str, np.ndarray]:
    max_rows = engine.settings.max_rows
    main = part.input
    extra = set(tensors) - {main, "labels"}
    if extra:
        raise InvalidInput(f"unknown inputs {sorted(extra)}; model {ckpt.name}-{part} takes {main!r}"
                           + (" and 'labels'" if ckpt.num_classes else ""))
    if main not in tensors:
        shape = [-1, 1, 28, 28] if part is Part.ENCODER else [-1, ckpt.latent_dim]
        raise InvalidInput(f"this model takes an input named {main!r}, FP32 {shape}")
    arr = tensors[main]
    if arr.dtype != np.float32:
        raise InvalidInput(f"input {main}: datatype must be FP32")
    if part is Part.ENCODER:
        x = rules.images(arr, max_rows, name="input x")
    else:
        x = rules.latents(arr, ckpt.latent_dim, ckpt.name, max_rows, name=f"input {main}")
    labels = rules.labels(tensors.get("labels"), ckpt.num_classes, x.shape[0], ckpt.name, name="input labels")
    if labels is not None and tensors["labels"].dtype != np.int64:
        raise InvalidInput("input labels: datatype must be INT64")
    rows = Rows(x, labels)
    if part is Part.ENCODER:
        out = await engine.run(ckpt, Op.ENCODE, rows, ticket)
        m = ckpt.latent_dim
        return {"mu": out[:, :m].numpy(), "logvar": out[:, m:].numpy()}
    op = Op.SAMPLE if part is Part.SAMPLER and ckpt.has_prior else Op.DECODE  # without a learned prior, z = eps
    out = await engine.run(ckpt, op, rows, ticket)
    return {"x": out.numpy()[:, None]}
