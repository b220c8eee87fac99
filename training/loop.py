"""One training loop for every kind: single process, or DDP under torchrun (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from model import ModelSpec, build, kind, objective, pixels
from training.config import TrainConfig
from training.data import load_mnist
from training.export import code_commit, export
from training.finetune import load_initial_weights
from training.images import save_grid

log = logging.getLogger(__name__)


class LossModule(nn.Module):
    """model + objective in one forward, so DDP's hooks see the whole computation."""

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return objective(self.model, self.spec, x, y)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def setup_distributed(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return (dist.get_rank() if world > 1 else 0), world, device


def to_tensor(x_u8: Any, device: torch.device) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) = uint8/255 on device."""
    return torch.from_numpy(x_u8).to(device).float().div_(255.0).unsqueeze(1)


@torch.no_grad()
def measure_test(
    model: nn.Module, spec: ModelSpec, x: torch.Tensor, y: torch.Tensor, bs: int = 1000
) -> dict[str, float]:
    """Test objective (fixed noise seed, so epochs compare) and reconstruction MSE per pixel."""
    model.eval()
    total, mse, parts_sum = 0.0, 0.0, {}  # type: ignore[var-annotated]
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(1234)
        for i in range(0, len(x), bs):
            xb, yb = x[i:i + bs], y[i:i + bs]
            loss, parts = objective(model, spec, xb, yb)
            total += loss.item() * len(xb)
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v.item() * len(xb)
            cond = kind(spec.kind).labels(yb)
            mu, _ = model.encode(xb, cond)
            rec = pixels(model, model.decode_raw(mu, cond))
            mse += (rec - xb).pow(2).mean().item() * len(xb)
    model.train()
    n = len(x)
    return {"test_loss": total / n, "test_mse": mse / n, **{f"test_{k}": v / n for k, v in parts_sum.items()}}


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir / "tb"))


def train(cfg: TrainConfig) -> Path | None:
    """Train, evaluate every epoch on the test set, keep the best epoch, write grids, export."""
    commit = code_commit()  # the code as training starts: commits made while it runs are not what ran
    rank, world, device = setup_distributed(cfg.device)
    torch.manual_seed(cfg.seed + rank)  # per-rank noise; the data order below is shared
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if world > 1 and rank != 0:
        dist.barrier()  # rank 0 fetches and caches the data first
    ds = load_mnist(cfg.idx_dir, cfg.data_cache)
    if world > 1 and rank == 0:
        dist.barrier()
    data_sha = ds.sha256()
    xtr, ytr = to_tensor(ds.x_train, device), torch.from_numpy(ds.y_train).to(device)
    if cfg.limit_train:
        xtr, ytr = xtr[: cfg.limit_train], ytr[: cfg.limit_train]
    xte, yte = to_tensor(ds.x_test, device), torch.from_numpy(ds.y_test).to(device)
    if cfg.binarize:  # the test set is binarised once, with a fixed seed
        xte = torch.bernoulli(xte, generator=torch.Generator(device).manual_seed(0))

    model = build(cfg.spec).to(device)
    if cfg.init_from is not None:  # fine-tuning: the network starts where a finished model stopped
        load_initial_weights(model, cfg.init_from)
    elif hasattr(model, "init_centre"):  # linear AE: a data-dependent start, like PCA's centring
        model.init_centre(xtr.mean(0))
    loss_mod: nn.Module = LossModule(model, cfg.spec)
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        loss_mod = nn.parallel.DistributedDataParallel(loss_mod, device_ids=ids)
    # weight decay: a regulariser against the decoder learning the training digits' details (train/test gap)
    opt = (torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay) if cfg.weight_decay
           else torch.optim.Adam(model.parameters(), lr=cfg.lr))
    # an average of the weights over the last ~1/(1-ema) steps: what is evaluated, kept and exported (the noise of
    # single steps averaged away, at no serving cost)
    averaged = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        if cfg.ema else None)
    evaluated = averaged.module if averaged is not None else model
    steps_per_epoch = max(1, len(xtr) // world // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * steps_per_epoch, eta_min=cfg.lr / 100)
    order = torch.Generator().manual_seed(cfg.seed)  # same on every rank: shards never overlap

    run_dir = cfg.runs_dir / cfg.run_name
    lead = rank == 0
    if lead:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_json(), indent=1))
    metrics_file = (run_dir / "metrics.jsonl").open("a") if lead else None
    tb = _tensorboard(run_dir) if lead else None
    best: dict[str, Any] = {"test_loss": math.inf}
    best_state: dict[str, torch.Tensor] | None = None
    started = time.perf_counter()
    try:
        for epoch in range(1, cfg.epochs + 1):
            shard = torch.randperm(len(xtr), generator=order)[rank::world].to(device)
            bar = tqdm(range(steps_per_epoch), desc=f"{cfg.run_name} {epoch}/{cfg.epochs}", disable=not lead,
                       mininterval=1.0, leave=False)
            t0, seen = time.perf_counter(), 0
            for step in bar:
                idx = shard[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                x, y = xtr[idx], ytr[idx]
                if cfg.binarize:
                    x = torch.bernoulli(x)
                loss, parts = loss_mod(x, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if averaged is not None:
                    averaged.update_parameters(model)
                seen += len(x) * world
                if step % 50 == 0:
                    post = {"loss": f"{loss.item():.2f}", **{k: f"{v.item():.2f}" for k, v in parts.items()}}
                    post["img/s"] = f"{seen / (time.perf_counter() - t0):.0f}"
                    bar.set_postfix(post)
            m = measure_test(evaluated, cfg.spec, xte, yte)
            m.update(epoch=epoch, train_loss=loss.item(), images_per_s=seen / (time.perf_counter() - t0),
                     elapsed_s=time.perf_counter() - started, lr=sched.get_last_lr()[0])
            if m["test_loss"] < best["test_loss"]:
                best, best_state = dict(m), copy.deepcopy({k: v.cpu() for k, v in evaluated.state_dict().items()})
            if lead and metrics_file is not None:
                metrics_file.write(json.dumps(m) + "\n")
                metrics_file.flush()
                log.info("epoch %d test_loss %.4f test_mse %.5f (%.0f img/s)", epoch, m["test_loss"],
                         m["test_mse"], m["images_per_s"])
                if tb is not None:
                    for k, v in m.items():
                        tb.add_scalar(k, v, epoch)
    except KeyboardInterrupt:
        log.warning("interrupted: keeping the best epoch so far (%s)", best.get("epoch"))
    train_s = time.perf_counter() - started
    if metrics_file is not None:
        metrics_file.close()
    if world > 1:
        dist.destroy_process_group()
    if not lead or best_state is None:
        return None
    model.load_state_dict(best_state)
    model.eval()
    torch.save({"spec": cfg.spec.__dict__, "config": cfg.to_json(), "state_dict": best_state, "best": best,
                "data_sha256": data_sha, "train_device": device.type}, run_dir / "best.pt")
    write_grids(model, cfg.spec, xte, yte, run_dir)
    metrics = {k: v for k, v in best.items() if k.startswith("test_") or k == "epoch"}
    prior = None
    if cfg.prior == "flow":
        prior, figures = fit_prior(model, cfg.spec, xtr, cfg.prior_epochs, cfg.seed)
        metrics.update(figures)
        train_s += figures["prior_fit_seconds"]
    metrics.update(train_seconds=round(train_s, 1), train_device=str(device.type), world_size=world)
    if not cfg.export:
        return run_dir / "best.pt"
    path = export(model, cfg.spec, cfg.run_name, cfg.repository, cfg.to_json(), data_sha, metrics, prior, commit)
    log.info("exported %s", path)
    return path


def fit_prior(model: nn.Module, spec: ModelSpec, x_train: torch.Tensor, epochs: int,
              seed: int = 0) -> tuple[nn.Module, dict[str, float]]:
    """Stage two: the flow prior fitted to the frozen model's codes (training/prior.py)."""
    from training.prior import fit_flow_prior

    if not kind(spec.kind).stochastic or kind(spec.kind).num_classes:
        raise ValueError(f"a learned prior needs an unconditional VAE; {spec.kind} is not one")
    return fit_flow_prior(model, x_train, epochs=epochs, seed=seed)


@torch.no_grad()
def write_grids(model: nn.Module, spec: ModelSpec, xte: torch.Tensor, yte: torch.Tensor, run_dir: Path) -> None:
    """reconstructions.png (odd rows: test digits, even rows: their reconstructions); samples.png for VAEs."""
    x, y = xte[:32], yte[:32]
    k = kind(spec.kind)
    cond = k.labels(y)
    mu, _ = model.encode(x, cond)
    out = model.decode_raw(mu, cond)
    rec = pixels(model, out)
    rows = torch.cat([torch.stack([x[i:i + 8], rec[i:i + 8]]) for i in range(0, 32, 8)]).flatten(0, 1)
    save_grid(rows, 8, run_dir / "reconstructions.png")
    if k.stochastic:  # a prior to sample from
        gen = torch.Generator(xte.device).manual_seed(0)
        z = torch.randn(100, spec.latent_dim, generator=gen, device=xte.device)
        classes = torch.arange(10, device=xte.device).repeat_interleave(10) % max(k.num_classes, 1)
        if getattr(model, "prior_flow", None) is not None:  # a learned prior: its samples, as /sample draws them
            z = model.prior_flow.sample(z, k.labels(classes))
        save_grid(torch.sigmoid(model.decode_raw(z, k.labels(classes))), 10, run_dir / "samples.png")
