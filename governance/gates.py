"""The gates: an ordered chain of pure checks of measured figures against the policy.

Each gate returns a GateResult (passed or not, the figures, one line saying why). Measuring
(loading both models, predicting, timing) happens in `evidence`; nothing here does I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from maestro.governance.policy import (
    LOWER_IS_BETTER,
    FairnessGate,
    Gate,
    LatencyGate,
    MetricGate,
    SignatureGate,
)


@dataclass(frozen=True)
class Timing:
    """Prediction latency of the loaded candidate, in milliseconds."""

    p50_ms: float
    p95_ms: float
    requests: int


@dataclass(frozen=True)
class GroupScores:
    rows: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class Evidence:
    """Everything measured about a candidate (and the champion it would replace)."""

    candidate: str  # version
    champion: str | None  # version, None when nothing holds the alias yet
    candidate_metrics: Mapping[str, float] = field(default_factory=dict)
    champion_metrics: Mapping[str, float] | None = None
    timing: Timing | None = None
    # sensitive column -> group value -> the candidate's scores on that group's rows
    groups: Mapping[str, Mapping[str, GroupScores]] = field(default_factory=dict)
    signature_problems: Sequence[str] = ()
    rows: int = 0


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    message: str
    figures: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "passed": self.passed,
            "message": self.message,
            "figures": dict(self.figures),
        }


def _round(value: float) -> float:
    return round(value, 6)


def metric_gate(gate: MetricGate, ev: Evidence) -> GateResult:
    name = f"metric:{gate.metric}"
    candidate = ev.candidate_metrics[gate.metric]
    figures: dict[str, Any] = {"candidate": _round(candidate), "minDelta": gate.min_delta}
    if ev.champion is None or ev.champion_metrics is None:
        return GateResult(
            name, True, f"{gate.metric} {candidate:.4f}; no champion to compare with", figures
        )
    champion = ev.champion_metrics[gate.metric]
    # Positive: the candidate is better, whichever direction the metric runs.
    delta = champion - candidate if gate.metric in LOWER_IS_BETTER else candidate - champion
    figures |= {"champion": _round(champion), "delta": _round(delta)}
    passed = delta >= gate.min_delta
    verb = "at least" if passed else "short of"
    return GateResult(
        name,
        passed,
        f"{gate.metric} {candidate:.4f} vs champion v{ev.champion} {champion:.4f}:"
        f" improvement {delta:+.4f}, {verb} the {gate.min_delta:+.4f} required",
        figures,
    )


def latency_gate(gate: LatencyGate, ev: Evidence) -> GateResult:
    timing = ev.timing
    if timing is None:
        return GateResult("latency", False, "the candidate's latency was not measured")
    passed = timing.p95_ms <= gate.p95_ms
    figures = {
        "p50Ms": _round(timing.p50_ms),
        "p95Ms": _round(timing.p95_ms),
        "budgetP95Ms": gate.p95_ms,
        "requests": timing.requests,
        "batchSize": gate.batch_size,
    }
    return GateResult(
        "latency",
        passed,
        f"p95 {timing.p95_ms:.2f} ms over {timing.requests} predictions"
        f" {'within' if passed else 'over'} the {gate.p95_ms:g} ms budget",
        figures,
    )


def fairness_gate(gate: FairnessGate, ev: Evidence) -> GateResult:
    name = f"fairness:{gate.column}"
    groups = ev.groups.get(gate.column) or {}
    judged = {g: s for g, s in groups.items() if s.rows >= gate.min_group_size}
    figures: dict[str, Any] = {
        "metric": gate.metric,
        "maxGap": gate.max_gap,
        "groups": {
            g: {"rows": s.rows, gate.metric: _round(s.metrics[gate.metric])}
            for g, s in groups.items()
        },
    }
    if len(judged) < 2:
        return GateResult(
            name,
            False,
            f"fewer than 2 groups of {gate.column!r} have {gate.min_group_size}+ rows:"
            " the gap cannot be judged",
            figures,
        )
    values = {g: s.metrics[gate.metric] for g, s in judged.items()}
    best, worst = max(values, key=values.__getitem__), min(values, key=values.__getitem__)
    gap = values[best] - values[worst]
    figures["gap"] = _round(gap)
    passed = gap <= gate.max_gap
    return GateResult(
        name,
        passed,
        f"{gate.metric} gap {gap:.4f} between {gate.column}={best} ({values[best]:.4f}) and"
        f" {gate.column}={worst} ({values[worst]:.4f}) {'within' if passed else 'over'}"
        f" the {gate.max_gap:g} allowed",
        figures,
    )


def signature_gate(_: SignatureGate, ev: Evidence) -> GateResult:
    problems = list(ev.signature_problems)
    if ev.champion is None:
        return GateResult("signature", True, "no champion: nothing to stay compatible with")
    if problems:
        return GateResult(
            "signature",
            False,
            f"incompatible with champion v{ev.champion}: {'; '.join(problems)}",
            {"problems": problems},
        )
    return GateResult("signature", True, f"accepts every input of champion v{ev.champion}")


def check(gate: Gate, ev: Evidence) -> GateResult:
    if isinstance(gate, MetricGate):
        return metric_gate(gate, ev)
    if isinstance(gate, LatencyGate):
        return latency_gate(gate, ev)
    if isinstance(gate, FairnessGate):
        return fairness_gate(gate, ev)
    return signature_gate(gate, ev)


@dataclass(frozen=True)
class Report:
    candidate: str
    champion: str | None
    results: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "champion": self.champion,
            "passed": self.passed,
            "gates": [r.as_dict() for r in self.results],
        }


def run_gates(gates: Sequence[Gate], ev: Evidence) -> Report:
    """Every gate in the policy's order (all run, so the report shows every figure)."""
    return Report(ev.candidate, ev.champion, tuple(check(g, ev) for g in gates))
