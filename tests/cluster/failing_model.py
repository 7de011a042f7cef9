"""An MLflow model (models from code) that loads and answers readiness, but fails every
prediction: the broken version a canary analysis must roll back."""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel


class FailingModel(PythonModel):  # type: ignore[misc]
    # No type hints: MLflow would read them as a schema; the logged signature is the schema.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        raise RuntimeError("this model version is broken on purpose")


mlflow.models.set_model(FailingModel())
