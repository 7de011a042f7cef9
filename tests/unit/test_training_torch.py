"""The PyTorch trainer's pure parts: params, the replica environment, sharding; and a short
single-process fit per task (no MLflow, no process group)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from maestro.training.data import Split, Task, load_frame, split
from maestro.training.errors import TrainingError
from maestro.training.run import EXIT_BAD_INPUT, main
from maestro.training.torch_trainer import (
    DistributedEnvironment,
    TorchSpec,
    batches_per_epoch,
    fit_torch,
    make_sampler,
    parse_hidden_sizes,
    resolve_torch,
    shard_rows,
)

pytestmark = pytest.mark.unit


RESOLVE_CASES = [
    ("defaults", {}, TorchSpec(Task.CLASSIFICATION)),
    (
        "strings-from-the-crd",
        {"hidden_sizes": "128, 64,8", "lr": "0.001", "epochs": "3", "batch_size": "16"},
        TorchSpec(Task.CLASSIFICATION, (128, 64, 8), 0.001, 3, 16),
    ),
    (
        "numbers",
        {"hidden_sizes": 10, "lr": 1, "epochs": 2.0, "weight_decay": 0.1, "model": "mlp"},
        TorchSpec(Task.CLASSIFICATION, (10,), 1.0, 2, weight_decay=0.1),
    ),
    ("threads", {"threads": "1"}, TorchSpec(Task.CLASSIFICATION, threads=1)),
    (
        "shared-params-pass",
        {"target": "y", "test_size": 0.3, "task": "classification", "seed": 4},
        TorchSpec(Task.CLASSIFICATION),
    ),
]


@pytest.mark.parametrize(
    ("params", "expected"),
    [c[1:] for c in RESOLVE_CASES],
    ids=[c[0] for c in RESOLVE_CASES],
)
def test_resolve_torch(params: dict[str, Any], expected: TorchSpec) -> None:
    assert resolve_torch(params, Task.CLASSIFICATION) == expected


RESOLVE_ERRORS = [
    ("typo", {"learning_rate": 0.1}, "unknown param.*learning_rate.*valid: batch_size"),
    ("sklearn-model", {"model": "random_forest"}, "params.model=mlp, got 'random_forest'"),
    ("zero-lr", {"lr": 0}, "params.lr must be a number > 0.0, got 0"),
    ("text-lr", {"lr": "fast"}, "params.lr must be a number > 0.0, got 'fast'"),
    ("nan-lr", {"lr": "NaN"}, "params.lr must be a number"),
    ("negative-decay", {"weight_decay": -1}, r"params.weight_decay must be a number >= 0.0"),
    ("zero-epochs", {"epochs": 0}, "params.epochs must be a positive integer, got 0"),
    ("fractional-batch", {"batch_size": 1.5}, "params.batch_size must be a positive integer"),
    ("bool-batch", {"batch_size": True}, "params.batch_size must be a positive integer"),
]


@pytest.mark.parametrize(
    ("params", "message"),
    [c[1:] for c in RESOLVE_ERRORS],
    ids=[c[0] for c in RESOLVE_ERRORS],
)
def test_resolve_torch_rejects(params: dict[str, Any], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        resolve_torch(params, Task.REGRESSION)


HIDDEN_SIZES = [
    ("comma-list", "64,32", (64, 32)),
    ("json-list", "[64, 32]", (64, 32)),
    ("single-int", 16, (16,)),
    ("single-string", "16", (16,)),
    ("python-list", [8, "4"], (8, 4)),
    ("empty-is-linear", "", ()),
    ("empty-json-list", "[]", ()),
]


@pytest.mark.parametrize(
    ("value", "expected"), [c[1:] for c in HIDDEN_SIZES], ids=[c[0] for c in HIDDEN_SIZES]
)
def test_parse_hidden_sizes(value: Any, expected: tuple[int, ...]) -> None:
    assert parse_hidden_sizes(value) == expected


@pytest.mark.parametrize(
    "value", ["64,x", "[64,", "0", "-3", "1.5", True, {"a": 1}, "[[1]]"], ids=repr
)
def test_parse_hidden_sizes_rejects(value: Any) -> None:
    with pytest.raises(TrainingError, match=r"params\.hidden_sizes must be positive layer widths"):
        parse_hidden_sizes(value)


ENVIRONMENTS = [
    ("absent-is-single", {}, DistributedEnvironment(world_size=1, rank=0)),
    ("world-of-one", {"WORLD_SIZE": "1", "RANK": "0"}, DistributedEnvironment()),
    (
        "kubeflow-worker",
        {"WORLD_SIZE": "3", "RANK": "2", "MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456"},
        DistributedEnvironment(world_size=3, rank=2, master_addr="job-master-0", master_port=23456),
    ),
]


@pytest.mark.parametrize(
    ("env", "expected"), [c[1:] for c in ENVIRONMENTS], ids=[c[0] for c in ENVIRONMENTS]
)
def test_distributed_environment(env: dict[str, str], expected: DistributedEnvironment) -> None:
    parsed = DistributedEnvironment.from_env({"PATH": "/bin", **env})
    assert parsed == expected
    assert parsed.distributed is (expected.world_size > 1)
    assert parsed.is_main is (expected.rank == 0)


ENVIRONMENT_ERRORS = [
    ("rank-too-big", {"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "m", "MASTER_PORT": "1"},
     "RANK 2 must be below WORLD_SIZE 2"),
    ("no-master", {"WORLD_SIZE": "2", "RANK": "1"}, "needs MASTER_ADDR and MASTER_PORT"),
    ("text-world", {"WORLD_SIZE": "two"}, "WORLD_SIZE: Input should be a valid integer"),
    ("zero-world", {"WORLD_SIZE": "0"}, "WORLD_SIZE: Input should be greater than or equal to 1"),
    ("bad-port", {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "m", "MASTER_PORT": "70000"},
     "MASTER_PORT: Input should be less than or equal to 65535"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("env", "message"),
    [c[1:] for c in ENVIRONMENT_ERRORS],
    ids=[c[0] for c in ENVIRONMENT_ERRORS],
)
def test_distributed_environment_rejects(env: dict[str, str], message: str) -> None:
    with pytest.raises(TrainingError, match=f"bad distributed environment: .*{message}"):
        DistributedEnvironment.from_env(env)


@pytest.mark.parametrize(
    ("rows", "world", "batch", "shard", "batches"),
    [(426, 1, 32, 426, 14), (426, 2, 32, 213, 7), (427, 2, 32, 214, 7), (10, 4, 2, 3, 2)],
)
def test_shard_arithmetic(rows: int, world: int, batch: int, shard: int, batches: int) -> None:
    assert shard_rows(rows, world) == shard
    assert batches_per_epoch(rows, world, batch) == batches


@pytest.mark.parametrize(("rows", "world"), [(11, 2), (12, 3), (7, 4)])
def test_replicas_take_equal_shards_covering_every_row(rows: int, world: int) -> None:
    dataset = TensorDataset(torch.arange(rows))
    shards = []
    for rank in range(world):
        replica = DistributedEnvironment(
            world_size=world, rank=rank, master_addr="m", master_port=1
        )
        sampler = make_sampler(dataset, replica, seed=5)
        sampler.set_epoch(1)
        shards.append(list(sampler))
        assert len(sampler) == shard_rows(rows, world)
    every = [i for shard in shards for i in shard]
    assert sorted(set(every)) == list(range(rows))
    # Padding repeats only as many rows as it takes to even the shards out.
    assert len(every) - rows == shard_rows(rows, world) * world - rows
    again = make_sampler(dataset, DistributedEnvironment(), seed=5)
    again.set_epoch(1)
    other_epoch = make_sampler(dataset, DistributedEnvironment(), seed=5)
    other_epoch.set_epoch(2)
    assert list(again) != list(other_epoch)


def data(name: str) -> Split:
    return split(load_frame(f"sklearn://{name}"), seed=0)


def test_fit_classifier_single_process_is_reproducible() -> None:
    iris = data("iris")
    spec = resolve_torch({"epochs": 15, "hidden_sizes": "16"}, iris.task)
    steps: list[tuple[int, dict[str, float]]] = []
    first = fit_torch(
        spec,
        iris,
        seed=1,
        dist=DistributedEnvironment(),
        on_step=lambda s, m: steps.append((s, dict(m))),
    )
    second = fit_torch(spec, iris, seed=1, dist=DistributedEnvironment())
    assert [s for s, _ in steps] == list(range(15))
    assert {"train_loss", "accuracy", "f1", "roc_auc", "log_loss"} <= set(steps[-1][1])
    assert steps[-1][1]["train_loss"] < steps[0][1]["train_loss"]
    assert first.metrics["accuracy"] > 0.8
    assert first.shard_rows == len(iris.x_train)
    assert first.parameters_sha256 == second.parameters_sha256
    assert first.metrics == second.metrics
    predicted = first.model.predict(iris.x_test)
    assert set(predicted) <= set(iris.classes)


def test_fit_regressor_predicts_in_the_targets_units() -> None:
    diabetes = data("diabetes")
    spec = resolve_torch({"epochs": 10, "hidden_sizes": "16", "lr": 0.003}, diabetes.task)
    trained = fit_torch(spec, diabetes, seed=0, dist=DistributedEnvironment())
    assert set(trained.metrics) == {"rmse", "mae", "r2"}
    # Better than predicting the mean (a linear model gets about 0.35 on this split).
    assert trained.metrics["r2"] > 0.2
    predicted = trained.model.predict(diabetes.x_test)
    # The target is standardised for training; predictions come back in its units.
    assert predicted.shape == (len(diabetes.x_test),)
    assert abs(predicted.mean() - diabetes.y_test.mean()) < diabetes.y_test.std()


def test_fit_rejects_missing_feature_values() -> None:
    frame = load_frame("sklearn://iris")
    frame.iloc[3, 1] = np.nan
    with_gap = split(frame, seed=0)
    with pytest.raises(TrainingError, match="sepal width \\(cm\\) have missing values"):
        fit_torch(
            TorchSpec(with_gap.task, epochs=1), with_gap, seed=0, dist=DistributedEnvironment()
        )


MAIN_ERRORS = [
    (
        "tuning",
        {"MAESTRO_TUNING": '{"trials": 2}'},
        "spec.tuning is not supported for framework PyTorch",
    ),
    ("bad-world-size", {"WORLD_SIZE": "0"}, "bad distributed environment: WORLD_SIZE"),
    ("bad-param", {"MAESTRO_PARAMS": '{"epochs": -1}'}, "params.epochs must be a positive"),
]


@pytest.mark.parametrize(
    ("env", "message"), [c[1:] for c in MAIN_ERRORS], ids=[c[0] for c in MAIN_ERRORS]
)
def test_maestro_train_pytorch_bad_input_exits_2(env: dict[str, str], message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    environ = {"MAESTRO_FRAMEWORK": "PyTorch", "MAESTRO_DATASET_URI": "sklearn://iris", **env}
    assert main(environ, out=out, err=err) == EXIT_BAD_INPUT
    assert message in err.getvalue()
    assert out.getvalue() == ""
