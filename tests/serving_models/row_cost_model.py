"""A model that costs 4 ms per row, sleeping (so one server sustains about 250 rows/s
however requests are batched, and the cost is not CPU the load generator competes for);
answers 1 per row (overload and soak tests)."""

import time

import mlflow
from mlflow.pyfunc import PythonModel

SECONDS_PER_ROW = 0.004


class RowCostModel(PythonModel):
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        time.sleep(SECONDS_PER_ROW * len(model_input))
        return [1] * len(model_input)


mlflow.models.set_model(RowCostModel())
