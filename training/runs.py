"""A finished run made into a served checkpoint (python -m training export RUN): load its best.pt into the model its
spec builds, carry its figures and training time, and optionally fit a flow prior to it first (stage two)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from checkpoint import Prior
from model import ModelSpec, build
from training.data import load_mnist
from training.export import export
from training.finetune import mismatches
from training.loop import fit_prior, resolve_device, to_tensor


def export_run(run: Path, name: str, repository: Path, command: str, prior_fit_epochs: int | None,
               idx_dir: Path | None, data_cache: Path) -> Path:
    """Export a run's best.pt (python -m training export): the model its spec builds, its figures and training time
    from the run's log, and, with prior_fit_epochs, a flow prior fitted now to the model's codes of the training
    images (stage two on a finished run)."""
    blob = torch.load(run, map_location="cpu", weights_only=True)
    spec = ModelSpec(**blob["spec"])
    model = build(spec)
    lost = mismatches(model, blob["state_dict"])  # an empty tensor an older run lacks is no loss
    if lost:
        raise ValueError(f"{run} does not fit the model its spec builds: {'; '.join(lost)}")
    model.load_state_dict(blob["state_dict"], strict=False)
    name = name or run.parent.name
    metrics = {k: v for k, v in blob["best"].items() if k.startswith("test_") or k == "epoch"}
    config, prior = dict(blob["config"]), None
    config.update(name=name, repository=str(repository))  # where this export goes, not where the run went
    config["export_command"] = command  # the run's own training command stays in config["command"]
    log_file = run.parent / "metrics.jsonl"  # the run's epochs: its last line has the whole run's time
    if log_file.exists():
        last = json.loads(log_file.read_text().strip().splitlines()[-1])
        # older best.pt files do not say where they trained: here
        device = blob.get("train_device") or resolve_device(blob["config"].get("device", "auto")).type
        metrics.update(train_seconds=round(last["elapsed_s"], 1), train_device=device)
    if prior_fit_epochs is not None:
        x_train = to_tensor(load_mnist(idx_dir, data_cache).x_train, torch.device("cpu"))
        prior, figures = fit_prior(model.eval(), spec, x_train, prior_fit_epochs, int(config.get("seed", 0)))
        metrics.update(figures)
        metrics["train_seconds"] = round(metrics.get("train_seconds", 0.0) + figures["prior_fit_seconds"], 1)
        config.update(prior=Prior.FLOW.value, prior_epochs=prior_fit_epochs)
    return export(model, spec, name, repository, config, blob["data_sha256"], metrics, prior)
