"""TrainingRun controller: gather, decide (trainingrun.decide), apply (trainingrun.render
under one field manager), report (status + Events).

Level-triggered like the other kinds, from `@kopf.on.event` only (no finalizers, no
progress annotations): every event of a TrainingRun, and of a Job or Kubeflow job it
owns, re-reads the run and moves it one step along

    Pending -> [Queued] -> Running -> Succeeded | Failed

- start: spec checks; the per-namespace limit (Queued, first come first served); the
  MLflow parent run and, with tuning, the Optuna study; status.mlflowRunId is stored
  *before* the job is applied, so a crash in between never makes a second parent run;
- running: the job's active pods and the study's trial counts (refreshed every
  `progress_interval` seconds while tuning);
- finish (trainingrun.outcome): the job's Complete/Succeeded or Failed condition; metrics,
  best trial or Pareto front, the model registered with its alias; queued runs of the
  namespace are re-checked.

A run that finds everything as reported writes nothing. Status is written through the API
(not Kopf's patch) so that each step is stored before the next one starts. Errors of
MLflow, Optuna or the API are retried with a back-off by an in-memory timer: no Kopf
timers, which would put finalizers on users' objects.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from maestro.monitoring.tracing import current_traceparent
from maestro.operators.api.trainingrun import (
    TrainingPhase,
    TrainingRun,
    TrainingRunSpec,
    TrainingRunStatus,
)
from maestro.operators.core.events import one_line
from maestro.operators.core.kube import Obj
from maestro.operators.core.runtime import Runtime
from maestro.operators.core.settings import OperatorConfig
from maestro.operators.core.status import parse_status
from maestro.operators.core.status_writer import report
from maestro.operators.core.verdict import Verdict, invalid_spec
from maestro.operators.core.workqueue import WorkQueue
from maestro.operators.trainingrun.decide import (
    TERMINAL,
    JobState,
    OperatorFacts,
    StudyFacts,
    admit,
    check_spec,
    job_failed,
    job_state,
    running,
    starting,
    to_wake,
    tracking_unavailable,
    trials_status,
)
from maestro.operators.trainingrun.gather import Kube, run_facts
from maestro.operators.trainingrun.metrics import TrainingMetrics
from maestro.operators.trainingrun.namespace_runs import NamespaceRuns
from maestro.operators.trainingrun.outcome import outcome, study_fields
from maestro.operators.trainingrun.render import (
    RunIds,
    TrainerSettings,
    job_kind,
    job_name,
    render,
    study_name,
)
from maestro.training import contract

if TYPE_CHECKING:  # imported lazily: it is the module that loads MLflow and Optuna
    from maestro.operators.trainingrun.tracking import Tracking

PLURAL = TrainingRun.INFO.plural
log = logging.getLogger(__name__)


@dataclass
class Controller:
    """TrainingRun reconciliation, shared by the run and job event handlers."""

    runtime: Runtime
    config: OperatorConfig
    settings: TrainerSettings = field(init=False)
    queue: WorkQueue = field(init=False)
    metrics: TrainingMetrics = field(init=False)
    _kube: Kube | None = None
    _tracking: Tracking | None = None
    # Runs admitted and being started, whose status does not show it yet.
    _starting: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # What the namespace queue counts (its watch is started with the operator).
    runs: NamespaceRuns = field(init=False)

    def __post_init__(self) -> None:
        self.settings = TrainerSettings.from_config(self.config)
        self.queue = self.runtime.queue(TrainingRun.INFO.kind, self.reconcile)
        self.metrics = TrainingMetrics(self.runtime.metrics)
        self.runs = NamespaceRuns(lambda namespace: self.kube.list_runs(namespace))

    # --- clients -----------------------------------------------------------------------

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(
                self.runtime.api_client,
                self.runtime.request_timeout,
                self.runtime.operator_metrics.wrote,
            )
        return self._kube

    @property
    def tracking(self) -> Tracking:
        if self._tracking is None:
            from maestro.operators.trainingrun.tracking import Tracking

            storage = self.config.optuna_storage
            self._tracking = Tracking(
                self.config.mlflow_tracking_uri or "",
                storage.get_secret_value() if storage else None,
            )
        return self._tracking

    def operator_facts(self) -> OperatorFacts:
        return OperatorFacts(
            tracking_configured=bool(self.config.mlflow_tracking_uri),
            optuna_configured=self.config.optuna_storage is not None,
            kubeflow=self.config.kubeflow,
        )

    def requeue(self, namespace: str, name: str, delay: float) -> None:
        self.queue.requeue(namespace, name, delay)

    def deleted(self, body: Mapping[str, Any]) -> None:
        """The run is gone: its jobs go with it (owner references), its MLflow run stays,
        marked KILLED if it was still running, and a queued run may take its slot."""
        meta, status = body["metadata"], body.get("status") or {}
        namespace, name = meta.get("namespace") or "", meta["name"]
        self.queue.forget(namespace, name)
        self.metrics.forget(namespace, name)
        run_id = status.get("mlflowRunId")
        if run_id and status.get("phase") not in TERMINAL and self.config.mlflow_tracking_uri:
            try:
                self.tracking.end_run(run_id, "KILLED")
            except Exception as err:
                log.warning("[%s/%s] MLflow run %s not closed: %s", namespace, name, run_id, err)
        # Its slot is free now, whether or not the store has seen it go.
        self.runs.wrote(dict(body), TrainingPhase.FAILED.value, bool(run_id))
        self.wake_queued(namespace)

    def wake_queued(self, namespace: str) -> None:
        """A slot may have freed: re-check the namespace's waiting runs, oldest first."""
        for name in to_wake(self.runs.of(namespace), self.config.max_concurrent_runs):
            self.requeue(namespace, name, 0)

    # --- reconcile ---------------------------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> None:
        self.queue.process(
            namespace,
            name,
            lambda: self.kube.get_run(namespace, name),
            lambda obj: _Step(self, obj),
        )


class _Step:
    """One reconcile of one TrainingRun: reads the run once, writes status as it goes."""

    def __init__(self, controller: Controller, obj: Obj) -> None:
        self.c = controller
        self.obj = obj
        meta = obj["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.generation: int | None = meta.get("generation")
        self.status_raw: dict[str, Any] = dict(obj.get("status") or {})

    @property
    def status(self) -> TrainingRunStatus:
        parsed = parse_status(TrainingRunStatus, self.status_raw)
        assert isinstance(parsed, TrainingRunStatus)
        return parsed

    def write(self, verdict: Verdict, extra: Mapping[str, Any] | None = None) -> None:
        """The pass's one status write (each path through `run` ends in exactly one)."""
        self.status_raw = report(
            self.c.kube,
            self.obj,
            TrainingRunStatus,
            self.status_raw,
            verdict,
            extra,
            self.c.runtime.clock,
            self.c.runtime.post_event,
        )
        self.c.metrics.show(self.namespace, self.name, self.status_raw)

    def report_error(self, err: Exception) -> None:
        """Say in status why the run does not progress (best effort)."""
        try:
            self.write(tracking_unavailable(self.status.phase, one_line(err)))
        except Exception as write_err:
            log.warning("[%s/%s] status not written: %s", self.namespace, self.name, write_err)

    # --- the lifecycle -----------------------------------------------------------------

    def run(self) -> None:
        try:
            spec = TrainingRunSpec.model_validate(self.obj.get("spec") or {})
        except ValidationError as err:
            if self.status.mlflow_run_id is None:
                self.write(invalid_spec(TrainingRun.INFO.kind, err))
            return
        status = self.status
        if status.phase in TERMINAL and status.completion_time is not None:
            return  # finished runs keep their status; their jobs stay for inspection
        if status.mlflow_run_id is None:
            # This pass starts the run (or says why not); the next one applies its job.
            if self.start(spec):
                self.c.requeue(self.namespace, self.name, 0)
            return
        kind = job_kind(spec, self.c.settings.kubeflow)
        name = job_name(self.name, self.uid)
        job = self.c.kube.get_job(kind, self.namespace, name)
        ref = {"apiVersion": kind.api_version, "kind": kind.kind, "name": name}
        if job is None:
            self.apply(spec)
            self.write(
                running(f"{kind.kind} {name}", JobState()),
                {"jobRef": ref, **self.study_fields(spec)},
            )
            return
        state = job_state(kind.kind, job)
        if not state.finished:
            self.write(
                running(f"{kind.kind} {name}", state),
                {"jobRef": ref, **self.study_fields(spec)},
            )
            if spec.tuning is not None:
                self.c.requeue(self.namespace, self.name, self.c.config.progress_interval)
            return
        if state.succeeded:
            self.finish(spec, ref)
        else:
            pods = self.c.kube.list_pods(self.namespace, f"{kind.pod_job_label}={name}")
            run_id = self.status.mlflow_run_id
            error = self.c.tracking.run_error(run_id) if run_id else None
            verdict = job_failed(state, pods, f"{kind.kind} {name}", error)
            self.complete(verdict, {"jobRef": ref, **self.study_fields(spec)})

    def start(self, spec: TrainingRunSpec) -> bool:
        """Checks, queue, MLflow run and study, and the status that says which; True when
        the run started (its MLflow run id is stored before any job is applied, so a crash
        in between never makes a second parent run)."""
        refused = check_spec(spec, self.c.operator_facts())
        if refused is not None:
            self.write(refused)
            return False
        c = self.c
        with c.queue.lock(self.namespace):
            runs = c.runs.of(self.namespace)
            queued = admit(
                run_facts(self.obj),
                runs,
                c.config.max_concurrent_runs,
                c._starting[self.namespace],
            )
            if queued is not None:
                self.write(queued)
                return False
            c._starting[self.namespace].add(self.name)
        try:
            tags = {}
            if spec.dataset is not None:
                tags[contract.TAG_DATASET_URI] = spec.dataset.uri
                if spec.dataset.version:
                    tags[contract.TAG_DATASET_VERSION] = spec.dataset.version
            if spec.feature_service:
                tags[contract.TAG_FEATURE_SERVICE] = spec.feature_service
            run_id = c.tracking.ensure_parent_run(
                self.experiment(spec), self.namespace, self.name, self.uid, tags
            )
            study = None
            if spec.tuning is not None:
                study = study_name(self.uid)
                c.tracking.create_study(study, spec.tuning)
            extra: dict[str, Any] = {
                "mlflowRunId": run_id,
                "startTime": _iso(c.runtime.clock()),
                "study": study,
            }
            if spec.tuning is not None:
                extra["trials"] = trials_status(StudyFacts(), spec.tuning.trials)
            self.write(starting(), extra)
            c.runs.wrote(self.obj, TrainingPhase.RUNNING.value, True)
        finally:
            with c.queue.lock(self.namespace):
                c._starting[self.namespace].discard(self.name)
        return True

    def experiment(self, spec: TrainingRunSpec) -> str:
        return spec.mlflow.experiment or self.namespace

    def ids(self, spec: TrainingRunSpec) -> RunIds:
        status = self.status
        assert status.mlflow_run_id is not None
        return RunIds(
            namespace=self.namespace,
            name=self.name,
            uid=self.uid,
            experiment=self.experiment(spec),
            parent_run_id=status.mlflow_run_id,
            study=study_name(self.uid) if spec.tuning is not None else None,
            # The job is applied once, so its pods carry the trace of the reconcile that
            # created it (a job's pod template cannot change anyway).
            traceparent=current_traceparent(),
        )

    def apply(self, spec: TrainingRunSpec) -> None:
        storage = self.c.config.optuna_storage
        for manifest in render(
            spec,
            self.c.settings,
            self.ids(spec),
            optuna_storage=storage.get_secret_value() if storage else None,
        ):
            self.c.kube.apply(manifest)

    def study_fields(self, spec: TrainingRunSpec) -> dict[str, Any]:
        if spec.tuning is None:
            return {}
        facts = self.c.tracking.study_facts(study_name(self.uid))
        return study_fields(facts, spec.tuning.trials)

    def finish(self, spec: TrainingRunSpec, ref: Mapping[str, Any]) -> None:
        run_id = self.status.mlflow_run_id
        assert run_id is not None
        run = (self.namespace, self.name, self.uid)
        self.complete(*outcome(self.c.tracking, spec, run_id, run, ref))

    def complete(self, verdict: Verdict, extra: Mapping[str, Any]) -> None:
        c = self.c
        status = self.status
        if status.mlflow_run_id is not None:
            c.tracking.end_run(status.mlflow_run_id, "FINISHED" if verdict.ready else "FAILED")
        now = c.runtime.clock()
        start = status.start_time
        self.write(
            verdict,
            {**extra, "completionTime": _iso(max(start, now) if start else now)},
        )
        c.runs.wrote(self.obj, str(verdict.phase), True)
        c.wake_queued(self.namespace)


def _iso(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
