"""The checkpoint format (format 1), in one place: read, write, digest, required fields.

Torch-only, so both training/ (which writes) and service/ (which serves) import it without importing
each other or model/. Everything else asks this package; nothing else opens a model.ts for its meta.
"""

from checkpoint.format import (
    FORMAT,
    METRICS_FILE,
    MODEL_FILE,
    REQUIRED,
    CheckpointError,
    check_meta,
    has_prior,
    latents,
    load,
    newest,
    next_version,
    prior_log_prob,
    prior_noise,
    prior_takes_labels,
    read_meta,
    read_metrics,
    save,
    weights_sha256,
    write_metrics,
)
from checkpoint.meta import Meta, Prior, load_model

__all__ = ["FORMAT", "METRICS_FILE", "MODEL_FILE", "REQUIRED", "CheckpointError", "Meta", "Prior", "check_meta",
           "has_prior",
           "latents", "load", "load_model", "newest", "next_version", "prior_log_prob", "prior_noise",
           "prior_takes_labels",
           "read_meta", "read_metrics", "save", "weights_sha256", "write_metrics"]
