"""What can go wrong while serving, in the service's own terms. Nothing here knows HTTP or gRPC:
service/dataplane/errors.py is the one table from these to HTTP statuses and gRPC codes."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base: a message that says what was wrong and what is allowed, plus optional structured detail."""

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message, self.detail = message, detail


class InvalidInput(ServiceError):
    """The request is well-formed HTTP but its content is not acceptable (shape, range, labels...)."""


class UnknownModel(ServiceError):
    """No such model, version or v2 model name in the repository."""


class Unauthorized(ServiceError):
    """Missing or wrong API key."""


class Forbidden(ServiceError):
    """Repository control is off, or the admin key is missing or wrong."""


class Retryable(ServiceError):
    """The server cannot take this now; the same request later may pass."""

    def __init__(self, message: str, retry_after_s: int, detail: Any = None) -> None:
        super().__init__(message, detail)
        self.retry_after_s = retry_after_s


class NotReady(Retryable):
    """Loading, missing the default model, or draining for shutdown."""


class Overloaded(Retryable):
    """In-flight cap or the batch queue is full: shed now rather than grow latency."""


class DeadlineExceeded(ServiceError):
    """The request's one deadline passed before its rows were computed."""


class NotAcceptable(ServiceError):
    """An answer in a media type this route cannot give (Accept: image/png for several images); the message lists
    what it can."""


class UnsupportedMediaType(ServiceError):
    """A body of a content type the route does not take (a form post, say); the message lists what it takes."""


class BodyRefused(ServiceError):
    """The body was refused before it was read in full; the connection is closed after the answer."""


class BodyTooLarge(BodyRefused):
    """More bytes than the body limit."""


class BodyTooSlow(BodyRefused):
    """Not received in full within the body timeout."""
