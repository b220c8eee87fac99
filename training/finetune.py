"""--init-from: a run that starts from a finished model's weights (fine-tuning) rather than random ones, e.g. the
default's network trained on, with a larger IWAE k. The weights come from a served model.ts or a run's best.pt; the
spec the command line builds must be the same network, or the run is refused before its first step."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class InitMismatch(ValueError):
    """The file's weights do not fit the model this command builds."""


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    """The eager model's state dict stored in a run's best.pt or a served model.ts."""
    if path.suffix == ".pt":
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # not a torch file, or one holding more than tensors (refused unread)
            raise InitMismatch(f"not a run's best.pt ({str(e).splitlines()[0][:200]})") from None
        if not isinstance(blob, dict) or not isinstance(blob.get("state_dict"), dict):
            raise InitMismatch("not a run's best.pt: no state_dict in it")
        return blob["state_dict"]
    try:
        scripted = torch.jit.load(str(path), map_location="cpu").state_dict()
    except RuntimeError as e:
        raise InitMismatch(f"not a TorchScript checkpoint ({str(e).splitlines()[0]})") from None
    # model/scripted.py wraps the network as `model` and carries its prior's flow as `flow`
    out: dict[str, torch.Tensor] = {}
    for key, value in scripted.items():
        if key.startswith("model."):
            out[key.removeprefix("model.")] = value
        elif key.startswith("flow."):
            out["prior_flow." + key.removeprefix("flow.")] = value
    return out


def mismatches(model: nn.Module, given: dict[str, torch.Tensor]) -> list[str]:
    """What keeps `given` from loading into `model`: tensors missing, unexpected or of another shape (empty if it
    fits). Files saved before a model grew an empty parameter (the flow prior's per-class terms, (0, m) when
    unconditional) lack its key: nothing is lost by that, so an empty missing tensor is no mismatch."""
    have = model.state_dict()
    missing = [k for k in have if k not in given and have[k].numel()]
    unexpected = [k for k in given if k not in have]
    shapes = [f"{k} {tuple(given[k].shape)} vs {tuple(v.shape)}" for k, v in have.items()
              if k in given and given[k].shape != v.shape]
    return [part for part in (f"missing {', '.join(missing)}" if missing else "",
                              f"unexpected {', '.join(unexpected)}" if unexpected else "",
                              f"shapes differ: {'; '.join(shapes)}" if shapes else "") if part]


def load_initial_weights(model: nn.Module, path: Path) -> None:
    """Copy path's weights into model; any missing, unexpected or mis-shaped tensor refuses the run."""
    given = weights_of(path)
    problems = mismatches(model, given)
    if problems:
        raise InitMismatch("its weights do not fit the network this command builds (same --kind, --arch, "
                           "--width, --depth, --latent-dim and --prior needed): " + "; ".join(problems))
    model.load_state_dict(given, strict=False)
