"""Concurrent tuning workers inserting the same MLflow row: the conflict is asked again,
any other error is not (the `dataset_pk` failure a healthy search showed)."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from maestro.training.tracking import is_conflict, retry_on_conflict

pytestmark = pytest.mark.unit

DATASET_PK = MlflowException(
    "BAD_REQUEST: (psycopg2.errors.UniqueViolation) duplicate key value violates unique"
    ' constraint "dataset_pk"'
)


@pytest.mark.parametrize(
    ("err", "conflict"),
    [
        pytest.param(DATASET_PK, True, id="postgresql-unique-violation"),
        pytest.param(
            MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets"),
            True,
            id="sqlite-unique",
        ),
        pytest.param(MlflowException("RESOURCE_DOES_NOT_EXIST: run x"), False, id="missing-run"),
        pytest.param(ValueError("duplicate key"), False, id="not-mlflow"),
    ],
)
def test_is_conflict(err: Exception, conflict: bool) -> None:
    assert is_conflict(err) is conflict


def test_a_conflict_is_asked_again_until_it_succeeds() -> None:
    calls: list[int] = []

    def log_inputs() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise DATASET_PK
        return "logged"

    assert retry_on_conflict(log_inputs) == "logged"
    assert len(calls) == 3


def test_other_errors_and_endless_conflicts_are_raised() -> None:
    calls: list[int] = []

    def missing() -> None:
        calls.append(1)
        raise MlflowException("RESOURCE_DOES_NOT_EXIST: run x")

    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        retry_on_conflict(missing)
    assert len(calls) == 1

    def always() -> None:
        raise DATASET_PK

    with pytest.raises(MlflowException, match="dataset_pk"):
        retry_on_conflict(always, attempts=2)
