"""The model repository as served: which checkpoints are loaded (load, reload, unload one, watch for new versions),
which model a request names (resolve, the default), and the readiness that follows from them. Loading and
verifying one file is service/engine/checkpoints.py's.

A reload swaps the whole set in one assignment, so requests in flight finish on the version they started with; a bad
file is refused (logged, counted) and whatever served before keeps serving. A checkpoint that leaves the set
(unloaded, deleted, replaced by a changed file) is handed to `on_retire` (the scheduler's), which frees it once the
requests queued on it are answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from service.engine.checkpoints import Checkpoint, scan
from service.engine.domain import InvalidInput, UnknownModel
from service.engine.lifecycle import Lifecycle, every
from service.engine.metrics import Metrics
from service.engine.runtime import Runtime
from service.settings import SHIPPED_DEFAULT, Settings

log = logging.getLogger(__name__)

Models = dict[str, dict[int, Checkpoint]]


@dataclass(frozen=True)
class Unloaded:
    """What is kept of a model an operator unloaded, to list it: never its module, whose memory is given back."""

    name: str
    version: int  # its newest version when unloaded
    generative: bool


class Repository:
    def __init__(self, settings: Settings, runtime: Runtime, lifecycle: Lifecycle, metrics: Metrics) -> None:
        self.settings, self.runtime, self.lifecycle, self.metrics = settings, runtime, lifecycle, metrics
        self.path = settings.model_repository
        self._models: Models = {}
        self._unloaded: dict[str, Unloaded] = {}  # unloaded by an operator: reloads leave them out
        # told of every checkpoint that stops being served (the scheduler drains it, then the runtime frees it)
        self.on_retire: Callable[[Checkpoint], None] = lambda ckpt: None
        self.load_errors: list[str] = []
        self.default_model: str | None = settings.default_model  # settled at each load: _settle
        self._lock = asyncio.Lock()

    # -- what is served ------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[int]:
        return sorted(self._models.get(name, {}))

    def checkpoints(self) -> list[Checkpoint]:
        """Every loaded version of every model, by name then version."""
        return [self._models[n][v] for n in self.names() for v in self.versions(n)]

    def unloaded(self) -> list[Unloaded]:
        """The newest version of each model an operator unloaded (listed as unavailable, never served)."""
        return [self._unloaded[n] for n in sorted(self._unloaded)]

    def newest(self, name: str) -> Checkpoint:
        versions = self._models[name]
        return versions[max(versions)]

    def resolve(self, name: str | None, version: int | None = None) -> Checkpoint:
        """The checkpoint a request names (default model, newest version unless pinned); UnknownModel otherwise."""
        name = name or self.default_model
        if name is None:
            raise UnknownModel("this server has no default model (its repository holds no generative model): name "
                               "one", {"available": self.names()})
        versions = self._models.get(name)
        if versions is None:
            raise UnknownModel(f"unknown model {name!r}", {"available": self.names()})
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise UnknownModel(f"model {name!r} has no version {version}", {"versions": sorted(versions)})
        return versions[version]

    # -- changing it ---------------------------------------------------------------------------

    def load(self) -> None:
        models, errors = scan(self.path)
        for versions in models.values():
            for ckpt in versions.values():
                self.runtime.place(ckpt)
        self._models, self.load_errors = models, errors
        self.metrics.load_failures.inc(len(errors))
        self._settle()
        if models:
            log.info("loaded %d models on %s: %s", len(models), self.runtime.device, ", ".join(sorted(models)))
        else:
            log.warning("no models loaded from %s: %s", self.path.resolve(), "; ".join(self.load_errors))

    async def reload(self, only: str | None = None) -> dict[str, object]:
        """Pick up new or changed versions without a restart (all models, or `only` one, which is then served
        again if it was unloaded). Loading runs off the event loop."""
        async with self._lock:
            if only is not None:
                self._unloaded.pop(only, None)
            current = self._models
            models, errors = await asyncio.to_thread(scan, self.path, current)
            if only is not None:  # the others stay exactly as they are
                if only not in models:
                    self.load_errors = errors
                    why = "; ".join(e for e in errors if f"/{only}/" in e) or "no such model in the repository"
                    raise UnknownModel(f"cannot load {only!r}: {why}", {"repository": str(self.path)})
                models = {**{n: v for n, v in current.items() if n != only}, only: models[only]}
            models = {n: v for n, v in models.items() if n not in self._unloaded}
            added = [(c.name, c.version) for v in models.values() for c in v.values()
                     if current.get(c.name, {}).get(c.version) is not c]
            for name, version in added:
                await asyncio.to_thread(self.runtime.place, models[name][version])
            # a refused file never removes what already served: keep old versions whose file broke
            for name, versions in current.items():
                for version, ckpt in versions.items():
                    if version not in models.get(name, {}) and ckpt.path.exists() and name not in self._unloaded:
                        models.setdefault(name, {})[version] = ckpt
            served = {id(c) for v in models.values() for c in v.values()}
            for ckpt in [c for v in current.values() for c in v.values() if id(c) not in served]:
                self.on_retire(ckpt)  # deleted from the repository, or replaced by a changed file
            self._models = models
            self.metrics.load_failures.inc(len(errors))
            self.load_errors = errors
            self._settle()  # a reload that brings the default model makes the server ready
            for name, version in added:
                log.info("serving %s version %d", name, version)
            return {"added": [f"{n}/{v}" for n, v in added], "refused": errors,
                    "models": {n: sorted(v) for n, v in sorted(models.items())}}

    async def unload(self, name: str) -> dict[str, object]:
        """Stop serving a model (every version) until it is loaded again; requests in flight finish."""
        async with self._lock:
            if name == self.default_model:
                raise InvalidInput(f"{name!r} is the default model and cannot be unloaded; set "
                                   "VAESERVE_DEFAULT_MODEL to another model first")
            if name not in self._models:
                raise UnknownModel(f"model {name!r} is not loaded", {"loaded": self.names()})
            newest = self.newest(name)
            self._unloaded[name] = Unloaded(name, newest.version, newest.generative)
            # new requests no longer resolve it; its batchers finish the requests already queued there, then go
            for ckpt in self._models[name].values():
                self.on_retire(ckpt)
            self._models = {n: v for n, v in self._models.items() if n != name}
            log.info("unloaded %s", name)
            return {"unloaded": name, "models": {n: sorted(v) for n, v in sorted(self._models.items())}}

    async def watch(self, interval_s: float) -> None:
        """Poll the repository every interval_s seconds and reload on change (a broken repository never stops it)."""
        await every(interval_s, self.reload, log, "reload failed")

    # -- the default model and readiness -------------------------------------------------------

    def _pick_default(self) -> str | None:
        """The model a request naming none gets: the setting when set; else the shipped default when present, else
        the newest generative model (by file time); None when the repository holds no generative model."""
        if self.settings.default_model is not None:
            return self.settings.default_model
        if SHIPPED_DEFAULT in self._models and self.newest(SHIPPED_DEFAULT).generative:
            return SHIPPED_DEFAULT
        generative = [(self.newest(n).stamp[0], n) for n in self._models if self.newest(n).generative]
        return max(generative)[1] if generative else None

    def _settle(self) -> None:
        """The default model, and readiness: the default loaded and generative (an unset default: any model
        loaded); the reason otherwise joins the load errors."""
        default, life = self._pick_default(), self.lifecycle
        if default != self.default_model or not life.ready:
            how = "VAESERVE_DEFAULT_MODEL" if self.settings.default_model else "unset VAESERVE_DEFAULT_MODEL: " + (
                "the shipped default" if default == SHIPPED_DEFAULT else "the newest generative model")
            if default:
                log.info("default model: %s (%s)", default, how)
            else:
                log.warning("no default model: %s holds no generative model; requests must name one", self.path)
        self.default_model = default
        if default is None:
            life.ready = bool(self._models)
            if not life.ready:
                self.load_errors.append(f"no models in {self.path}")
        else:
            if default not in self._models:
                self.load_errors.append(f"default model {default!r} is not in {self.path}")
            elif not self.newest(default).generative:
                self.load_errors.append(f"default model {default!r} is not generative")
            life.ready = default in self._models and self.newest(default).generative
        life.reasons = self.load_errors
