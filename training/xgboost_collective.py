"""`maestro train` for framework XGBoost as one replica of an XGBoostJob (WORLD_SIZE > 1).

Kubeflow's training operator gives every replica MASTER_ADDR (the Master's headless
Service, `<job>-master-0`), MASTER_PORT, WORLD_SIZE and RANK (Master 0, Workers 1..N-1).
The Master serves XGBoost's collective tracker (RabitTracker) on MASTER_PORT; every replica,
the Master included, joins the collective as one worker and fits on its shard of the
training rows (rows rank, rank + N, ...): XGBoost all-reduces the quantile sketches and the
gradient histograms, so every replica ends with the same trees, the model of all the rows.
Every replica evaluates on the whole held-out split; the Master alone logs the run and the
model to MLflow, as the single-process trainer does (run.run_training). Each replica logs
the SHA-256 of its booster: the same digest on every rank shows the collective ran.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import socket
import time
from collections.abc import Mapping
from typing import Any

from maestro.training.contract import TrainerEnvironment
from maestro.training.data import Split
from maestro.training.distributed import DistributedEnvironment
from maestro.training.errors import TrainingError
from maestro.training.run import Prepared, prepare, run_training
from maestro.training.trainers import StepCallback, Trained, TrainerSpec, fit, resolve

log = logging.getLogger(__name__)

# How long a replica waits for the Master's name (its Service gets an address once the
# Master's pod is ready) and for the collective to form.
RENDEZVOUS_SECONDS = 600


def shard(data: Split, world_size: int, rank: int) -> Split:
    """This replica's rows of the training split (every world_size-th from rank); the
    held-out split stays whole (pure)."""
    return dataclasses.replace(
        data,
        x_train=data.x_train.iloc[rank::world_size],
        y_train=data.y_train.iloc[rank::world_size],
    )


def booster_sha256(model: Any) -> str:
    """A digest of the fitted trees (the booster's JSON), equal on every replica."""
    return hashlib.sha256(bytes(model.get_booster().save_raw("json"))).hexdigest()


def wait_resolvable(name: str, timeout: float) -> str:
    """The address `name` resolves to, once it does (the cluster DNS answers for a headless
    Service only once its pod is ready, as the PyTorch Workers' init container waits)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return str(socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0])
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _fit_in_collective(
    dist: DistributedEnvironment,
    tracker_host: str,
    spec: TrainerSpec,
    prepared: Prepared,
    on_step: StepCallback,
) -> Trained:
    from xgboost import collective

    assert dist.master_port is not None
    args: dict[str, Any] = {
        "dmlc_tracker_uri": tracker_host,
        "dmlc_tracker_port": dist.master_port,
        "dmlc_task_id": str(dist.rank),
        "dmlc_timeout": RENDEZVOUS_SECONDS,
    }
    mine = shard(prepared.data, dist.world_size, dist.rank)
    with collective.CommunicatorContext(**args):
        log.info(
            "rank %d of %d joined XGBoost's collective at %s:%d (collective rank %d of %d);"
            " fitting on %d of %d training rows",
            dist.rank,
            dist.world_size,
            tracker_host,
            dist.master_port,
            collective.get_rank(),
            collective.get_world_size(),
            len(mine.x_train),
            len(prepared.data.x_train),
        )
        trained = fit(spec, mine, seed=prepared.seed, on_step=on_step)
    log.info(
        "rank %d of %d: booster sha256 %s after allreduce across %d workers",
        dist.rank,
        dist.world_size,
        booster_sha256(trained.model),
        dist.world_size,
    )
    return trained


def run_xgboost_replica(
    env: TrainerEnvironment, dist: DistributedEnvironment, environ: Mapping[str, str]
) -> dict[str, Any]:
    """Train as one replica; the Master serves the tracker and logs to MLflow."""
    from xgboost.tracker import RabitTracker

    assert dist.master_addr is not None and dist.master_port is not None
    # Validate before the collective: every replica fails fast on the same bad input.
    prepared = prepare(env, env.params)
    spec = resolve(env.framework, env.params, prepared.data.task)
    if spec.estimator.style != "boosting":
        raise TrainingError("an XGBoostJob trains params.model=xgboost")
    if not dist.is_main:
        master = wait_resolvable(dist.master_addr, RENDEZVOUS_SECONDS)
        trained = _fit_in_collective(dist, master, spec, prepared, lambda *_: None)
        return {"rank": dist.rank, "world_size": dist.world_size, "metrics": trained.metrics}
    # The Master binds the tracker on its own address (the pod IP; every address elsewhere).
    host = environ.get("MAESTRO_BIND_HOST") or "0.0.0.0"
    tracker = RabitTracker(
        n_workers=dist.world_size, host_ip=host, port=dist.master_port, timeout=RENDEZVOUS_SECONDS
    )
    tracker.start()
    advertised = host if host != "0.0.0.0" else socket.gethostbyname(socket.gethostname())
    try:
        outcome = run_training(
            env,
            prepared=prepared,
            fit_with=lambda s, p, on_step: _fit_in_collective(dist, advertised, s, p, on_step),
        )
        tracker.wait_for(RENDEZVOUS_SECONDS)
    finally:
        tracker.free()
    return {
        "rank": dist.rank,
        "world_size": dist.world_size,
        "run_id": outcome.run_id,
        "model_uri": outcome.model_uri,
        "metrics": outcome.metrics,
    }
