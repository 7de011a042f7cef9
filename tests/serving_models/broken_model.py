"""A model version whose predict always raises (how a broken release looks to the server)."""

import mlflow
from mlflow.pyfunc import PythonModel


class BrokenModel(PythonModel):
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        raise RuntimeError("this model version is broken")


mlflow.models.set_model(BrokenModel())
