"""ABTest decisions at each look (pure): the start, the wait for the challenger, guardrails,
the sample-ratio check, the statistical decision, maxDuration and the bandit's share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from maestro.operators.abtest.decide import (
    DeploymentView,
    Inputs,
    VariantFigures,
    decide,
    not_promoted,
)
from maestro.operators.abtest.statistics import ArmFigures
from maestro.operators.api.abtest import ABTestSpec, ABTestStatus
from maestro.operators.api.common import Reason

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MD = DeploymentView("Available", "models:/iris/1", rolling_out=False, alias_uri=True)


def spec(**extra: Any) -> ABTestSpec:
    base = {
        "deployment": "iris",
        "challenger": {"model": {"uri": "models:/iris/2"}},
        "metric": "converted",
        "minimumDetectableEffect": 0.1,
        "maxDuration": "1h",
    }
    return ABTestSpec.model_validate({**base, **extra})


RUNNING = ABTestStatus.model_validate(
    {
        "phase": "Running",
        "challengerModelUri": "models:/iris/2",
        "startTime": T0.isoformat(),
        "challenger": {"samples": 0, "trafficPercent": 50},
    }
)


def inputs(figures: VariantFigures | None, *, now: datetime = T0, **extra: Any) -> Inputs:
    values: dict[str, Any] = {
        "name": "t",
        "uid": "uid-1",
        "spec": spec(),
        "status": RUNNING,
        "now": now,
        "deployment": MD,
        "challenger_uri": "models:/iris/2",
        "challenger_ready": True,
        "figures": figures,
    }
    return Inputs(**{**values, **extra})


def figures(champ: tuple[int, int], chall: tuple[int, int], **extra: Any) -> VariantFigures:
    return VariantFigures(
        champion=ArmFigures(*champ),
        challenger=ArmFigures(*chall),
        expected_challenger_share=0.5,
        **extra,
    )


def test_a_valid_test_starts_by_asking_for_its_challenger() -> None:
    out = decide(inputs(None, status=ABTestStatus(), challenger_ready=False))
    assert out.verdict.reason is Reason.STARTING
    assert out.status["phase"] == "Running"
    assert out.status["challengerModelUri"] == "models:/iris/2"
    assert out.status["challenger"]["trafficPercent"] == 50


def test_another_running_test_keeps_it_pending() -> None:
    out = decide(inputs(None, status=ABTestStatus(), other_test="older"))
    assert (out.verdict.ready, out.verdict.reason) == (False, Reason.ANOTHER_TEST_RUNNING)
    assert "older" in out.verdict.message


def test_it_waits_for_the_challenger_before_looking() -> None:
    out = decide(inputs(None, challenger_ready=False))
    assert out.verdict.reason is Reason.STARTING and not out.promote


def test_a_clear_lift_promotes_the_challenger() -> None:
    out = decide(inputs(figures((400, 120), (400, 240))))
    assert out.status["decision"] == "PromoteChallenger"
    assert out.verdict.reason is Reason.CHALLENGER_WINS and out.promote
    assert out.status["lift"] == pytest.approx(0.3)
    assert out.status["confidenceInterval"]["lower"] > 0


def test_a_clear_loss_keeps_the_champion_without_promoting() -> None:
    out = decide(inputs(figures((400, 240), (400, 120))))
    assert out.status["decision"] == "KeepChampion" and not out.promote


def test_no_promotion_without_auto_promote() -> None:
    out = decide(inputs(figures((400, 120), (400, 240)), spec=spec(autoPromote=False)))
    assert out.status["decision"] == "PromoteChallenger" and not out.promote


def test_a_broken_challenger_trips_the_guardrail_before_any_outcome() -> None:
    broken = figures(
        (10, 5),
        (0, 0),
        champion_error_rate=0.0,
        challenger_error_rate=1.0,
        challenger_requests=50.0,
    )
    out = decide(inputs(broken))
    assert out.verdict.reason is Reason.GUARDRAIL_BREACHED
    assert out.status["decision"] == "KeepChampion"
    assert "error rate 100.0%" in out.status["decisionReason"]
    assert out.events[0][0] == "Warning"


def test_a_slow_challenger_trips_the_latency_guardrail() -> None:
    slow = figures(
        (10, 5),
        (10, 5),
        champion_p95_ms=20.0,
        challenger_p95_ms=400.0,
        challenger_requests=50.0,
    )
    assert "p95 latency" in decide(inputs(slow)).status["decisionReason"]


def test_a_skewed_split_blocks_the_decision() -> None:
    skewed = figures((600, 180), (300, 180))
    out = decide(inputs(skewed))
    assert (out.verdict.ready, out.verdict.reason) == (False, Reason.SAMPLE_RATIO_MISMATCH)
    assert "decision" not in out.status
    assert out.status["srmPValue"] < 0.001


def test_max_duration_ends_inconclusive() -> None:
    out = decide(inputs(figures((50, 25), (50, 26)), now=T0 + timedelta(hours=2)))
    assert out.status["decision"] == "Inconclusive"
    assert "maxDuration 1h" in out.status["decisionReason"]


def test_a_running_look_reports_figures_and_keeps_going() -> None:
    out = decide(inputs(figures((50, 25), (50, 26))))
    assert out.verdict.reason is Reason.RUNNING and out.requeue_after
    assert out.status["champion"]["samples"] == 50
    assert out.status["requiredSamples"] > 50


def test_the_bandit_moves_traffic_towards_the_better_arm_within_the_floor() -> None:
    bandit = spec(bandit={"enabled": True, "minTrafficPercent": 10})
    out = decide(inputs(figures((60, 20), (60, 32)), spec=bandit))
    share = out.status["challenger"]["trafficPercent"]
    assert 50 < share <= 90
    again = decide(inputs(figures((60, 20), (60, 32)), spec=bandit))
    assert again.status["challenger"]["trafficPercent"] == share  # same look, same share


def test_a_concluded_test_keeps_the_reason_it_concluded_with() -> None:
    concluded = ABTestStatus.model_validate(
        {
            "phase": "Concluded",
            "decision": "KeepChampion",
            "decisionReason": "guardrail breached by the challenger: error rate 100.0%",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "GuardrailBreached",
                    "message": "m",
                    "lastTransitionTime": T0.isoformat(),
                }
            ],
        }
    )
    out = decide(inputs(None, status=concluded))
    assert out.verdict.reason is Reason.GUARDRAIL_BREACHED and out.requeue_after is None


def test_auto_promote_needs_a_deployment_that_serves_an_alias() -> None:
    pinned = DeploymentView("Available", "models:/iris/1", rolling_out=False, alias_uri=False)
    out = decide(inputs(None, status=ABTestStatus(), deployment=pinned))
    assert (out.verdict.ready, out.verdict.reason) == (False, Reason.PROMOTION_FAILED)
    assert "autoPromote" in out.verdict.message
    manual = decide(
        inputs(None, status=ABTestStatus(), deployment=pinned, spec=spec(autoPromote=False))
    )
    assert manual.verdict.reason is Reason.STARTING


def test_a_win_that_cannot_be_applied_concludes_with_the_reason() -> None:
    won = decide(inputs(figures((400, 120), (400, 240))))
    out = not_promoted(won, "the challenger is another model")
    assert (out.verdict.ready, out.verdict.reason) == (False, Reason.PROMOTION_FAILED)
    assert out.status["decision"] == "PromoteChallenger" and not out.promote
    assert out.events[-1][0] == "Warning"
