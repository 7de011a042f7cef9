"""Why a reconcile failed, as the Synced condition's reason: which dependency was not there.

Pure: the exception and its causes are read by the module their types come from, so this
imports none of the clients (MLflow alone takes seconds to import).
"""

from __future__ import annotations

from collections.abc import Iterator

from maestro.operators.api.common import Reason

# Exceptions of these modules mean the registry (MLflow, or the HTTP client under it)
# failed; MLflow wraps what `requests` raises, so it is met first.
REGISTRY_MODULES = ("mlflow", "requests")
# The API server: the Kubernetes client's errors, or the connection under it (the
# kubernetes client raises urllib3's errors unwrapped).
API_MODULES = ("kubernetes.client", "kopf", "aiohttp", "urllib3")


class DependencyUnavailable(Exception):
    """A dependency's failure, raised with the reason the Synced condition reports (the
    registry's lookups raise it, whichever client they went through)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def causes(err: BaseException) -> Iterator[BaseException]:
    """`err`, then what caused it, outermost first (cycles cut)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def failure_reason(err: BaseException, *, registry_call: bool = False) -> Reason:
    """RegistryUnavailable, APIServerUnavailable or ReconcileError. `registry_call`: the
    error came out of a registry lookup (so a bare connection error is MLflow's)."""
    for cause in causes(err):
        if isinstance(cause, DependencyUnavailable):
            return cause.reason
        module = type(cause).__module__
        if module.startswith(API_MODULES):
            status = getattr(cause, "status", None)
            # A refusal (4xx but 429) is the request's fault, not the server's absence.
            if isinstance(status, int) and 400 <= status < 500 and status != 429:
                return Reason.RECONCILE_ERROR
            return Reason.API_SERVER_UNAVAILABLE
        if module.startswith(REGISTRY_MODULES):
            return Reason.REGISTRY_UNAVAILABLE
        if registry_call and isinstance(cause, OSError):
            return Reason.REGISTRY_UNAVAILABLE
    return Reason.RECONCILE_ERROR
