"""Evidently run directly, the reference of the drift engine's tests and benchmark, and
datasets with known shifts."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from maestro.monitoring.stattests import EVIDENTLY_DISPLAY_NAMES

TEST_OF_DISPLAY_NAME = {display: name for name, display in EVIDENTLY_DISPLAY_NAMES.items()}


@dataclass(frozen=True)
class EvidentlyColumn:
    test: str
    score: float
    drifted: bool
    threshold: float


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    method: str | None = None,
    columns: list[str] | None = None,
    threshold: float | None = None,
) -> dict[str, EvidentlyColumn]:
    """Per column: Evidently's test, score and verdict (Report + DataDriftPreset, method
    forced for every column unless None = Evidently's own choice)."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    report = Report(
        [DataDriftPreset(columns=columns, method=method, threshold=threshold)],
        include_tests=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = report.run(current, reference)
    found = snapshot.dict()
    verdicts: dict[str, bool] = {}
    for test in found["tests"]:
        params = test["metric_config"]["params"]
        if params.get("type", "").endswith("ValueDrift"):
            verdicts[params["column"]] = str(test["status"].value) == "FAIL"
    result: dict[str, EvidentlyColumn] = {}
    for metric in found["metrics"]:
        config: dict[str, Any] = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        name = config["column"]
        result[name] = EvidentlyColumn(
            test=TEST_OF_DISPLAY_NAME.get(config["method"], config["method"]),
            score=float(metric["value"]),
            drifted=verdicts[name],
            threshold=float(config["threshold"]),
        )
    return result


SHIFTED = ("num_shift", "num_scale", "cat_shift", "int_shift")


def shifted_frames(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current with known shifts on exactly the SHIFTED columns."""
    rng = np.random.default_rng(seed)

    def frame(shift: bool) -> pd.DataFrame:
        cats = ["a", "b", "c", "d"]
        return pd.DataFrame(
            {
                "num_same": rng.normal(0, 1, rows),
                "num_shift": rng.normal(1.0 if shift else 0.0, 1, rows),
                "num_scale": rng.normal(0, 3 if shift else 1, rows),
                "num_other": rng.exponential(2.0, rows),
                "cat_same": rng.choice(cats, rows, p=[0.4, 0.3, 0.2, 0.1]),
                "cat_shift": rng.choice(
                    cats, rows, p=[0.1, 0.2, 0.3, 0.4] if shift else [0.4, 0.3, 0.2, 0.1]
                ),
                "int_same": rng.integers(0, 100, rows),
                "int_shift": rng.integers(30 if shift else 0, 130 if shift else 100, rows),
            }
        )

    return frame(False), frame(True)
