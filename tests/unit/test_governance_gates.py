"""The promotion gates, table-tested as pure functions of measured figures."""

from __future__ import annotations

from typing import Any

import pytest

from maestro.governance.gates import Evidence, GroupScores, Timing, check, run_gates
from maestro.governance.policy import FairnessGate, LatencyGate, MetricGate, SignatureGate

pytestmark = pytest.mark.unit


def metric(name: str = "accuracy", min_delta: float = 0.0) -> MetricGate:
    return MetricGate(type="metric", metric=name, minDelta=min_delta)


def evidence(**kw: Any) -> Evidence:
    base: dict[str, Any] = {"candidate": "3", "champion": "2"}
    return Evidence(**(base | kw))


def groups(**scores: tuple[int, float]) -> dict[str, dict[str, GroupScores]]:
    return {"sex": {g: GroupScores(n, {"accuracy": v}) for g, (n, v) in scores.items()}}


LATENCY = LatencyGate(type="latency", p95Ms=20, requests=100)
FAIR = FairnessGate(type="fairness", column="sex", maxGap=0.1, minGroupSize=10)
SIGNATURE = SignatureGate(type="signature")

CASES: list[tuple[str, Any, Evidence, bool, str]] = [
    (
        "better candidate passes",
        metric(),
        evidence(candidate_metrics={"accuracy": 0.95}, champion_metrics={"accuracy": 0.90}),
        True,
        "improvement +0.0500",
    ),
    (
        "worse candidate fails",
        metric(),
        evidence(candidate_metrics={"accuracy": 0.85}, champion_metrics={"accuracy": 0.90}),
        False,
        "improvement -0.0500, short of the +0.0000 required",
    ),
    (
        "a tolerated regression passes",
        metric(min_delta=-0.02),
        evidence(candidate_metrics={"accuracy": 0.89}, champion_metrics={"accuracy": 0.90}),
        True,
        "at least the -0.0200 required",
    ),
    (
        "lower rmse is better",
        metric("rmse"),
        evidence(candidate_metrics={"rmse": 1.5}, champion_metrics={"rmse": 2.0}),
        True,
        "improvement +0.5000",
    ),
    (
        "higher rmse fails",
        metric("rmse"),
        evidence(candidate_metrics={"rmse": 2.5}, champion_metrics={"rmse": 2.0}),
        False,
        "improvement -0.5000",
    ),
    (
        "no champion: the metric passes",
        metric(),
        evidence(champion=None, candidate_metrics={"accuracy": 0.5}),
        True,
        "no champion to compare with",
    ),
    ("fast enough", LATENCY, evidence(timing=Timing(2.0, 15.0, 100)), True, "within the 20 ms"),
    ("too slow", LATENCY, evidence(timing=Timing(30.0, 45.5, 100)), False, "p95 45.50 ms"),
    ("not measured", LATENCY, evidence(), False, "not measured"),
    (
        "fair",
        FAIR,
        evidence(groups=groups(f=(50, 0.92), m=(50, 0.88))),
        True,
        "gap 0.0400",
    ),
    (
        "unfair",
        FAIR,
        evidence(groups=groups(f=(50, 0.95), m=(50, 0.55))),
        False,
        "gap 0.4000 between sex=f (0.9500) and sex=m (0.5500) over",
    ),
    (
        "small groups are not judged",
        FAIR,
        evidence(groups=groups(f=(50, 0.95), m=(3, 0.0))),
        False,
        "fewer than 2 groups",
    ),
    (
        "a tiny group does not decide the gap",
        FAIR,
        evidence(groups=groups(f=(50, 0.95), m=(50, 0.9), x=(2, 0.0))),
        True,
        "gap 0.0500",
    ),
    ("compatible", SIGNATURE, evidence(), True, "accepts every input of champion v2"),
    (
        "incompatible",
        SIGNATURE,
        evidence(signature_problems=["input 'age' (long) was removed"]),
        False,
        "incompatible with champion v2: input 'age' (long) was removed",
    ),
    ("no champion: any signature", SIGNATURE, evidence(champion=None), True, "no champion"),
]


@pytest.mark.parametrize(
    ("gate", "ev", "passed", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_gate(gate: Any, ev: Evidence, passed: bool, says: str) -> None:
    result = check(gate, ev)
    assert result.passed is passed, result
    assert says in result.message, result.message


def test_every_gate_runs_in_the_policys_order_and_one_failure_fails_the_report() -> None:
    ev = evidence(
        candidate_metrics={"accuracy": 0.95},
        champion_metrics={"accuracy": 0.90},
        timing=Timing(1.0, 99.0, 100),
    )
    report = run_gates([SIGNATURE, metric(), LATENCY], ev)
    assert [r.gate for r in report.results] == ["signature", "metric:accuracy", "latency"]
    assert not report.passed
    assert [r.gate for r in report.failed] == ["latency"]
    figures = report.as_dict()["gates"][1]["figures"]
    assert figures == {"candidate": 0.95, "champion": 0.9, "delta": 0.05, "minDelta": 0.0}
