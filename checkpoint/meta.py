"""A checkpoint's meta as a typed object: what the contract promises (format 1), read once, checked once.

The embedded meta.json stays the file's truth; `Meta.parse` checks it (format.check_meta) and gives typed fields,
so readers write `meta.latent_dim`, not `meta["latent_dim"]`, and a missing or mistyped field fails at load with a
message naming it rather than deep inside a request. `raw` keeps everything (the training config, digests, and
fields of newer writers) for listings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from checkpoint.format import CheckpointError, check_meta, load


class Prior(StrEnum):
    """What a checkpoint samples its codes from (meta's `prior`): N(0, I), a flow p(z) learned with the model (or
    fitted after it), or a flow p(z | y) that also reads the label. A StrEnum: meta.json keeps the plain strings."""

    NORMAL = "normal"
    FLOW = "flow"
    CLASS_FLOW = "class-flow"

    @property
    def learned(self) -> bool:
        """The file carries prior(eps) and prior_log_prob(z): /sample decodes prior(eps), not eps."""
        return self is not Prior.NORMAL


@dataclass(frozen=True)
class Meta:
    name: str
    version: int
    kind: str  # the registry's kind name; informative: the service checks capabilities, never kinds
    latent_dim: int  # m: encode gives (B, m), decode takes (B, m)
    stochastic: bool  # encode's logvar is meaningful (a VAE); false for plain autoencoders
    generative: bool  # decoding N(0, I) (or the learned prior) gives digits: /sample is allowed
    num_classes: int  # 0 = unconditional; else encode and decode take one label per row in 0..num_classes-1
    likelihood: str  # p(x|z): "bernoulli" or "gaussian"
    prior: Prior = Prior.NORMAL  # a learned one: the file carries prior(eps) and prior_log_prob(z)
    config: dict[str, Any] = field(default_factory=dict)  # how it was trained
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # the whole meta.json

    @classmethod
    def parse(cls, meta: Any, where: Path | str = "meta") -> Meta:
        """CheckpointError naming the first problem, else the typed meta."""
        m = check_meta(meta, where)
        return cls(name=str(m["name"]), version=int(m["version"]), kind=str(m["kind"]), latent_dim=m["latent_dim"],
                   stochastic=m["stochastic"], generative=m["generative"], num_classes=m["num_classes"],
                   likelihood=str(m["likelihood"]), prior=_prior(m.get("prior"), where),
                   config=dict(m.get("config") or {}), raw=dict(m))

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def listing(self) -> dict[str, Any]:
        """What GET /models shows: the meta without the training config (and without legacy figures)."""
        return {k: v for k, v in self.raw.items() if k not in ("config", "metrics")}


def _prior(value: Any, where: Path | str) -> Prior:
    try:
        return Prior(value or Prior.NORMAL)
    except ValueError:
        raise CheckpointError(f"{where}: prior {value!r} is not one of {', '.join(p.value for p in Prior)}") from None


def load_model(path: Path, map_location: str | torch.device = "cpu",
               verify: bool = True) -> tuple[torch.jit.ScriptModule, Meta]:
    """A model checkpoint (not the judge): (module in eval mode, its typed meta), the contract's fields always
    checked; with verify, the weights digest too."""
    module, meta = load(path, map_location, verify=verify)
    return module, Meta.parse(meta, path)
