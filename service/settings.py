"""The service's one settings object (env prefix VAESERVE_), read once per process."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.shared import PEERS_ENV

SHIPPED_DEFAULT = "vae-flow-z20"
# VAESERVE_* variables that are not settings, never reported as unknown: the client's URL (read by vaeclient) and
# the directory a `--workers` parent hands its workers (service/shared.py)
NOT_SETTINGS = {"VAESERVE_URL", PEERS_ENV}


class Settings(BaseSettings):
    # One source for the environment and the flags: every field is VAESERVE_<NAME> and --<name> (kebab case);
    # flags win over the environment. Bare switches (`--channels-last`) as well as `--channels-last true`.
    model_config = SettingsConfigDict(env_prefix="VAESERVE_", env_file=None, cli_prog_name="python -m service",
                                      cli_kebab_case=True, cli_implicit_flags=True, cli_hide_none_type=True,
                                      cli_avoid_json=True)

    model_repository: Path = Field(Path("models"), description="models/<name>/<version>/model.ts")
    default_model: str | None = Field(None, description="served when a request names no model; must be "
                                      f"generative. Unset: {SHIPPED_DEFAULT} when the repository has it, else its "
                                      "newest generative model. Set and absent: the server refuses to start")
    host: str = Field("127.0.0.1", description="HTTP listen address (0.0.0.0 in containers)")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port (REST, the Open Inference Protocol, the explorer)")
    grpc_port: int = Field(8001, ge=0, le=65535, description="the Open Inference Protocol over gRPC, in the same "
                           "process (8001 as Triton); 0 turns it off")
    grpc_max_message_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024, description="largest gRPC message "
                                        "either way (a 10,000-row FP32 image answer is 31.4 MB)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when present, else cpu")
    precision: Literal["fp32", "fp16", "bf16"] = Field(
        "fp32", description="forward precision: fp32 keeps outputs within 1e-4 of the checkpoint's; bf16 (CPU or "
        "GPU) and fp16 (GPU) move pixels by a few hundredths for speed (the default's samples: at most 0.065, 1.4x "
        "the images/s on this CPU; a learned prior stays fp32); outputs stay float32 (or uint8 when asked)")
    half_precision: bool = Field(False, description="deprecated: the same as precision=fp16")
    channels_last: bool = Field(False, description="NHWC memory format for the conv models (fp32 outputs move by "
                                "< 2e-5; ~1.4x the conv default's decode rate on this project's 2-core CPU)")
    cuda_streams: int = Field(1, ge=1, le=8, description="CUDA: a batch of >= 256 rows is split over this many "
                              "streams so copies overlap compute (2 = two batches in flight); 1 = off. Not yet "
                              "measured on a GPU: benchmarks/cuda_check.sh measures it")
    cuda_graphs: bool = Field(False, description="CUDA: replay batches of <= 256 rows as CUDA graphs (padded to a "
                              "power of two). Not yet measured on a GPU: benchmarks/cuda_check.sh measures it")
    torch_threads: int = Field(1, ge=1, description="intra-op threads; 1 leaves a core to the HTTP loop")
    workers: int = Field(1, ge=1, le=64, description="server processes sharing the HTTP and gRPC ports (SO_REUSEPORT), "
                         "each with its own engine; /metrics adds them all, readiness needs them all, a worker that "
                         "dies is restarted. On CPU about one per core, with torch_threads 1")
    max_rows: int = Field(1024, ge=1, description="most rows (images or latents) in one request")
    max_sample: int = Field(10000, ge=1, description="largest n for a /sample answer in JSON, PNG or .npz")
    max_stream_sample: int = Field(1_000_000, ge=1, description="largest n for a /sample .npy answer (streamed in "
                                   "blocks of 10,000 rows; its deadline is request_timeout_s per block)")
    max_steps: int = Field(256, ge=2, description="largest steps for /interpolate")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="larger bodies get 413 before being read")
    max_batch_rows: int = Field(1024, ge=1, description="most rows in one forward pass (chunks are also sized "
                                "by time: chunk_target_ms)")
    chunk_target_ms: float = Field(50.0, gt=0, description="forward time one chunk may take; a small request "
                                   "waits about one chunk behind a bulk one")
    max_delay_ms: float = Field(2.0, ge=0, description="longest a batch waits for rows from requests still arriving")
    max_inflight: int = Field(512, ge=1, description="inference requests in the server at once (parsing, "
                              "queued, computing, answering); beyond it, 429 before the body is read")
    stream_min_rows: int = Field(2048, ge=1, description="a /sample .npy answer of at least this many rows is "
                                 "streamed as its chunks finish")
    queue_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024, description="bytes queued requests may hold "
                             "(inputs waiting and answers to come), all models; beyond it 429. Requests are admitted "
                             "by time: when their estimated finish fits their deadline")
    body_timeout_s: float = Field(10.0, gt=0, description="a body not received in full by then gets 408 "
                                  "(slow clients cannot hold a request open)")
    request_timeout_s: float = Field(30.0, gt=0, description="deadline per request; past it, 504. Requests are "
                                     "admitted only when their estimated finish fits it (else 429)")
    retry_after_s: int = Field(1, ge=1, description="Retry-After on 429 and 503")
    api_key: str | None = Field(None, description="when set, every route but health and metrics needs X-API-Key")
    cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins, a JSON list (closed "
                                    "when empty)")
    watch_interval_s: float = Field(0.0, ge=0, description="poll the repository for new versions (0 = off)")
    model_control: bool = Field(False, description="repository control: POST /admin/reload and the protocol's "
                                "load/unload (HTTP and gRPC); off = 403. Needs admin_key")
    admin_key: str | None = Field(None, min_length=16, description="the key repository control needs "
                                  "(X-Admin-Key header or x-admin-key gRPC metadata); separate from api_key")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="JSON log lines on stdout, one object each")
    opentelemetry: bool = Field(False, description="FastAPI's native OpenTelemetry spans, metrics and logs "
                                "(with a configured provider); Prometheus metrics are always on")
    drain_timeout_s: float = Field(30.0, ge=0, description="on SIGTERM, how long in-flight requests may finish")

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.lower() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _control_needs_key(self) -> Settings:
        if self.model_control and not self.admin_key:
            raise ValueError("VAESERVE_MODEL_CONTROL=true needs VAESERVE_ADMIN_KEY: repository control is never "
                             "open to whoever reaches the port")
        if self.admin_key is not None and len(self.admin_key) < 16:
            raise ValueError("VAESERVE_ADMIN_KEY: at least 16 characters")
        return self


def described() -> list[tuple[str, str | None, list[str], list[str], str]]:
    """Every setting as (variable, its default as written in the environment or None when unset, its limits
    (">= 1", ...), its choices (for a choice or a switch), what it means): the one source of every listing."""
    from typing import get_args, get_origin

    import annotated_types as at

    out = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = None if default is None else str(default).lower() if isinstance(default, bool) else str(default)
        limits = []
        for m in field.metadata:
            if isinstance(m, at.MinLen):
                limits.append(f"at least {m.min_length} characters")
            for kind, attr, op in ((at.Ge, "ge", ">="), (at.Gt, "gt", ">"), (at.Le, "le", "<="), (at.Lt, "lt", "<")):
                if isinstance(m, kind):
                    limits.append(f"{op} {getattr(m, attr)}")
        ann = field.annotation
        choices = ([str(a) for a in get_args(ann)] if get_origin(ann) is Literal
                   else ["true", "false"] if ann is bool else [])
        out.append((f"VAESERVE_{name.upper()}", shown, limits, choices, field.description or ""))
    return out


def markdown_table() -> str:
    """Every setting as a Markdown row: variable, default, bounds, meaning (the README's configuration table)."""
    rows = ["| variable | default | allowed | meaning |", "|---|---|---|---|"]
    for var, default, limits, choices, meaning in described():
        allowed = limits + ([" \\| ".join(f"`{c}`" for c in choices)] if choices else [])
        shown = "unset" if default is None else f"`{default}`"
        rows.append(f"| `{var}` | {shown} | {', '.join(allowed)} | {meaning} |")
    return "\n".join(rows)
