"""Classification Accuracy Score (Ravuri & Vinyals, 2019): how well a classifier trained only on a conditional
model's digits does on the real MNIST test set, beside the same classifier trained on the real training digits.

What calling services do with synthetic digits is train on them; this measures exactly that. Both classifiers are
the same small CNN (CasCNN) with the same recipe, seed and epochs; only the training images differ:
  synthetic  N digits per class drawn as /sample draws them (eps ~ N(0, I) * temperature, the learned prior if
             the file has one, decode(z, label), Bernoulli means quantised to uint8 as the .npy answer is)
  reference  the 60,000 real training digits (cached per recipe and data digest: it does not depend on the model)
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from checkpoint import load_model
from checkpoint.sampling import balanced_labels, decoded, to_uint8
from training.data import Mnist
from training.judge import augment
from training.loop import to_tensor

log = logging.getLogger("training.cas")


class CasCNN(nn.Module):
    """Two conv layers with pooling and a 128-unit read-out: ~4 MFLOP an image, ~99.3 % on real MNIST."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 64, 7, 7)
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True)
class Recipe:
    """How the classifier is trained: the same for synthetic and real digits."""

    epochs: int = 6
    batch_size: int = 128
    lr: float = 3e-3  # peak of a one-cycle schedule, AdamW
    seed: int = 0
    augment: bool = True  # small random affine maps, as the judge's training uses

    def key(self, data_sha256: str) -> str:
        blob = json.dumps({**asdict(self), "data": data_sha256, "net": repr(CasCNN())}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_classifier(x: torch.Tensor, y: torch.Tensor, recipe: Recipe) -> nn.Module:
    """x (N, 1, 28, 28) in [0, 1], y (N,) int64 -> a trained CasCNN (eval mode)."""
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model = CasCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    steps = max(1, len(x) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=recipe.epochs * steps)
    model.train()
    for _ in range(recipe.epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(steps):
            idx = perm[i * recipe.batch_size:(i + 1) * recipe.batch_size]
            xb = augment(x[idx], gen) if recipe.augment else x[idx]
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    pred = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return float((pred == y).float().mean())


@torch.no_grad()
def draw(checkpoint: Path, per_class: int, temperature: float, seed: int,
         sharpness: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """per_class digits of each class: exactly /sample's uint8 answer for n = per_class * classes, this seed,
    temperature and sharpness, labels="balanced" (checkpoint/sampling.py): (x uint8 (N, 28, 28), y int64 (N,))."""
    ts, meta = load_model(checkpoint)
    if not meta.conditional:
        raise ValueError(f"{checkpoint} is a {meta.kind}: the Classification Accuracy Score needs a conditional "
                         "model (num_classes > 0), whose samples come with the label they were asked for")
    n = per_class * meta.num_classes
    x = np.concatenate([to_uint8(px[:, 0]).numpy()
                        for px, _ in decoded(ts, meta.latent_dim, meta.num_classes, n, seed, temperature,
                                             sharpness=sharpness)])
    return x, balanced_labels(0, n, meta.num_classes).numpy()


def tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) and labels as the CNN takes them: (N, 1, 28, 28) float in [0, 1], int64."""
    return to_tensor(x, torch.device("cpu")), torch.from_numpy(y).long()


def reference_accuracy(ds: Mnist, recipe: Recipe, cache_dir: Path) -> dict[str, Any]:
    """The same classifier trained on the real 60,000 (cached: it depends on the recipe and the data only)."""
    cache = cache_dir / f"cas-reference-{recipe.key(ds.sha256())}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    t0 = time.perf_counter()
    model = train_classifier(*tensors(ds.x_train, ds.y_train), recipe)
    out = {"accuracy": round(accuracy(model, *tensors(ds.x_test, ds.y_test)), 4),
           "train_images": len(ds.x_train), "seconds": round(time.perf_counter() - t0, 1)}
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out))
    return out


HELD_OUT = 10_000  # the last real training digits: where the temperature is chosen (never the test set)


def held_out(ds: Mnist) -> int:
    """How many of the last real training digits choose the temperature (a sixth of a small set)."""
    return min(HELD_OUT, len(ds.x_train) // 6)


def cas(checkpoint: Path, ds: Mnist, temperatures: list[float], per_class: int = 6000, recipe: Recipe = Recipe(),
        sample_seed: int = 0, cache_dir: Path = Path("runs"), fresh: bool = False,
        sharpness: tuple[float, ...] = (1.0,), jobs: int = 1) -> dict[str, Any]:
    """CAS at each temperature and sharpness, the reference, and the headline: the test accuracy at the temperature
    and sharpness whose classifier scores best on a held-out slice of the real training digits (the test set chooses
    nothing).

    fresh: a generator's digits are not limited to 60,000, so draw per_class * epochs of each class and train one
    epoch over them: the same steps and schedule as the reference's, but no synthetic digit seen twice (does the
    gap come from how many digits, or from what they are?).
    jobs: settings measured at once, each in a process of its own (`in_processes`)."""
    ref = reference_accuracy(ds, recipe, cache_dir)
    log.info("reference (real training digits): %.4f", ref["accuracy"])
    held = held_out(ds)
    settings = [(checkpoint, t, sharp, per_class, recipe, sample_seed, fresh)
                for t in temperatures for sharp in sharpness]
    sweep = []
    for row in in_processes(jobs, ds, _setting, settings):
        sweep.append(row)
        log.info("temperature %.2f, sharpness %g: CAS %.4f, held-out %.4f (%.0f s)", row["temperature"],
                 row["sharpness"], row["accuracy"], row["held_out_accuracy"], row["seconds"])
    chosen = max(sweep, key=lambda r: r["held_out_accuracy"])  # the first of equals, in the order asked
    return {"accuracy": chosen["accuracy"], "temperature": chosen["temperature"], "sharpness": chosen["sharpness"],
            "reference_accuracy": ref["accuracy"], "per_class": per_class, "sample_seed": sample_seed,
            "fresh": fresh,
            "test_images": len(ds.y_test), "held_out_images": held, "sweep": sweep,
            "classifier": {"net": "CasCNN (training/cas.py)", **asdict(recipe)},
            "note": f"headline: the temperature and sharpness whose classifier scored best on the last {held} real "
                    "training digits (held out: no classifier trains on them), its accuracy on the real test set"}


def _setting(ds: Mnist, checkpoint: Path, t: float, sharp: float, per_class: int, recipe: Recipe, sample_seed: int,
             fresh: bool) -> dict[str, Any]:
    """One sweep row: draw at this temperature and sharpness, train the CNN on the draw alone, score it."""
    t0 = time.perf_counter()
    held = held_out(ds)
    (xte, yte), (xval, yval) = tensors(ds.x_test, ds.y_test), tensors(ds.x_train[-held:], ds.y_train[-held:])
    x, y = tensors(*draw(checkpoint, per_class * (recipe.epochs if fresh else 1), t, sample_seed, sharp))
    model = train_classifier(x, y, replace(recipe, epochs=1) if fresh else recipe)
    acc, val = round(accuracy(model, xte, yte), 4), round(accuracy(model, xval, yval), 4)
    return {"temperature": t, "sharpness": sharp, "accuracy": acc, "held_out_accuracy": val,
            "synthetic_images": len(y), "seconds": round(time.perf_counter() - t0, 1)}


_WORKER_DS: Mnist | None = None  # the data set, sent once to each worker process


def _start_worker(ds: Mnist) -> None:
    global _WORKER_DS
    _WORKER_DS = ds
    torch.set_num_threads(1)


def _in_worker(task: tuple[Callable[..., Any], tuple[Any, ...]]) -> Any:
    fn, args = task
    return fn(_WORKER_DS, *args)


def in_processes(jobs: int, ds: Mnist, fn: Callable[..., Any], tasks: list[tuple[Any, ...]]) -> Iterator[Any]:
    """fn(ds, *task) for each task, in order: here when jobs is 1, else in `jobs` spawned processes of one torch
    thread each. Every task seeds its own draw and classifier, so a task gives what it gives on one thread in this
    process, whatever runs beside it: the figures of `--jobs 2` are those of a one-thread serial run, in half the
    time on two cores."""
    if jobs <= 1:
        for task in tasks:
            yield fn(ds, *task)
        return
    with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_worker, initargs=(ds,)) as pool:
        yield from pool.map(_in_worker, [(fn, task) for task in tasks])


def real_plus_synthetic(checkpoint: Path, ds: Mnist, temperature: float, seeds: list[int],
                        recipe: Recipe = Recipe(), sharpness: float = 1.0, jobs: int = 1) -> dict[str, Any]:
    """What a user who adds a synthetic set to real data gets: the same CNN, same recipe, on the real training
    digits alone and on them plus as many synthetic ones (balanced, at `temperature`), for each seed (the seed of
    both the classifier and the draw); test accuracy of each, their means, spreads and the difference."""
    per_class = -(-len(ds.x_train) // 10)
    tasks = [(checkpoint, temperature, seed, replace(recipe, seed=seed), sharpness, per_class if mix else 0)
             for seed in seeds for mix in (False, True)]
    got = list(in_processes(jobs, ds, _real_plus, tasks))
    real, mixed = got[0::2], got[1::2]
    for seed, r, m in zip(seeds, real, mixed, strict=True):
        log.info("seed %d: real %.4f, real + synthetic %.4f", seed, r, m)

    def summary(v: list[float]) -> dict[str, float]:
        return {"mean": round(float(np.mean(v)), 4), "std": round(float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, 4)}

    diffs = [m - r for m, r in zip(mixed, real, strict=True)]
    return {"temperature": temperature, "sharpness": sharpness, "seeds": seeds, "real": real,
            "real_plus_synthetic": mixed,
            "synthetic_images": per_class * 10, "real_summary": summary(real), "mixed_summary": summary(mixed),
            "difference": summary(diffs), "classifier": {"net": "CasCNN (training/cas.py)", **asdict(recipe)}}


def _real_plus(ds: Mnist, checkpoint: Path, temperature: float, seed: int, recipe: Recipe, sharpness: float,
               per_class: int) -> float:
    """The CNN's test accuracy on the real training digits plus per_class synthetic ones of each class (0: alone)."""
    x, y = tensors(ds.x_train, ds.y_train)
    if per_class:
        xs, ys = tensors(*draw(checkpoint, per_class, temperature, seed, sharpness))
        x, y = torch.cat([x, xs]), torch.cat([y, ys])
    return round(accuracy(train_classifier(x, y, recipe), *tensors(ds.x_test, ds.y_test)), 4)
