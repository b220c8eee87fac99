"""Pure-torch models and losses of the autoencoder family. No file or network I/O here."""

from model.registry import KINDS, Kind, ModelSpec, build, kind, objective, pixels
from model.scripted import Servable, script

__all__ = ["KINDS", "Kind", "ModelSpec", "Servable", "build", "kind", "objective", "pixels", "script"]
