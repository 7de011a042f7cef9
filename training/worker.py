"""The Optuna tuning worker: one per TrainingRun worker pod, all sharing one RDB study.

Each worker loads the study the operator created, then runs trials one after another in
this process (no process per trial: the dataset is loaded and split once, the MLflow client
and the model signature are reused) until the study holds `tuning.trials` trials. Each
trial is a nested MLflow run under the TrainingRun's parent run. When it runs out of trials,
the worker records the best trial (or the Pareto front) on the parent run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState
from pydantic import ValidationError

from maestro.operators.api.trainingrun import Tuning
from maestro.training import contract
from maestro.training.contract import TrainerEnvironment
from maestro.training.errors import TrainingError
from maestro.training.run import Prepared, log_training_data, logged_params, prepare
from maestro.training.tracking import StepRecorder, Tracker, lineage_tags, run_name
from maestro.training.trainers import Trained, fit, metric_names, resolve
from maestro.training.tuning import (
    MEDIAN_STARTUP_TRIALS,
    MEDIAN_WARMUP_STEPS,
    SLOT_STATES,
    TuningSummary,
    create_study,
    directions,
    distributions,
    keeps_model,
    model_trials,
    objective_values,
    storage_url,
    suggest,
    summarize,
)

log = logging.getLogger(__name__)

# Study user attribute naming the parent run when no operator created one (standalone use),
# so that workers started by hand still nest their trials under one run.
STUDY_ATTR_PARENT_RUN = "maestro.mlflow_parent_run_id"
# Values of the TAG_TRIAL_MODEL tag on a completed trial's run.
MODEL_LOGGED = "logged"
MODEL_SKIPPED = "skipped: dominated"


class TrialsFailed(RuntimeError):
    """Every trial this worker ran failed: the configuration, not the search, is broken."""


def parse_tuning(raw: Mapping[str, Any]) -> Tuning:
    """MAESTRO_TUNING (camelCase JSON of spec.tuning) -> the typed Tuning spec."""
    try:
        return Tuning.model_validate(raw)
    except ValidationError as err:
        # One line: it ends up as the pod's termination message.
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'tuning'}: {e['msg']}" for e in err.errors()
        )
        raise TrainingError(f"invalid {contract.TUNING}: {problems}") from err


class SlotLock:
    """A lock, shared by every worker of the study, around "count trials, then ask one".

    Optuna's MaxTrialsCallback only stops a worker after its trial ends, so parallel workers
    overshoot `trials` by up to one trial each. Claiming a slot under a PostgreSQL advisory
    lock makes the study end with exactly `trials` trials. Other storages (SQLite, tests)
    get a lock that only covers this process.
    """

    def __init__(self, storage: str, study_name: str) -> None:
        self._engine: Any = None
        self._local = threading.Lock()
        if storage.startswith(("postgresql", "postgres")):
            import sqlalchemy

            self._engine = sqlalchemy.create_engine(storage, pool_size=1, pool_pre_ping=True)
        digest = hashlib.blake2b(f"maestro-optuna-slots:{study_name}".encode(), digest_size=8)
        self._key = int.from_bytes(digest.digest(), "big", signed=True)

    @property
    def shared(self) -> bool:
        """Whether the lock covers every worker of the study, not only this process."""
        return self._engine is not None

    @contextmanager
    def claim(self) -> Iterator[None]:
        if self._engine is None:
            with self._local:
                yield
            return
        import sqlalchemy

        # Transaction-scoped: released at commit, or by PostgreSQL if this pod dies.
        with self._engine.begin() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._key})
            yield

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


_ORPHANS = """
SELECT t.trial_id FROM trials t
LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id
WHERE t.study_id = :study AND t.state = 'RUNNING' AND h.trial_id IS NULL
"""


def fail_orphaned_trials(storage: Any, study: optuna.Study) -> int:
    """Fail the RUNNING trials that never got a heartbeat; call it holding the shared lock.

    Optuna's stale check skips a trial without any heartbeat, so a worker killed between
    asking a trial and its first beat would leave it RUNNING for ever. Workers ask and beat
    under the shared slot lock, so a beat-less trial seen while holding that lock belongs to
    a worker that died holding it.
    """
    import sqlalchemy

    # Optuna keeps the study id private; its tables are its documented RDB schema.
    study_id: int = study._study_id
    with storage.engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(_ORPHANS), {"study": study_id}).all()
    failed = 0
    for (trial_id,) in rows:
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed += 1
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # its worker was alive after all and finished it
    if failed:
        log.warning("failed %d trial(s) whose worker died before their first heartbeat", failed)
    return failed


class Heartbeat:
    """Records a running trial's heartbeat every `seconds` from a background thread.

    Optuna beats only for trials run by `study.optimize`; these workers ask and tell.
    """

    def __init__(self, storage: Any, trial: optuna.Trial, seconds: int) -> None:
        self._storage = storage
        # Optuna's storages address trials by this id; the Trial keeps it private.
        self._trial_id: int = trial._trial_id
        self._seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="optuna-heartbeat", daemon=True)

    def _beat(self) -> None:
        while True:
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception as err:  # a missed beat only risks a late stale check
                log.warning("trial heartbeat not recorded: %s", err)
            if self._stop.wait(self._seconds):
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class _KeptModel:
    """A finished trial's model, held in memory while it may still be on the front."""

    values: list[float]
    run_id: str
    trained: Trained


@dataclass
class _Worker:
    env: TrainerEnvironment
    tuning: Tuning
    prepared: Prepared
    study: optuna.Study
    tracker: Tracker
    experiment_id: str
    parent_run_id: str
    # Models are logged when the worker runs out of trials, not per trial: only trials on
    # the study's final front (the best trial, or the Pareto front) need one, and logging
    # a model costs more than a small trial's training. Until then this worker keeps the
    # models of its own trials that no finished trial dominates.
    kept: dict[int, _KeptModel] = field(default_factory=dict)

    def run_trial(self, trial: optuna.Trial, completed_before: int) -> str | None:
        """Run one trial to its end; returns its error message if it failed.

        `completed_before`: completed trials when this one started, for the pruner.
        """
        dists = distributions(self.tuning.space)
        params = {**self.env.params, **{n: suggest(trial, n, d) for n, d in dists.items()}}
        tags = {
            **lineage_tags(self.env),
            "maestro.framework": self.env.framework,
            contract.TAG_TRIAL_NUMBER: str(trial.number),
            "maestro.study": self.study.study_name,
        }
        run_id = self.tracker.create_run(
            self.experiment_id,
            name=run_name(self.env, f"trial-{trial.number}"),
            tags=tags,
            parent_run_id=self.parent_run_id,
        )
        trial.set_user_attr(contract.TRIAL_ATTR_RUN_ID, run_id)
        if self.env.pod_name:
            trial.set_user_attr(contract.TRIAL_ATTR_WORKER, self.env.pod_name)
        steps = StepRecorder(self.tracker, run_id)
        objective = self.tuning.objectives[0].metric
        # Each report and each pruning check is a database round trip per step: report only
        # when a pruner will read the values, and ask it only once it could say yes.
        report = isinstance(self.study.pruner, optuna.pruners.MedianPruner)
        check = report and completed_before >= MEDIAN_STARTUP_TRIALS

        def on_step(step: int, metrics: Mapping[str, float]) -> None:
            steps(step, metrics)
            if report and objective in metrics:
                trial.report(float(metrics[objective]), step)
                if check and step >= MEDIAN_WARMUP_STEPS and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at step {step}")

        started = time.process_time()
        wall = time.perf_counter()
        logged: dict[str, Any] = params
        try:
            spec = resolve(self.env.framework, params, self.prepared.data.task)
            logged = logged_params(params, spec, self.prepared)
            trained = fit(spec, self.prepared.data, seed=self.prepared.seed, on_step=on_step)
            cost = time.process_time() - started
            trial.set_user_attr(contract.TRIAL_ATTR_FIT_SECONDS, time.perf_counter() - wall)
            metrics = {**trained.metrics, contract.METRIC_COST: cost}
            values = objective_values(self.tuning, metrics, cost)
        except optuna.TrialPruned:
            cost = time.process_time() - started
            trial.set_user_attr(contract.TRIAL_ATTR_FIT_SECONDS, time.perf_counter() - wall)
            trial.set_user_attr(contract.TRIAL_ATTR_COST, cost)
            self.tracker.log(
                run_id,
                params=logged,
                metrics={contract.METRIC_COST: cost},
                steps=steps.take(),
                step=steps.last_step,
                tags={contract.TAG_TRIAL_STATE: TrialState.PRUNED.name},
            )
            self.tracker.finish(run_id, "KILLED")
            self.study.tell(trial, state=TrialState.PRUNED)
            return None
        except Exception as err:
            message = (
                f"{type(err).__name__}: {err}" if not isinstance(err, TrainingError) else str(err)
            )
            log.warning("trial %d failed: %s", trial.number, message)
            self.tracker.log(
                run_id,
                params=logged,
                steps=steps.take(),
                tags={contract.TAG_TRIAL_STATE: TrialState.FAIL.name},
            )
            self.tracker.finish(run_id, "FAILED", error=message)
            trial.set_user_attr("error", message[:1000])
            self.study.tell(trial, state=TrialState.FAIL)
            return message
        trial.set_user_attr(contract.TRIAL_ATTR_COST, cost)
        tags = {contract.TAG_TRIAL_STATE: TrialState.COMPLETE.name}
        front = [t.values for t in self.study.best_trials]
        if keeps_model(values, front, directions(self.tuning)):
            self.kept[trial.number] = _KeptModel(values, run_id, trained)
        else:
            tags[contract.TAG_TRIAL_MODEL] = MODEL_SKIPPED
        self.tracker.log(
            run_id,
            params=logged,
            metrics={**metrics, "objective": values[0]} if len(values) == 1 else metrics,
            steps=steps.take(),
            tags=tags,
            step=steps.last_step,
        )
        self.tracker.finish(run_id, "FINISHED")
        self.study.tell(trial, values)
        self.forget_dominated([*front, values])
        return None

    def forget_dominated(self, front: Sequence[Sequence[float]]) -> None:
        """Drop kept models a finished trial dominates: one of `front`, the values of the
        finished trials' front (or a superset of it)."""
        dirs = directions(self.tuning)
        for number, kept in list(self.kept.items()):
            if not keeps_model(kept.values, front, dirs):
                del self.kept[number]
                self.tracker.log(kept.run_id, tags={contract.TAG_TRIAL_MODEL: MODEL_SKIPPED})

    def log_front_models(self) -> int:
        """Log the models of this worker's trials still on the study's front.

        A trial on the final front is dominated by no trial, so it is on the front at every
        moment after it finished, in particular when its own worker ends: every final-front
        trial gets its model (with one objective, the earliest trial tied for the best value
        likewise stays the earliest). A trial another worker beats after this point keeps
        a model it no longer needs, which costs only storage.
        """
        wanted = {t.number for t in model_trials(self.study)}
        logged = 0
        for number, kept in self.kept.items():
            if number in wanted:
                self.tracker.log_model(kept.run_id, kept.trained, self.prepared.data)
                logged += 1
            tag = MODEL_LOGGED if number in wanted else MODEL_SKIPPED
            self.tracker.log(kept.run_id, tags={contract.TAG_TRIAL_MODEL: tag})
        self.kept.clear()
        return logged

    def record_on_parent(self, summary: TuningSummary) -> None:
        counts = {
            "total": summary.total,
            "completed": summary.completed,
            "pruned": summary.pruned,
            "failed": summary.failed,
            "running": summary.running,
        }
        tags = {contract.TAG_TRIAL_COUNTS: json.dumps(counts)}
        metrics: dict[str, float] = {}
        if summary.best is not None:
            tags[contract.TAG_BEST_TRIAL_NUMBER] = str(summary.best.number)
            tags[contract.TAG_BEST_TRIAL_PARAMS] = json.dumps(summary.best.params, default=str)
            if summary.best.run_id:
                tags[contract.TAG_BEST_TRIAL_RUN_ID] = summary.best.run_id
            if len(self.tuning.objectives) == 1:
                metrics[contract.METRIC_BEST_VALUE] = summary.best.values[0]
        if len(self.tuning.objectives) > 1:
            front = [vars(t) for t in summary.pareto_front]
            self.tracker.log_json(self.parent_run_id, front, contract.PARETO_FRONT_ARTIFACT)
            tags[contract.TAG_PARETO_FRONT] = json.dumps([t.number for t in summary.pareto_front])
        self.tracker.log(self.parent_run_id, metrics=metrics, tags=tags)


def run_worker(env: TrainerEnvironment) -> TuningSummary:
    """Run trials of the study until it holds `tuning.trials` of them; return its summary."""
    if env.tuning is None:
        raise TrainingError(f"{contract.TUNING} is not set")
    if not env.optuna_storage or not env.optuna_study:
        raise TrainingError(f"tuning needs {contract.OPTUNA_STORAGE} and {contract.OPTUNA_STUDY}")
    tuning = parse_tuning(env.tuning)
    dists = distributions(tuning.space)
    prepared = prepare(env, env.params)
    # Check names now, with the search space's parameters present: a typo should stop the
    # worker before it creates trials, not fail every trial.
    resolve(env.framework, {**env.params, **dict.fromkeys(dists)}, prepared.data.task)
    known = {*metric_names(prepared.data.task), contract.METRIC_COST}
    unknown = [o.metric for o in tuning.objectives if o.metric not in known]
    if unknown:
        raise TrainingError(
            f"objective metric(s) {', '.join(unknown)} are not logged by the"
            f" {prepared.data.task.value} trainers; choose from {', '.join(sorted(known))}"
        )
    url = storage_url(env.optuna_storage)
    # A study the operator created lives in tables it created and checked: workers skip
    # both (a second per pod, most of it importing Alembic).
    managed = env.parent_run_id is not None
    storage = optuna.storages.RDBStorage(
        url,
        engine_kwargs={"pool_pre_ping": True},
        skip_compatibility_check=managed,
        skip_table_creation=managed,
        heartbeat_interval=env.heartbeat_seconds,
    )
    # Loads the operator's study (or creates it when run standalone), with this worker's
    # sampler: seeds differ per worker so parallel workers do not propose the same points.
    study = create_study(storage, env.optuna_study, tuning, seed=env.seed + env.worker_index)
    tracker = Tracker(env.tracking_uri)
    experiment_id = tracker.use_experiment(env.experiment, env.parent_run_id)
    parent_run_id = env.parent_run_id or _standalone_parent(study, tracker, experiment_id, env)
    tracker.log(parent_run_id, tags={**lineage_tags(env), "maestro.study": env.optuna_study})
    log_training_data(tracker, parent_run_id, env, prepared)
    worker = _Worker(env, tuning, prepared, study, tracker, experiment_id, parent_run_id)
    errors: list[str] = []
    ran = 0
    slots = SlotLock(url, env.optuna_study)
    try:
        while True:
            with slots.claim():
                # A trial whose worker pod died keeps RUNNING forever without this: it is
                # failed (and counted as such) once its heartbeat is overdue.
                optuna.storages.fail_stale_trials(study)
                if slots.shared:
                    fail_orphaned_trials(storage, study)
                taken = study.get_trials(deepcopy=False, states=SLOT_STATES)
                if len(taken) >= tuning.trials:
                    break
                trial = study.ask()
                # Beat before releasing the lock: see fail_orphaned_trials.
                storage.record_heartbeat(trial._trial_id)
            ran += 1
            completed = sum(1 for t in taken if t.state is TrialState.COMPLETE)
            with Heartbeat(storage, trial, env.heartbeat_seconds):
                error = worker.run_trial(trial, completed)
            if error is not None:
                errors.append(error)
    finally:
        slots.close()
    models = worker.log_front_models()
    summary = summarize(study)
    worker.record_on_parent(summary)
    log.info(
        "worker %d ran %d trial(s), logged %d model(s); study: %s",
        env.worker_index,
        ran,
        models,
        summary,
    )
    if ran and len(errors) == ran:
        raise TrialsFailed(f"all {ran} trial(s) of this worker failed; first error: {errors[0]}")
    return summary


def _standalone_parent(
    study: optuna.Study, tracker: Tracker, experiment_id: str, env: TrainerEnvironment
) -> str:
    existing = study.user_attrs.get(STUDY_ATTR_PARENT_RUN)
    if existing:
        return str(existing)
    run_id = tracker.create_run(
        experiment_id, name=run_name(env) or study.study_name, tags=lineage_tags(env)
    )
    study.set_user_attr(STUDY_ATTR_PARENT_RUN, run_id)
    return run_id
