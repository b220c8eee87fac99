"""The one table from a domain error to what each door answers: the HTTP status, the gRPC code (by name, so this
module imports no gRPC), and the words the OpenAPI responses use. Both doors and the OpenAPI document read it; first
match wins, so subclasses come before their bases."""

from __future__ import annotations

from dataclasses import dataclass

from service.engine.domain import (
    BodyTooLarge,
    BodyTooSlow,
    DeadlineExceeded,
    Forbidden,
    InvalidInput,
    NotAcceptable,
    NotReady,
    Overloaded,
    ServiceError,
    Unauthorized,
    UnknownModel,
    UnsupportedMediaType,
)


@dataclass(frozen=True)
class Answer:
    error: type[ServiceError]
    http: int
    grpc: str  # a grpc.StatusCode name
    what: str  # the OpenAPI response's description


TABLE: tuple[Answer, ...] = (
    Answer(InvalidInput, 422, "INVALID_ARGUMENT", "invalid input"),
    Answer(UnknownModel, 404, "NOT_FOUND", "unknown model"),
    Answer(Unauthorized, 401, "UNAUTHENTICATED", "missing or wrong API key"),
    Answer(Forbidden, 403, "PERMISSION_DENIED", "repository control off, or a wrong admin key"),
    Answer(NotReady, 503, "UNAVAILABLE", "not ready (loading, no default model, draining)"),
    Answer(Overloaded, 429, "RESOURCE_EXHAUSTED", "overloaded: retry after Retry-After"),
    Answer(DeadlineExceeded, 504, "DEADLINE_EXCEEDED", "deadline passed"),
    Answer(UnsupportedMediaType, 415, "INVALID_ARGUMENT", "body neither JSON nor .npy/.npz"),
    Answer(NotAcceptable, 406, "INVALID_ARGUMENT", "Accept names a type this answer cannot take"),
    Answer(BodyTooLarge, 413, "RESOURCE_EXHAUSTED", "body too large"),
    Answer(BodyTooSlow, 408, "DEADLINE_EXCEEDED", "body too slow"),
)
INTERNAL = Answer(ServiceError, 500, "INTERNAL", "internal error")


def answer(exc: ServiceError) -> Answer:
    for a in TABLE:
        if isinstance(exc, a.error):
            return a
    return INTERNAL


def openapi_responses() -> dict[str, str]:
    """HTTP status -> description, for every error an inference route can answer."""
    return {str(a.http): a.what for a in sorted(TABLE, key=lambda a: a.http)}
