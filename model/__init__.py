"""Pure-torch models and losses of the autoencoder family. No file or network I/O here."""

from model.registry import KINDS, ModelSpec, build, objective
from model.scripted import Servable, script

__all__ = ["KINDS", "ModelSpec", "Servable", "build", "objective", "script"]
