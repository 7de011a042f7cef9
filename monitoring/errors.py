"""Typed errors of the drift engine: the CamelCase reason becomes DriftFailure.reason."""

from __future__ import annotations

from maestro.monitoring.contract import EXIT_BAD_INPUT, EXIT_UNAVAILABLE, DriftFailure

# Reasons of bad input (exit 2: a Job does not retry them).
REFERENCE_UNREADABLE = "ReferenceUnreadable"
CURRENT_UNREADABLE = "CurrentUnreadable"
COLUMN_MISSING = "ColumnMissing"
EMPTY_DATA = "EmptyData"
ALL_NULL_COLUMN = "AllNullColumn"
UNSUPPORTED_FORMAT = "UnsupportedFormat"
UNSUPPORTED_TEST = "UnsupportedStatTest"
TEST_NOT_APPLICABLE = "StatTestNotApplicable"
BAD_ARGUMENT = "InvalidArgument"
# A service (object store, MLflow) that could not be reached (exit 3: worth retrying).
SERVICE_UNAVAILABLE = "ServiceUnavailable"


class DriftError(Exception):
    """A check that could not run; `reason` is CamelCase, `exit_code` from the contract."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def failure(self) -> DriftFailure:
        return DriftFailure(reason=self.reason, message=self.message)


class DriftInputError(DriftError):
    """Bad input: unreadable data, a missing column, an empty window, an all-null column."""

    exit_code = EXIT_BAD_INPUT


class DriftUnavailableError(DriftError):
    """The object store or MLflow could not be reached."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, message: str, reason: str = SERVICE_UNAVAILABLE) -> None:
        super().__init__(reason, message)
