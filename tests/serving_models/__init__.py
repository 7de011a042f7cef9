"""MLflow "models from code" used by the serving tests: each file defines a pyfunc model and
registers it with `mlflow.models.set_model`; MLflow copies the file into the model."""
