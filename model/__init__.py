"""Pure-torch models and losses of the autoencoder family. No file or network I/O here."""

from model.registry import KINDS, Kind, ModelSpec, build, kind, objective, pixels
from model.scripted import Servable, has_prior, script

__all__ = ["KINDS", "Kind", "ModelSpec", "Servable", "build", "has_prior", "kind", "objective", "pixels", "script"]
