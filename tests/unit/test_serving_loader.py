"""The serving loader on models saved to local folders (file:// URIs), in-process: which
calling convention the warm-up picks, and what a broken model reports."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from maestro.serving.errors import LoadError
from maestro.serving.loader import load_model
from maestro.serving.outputs import normalise
from maestro.serving.schema import Records

pytestmark = pytest.mark.unit

MODELS = Path(__file__).resolve().parents[1] / "serving_models"


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(size=60),
            "y": rng.normal(size=60),
            "city": rng.choice(["oslo", "rome", "lima"], size=60),
        }
    )


def save_sklearn(model: object, data: pd.DataFrame, path: Path) -> str:
    mlflow.sklearn.save_model(
        model,
        path,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        signature=infer_signature(data, model.predict(data)),  # type: ignore[attr-defined]
        input_example=data.head(2),
        pip_requirements=[],
    )
    return path.as_uri()


def test_numeric_sklearn_model_is_called_natively_on_arrays(tmp_path: Path) -> None:
    data = frame()[["x", "y"]]
    target = (data["x"] + data["y"] > 0).astype(int)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(data, target)
    loaded = load_model("m", save_sklearn(pipeline, data, tmp_path / "m"))
    assert (loaded.flavor, loaded.convention, loaded.version, loaded.warmup_error) == (
        "sklearn",
        "numpy",
        "",
        "",
    )
    array = loaded.to_array(Records(data.to_dict(orient="records"), "r"))
    np.testing.assert_array_equal(loaded.predict(array), pipeline.predict(data))


def test_a_pipeline_selecting_columns_by_name_gets_a_dataframe(tmp_path: Path) -> None:
    data = frame()
    target = (data["x"] > 0).astype(int)
    pipeline = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["city"]), (StandardScaler(), ["x", "y"])),
        LogisticRegression(),
    ).fit(data, target)
    loaded = load_model("m", save_sklearn(pipeline, data, tmp_path / "m"))
    assert loaded.convention == "frame"
    array = loaded.to_array(Records(data.to_dict(orient="records"), "r"))
    np.testing.assert_array_equal(loaded.predict(array), pipeline.predict(data))


def test_pyfunc_models_answering_dataframes(tmp_path: Path) -> None:
    data = frame()[["x"]]
    mlflow.pyfunc.save_model(
        tmp_path / "f",
        python_model=str(MODELS / "frame_model.py"),
        signature=infer_signature(data),
        pip_requirements=[],
    )
    loaded = load_model("f", str(tmp_path / "f"))
    assert (loaded.flavor, loaded.convention) == ("python_function", "pyfunc")
    outputs = normalise(loaded.predict(loaded.to_array(Records([{"x": 2.0}, {"x": -1.0}], "r"))), 2)
    assert outputs.names == ("label", "score") and outputs.tabular
    assert outputs.arrays[0].tolist() == [1, 0]


def test_a_broken_model_loads_and_reports_its_warmup_error(tmp_path: Path) -> None:
    mlflow.pyfunc.save_model(
        tmp_path / "b",
        python_model=str(MODELS / "broken_model.py"),
        signature=infer_signature(frame()[["x"]]),
        pip_requirements=[],
    )
    loaded = load_model("b", (tmp_path / "b").as_uri())
    assert "this model version is broken" in loaded.warmup_error


def test_a_missing_model_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no MLmodel file"):
        load_model("x", (tmp_path / "nothing").as_uri())


def test_xgboost_booster_is_called_natively(tmp_path: Path) -> None:
    import mlflow.xgboost
    import xgboost

    data = frame()[["x", "y"]]
    target = (data["x"] > data["y"]).astype(int)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 2},
        xgboost.DMatrix(data, label=target),
        num_boost_round=5,
    )
    expected = booster.predict(xgboost.DMatrix(data))
    mlflow.xgboost.save_model(
        booster, tmp_path / "x", signature=infer_signature(data, expected), pip_requirements=[]
    )
    loaded = load_model("x", (tmp_path / "x").as_uri())
    assert (loaded.flavor, loaded.convention) == ("xgboost", "numpy")
    array = loaded.to_array(Records(data.to_dict(orient="records"), "r"))
    np.testing.assert_allclose(loaded.predict(array), expected, rtol=1e-6)


def test_pytorch_module_with_a_tensor_signature(tmp_path: Path) -> None:
    import mlflow.pytorch
    import torch

    from maestro.serving.schema import Tensor

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1)).eval()
    example = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    with torch.inference_mode():
        expected = module(torch.from_numpy(example)).numpy()
    mlflow.pytorch.save_model(
        module,
        tmp_path / "t",
        signature=infer_signature(example, expected),
        input_example=example,
        pip_requirements=[],
    )
    loaded = load_model("t", (tmp_path / "t").as_uri())
    assert (loaded.flavor, loaded.convention) == ("pytorch", "numpy")
    assert loaded.schema.tensor is not None and loaded.schema.tensor.shape == (-1, 4)
    array = loaded.to_array(Tensor(example.tolist(), None, "instances"))
    np.testing.assert_allclose(loaded.predict(array), expected, rtol=1e-5)
