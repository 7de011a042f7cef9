"""A model that takes 0.3 s per predict call and answers 1 per row (queueing and drain tests)."""

import time

import mlflow
from mlflow.pyfunc import PythonModel


class SlowModel(PythonModel):
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        return [1] * len(model_input)


mlflow.models.set_model(SlowModel())
