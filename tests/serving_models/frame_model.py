"""A model answering a DataFrame with two named outputs: a label and a score."""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class FrameModel(PythonModel):
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        score = model_input.iloc[:, 0].astype(float)
        return pd.DataFrame({"label": (score > 0).astype(int), "score": score})


mlflow.models.set_model(FrameModel())
