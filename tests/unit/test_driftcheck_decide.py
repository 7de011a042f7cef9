"""DriftCheck decisions and manifests, pure: preconditions, each run's outcome into status,
Events and Ready, retraining (once, then held back by an open run or the cooldown), the
CronJob and the alert rule, and the run's message both sides share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from maestro.monitoring.contract import (
    ColumnDrift,
    DriftFailure,
    DriftResult,
    Severity,
    decode_message,
    encode_message,
    severity_of,
)
from maestro.operators.api.common import Reason
from maestro.operators.api.driftcheck import DriftCheckSpec, DriftCheckStatus
from maestro.operators.core.verdict import DeploymentFacts
from maestro.operators.driftcheck import render
from maestro.operators.driftcheck.decide import (
    Facts,
    FinishedRun,
    Inputs,
    RetrainFacts,
    decide,
    preconditions,
)

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
IRIS = {"iris": DeploymentFacts("models:/iris@champion")}
IDS = render.Ids("ns", "iris-drift", "uid-1")


def spec(**extra: Any) -> DriftCheckSpec:
    base: dict[str, Any] = {"deployment": "iris", "reference": {"uri": "s3://d/ref.parquet"}}
    return DriftCheckSpec.model_validate({**base, **extra})


def result(*drifted: str, columns: tuple[str, ...] = ("a", "b", "c", "d")) -> DriftResult:
    cols = [
        ColumnDrift(
            name=c,
            test="ks",
            score=0.001 if c in drifted else 0.4,
            threshold=0.05,
            drifted=c in drifted,
        )
        for c in columns
    ]
    share = len(drifted) / len(columns)
    return DriftResult(
        drift_share=share,
        severity=severity_of(share, 0.3, 0.5),
        columns=cols,
        report_uri="s3://maestro/reports/r.html",
        mlflow_run_id="run1",
    )


def inputs(
    s: DriftCheckSpec | None = None,
    status: dict[str, Any] | None = None,
    run: FinishedRun | None = None,
    retrain: RetrainFacts | None = None,
    **kw: Any,
) -> Inputs:
    return Inputs(
        spec=s or spec(),
        status=DriftCheckStatus.model_validate(status or {}),
        now=NOW,
        cron_job="iris-drift-drift",
        reference_uri="s3://d/ref.parquet",
        last_run=run,
        retrain=retrain or RetrainFacts(),
        **kw,
    )


def finished(outcome: Any, job: str = "job-1", ok: bool = True) -> FinishedRun:
    return FinishedRun(
        job=job, finished_at=NOW - timedelta(seconds=5), succeeded=ok, outcome=outcome
    )


@pytest.mark.parametrize(
    ("s", "facts", "reason", "fragment"),
    [
        (
            spec(),
            Facts({}, set(), prediction_log_configured=True),
            Reason.DEPLOYMENT_NOT_FOUND,
            "spec.deployment",
        ),
        (
            spec(reference={"trainingRun": "train"}),
            Facts(IRIS, set(), prediction_log_configured=True),
            Reason.TRAINING_RUN_NOT_FOUND,
            "spec.reference.trainingRun",
        ),
        (
            spec(onDrift={"retrain": {"template": "train"}}),
            Facts(IRIS, set(), prediction_log_configured=True),
            Reason.TRAINING_RUN_NOT_FOUND,
            "spec.onDrift.retrain.template",
        ),
        (
            spec(reference={"trainingRun": "train"}),
            Facts(IRIS, {"train"}, training_run_dataset=None, prediction_log_configured=True),
            Reason.REFERENCE_MISSING,
            "spec.dataset.uri",
        ),
        (
            spec(),
            Facts(IRIS, set()),
            Reason.OBJECT_STORE_NOT_CONFIGURED,
            "MAESTRO_PREDICTION_LOG_URI",
        ),
    ],
)
def test_preconditions_name_what_is_missing(
    s: DriftCheckSpec, facts: Facts, reason: Reason, fragment: str
) -> None:
    verdict = preconditions(s, facts)
    assert verdict is not None and verdict.ready is False
    assert verdict.reason == reason and fragment in verdict.message


def test_preconditions_pass_with_a_uri_current_and_no_object_store() -> None:
    s = spec(current={"uri": "s3://d/cur.parquet"})
    assert preconditions(s, Facts(IRIS, set())) is None
    with_run = spec(reference={"trainingRun": "t"})
    assert preconditions(with_run, Facts(IRIS, {"t"}, "sklearn://iris", True)) is None


def test_before_any_run_it_is_scheduled_and_says_how_to_run_one_now() -> None:
    out = decide(inputs())
    assert (out.verdict.ready, out.verdict.reason, out.verdict.phase) == (
        True,
        Reason.SCHEDULED,
        "Active",
    )
    assert "kubectl create job --from=cronjob/iris-drift-drift" in out.verdict.message
    suspended = decide(inputs(spec(suspend=True)))
    assert (suspended.verdict.reason, suspended.verdict.phase) == (Reason.SUSPENDED, "Suspended")


def test_a_rejected_schedule_fails_without_retrying() -> None:
    out = decide(inputs(schedule_error="invalid schedule"))
    assert (out.verdict.ready, out.verdict.reason, out.verdict.phase) == (
        False,
        Reason.SCHEDULE_REJECTED,
        "Failed",
    )
    assert "spec.schedule" in out.verdict.message


def test_a_new_run_reaches_the_status_once_with_events() -> None:
    out = decide(inputs(run=finished(result("a", "c"))))
    st = out.status
    assert st["lastJob"] == "job-1" and st["severity"] == "Critical" and st["driftShare"] == 0.5
    assert st["driftedColumns"] == ["a", "c"]
    assert [c["name"] for c in st["columns"] if c["drifted"]] == ["a", "c"]
    assert st["reportUri"] and st["mlflowRunId"] == "run1"
    assert out.verdict.ready and out.verdict.reason == Reason.DRIFT_DETECTED
    assert out.events == [("Warning", Reason.DRIFT_DETECTED, st["lastRunMessage"])]
    # Reported already: the same Job changes nothing and says nothing again.
    again = decide(
        inputs(
            status={"lastJob": "job-1", "lastRunReason": "DriftDetected", "lastRunMessage": "m"},
            run=finished(result("a", "c")),
        )
    )
    assert again.events == [] and "lastJob" not in again.status
    assert again.verdict.reason == Reason.DRIFT_DETECTED and again.verdict.ready


def test_no_drift_is_a_normal_event() -> None:
    out = decide(inputs(run=finished(result())))
    assert out.status["severity"] == "Ok" and out.events[0][:2] == ("Normal", Reason.NO_DRIFT)


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (
            DriftFailure(reason="ColumnMissing", message="column x not in current"),
            Reason.COLUMN_MISSING,
        ),
        (DriftFailure(reason="EmptyData", message="no predictions"), Reason.EMPTY_DATA),
        (DriftFailure(reason="Odd", message="?"), Reason.CHECK_RUN_FAILED),
        (None, Reason.CHECK_RUN_FAILED),
    ],
)
def test_a_failed_run_is_ready_false_with_its_reason(
    failure: DriftFailure | None, reason: Reason
) -> None:
    out = decide(inputs(run=finished(failure, ok=False)))
    assert (out.verdict.ready, out.verdict.reason) == (False, reason)
    assert out.status["lastRunReason"] == reason.value and out.events[0][0] == "Warning"
    # An older run's figures do not stand beside this run's time.
    assert out.status["severity"] is None and out.status["driftShare"] is None


RETRAIN = {"onDrift": {"retrain": {"template": "iris-train", "cooldown": "1h"}}}
TEMPLATE = RetrainFacts(template_spec={"framework": "SKLearn"})


def test_critical_drift_retrains_once_then_holds_back() -> None:
    out = decide(inputs(spec(**RETRAIN), run=finished(result("a", "b")), retrain=TEMPLATE))
    assert out.retrain_for == ("job-1", "Critical")
    # A retrain still running holds the next one back.
    busy = RetrainFacts(template_spec={"framework": "SKLearn"}, open_runs=("iris-drift-retrain-1",))
    held = decide(
        inputs(spec(**RETRAIN), run=finished(result("a", "b"), job="job-2"), retrain=busy)
    )
    assert held.retrain_for is None
    assert held.events[-1][1] == Reason.RETRAIN_SKIPPED and "has not ended" in held.events[-1][2]
    # So does the cooldown after it ended.
    recent = {"lastRetrainTime": (NOW - timedelta(minutes=10)).isoformat()}
    cooled = decide(
        inputs(
            spec(**RETRAIN),
            status=recent,
            run=finished(result("a", "b"), job="j3"),
            retrain=TEMPLATE,
        )
    )
    assert cooled.retrain_for is None and "cooldown" in cooled.events[-1][2]
    later = {"lastRetrainTime": (NOW - timedelta(hours=2)).isoformat()}
    again = decide(
        inputs(
            spec(**RETRAIN),
            status=later,
            run=finished(result("a", "b"), job="j4"),
            retrain=TEMPLATE,
        )
    )
    assert again.retrain_for == ("j4", "Critical")


def test_below_min_severity_does_not_retrain() -> None:
    out = decide(inputs(spec(**RETRAIN), run=finished(result("a")), retrain=TEMPLATE))
    assert out.status["severity"] == "Ok" and out.retrain_for is None
    warn = decide(
        inputs(
            spec(**RETRAIN),
            run=finished(result("a", "b", columns=("a", "b", "c", "d", "e"))),
            retrain=TEMPLATE,
        )
    )
    assert warn.status["severity"] == "Warning" and warn.retrain_for is None


def test_cron_job_runs_the_check_restricted_and_fails_fast_on_bad_input() -> None:
    settings = render.DriftSettings(
        tracking_uri="http://mlflow:5000",
        prediction_log_uri="s3://maestro/predictions",
        reports_uri="s3://maestro/drift",
        object_store_secret="maestro-objectstore",  # pragma: allowlist secret
    )
    cj = render.cron_job(IDS, spec(columns=["a", "b"]), "s3://d/ref.parquet", settings)
    assert cj["spec"]["schedule"] == "0 * * * *" and cj["spec"]["concurrencyPolicy"] == "Forbid"
    job = cj["spec"]["jobTemplate"]["spec"]
    rule = job["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2]
    container = job["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[:2] == ["drift", "run"]
    assert args[args.index("--predictions") + 1] == (
        "s3://maestro/predictions/namespace=ns/deployment=iris"
    )
    assert args[args.index("--columns") + 1] == "a,b"
    assert args[args.index("--reports") + 1] == "s3://maestro/drift/ns/iris-drift"
    assert container["envFrom"] == [
        {"secretRef": {"name": "maestro-objectstore", "optional": True}}
    ]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert cj["metadata"]["ownerReferences"][0]["kind"] == "DriftCheck"
    assert job["template"]["metadata"]["labels"][render.LABEL_DRIFTCHECK] == "iris-drift"


def test_alert_rule_fires_warning_and_critical_on_the_exported_share() -> None:
    rule = render.prometheus_rule(IDS, spec(), render.DriftSettings())
    alerts = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert set(alerts) == {"MaestroDriftWarning", "MaestroDriftCritical"}
    assert alerts["MaestroDriftCritical"]["expr"] == (
        'maestro_driftcheck_drift_share{namespace="ns",driftcheck="iris-drift"} >= 0.5'
    )
    assert " < 0.5" in alerts["MaestroDriftWarning"]["expr"]


def test_retrain_run_copies_the_template_and_is_traceable() -> None:
    run = render.retrain_run(IDS, {"framework": "SKLearn"}, "job-1", "Critical")
    assert run["spec"] == {"framework": "SKLearn"}
    assert run["metadata"]["labels"][render.LABEL_DRIFTCHECK] == "iris-drift"
    assert run["metadata"]["annotations"][render.ANNOTATION_JOB] == "job-1"
    assert run["metadata"]["name"] == render.retrain_name(IDS, "job-1")
    assert render.retrain_name(IDS, "job-1") != render.retrain_name(IDS, "job-2")


def test_the_message_round_trips_and_fits_the_kubelet_limit() -> None:
    small = result("a")
    back, cut = decode_message(encode_message(small))
    assert back == small and cut is False
    names = tuple(f"c{i}_with_a_long_descriptive_name" for i in range(300))
    wide = result(*names[::3], columns=names)
    text = encode_message(wide)
    assert len(text) <= 4000
    back, cut = decode_message(text)
    assert cut is True and isinstance(back, DriftResult) and back.drift_share == wide.drift_share
    failure = DriftFailure(reason="EmptyData", message="none")
    assert decode_message(encode_message(failure)) == (failure, False)
    with pytest.raises(ValueError):
        decode_message("Traceback (most recent call last): ...")


def test_severity_levels() -> None:
    assert [severity_of(s, 0.3, 0.5) for s in (0.0, 0.29, 0.3, 0.5, 1.0)] == [
        Severity.OK,
        Severity.OK,
        Severity.WARNING,
        Severity.CRITICAL,
        Severity.CRITICAL,
    ]


def test_the_cooldown_holds_from_the_newest_retrain_even_without_its_status() -> None:
    # The status write after a retrain was lost (an operator restart): the run's own
    # creation time still holds the next one back.
    created = RetrainFacts(
        template_spec={"framework": "SKLearn"}, last_created=NOW - timedelta(minutes=5)
    )
    held = decide(inputs(spec(**RETRAIN), run=finished(result("a", "b")), retrain=created))
    assert held.retrain_for is None and "cooldown" in held.events[-1][2]


def test_long_names_get_distinct_bounded_derived_names() -> None:
    a = render.Ids("ns", "a" * 50 + "-one", "u1")
    b = render.Ids("ns", "a" * 50 + "-two", "u2")
    assert render.cron_job_name(a) != render.cron_job_name(b)
    assert len(render.cron_job_name(a)) + 11 <= 63
    assert len(render.labels(render.Ids("ns", "x" * 100, "u"))[render.LABEL_DRIFTCHECK]) <= 63
