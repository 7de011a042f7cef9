"""XGBoost's collective across two replica processes on loopback (no cluster, no MLflow):
sharded rows, one model."""

from __future__ import annotations

import multiprocessing
import socket
from typing import Any

import pytest

from maestro.training.data import Task, load_frame, split
from maestro.training.distributed import DistributedEnvironment
from maestro.training.run import Prepared
from maestro.training.trainers import resolve
from maestro.training.xgboost_collective import _fit_in_collective, booster_sha256, shard

pytestmark = pytest.mark.unit


def prepared() -> Prepared:
    frame = load_frame("sklearn://iris")
    return Prepared(
        frame, split(frame, target="target", test_size=0.2, seed=7, task=None), "target", 7
    )


def test_shards_partition_the_training_rows_and_keep_the_test_split() -> None:
    data = prepared().data
    parts = [shard(data, 3, r) for r in range(3)]
    assert sum(len(p.x_train) for p in parts) == len(data.x_train)
    assert set().union(*(set(p.x_train.index) for p in parts)) == set(data.x_train.index)
    assert all(p.x_test is data.x_test for p in parts)


def replica(rank: int, port: int, out: Any) -> None:
    data = prepared()
    spec = resolve("XGBoost", {"n_estimators": 5, "max_depth": 2}, Task.CLASSIFICATION)
    dist = DistributedEnvironment(
        WORLD_SIZE=2, RANK=rank, MASTER_ADDR="127.0.0.1", MASTER_PORT=port
    )
    trained = _fit_in_collective(dist, "127.0.0.1", spec, data, lambda *_: None)
    out.put((rank, booster_sha256(trained.model), trained.metrics["accuracy"]))


def test_two_replicas_fit_one_model_through_the_tracker() -> None:
    from xgboost.tracker import RabitTracker

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tracker = RabitTracker(n_workers=2, host_ip="127.0.0.1", port=port, timeout=60)
    tracker.start()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=replica, args=(r, port, out)) for r in (0, 1)]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    tracker.wait_for(30)
    tracker.free()
    (r0, digest0, accuracy), (r1, digest1, _) = results
    assert (r0, r1) == (0, 1)
    assert digest0 == digest1  # the same trees on both replicas: histograms were all-reduced
    assert accuracy > 0.8
