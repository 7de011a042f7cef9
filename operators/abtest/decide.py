"""ABTest decisions, pure: whether the test may start, and at each look what its figures say.

The controller gathers the ModelDeployment the test names, the challenger's resolution in
the registry, any other test on the same deployment, and, once the split runs, the
per-variant figures from Prometheus (serving.abtest_router's metrics): outcome statistics,
expected assignments and each revision's error rate and p95 latency. `decide` returns the
status to write, the condition, the Events and whether to promote the challenger.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from maestro.operators.abtest.statistics import (
    SRM_ALPHA,
    ArmFigures,
    LookDecision,
    LookResult,
    TestSettings,
    decide_look,
    srm_p_value,
)
from maestro.operators.api.abtest import ABTestPhase, ABTestSpec, ABTestStatus, Decision
from maestro.operators.api.common import Reason
from maestro.operators.core.durations import parse_duration
from maestro.operators.core.verdict import Verdict

# A guardrail needs this many requests of the challenger before it can trip.
GUARDRAIL_MIN_REQUESTS = 20
# "Clearly worse": this much more errors, or a p95 this many times the champion's plus
# GUARDRAIL_LATENCY_SLACK_MS.
GUARDRAIL_ERROR_MARGIN = 0.05
GUARDRAIL_LATENCY_FACTOR = 2.0
GUARDRAIL_LATENCY_SLACK_MS = 50.0
LOOK_SECONDS = 5.0


@dataclass(frozen=True)
class DeploymentView:
    """The ModelDeployment under test, as its status says."""

    phase: str | None
    stable_uri: str | None
    rolling_out: bool  # a candidate revision (canary, preview, shadow) is in flight
    alias_uri: bool  # spec.model.uri names an alias: a promotion can move it


@dataclass(frozen=True)
class VariantFigures:
    champion: ArmFigures
    challenger: ArmFigures
    expected_challenger_share: float | None  # of assignments so far; None before any
    champion_error_rate: float | None = None
    challenger_error_rate: float | None = None
    champion_p95_ms: float | None = None
    challenger_p95_ms: float | None = None
    challenger_requests: float | None = None


@dataclass(frozen=True)
class Inputs:
    name: str
    uid: str
    spec: ABTestSpec
    status: ABTestStatus
    now: datetime
    deployment: DeploymentView | None
    challenger_uri: str | None  # resolved; None when it does not resolve
    challenger_error: str = ""
    other_test: str | None = None  # another test already running on the deployment
    # spec.deployment's spec.model.uri, as written (a challenger equal to it is refused).
    champion_spec_uri: str | None = None
    # The challenger is a registry URI and the operator has no MLflow tracking URI.
    registry_missing: bool = False
    challenger_ready: bool = False
    figures: VariantFigures | None = None


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, Reason, str]] = field(default_factory=list)
    promote: bool = False
    requeue_after: float | None = LOOK_SECONDS


def _pending(reason: Reason, message: str) -> Outcome:
    verdict = Verdict(ready=False, reason=reason, message=message, phase=ABTestPhase.PENDING)
    return Outcome(verdict, {"phase": ABTestPhase.PENDING.value}, requeue_after=LOOK_SECONDS * 2)


def may_start(inputs: Inputs) -> Outcome | None:
    """Why the test cannot start (nothing is split then); None when it may."""
    spec, md = inputs.spec, inputs.deployment
    if md is None:
        return _pending(
            Reason.DEPLOYMENT_NOT_FOUND,
            f"spec.deployment: no ModelDeployment {spec.deployment!r} in this namespace",
        )
    if spec.challenger.model.uri == inputs.champion_spec_uri:
        return _same_as_champion(spec, inputs.champion_spec_uri)
    if inputs.registry_missing:
        return _pending(
            Reason.NOT_CONFIGURED,
            f"spec.challenger.model.uri {spec.challenger.model.uri} needs MLflow, and the"
            " operator has no tracking URI: set MAESTRO_MLFLOW_TRACKING_URI in its Deployment",
        )
    if inputs.challenger_uri is None:
        return _pending(
            Reason.MODEL_NOT_FOUND,
            f"spec.challenger.model.uri {spec.challenger.model.uri} cannot be resolved:"
            f" {inputs.challenger_error or 'no such model version or alias'}",
        )
    if inputs.other_test:
        return _pending(
            Reason.ANOTHER_TEST_RUNNING,
            f"ABTest {inputs.other_test!r} already runs on {spec.deployment!r}; one at a time",
        )
    if md.stable_uri is None or md.phase != "Available" or md.rolling_out:
        return _pending(
            Reason.ROLLOUT_IN_PROGRESS,
            f"ModelDeployment {spec.deployment!r} is {md.phase or 'not serving yet'}"
            f"{' with a rollout in flight' if md.rolling_out else ''}; the test starts once"
            " it is Available with one revision",
        )
    if md.stable_uri == inputs.challenger_uri:
        return _same_as_champion(spec, inputs.challenger_uri)
    if spec.auto_promote and not md.alias_uri:
        return _pending(
            Reason.PROMOTION_FAILED,
            f"spec.autoPromote: ModelDeployment {spec.deployment!r} serves a pinned model, not"
            " a registry alias a win could move; serve models:/<name>@<alias> or set"
            " autoPromote: false",
        )
    return None


def _same_as_champion(spec: ABTestSpec, uri: str | None) -> Outcome:
    return _pending(
        Reason.CHALLENGER_SAME_AS_CHAMPION,
        f"spec.challenger.model.uri is {uri}, the model ModelDeployment {spec.deployment!r}"
        " already serves; point it at a different model version",
    )


def decide(inputs: Inputs) -> Outcome:
    status = inputs.status
    if status.phase in (ABTestPhase.CONCLUDED, ABTestPhase.FAILED):
        return _concluded_again(status)
    if status.phase != ABTestPhase.RUNNING:
        refused = may_start(inputs)
        if refused is not None:
            return refused
        assert inputs.deployment is not None and inputs.challenger_uri is not None
        share = float(inputs.spec.traffic_percent)
        started = {
            "phase": ABTestPhase.RUNNING.value,
            "championModelUri": inputs.deployment.stable_uri,
            "challengerModelUri": inputs.challenger_uri,
            "champion": {"samples": 0, "trafficPercent": 100 - share},
            "challenger": {"samples": 0, "trafficPercent": share},
        }
        message = f"starting the challenger {inputs.challenger_uri} beside the champion"
        verdict = Verdict(
            ready=None, reason=Reason.STARTING, message=message, phase=ABTestPhase.RUNNING
        )
        return Outcome(verdict, started, [("Normal", Reason.STARTING, message)])
    if not inputs.challenger_ready or inputs.figures is None:
        message = "waiting for the challenger's pods to be ready before splitting traffic"
        verdict = Verdict(
            ready=None, reason=Reason.STARTING, message=message, phase=ABTestPhase.RUNNING
        )
        return Outcome(verdict)
    return look(inputs, inputs.figures)


def _concluded_again(status: ABTestStatus) -> Outcome:
    """A concluded test keeps the reason it concluded with (ChallengerWins, GuardrailBreached)."""
    decision = status.decision.value if status.decision else "none"
    kept = next((c.reason for c in status.conditions or [] if c.type == "Ready"), "")
    verdict = Verdict(
        ready=kept != Reason.PROMOTION_FAILED.value,
        reason=Reason(kept) if kept in Reason._value2member_map_ else Reason.CONCLUDED,
        message=f"concluded: {decision}: {status.decision_reason or ''}",
        phase=status.phase or ABTestPhase.CONCLUDED,
    )
    return Outcome(verdict, requeue_after=None)


def guardrail(f: VariantFigures) -> str | None:
    """Why the challenger is clearly worse than the champion on errors or latency."""
    if (f.challenger_requests or 0) < GUARDRAIL_MIN_REQUESTS:
        return None
    champ_err, chall_err = f.champion_error_rate or 0.0, f.challenger_error_rate
    if chall_err is not None and chall_err >= champ_err + GUARDRAIL_ERROR_MARGIN:
        return f"error rate {chall_err:.1%} against the champion's {champ_err:.1%}"
    if f.challenger_p95_ms is not None and f.champion_p95_ms is not None:
        limit = f.champion_p95_ms * GUARDRAIL_LATENCY_FACTOR + GUARDRAIL_LATENCY_SLACK_MS
        if f.challenger_p95_ms > limit:
            return (
                f"p95 latency {f.challenger_p95_ms:.0f} ms against the champion's"
                f" {f.champion_p95_ms:.0f} ms"
            )
    return None


def _figures(inputs: Inputs, f: VariantFigures, look: LookResult) -> dict[str, Any]:
    share = inputs.status.challenger.traffic_percent if inputs.status.challenger else None
    share = float(inputs.spec.traffic_percent) if share is None else share
    out: dict[str, Any] = {
        "champion": {
            "samples": int(f.champion.n),
            "mean": f.champion.mean if f.champion.n else None,
            "trafficPercent": round(100 - share, 2),
        },
        "challenger": {
            "samples": int(f.challenger.n),
            "mean": f.challenger.mean if f.challenger.n else None,
            "trafficPercent": round(share, 2),
        },
        "lift": look.lift,
        "pValue": look.p_value,
        "requiredSamples": look.required_samples,
    }
    if look.interval is not None:
        i = look.interval
        out["confidenceInterval"] = {"lower": i.lower, "upper": i.upper, "level": i.level}
    return out


def _conclude(decision: Decision, why: str, now: datetime, promote: bool) -> Outcome:
    reason = {
        Decision.PROMOTE_CHALLENGER: Reason.CHALLENGER_WINS,
        Decision.KEEP_CHAMPION: Reason.CHAMPION_KEPT,
        Decision.INCONCLUSIVE: Reason.INCONCLUSIVE,
    }[decision]
    return _concluded(decision, reason, why, now, promote)


def _concluded(
    decision: Decision, reason: Reason, why: str, now: datetime, promote: bool
) -> Outcome:
    status = {
        "phase": ABTestPhase.CONCLUDED.value,
        "decision": decision.value,
        "decisionReason": why,
        "endTime": now.isoformat(),
    }
    message = f"{decision.value}: {why}"
    verdict = Verdict(ready=True, reason=reason, message=message, phase=ABTestPhase.CONCLUDED)
    kind = "Warning" if reason is Reason.GUARDRAIL_BREACHED else "Normal"
    return Outcome(verdict, status, [(kind, reason, message)], promote, requeue_after=None)


def look(inputs: Inputs, f: VariantFigures) -> Outcome:
    spec, status = inputs.spec, inputs.status
    settings = TestSettings.from_spec(spec)
    started = status.start_time or inputs.now
    first = {} if status.start_time else {"startTime": inputs.now.isoformat()}
    broken = guardrail(f)
    if broken:
        out = _concluded(
            Decision.KEEP_CHAMPION,
            Reason.GUARDRAIL_BREACHED,
            f"guardrail breached by the challenger: {broken}",
            inputs.now,
            False,
        )
        return Outcome(out.verdict, {**first, **out.status}, out.events, requeue_after=None)
    result = decide_look(settings, f.champion, f.challenger, previous_p=status.p_value)
    figures = {**first, **_figures(inputs, f, result)}
    share = f.expected_challenger_share
    srm = srm_p_value(int(f.champion.n), int(f.challenger.n), share) if share else None
    if srm is not None:
        figures["srmPValue"] = srm
    if srm is not None and srm < SRM_ALPHA and f.champion.n + f.challenger.n >= 100:
        message = (
            f"sample ratio mismatch: {int(f.champion.n)} champion vs {int(f.challenger.n)}"
            f" challenger outcomes where the challenger should have {share:.0%}"
            f" (p={srm:.2g} < {SRM_ALPHA}): no decision while the split is broken"
        )
        verdict = Verdict(
            ready=False,
            reason=Reason.SAMPLE_RATIO_MISMATCH,
            message=message,
            phase=ABTestPhase.RUNNING,
        )
        events = (
            []
            if _was(status, Reason.SAMPLE_RATIO_MISMATCH)
            else [("Warning", Reason.SAMPLE_RATIO_MISMATCH, message)]
        )
        return Outcome(verdict, figures, events)
    if result.decision is LookDecision.PROMOTE_CHALLENGER:
        out = _conclude(Decision.PROMOTE_CHALLENGER, result.reason, inputs.now, spec.auto_promote)
        return Outcome(out.verdict, {**figures, **out.status}, out.events, out.promote, None)
    if result.decision is LookDecision.KEEP_CHAMPION:
        out = _conclude(Decision.KEEP_CHAMPION, result.reason, inputs.now, False)
        return Outcome(out.verdict, {**figures, **out.status}, out.events, False, None)
    if inputs.now - started >= parse_duration(spec.max_duration):
        out = _conclude(
            Decision.INCONCLUSIVE,
            f"maxDuration {spec.max_duration} reached: {result.reason}",
            inputs.now,
            False,
        )
        return Outcome(out.verdict, {**figures, **out.status}, out.events, False, None)
    if spec.bandit.enabled:
        figures["challenger"]["trafficPercent"] = bandit_percent(inputs, f, settings)
        figures["champion"]["trafficPercent"] = 100 - figures["challenger"]["trafficPercent"]
    verdict = Verdict(
        ready=True, reason=Reason.RUNNING, message=result.reason, phase=ABTestPhase.RUNNING
    )
    return Outcome(verdict, figures)


def not_promoted(outcome: Outcome, why: str) -> Outcome:
    """A PromoteChallenger decision that cannot be applied: concluded all the same (the
    challenger goes), Ready=False with why, for someone to move the model by hand."""
    message = f"PromoteChallenger, not applied: {why}"
    verdict = Verdict(
        ready=False, reason=Reason.PROMOTION_FAILED, message=message, phase=ABTestPhase.CONCLUDED
    )
    events = [*outcome.events, ("Warning", Reason.PROMOTION_FAILED, message)]
    return Outcome(verdict, outcome.status, events, False, None)


def _was(status: ABTestStatus, reason: Reason) -> bool:
    return any(c.type == "Ready" and c.reason == reason.value for c in status.conditions or [])


def bandit_percent(inputs: Inputs, f: VariantFigures, settings: TestSettings) -> float:
    """The challenger's next share by Thompson sampling, seeded by the test and its figures
    so the same look always gives the same share."""
    import numpy as np

    from maestro.operators.abtest.statistics import thompson_shares

    seed = hashlib.sha256(f"{inputs.uid}:{f.champion.n}:{f.challenger.n}".encode()).digest()
    shares = thompson_shares(
        settings,
        [f.champion, f.challenger],
        min_share=inputs.spec.bandit.min_traffic_percent / 100,
        draws=4000,
        rng=np.random.default_rng(int.from_bytes(seed[:8], "big")),
    )
    return round(shares[1] * 100, 2)


def elapsed(status: ABTestStatus, now: datetime) -> timedelta:
    return now - (status.start_time or now)


def referenced_deployments(spec: ABTestSpec) -> set[str]:
    return {spec.deployment}
