"""What the operator does when a dependency is down, as pure functions: the Synced
condition's reason and its round trip, the per-object back-off, a canary holding (never
rolling back) while Prometheus cannot give figures, and the MLflow client's retries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from requests.exceptions import ConnectionError as RequestsConnectionError
from urllib3.exceptions import MaxRetryError

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import ModelDeploymentStatus
from maestro.operators.core.backoff import Backoff
from maestro.operators.core.failures import DependencyUnavailable, failure_reason
from maestro.operators.core.status import plan_status, plan_sync_failure
from maestro.operators.core.verdict import Verdict
from maestro.operators.modeldeployment.decide import Inputs, decide
from maestro.operators.runtime import mlflow_client_env
from tests.unit.modeldeployment_cases import CANARY, CANARY_AT_10, T0, V4, at, facts, fixed, spec

pytestmark = pytest.mark.unit


def raised(outer: BaseException, cause: BaseException | None = None) -> BaseException:
    try:
        try:
            if cause is not None:
                raise cause
        except BaseException as inner:
            raise outer from inner
        raise outer
    except BaseException as err:
        return err


class FakeApiException(Exception):
    """Shaped like kubernetes.client.exceptions.ApiException: a status and the module."""

    __module__ = "kubernetes.client.exceptions"

    def __init__(self, status: int) -> None:
        super().__init__(f"({status})")
        self.status = status


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        pytest.param(
            raised(MlflowException("API request failed"), RequestsConnectionError("refused")),
            Reason.REGISTRY_UNAVAILABLE,
            id="mlflow-unreachable",
        ),
        pytest.param(
            raised(RuntimeError("wrapped"), RequestsConnectionError("refused")),
            Reason.REGISTRY_UNAVAILABLE,
            id="requests-under-a-wrapper",
        ),
        pytest.param(
            MaxRetryError(None, "/apis", "refused"),  # type: ignore[arg-type]
            Reason.API_SERVER_UNAVAILABLE,
            id="api-server-connection",
        ),
        pytest.param(FakeApiException(503), Reason.API_SERVER_UNAVAILABLE, id="api-server-503"),
        pytest.param(FakeApiException(429), Reason.API_SERVER_UNAVAILABLE, id="api-throttled"),
        pytest.param(FakeApiException(422), Reason.RECONCILE_ERROR, id="api-refused-request"),
        pytest.param(KeyError("spec"), Reason.RECONCILE_ERROR, id="a-bug-is-not-an-outage"),
        pytest.param(
            raised(
                DependencyUnavailable(Reason.REGISTRY_UNAVAILABLE, "model registry: refused"),
                OSError("urllib: connection refused"),
            ),
            Reason.REGISTRY_UNAVAILABLE,
            id="the-registrys-lookup-says-so-whatever-its-client",
        ),
    ],
)
def test_failure_reasons_name_the_dependency(err: BaseException, expected: Reason) -> None:
    assert failure_reason(err) == expected


def test_a_bare_connection_error_is_the_registrys_only_from_a_registry_call() -> None:
    assert failure_reason(ConnectionRefusedError()) == Reason.RECONCILE_ERROR
    assert failure_reason(ConnectionRefusedError(), registry_call=True) == (
        Reason.REGISTRY_UNAVAILABLE
    )


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions", [])}


def test_synced_goes_false_with_the_reason_once_and_true_on_the_next_report() -> None:
    clock = fixed(T0)
    stored: dict[str, Any] = {"observedGeneration": 1, "phase": "Available"}
    ok = Verdict(True, Reason.AVAILABLE, "serving", "Available")
    first = plan_status(ModelDeploymentStatus, stored, ok, generation=1, clock=clock)
    stored = {**stored, **first.patch}
    # An object that never failed carries no Synced condition.
    assert set(conditions(stored)) == {"Ready"}

    patch = plan_sync_failure(
        ModelDeploymentStatus,
        stored,
        reason=Reason.REGISTRY_UNAVAILABLE,
        message="MLflow unreachable",
        generation=1,
        clock=clock,
    )
    stored = {**stored, **patch}
    assert conditions(stored) == {
        "Ready": ("True", "Available"),  # what runs still runs
        "Synced": ("False", "RegistryUnavailable"),
    }
    again = plan_sync_failure(
        ModelDeploymentStatus,
        stored,
        reason=Reason.REGISTRY_UNAVAILABLE,
        message="MLflow unreachable",
        generation=1,
        clock=fixed(T0 + timedelta(minutes=1)),
    )
    assert again == {}, "a retry failing the same way writes nothing"

    back = plan_status(ModelDeploymentStatus, stored, ok, generation=1, clock=clock)
    assert conditions({**stored, **back.patch})["Synced"] == ("True", "Reconciled")
    assert back.transition is None, "Ready did not change: no Event for it"
    settled = {**stored, **back.patch}
    assert plan_status(ModelDeploymentStatus, settled, ok, generation=1, clock=clock).empty


def test_a_first_reconcile_that_fails_leaves_ready_unknown_with_the_reason() -> None:
    patch = plan_sync_failure(
        ModelDeploymentStatus,
        {},
        reason=Reason.REGISTRY_UNAVAILABLE,
        message="MLflow unreachable",
        generation=1,
        clock=fixed(T0),
    )
    assert patch["observedGeneration"] == 1
    assert conditions(patch) == {
        "Ready": ("Unknown", "RegistryUnavailable"),
        "Synced": ("False", "RegistryUnavailable"),
    }


def test_backoff_doubles_up_to_its_cap_and_resets_on_success() -> None:
    backoff = Backoff(base=2.0, cap=10.0)
    key = ("ns", "md")
    assert backoff.waiting(key, T0) is None
    delays = []
    now = T0
    for _ in range(5):
        failed = backoff.failed(key, now, "down")
        delays.append((failed.retry_at - now).total_seconds())
        assert backoff.waiting(key, now + timedelta(seconds=1)) == failed
        now = failed.retry_at
        assert backoff.waiting(key, now) is None, "due at retry_at"
    assert delays == [2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.succeeded(key)
    assert backoff.failed(key, now, "down again").attempt == 1
    assert backoff.waiting(("ns", "other"), now) is None


def test_a_canary_without_figures_holds_says_why_and_waits_for_the_retry() -> None:
    """Prometheus down at an analysis: no check counted, no rollback, the reason in the
    condition message, and the next look at the back-off's time, not at once."""
    now = at(120)  # the analysis (every 60 s) is overdue
    retry = now + timedelta(seconds=16)
    inputs = Inputs(
        spec=spec(CANARY),
        status=ModelDeploymentStatus.model_validate(CANARY_AT_10),
        model_uri=V4,
        now=now,
        revisions=facts(v3=(4, 4), v4=(1, 1)),
        analysis=None,
        analysis_error="Prometheus unreachable at http://prometheus:9090: refused",
        analysis_retry_at=retry,
    )
    decision = decide(inputs)
    assert decision.verdict.phase == "Progressing"
    assert decision.verdict.reason == Reason.CANARY_PROGRESSING
    assert "analysis unavailable" in decision.verdict.message
    assert "Prometheus unreachable" in decision.verdict.message
    assert decision.status.get("canaryRevision") == "v4"
    assert not decision.status.get("failedChecks")
    assert decision.requeue_after == pytest.approx(16.0)

    # Without the back-off's time, the overdue analysis is looked at again sooner.
    eager = decide(Inputs(**{**inputs.__dict__, "analysis_error": "", "analysis_retry_at": None}))
    assert eager.requeue_after is not None and eager.requeue_after < 16.0


def test_the_operator_leaves_retries_of_mlflow_to_its_work_queue() -> None:
    env = mlflow_client_env(request_timeout=12.5)
    assert env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
    assert env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "13"
