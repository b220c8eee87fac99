"""Reading the settings at start, so that a wrong one speaks up: a VAESERVE_* variable that is not a setting is
named with the closest real one, and a bad value stops the start in a few lines that name the variable (and its
flag), the value and what is allowed, never a pydantic traceback. Flags and variables are one source: Settings."""

from __future__ import annotations

import difflib
import os
import sys
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from checkpoint import MODEL_FILE
from service.settings import NOT_SETTINGS, Settings, described


class BadSettings(SystemExit):
    """Stops the start with its message (exit status 2, as for a bad flag)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = 2

    def __str__(self) -> str:
        return self.message


def variable(field: str) -> str:
    return f"VAESERVE_{field.upper()}"


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


# words people use for a setting's word (VAESERVE_MODEL_DIR meant VAESERVE_MODEL_REPOSITORY)
SYNONYMS = {"DIR": "REPOSITORY", "DIRECTORY": "REPOSITORY", "PATH": "REPOSITORY", "REPO": "REPOSITORY",
            "FOLDER": "REPOSITORY", "MODELS": "MODEL", "THREADS": "TORCH_THREADS", "GPU": "DEVICE",
            "TIMEOUT": "TIMEOUT_S", "KEY": "API_KEY", "LEVEL": "LOG_LEVEL"}


def closest(name: str, known: list[str]) -> list[str]:
    """The setting a misspelt or misremembered variable most likely meant: most shared words (synonyms mapped),
    then spelling; [] when nothing is close."""
    words = set("_".join(SYNONYMS.get(w, w) for w in name[9:].split("_")).split("_"))

    def score(k: str) -> tuple[int, float]:
        return len(words & set(k[9:].split("_"))), difflib.SequenceMatcher(None, name[9:], k[9:]).ratio()

    best = max(known, key=score)
    shared, ratio = score(best)
    return [best] if shared or ratio >= 0.6 else []


def unknown_variables(environ: dict[str, str] | None = None) -> list[str]:
    """One line per VAESERVE_* variable that no setting reads, with the closest real one when there is one."""
    env = os.environ if environ is None else environ
    known = [variable(f) for f in Settings.model_fields]
    lines = []
    for name in sorted(env):
        if not name.startswith("VAESERVE_") or name in known or name in NOT_SETTINGS:
            continue
        close = closest(name, known)
        hint = f"; did you mean {close[0]}?" if close else "; python -m service --help lists them"
        lines.append(f"{name} is not a setting{hint}")
    return lines


def explain(exc: ValidationError) -> str:
    """A ValidationError as lines a person reads: which variable (and flag), which value, what is allowed."""
    allowed = {var: limits + ([" | ".join(choices)] if choices else [])
               for var, _, limits, choices, _ in described()}
    lines = ["vaeserve: cannot start, a setting is wrong:"]
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err.get("loc", ()) if isinstance(part, str)]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if not loc:  # a rule across settings (control needs a key): its message names them
            lines.append(f"  {msg}")
            continue
        field = loc[0].replace("-", "_")
        var = variable(field)
        value = err.get("input")
        rule = ", ".join(allowed.get(var, []))
        lines.append(f"  {var} (flag {flag(field)}) = {value!r}: {msg}" + (f"; allowed: {rule}" if rule else ""))
    return "\n".join(lines)


@lru_cache
def get_settings() -> Settings:
    """The environment's settings, once per process (uvicorn --factory service.app:create_app); a bad value stops
    the start with a few lines, not a traceback."""
    return load_settings(None)


def load_settings(argv: list[str] | None) -> Settings:
    """Settings from the environment, and from argv when given (flags win); BadSettings on a bad value."""
    for line in unknown_variables():
        print(f"vaeserve: {line}", file=sys.stderr)  # before logging is configured: plain stderr
    try:
        if argv is None:
            return Settings()
        return Settings(_cli_parse_args=argv)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise BadSettings(explain(exc)) from None


def repository_names(repository: Path) -> list[str]:
    """Names of the models a repository holds (a <name>/<version>/model.ts under it), without loading any."""
    if not repository.is_dir():
        return []
    return sorted(p.parent.parent.name for p in repository.glob(f"*/*/{MODEL_FILE}"))


def check_default_model(s: Settings) -> None:
    """An explicit default model must be in the repository: refuse to start in one line otherwise (a server that
    looks healthy and answers 503 to everything helps nobody)."""
    if s.default_model is None:
        return
    names = sorted(set(repository_names(s.model_repository)))
    if s.default_model not in names:
        there = ", ".join(names) if names else "no models at all"
        raise BadSettings(f"vaeserve: VAESERVE_DEFAULT_MODEL (flag --default-model) is {s.default_model!r}, which "
                          f"is not in {s.model_repository}/ ({there}); unset it to serve the repository's newest "
                          "generative model")
