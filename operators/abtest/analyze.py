"""`maestro abtest analyze`: re-run ABTest decisions from stored sufficient statistics.

The operator's decision at each look is a pure function of the cumulative figures of both
arms and the test's settings; this reads those figures from JSON and calls the same
function (`statistics.decide_look`), so an analyst gets the operator's answer, or tries
other settings (alpha, MDE, sequential) on the same figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from maestro.operators.abtest.statistics import (
    ArmFigures,
    LookResult,
    TestSettings,
    decide_look,
)
from maestro.operators.api.abtest import MetricType

EXIT_OK, EXIT_BAD_INPUT = 0, 2


class _Wire(BaseModel):
    """camelCase on the wire, unknown fields are errors (a typo must not pass silently)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ArmInput(_Wire):
    n: int = Field(ge=0, description="Outcomes so far (cumulative).")
    sum: float = Field(description="Sum of outcomes: successes for a Proportion.")
    sum_squares: float | None = Field(
        default=None, ge=0, description="Sum of squared outcomes (Continuous only)."
    )


class LookInput(_Wire):
    champion: ArmInput
    challenger: ArmInput


class TestInput(_Wire):
    """One test; defaults and bounds are those of ABTestSpec."""

    __test__ = False  # not a pytest test class, despite its name

    metric_type: MetricType = MetricType.PROPORTION
    alpha: float = Field(default=0.05, gt=0, le=0.5)
    power: float = Field(default=0.8, gt=0, lt=1)
    minimum_detectable_effect: float = Field(default=0.02, gt=0)
    higher_is_better: bool = True
    sequential: bool = True
    looks: list[LookInput] = Field(min_length=1)

    def settings(self) -> TestSettings:
        return TestSettings(
            metric_type=self.metric_type,
            alpha=self.alpha,
            power=self.power,
            mde=self.minimum_detectable_effect,
            higher_is_better=self.higher_is_better,
            sequential=self.sequential,
        )


class AnalysisInput(_Wire):
    tests: list[TestInput] = Field(min_length=1)


class InputError(ValueError):
    """Bad input; each message names the field it is about."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


def _path(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text or "(document)"


def _consistency(doc: AnalysisInput) -> list[str]:
    """What pydantic's per-field checks cannot see: the metric type, and looks in order."""
    errors: list[str] = []
    for t, test in enumerate(doc.tests):
        continuous = test.metric_type is MetricType.CONTINUOUS
        previous: dict[str, int] = {}
        for k, look in enumerate(test.looks):
            for name, arm in (("champion", look.champion), ("challenger", look.challenger)):
                at = f"tests[{t}].looks[{k}].{name}"
                if arm.n < previous.get(name, 0):
                    errors.append(
                        f"{at}.n: looks are cumulative, but {arm.n} is below the previous"
                        f" look's {previous[name]}"
                    )
                previous[name] = arm.n
                if not continuous and not 0 <= arm.sum <= arm.n:
                    errors.append(f"{at}.sum: successes must be within 0..n ({arm.n})")
                if continuous and arm.sum_squares is None:
                    errors.append(f"{at}.sumSquares: required for a Continuous metric")
                # n * sum of squares >= sum^2 (Cauchy-Schwarz), else the variance is negative;
                # the slack lets through rounding in figures summed elsewhere.
                elif continuous and arm.n * (arm.sum_squares or 0.0) < arm.sum**2 * (1 - 1e-9):
                    errors.append(
                        f"{at}.sumSquares: {arm.sum_squares} is too small for n={arm.n} and"
                        f" sum={arm.sum} (it must be at least sum^2 / n)"
                    )
    return errors


def parse(text: str) -> AnalysisInput:
    """The input document, or InputError naming each bad field."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError([f"not JSON: {err}"]) from err
    try:
        doc = AnalysisInput.model_validate(raw)
    except ValidationError as err:
        raise InputError(
            [f"{_path(e['loc'])}: {e['msg']}" for e in err.errors(include_url=False)]
        ) from err
    errors = _consistency(doc)
    if errors:
        raise InputError(errors)
    return doc


def _arm(arm: ArmInput) -> ArmFigures:
    return ArmFigures(arm.n, arm.sum, arm.sum_squares or 0.0)


def _look_json(result: LookResult) -> dict[str, Any]:
    interval = result.interval
    return {
        "lift": result.lift,
        "pValue": result.p_value,
        "interval": None
        if interval is None
        else {"lower": interval.lower, "upper": interval.upper, "level": interval.level},
        "requiredSamples": result.required_samples,
        "decision": str(result.decision),
    }


def analyze(doc: AnalysisInput) -> dict[str, Any]:
    """Each look's figures and decision; a sequential test's p-value is the running minimum."""
    tests = []
    for test in doc.tests:
        settings = test.settings()
        looks = []
        previous_p: float | None = None
        for look in test.looks:
            result = decide_look(
                settings, _arm(look.champion), _arm(look.challenger), previous_p=previous_p
            )
            if settings.sequential:
                previous_p = result.p_value
            looks.append(_look_json(result))
        tests.append({"looks": looks})
    return {"tests": tests}


def run(source: str, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`source`: a file path, or `-` for standard input. Returns the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as error:
        print(f"error: --input {source}: {error.strerror or error}", file=err)
        return EXIT_BAD_INPUT
    try:
        doc = parse(text)
    except InputError as error:
        for message in error.messages:
            print(f"error: {message}", file=err)
        return EXIT_BAD_INPUT
    print(json.dumps(analyze(doc), indent=2), file=out)
    return EXIT_OK
