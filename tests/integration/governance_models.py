"""Models for the governance tests, pickled with the registered versions: one that is
slow, and one that is wrong for one group only."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from mlflow.pyfunc import PythonModel


class SlowModel(PythonModel):  # type: ignore[misc]
    """Right answers, 60 ms late."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        time.sleep(0.06)
        return self.estimator.predict(model_input)


class UnfairModel(PythonModel):  # type: ignore[misc]
    """Right answers for group 0; for group 1, the opposite ones half of the time (where
    f2 > 0): better than the stump overall, unfair to group 1."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        predicted = np.asarray(self.estimator.predict(model_input))
        flip = (model_input["group"].to_numpy() == 1) & (model_input["f2"].to_numpy() > 0)
        return np.where(flip, 1 - predicted, predicted)
