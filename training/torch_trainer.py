"""`maestro train` for framework PyTorch: an MLP on tabular data, data-parallel across replicas.

Kubeflow's PyTorchJob gives every replica MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK
(the Master is rank 0, Workers 1..N-1). With WORLD_SIZE > 1 each replica joins one process
group (NCCL on a GPU when the pod has one, gloo on the CPU otherwise: ddp.placement), trains
a DistributedDataParallel copy of the same network on its shard of the training rows
(DistributedSampler) and DDP averages the gradients, so every replica ends each step with
the same weights; the loop itself is ddp.train, importable with torch alone. Without
WORLD_SIZE (or 1) it is one process.

Every replica loads and splits the dataset the same way (same seed), so the held-out split
is the same everywhere: rank 0 evaluates it and alone logs to MLflow, with the conventions of
the other trainers (run.py, tracking.py): one run, lineage tags, params, the dataset input,
metrics per epoch and final, the model under `model` with its signature and input example.

Over 400 lines on purpose, not split further: it is imported only by PyTorch runs (torch is
an optional extra), and the data preparation, sharding and rank-0 logging must be read
together to see that every replica agrees.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DistributedSampler, TensorDataset

from maestro.training import contract, ddp, torch_model
from maestro.training.contract import TrainerEnvironment
from maestro.training.data import Split, Task
from maestro.training.ddp import parameters_sha256
from maestro.training.distributed import DistributedEnvironment
from maestro.training.errors import TrainingError
from maestro.training.run import Prepared, log_training_data, prepare
from maestro.training.torch_model import TabularNet, TabularNetPyfunc, build_mlp
from maestro.training.trainers import StepCallback, coerce, evaluate

log = logging.getLogger(__name__)

MODEL = "mlp"
# Params this trainer reads; any other name is a typo and fails before training starts.
TORCH_PARAMS = frozenset(
    {
        "model",
        "target",
        "test_size",
        "task",
        "seed",
        "hidden_sizes",
        "lr",
        "epochs",
        "batch_size",
        "weight_decay",
        "threads",
    }
)
DEFAULT_HIDDEN_SIZES = (64, 32)
DEFAULT_LR = 0.01
DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 32
DEFAULT_WEIGHT_DECAY = 0.0
TAG_WORLD_SIZE = "maestro.world_size"
TAG_DEVICE = "maestro.torch.device"  # cpu, or cuda:N (then the process group is NCCL's)
CPU = ddp.Placement("gloo", "cpu")
# The SHA-256 of the final weights, the same on every replica (checked before logging).
TAG_PARAMETERS_SHA256 = "maestro.torch.parameters_sha256"
METRIC_TRAIN_LOSS = "train_loss"
# How long a replica waits for the others to join the process group (Kubeflow starts the
# Workers and the Master independently, e.g. after different image pulls).
RENDEZVOUS_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class TorchSpec:
    """Validated hyperparameters of the MLP trainer."""

    task: Task
    hidden_sizes: tuple[int, ...] = DEFAULT_HIDDEN_SIZES
    lr: float = DEFAULT_LR
    epochs: int = DEFAULT_EPOCHS
    # Per replica, as in PyTorch's DDP: one optimiser step consumes batch_size x WORLD_SIZE rows.
    batch_size: int = DEFAULT_BATCH_SIZE
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    # PyTorch's intra-op threads per replica; None: its default, one per core it sees (the
    # node's, not the pod's CPU limit), which replicas sharing a machine oversubscribe.
    threads: int | None = None

    def as_params(self) -> dict[str, Any]:
        """What the run records as params (hidden_sizes as "64,32")."""
        threads = {} if self.threads is None else {"threads": self.threads}
        return {
            **threads,
            "model": MODEL,
            "task": self.task.value,
            "hidden_sizes": ",".join(map(str, self.hidden_sizes)),
            "lr": self.lr,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "weight_decay": self.weight_decay,
        }


def resolve_torch(params: Mapping[str, Any], task: Task) -> TorchSpec:
    """Validate `params` for the MLP trainer; errors name the param (pure)."""
    unknown = sorted(set(params) - TORCH_PARAMS)
    if unknown:
        raise TrainingError(
            f"unknown param(s) {', '.join(unknown)} for the PyTorch trainer;"
            f" valid: {', '.join(sorted(TORCH_PARAMS))}"
        )
    model = str(params.get("model", MODEL))
    if model != MODEL:
        raise TrainingError(f"framework PyTorch trains params.model={MODEL}, got {model!r}")
    return TorchSpec(
        task=task,
        hidden_sizes=parse_hidden_sizes(params.get("hidden_sizes", DEFAULT_HIDDEN_SIZES)),
        lr=_number(params, "lr", DEFAULT_LR, minimum=0.0, inclusive=False),
        epochs=_positive_int(params, "epochs", DEFAULT_EPOCHS),
        batch_size=_positive_int(params, "batch_size", DEFAULT_BATCH_SIZE),
        weight_decay=_number(params, "weight_decay", DEFAULT_WEIGHT_DECAY, minimum=0.0),
        threads=_positive_int(params, "threads", 1) if "threads" in params else None,
    )


def parse_hidden_sizes(value: Any) -> tuple[int, ...]:
    """Widths of the hidden layers: "64,32", "[64, 32]", 64 or a list; "" means none.

    CRD params are scalars, so a list usually arrives as a string.
    """
    items: Any = value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError:
                items = None
        else:
            items = [part.strip() for part in text.split(",") if part.strip()]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    sizes: list[int] = []
    if isinstance(items, list | tuple):
        for item in items:
            size = coerce(item, 0) if isinstance(item, str | float) else item
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                break
            sizes.append(size)
        else:
            return tuple(sizes)
    raise TrainingError(
        f'params.hidden_sizes must be positive layer widths such as "64,32", got {value!r}'
    )


def _positive_int(params: Mapping[str, Any], name: str, default: int) -> int:
    value = coerce(params.get(name, default), default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TrainingError(f"params.{name} must be a positive integer, got {value!r}")
    return value


def _number(
    params: Mapping[str, Any], name: str, default: float, *, minimum: float, inclusive: bool = True
) -> float:
    value = coerce(params.get(name, default), default)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value >= minimum if inclusive else value > minimum
    if not ok:
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise TrainingError(f"params.{name} must be a number {bound}, got {value!r}")
    return float(value)


def shard_rows(rows: int, world_size: int) -> int:
    """Rows each replica trains on per epoch.

    DistributedSampler (drop_last=False) pads the shards with repeated rows to equal size, so
    every replica runs the same number of steps: DDP's all-reduce needs all of them at each.
    """
    return math.ceil(rows / world_size)


def batches_per_epoch(rows: int, world_size: int, batch_size: int) -> int:
    return math.ceil(shard_rows(rows, world_size) / batch_size)


def make_sampler(
    dataset: TensorDataset, dist: DistributedEnvironment, seed: int
) -> DistributedSampler[Any]:
    """This replica's shard, reshuffled every epoch (set_epoch) from the seed: the sampler
    ddp.train uses."""
    return DistributedSampler(
        dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=seed
    )


@dataclass
class TrainedTorch:
    model: TabularNet
    metrics: dict[str, float]
    parameters_sha256: str
    shard_rows: int
    fit_seconds: float = 0.0


def _standardise(values: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    mean = values.mean(axis=0)
    scale = values.std(axis=0)
    # A constant column would divide by zero; it carries no signal either way.
    scale = np.where(scale > 0, scale, 1.0)
    return mean.astype(np.float32), scale.astype(np.float32)


def fit_torch(
    spec: TorchSpec,
    data: Split,
    *,
    seed: int,
    dist: DistributedEnvironment,
    on_step: StepCallback | None = None,
    where: ddp.Placement = CPU,
) -> TrainedTorch:
    """Train the MLP (ddp.train) on `where`; in a process group when `dist.distributed`
    (which must be initialised).

    `on_step(epoch, metrics)` gets the epoch's train loss (over all replicas) and the
    held-out metrics; pass it on rank 0 only, as evaluating costs a pass over the test split.
    """
    # Same seed on every replica: the same initial weights (DDP broadcasts rank 0's anyway)
    # and, with the seeded sampler, the same run twice. (On a GPU, cuBLAS would need a
    # workspace setting for determinism; the CPU is where reproducibility is checked.)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(not where.cuda)
    features = [str(c) for c in data.x_train.columns]
    x_train = data.x_train.to_numpy(dtype=np.float32)
    gaps = np.isnan(x_train).any(axis=0) | data.x_test.isna().any(axis=0).to_numpy()
    missing = [c for c, bad in zip(features, gaps, strict=True) if bad]
    if missing:
        raise TrainingError(
            f"feature column(s) {', '.join(missing)} have missing values: fill them in the"
            " dataset (the PyTorch trainer does not impute)"
        )
    x_mean, x_scale = _standardise(x_train)
    classes: list[Any] = []
    y_mean, y_scale = 0.0, 1.0
    if spec.task is Task.CLASSIFICATION:
        classes = data.classes
        index = {label: i for i, label in enumerate(classes)}
        y = torch.tensor([index[v] for v in data.y_train], dtype=torch.long)
        loss_fn: nn.Module = nn.CrossEntropyLoss()
        n_outputs = len(classes)
    else:
        y_values = data.y_train.to_numpy(dtype=np.float64)
        y_mean = float(y_values.mean())
        y_scale = float(y_values.std()) or 1.0
        # Standardised, so that one learning rate suits targets of any magnitude.
        y = torch.tensor((y_values - y_mean) / y_scale, dtype=torch.float32).unsqueeze(1)
        loss_fn = nn.MSELoss()
        n_outputs = 1
    x = torch.from_numpy((x_train - x_mean) / x_scale)
    net = build_mlp(len(features), spec.hidden_sizes, n_outputs)

    def tabular(module: nn.Module) -> TabularNet:
        return TabularNet(
            module,
            task=spec.task.value,
            features=features,
            x_mean=x_mean,
            x_scale=x_scale,
            classes=classes,
            y_mean=y_mean,
            y_scale=y_scale,
        )

    def record(epoch: int, train_loss: float) -> None:
        if on_step is not None:
            # Evaluated on the CPU: a copy of the weights when they live on a GPU.
            module = copy.deepcopy(net).to("cpu") if where.cuda else net
            on_step(epoch, {METRIC_TRAIN_LOSS: train_loss, **_evaluate(tabular(module), data)})

    started = time.perf_counter()
    rows = ddp.train(
        net,
        loss_fn,
        TensorDataset(x, y),
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        lr=spec.lr,
        weight_decay=spec.weight_decay,
        seed=seed,
        world=ddp.World(dist.world_size, dist.rank),
        where=where,
        on_epoch=record,
    )
    fit_seconds = time.perf_counter() - started
    digest = parameters_sha256(net)
    if dist.distributed:
        ddp.check_replicas_agree(digest, dist.world_size)
    model = tabular(net)
    return TrainedTorch(model, _evaluate(model, data), digest, rows, fit_seconds)


def _evaluate(model: TabularNet, data: Split) -> dict[str, float]:
    return evaluate(model, data.x_test, data.y_test, data)


@dataclass
class TorchOutcome:
    """What `maestro train` prints for one replica (rank 0 alone has a run and a model)."""

    rank: int
    world_size: int
    metrics: dict[str, float]
    parameters_sha256: str
    shard_rows: int
    run_id: str | None = None
    model_uri: str | None = None
    fit_seconds: float = 0.0  # wall time of the training loop (ddp.train) on this replica

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_torch_training(env: TrainerEnvironment, dist: DistributedEnvironment) -> TorchOutcome:
    """Train as one replica of the job; rank 0 logs the run and the model to MLflow."""
    # Validate before joining the group: every replica fails fast on the same bad input.
    prepared = prepare(env, env.params)
    spec = resolve_torch(env.params, prepared.data.task)
    where = ddp.detect_placement()
    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    if dist.distributed:
        assert dist.master_addr is not None and dist.master_port is not None
        ddp.init_group(
            where,
            master_addr=dist.master_addr,
            master_port=dist.master_port,
            world_size=dist.world_size,
            rank=dist.rank,
            timeout=RENDEZVOUS_TIMEOUT,
        )
    try:
        if dist.is_main:
            outcome = _train_and_log(env, dist, prepared, spec, where)
        else:
            trained = fit_torch(spec, prepared.data, seed=prepared.seed, dist=dist, where=where)
            outcome = TorchOutcome(
                dist.rank,
                dist.world_size,
                trained.metrics,
                trained.parameters_sha256,
                trained.shard_rows,
                fit_seconds=trained.fit_seconds,
            )
    finally:
        # Closing the group also tells the other replicas when this one fails.
        if dist.distributed:
            ddp.leave_group()
    log.info(
        "rank %d of %d trained on %d rows per epoch in %.2f s; parameters sha256 %s",
        outcome.rank,
        outcome.world_size,
        outcome.shard_rows,
        outcome.fit_seconds,
        outcome.parameters_sha256,
    )
    return outcome


def _train_and_log(
    env: TrainerEnvironment,
    dist: DistributedEnvironment,
    prepared: Prepared,
    spec: TorchSpec,
    where: ddp.Placement,
) -> TorchOutcome:
    from maestro.training.tracking import StepRecorder, Tracker, lineage_tags, run_name

    tracker = Tracker(env.tracking_uri)
    experiment_id = tracker.use_experiment(env.experiment, env.parent_run_id)
    tags = {
        **lineage_tags(env),
        "maestro.framework": env.framework,
        TAG_WORLD_SIZE: str(dist.world_size),
        TAG_DEVICE: where.device,
    }
    existing: dict[str, str] = {}
    if env.parent_run_id:
        run_id = env.parent_run_id
        existing = tracker.resume(run_id)
    else:
        run_id = tracker.create_run(experiment_id, name=run_name(env), tags=tags)
    try:
        params = {
            **env.params,
            **spec.as_params(),
            "seed": prepared.seed,
            "target": prepared.target,
        }
        tracker.log(
            run_id, params={k: v for k, v in params.items() if k not in existing}, tags=tags
        )
        log_training_data(tracker, run_id, env, prepared)
        steps = StepRecorder(tracker, run_id)
        started = time.process_time()
        trained = fit_torch(
            spec, prepared.data, seed=prepared.seed, dist=dist, on_step=steps, where=where
        )
        cost = time.process_time() - started
        model_uri = log_torch_model(run_id, trained.model, prepared.data)
        metrics = {**trained.metrics, contract.METRIC_COST: cost}
        tracker.log(
            run_id,
            metrics=metrics,
            steps=steps.take(),
            step=steps.last_step,
            tags={TAG_PARAMETERS_SHA256: trained.parameters_sha256},
        )
    except BaseException as err:
        tracker.finish(run_id, "FAILED", error=f"{type(err).__name__}: {err}")
        raise
    tracker.finish(run_id, "FINISHED")
    return TorchOutcome(
        dist.rank,
        dist.world_size,
        metrics,
        trained.parameters_sha256,
        trained.shard_rows,
        run_id=run_id,
        model_uri=model_uri,
        fit_seconds=trained.fit_seconds,
    )


def pip_requirements() -> list[str]:
    """What the logged model needs to load (the public version: no local +cuXXX suffix)."""
    import cloudpickle

    return [f"torch=={torch.__version__.split('+')[0]}", f"cloudpickle=={cloudpickle.__version__}"]


def log_torch_model(run_id: str, model: TabularNet, data: Split) -> str:
    """Log `model` as a pyfunc under MODEL_ARTIFACT_PATH with signature and input example.

    The (active) experiment must be the run's: Tracker.use_experiment sets it.
    """
    import cloudpickle
    import mlflow.pyfunc
    from mlflow.models import Model, infer_signature

    example = data.example()
    signature = infer_signature(example, model.predict(example))
    # By value: the model's classes travel in its pickle, so loading it needs torch, pandas
    # and MLflow but not Maestro.
    cloudpickle.register_pickle_by_value(torch_model)
    try:
        info = Model.log(
            artifact_path=None,
            name=contract.MODEL_ARTIFACT_PATH,
            flavor=mlflow.pyfunc,
            python_model=TabularNetPyfunc(model),
            run_id=run_id,
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
        )
    finally:
        cloudpickle.unregister_pickle_by_value(torch_model)
    return str(info.model_uri)
