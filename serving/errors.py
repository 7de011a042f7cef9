"""Errors a request can end in, each with the HTTP status it is answered with."""

from __future__ import annotations


class ServingError(Exception):
    """A request that cannot be answered with predictions; `status` is its HTTP status."""

    status = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InputError(ServingError):
    """The body parses but does not fit the protocol or the model's signature.

    `field` names what is wrong (a column, `inputs[0].shape`, `dataframe_split.data`), and the
    message starts with it, so a client sees at once which part of its request to fix.
    """

    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class MalformedBody(ServingError):
    status = 400


class BodyTooLarge(ServingError):
    status = 413


class ModelNotFound(ServingError):
    status = 404


class Unavailable(ServingError):
    """Not ready yet, or the queue is full: try again shortly (503 with Retry-After)."""

    status = 503

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(Unavailable):
    """The model's queue is full (503 over HTTP; RESOURCE_EXHAUSTED over gRPC, where
    UNAVAILABLE says the server is loading or shutting down)."""


class PredictError(ServingError):
    """The model itself raised: a 500 carrying its message (a broken version shows as errors)."""

    status = 500


class LoadError(RuntimeError):
    """A model could not be resolved, downloaded or loaded; the server cannot start."""
