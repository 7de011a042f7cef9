"""DriftCheck controller: gather (the ModelDeployment and TrainingRuns the check names, its
Jobs and the newest finished one's termination message, its open retrains), apply (the
CronJob, the PrometheusRule, a retrain TrainingRun), report (status, Events, the gauges
Prometheus scrapes). The drift itself is computed by the Job (`maestro drift run`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from maestro.monitoring.contract import decode_message
from maestro.operators.api.common import API_VERSION, Reason
from maestro.operators.api.driftcheck import DriftCheck, DriftCheckSpec, DriftCheckStatus
from maestro.operators.api.trainingrun import TrainingRun
from maestro.operators.core.gather import deployment_facts, existing_training_runs
from maestro.operators.core.kube import (
    APPLIED_HASH_ANNOTATION,
    Kube,
    Obj,
    manifest_hash,
    plural_of,
    with_hash,
)
from maestro.operators.core.objects import label_value
from maestro.operators.core.runtime import Runtime
from maestro.operators.core.status import parse_status
from maestro.operators.core.status_writer import report, report_failure
from maestro.operators.core.verdict import Verdict, invalid_spec
from maestro.operators.core.workqueue import WorkQueue
from maestro.operators.driftcheck import render
from maestro.operators.driftcheck.decide import (
    Facts,
    FinishedRun,
    Inputs,
    Outcome,
    RetrainFacts,
    decide,
    preconditions,
    reference_uri,
)
from maestro.operators.driftcheck.metrics import DriftMetrics
from maestro.operators.driftcheck.schedule import ScheduleError, longest_gap_seconds

log = logging.getLogger(__name__)
PLURAL = DriftCheck.INFO.plural
ENDED_PHASES = {"Succeeded", "Failed"}


@dataclass
class Controller:
    runtime: Runtime
    metrics: DriftMetrics
    queue: WorkQueue = field(init=False)
    settings: render.DriftSettings = field(init=False)

    def __post_init__(self) -> None:
        self.queue = self.runtime.queue(DriftCheck.INFO.kind, self.reconcile)
        self.settings = render.DriftSettings.from_config(self.runtime.config)

    @property
    def kube(self) -> Kube:
        return self.runtime.kube

    def reconcile(self, namespace: str, name: str) -> None:
        self.queue.process(
            namespace,
            name,
            lambda: self.kube.get(API_VERSION, PLURAL, namespace, name),
            lambda obj: _Step(self, obj),
        )

    def forget(self, namespace: str, name: str) -> None:
        self.metrics.forget(namespace, name)


class _Step:
    def __init__(self, controller: Controller, obj: Obj) -> None:
        self.c, self.obj = controller, obj
        meta = obj["metadata"]
        self.ids = render.Ids(meta["namespace"], meta["name"], meta["uid"])
        self.stored: dict[str, Any] = dict(obj.get("status") or {})

    def run(self) -> None:
        try:
            spec = DriftCheckSpec.model_validate(self.obj.get("spec") or {})
        except ValidationError as err:
            self.write(Outcome(invalid_spec(DriftCheck.INFO.kind, err)))
            return
        kube, ns = self.c.kube, self.ids.namespace
        template = (
            spec.on_drift.retrain.template if spec.on_drift and spec.on_drift.retrain else None
        )
        named = {spec.reference.training_run, template} - {None}
        facts = Facts(
            deployments=deployment_facts(kube, ns, [spec.deployment]),
            training_runs=existing_training_runs(kube, ns, [n for n in named if n]),
            training_run_dataset=self.training_run_dataset(spec.reference.training_run),
            prediction_log_configured=bool(self.c.settings.prediction_log_uri),
        )
        blocked = preconditions(spec, facts)
        if blocked is not None:
            self.write(Outcome(self.hold_schedule(spec, facts, blocked)))
            return
        reference = reference_uri(spec, facts) or ""
        schedule_error = self.apply_cron_job(spec, reference)
        status = parse_status(DriftCheckStatus, self.stored)
        assert isinstance(status, DriftCheckStatus)
        retrain = self.retrain_facts(template)
        outcome = decide(
            Inputs(
                spec=spec,
                status=status,
                now=self.c.runtime.clock(),
                cron_job=render.cron_job_name(self.ids),
                reference_uri=reference,
                schedule_error=schedule_error,
                last_run=self.last_run(),
                retrain=retrain,
            )
        )
        if outcome.retrain_for is not None and template and retrain.template_spec is not None:
            self.start_retrain(template, retrain.template_spec, outcome)
        self.write(outcome)

    # --- gather ------------------------------------------------------------------------
    def training_run_dataset(self, name: str | None) -> str | None:
        if not name:
            return None
        run = self.c.kube.get(API_VERSION, TrainingRun.INFO.plural, self.ids.namespace, name)
        uri = (((run or {}).get("spec") or {}).get("dataset") or {}).get("uri")
        return uri if isinstance(uri, str) and uri else None

    def last_run(self) -> FinishedRun | None:
        jobs = self.c.kube.list(
            "batch/v1",
            "jobs",
            self.ids.namespace,
            f"{render.LABEL_DRIFTCHECK}={label_value(self.ids.name)}",
        )
        finished = [(t, ok, job) for job in jobs if (end := _ended(job)) for t, ok in [end]]
        if not finished:
            return None
        ended_at, succeeded, job = max(finished, key=lambda f: f[0])
        name = job["metadata"]["name"]
        text, reason = self.termination_message(name), _failure_reason(job)
        outcome, truncated = None, False
        if text:
            with contextlib.suppress(ValueError, ValidationError):
                outcome, truncated = decode_message(text)
        return FinishedRun(
            job=name,
            finished_at=ended_at,
            succeeded=succeeded,
            outcome=outcome,
            truncated=truncated,
            message=(text or reason)[-800:],
        )

    def termination_message(self, job: str) -> str:
        pods = self.c.kube.list("v1", "pods", self.ids.namespace, f"job-name={job}")
        pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
        for pod in reversed(pods):
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                done = (cs.get("state") or {}).get("terminated") or {}
                if cs.get("name") == render.CONTAINER and done.get("message"):
                    return str(done["message"]).strip()
        return ""

    def retrain_facts(self, template: str | None) -> RetrainFacts:
        if template is None:
            return RetrainFacts()
        kube, ns = self.c.kube, self.ids.namespace
        found = kube.get(API_VERSION, TrainingRun.INFO.plural, ns, template)
        selector = (
            f"{render.LABEL_DRIFTCHECK}={label_value(self.ids.name)},{render.LABEL_TRIGGER}=drift"
        )
        runs = kube.list(API_VERSION, TrainingRun.INFO.plural, ns, selector)
        open_runs = tuple(
            sorted(
                run["metadata"]["name"]
                for run in runs
                if ((run.get("status") or {}).get("phase")) not in ENDED_PHASES
            )
        )
        created = [_time(run["metadata"].get("creationTimestamp")) for run in runs]
        return RetrainFacts(
            template_spec=(found or {}).get("spec") if found else None,
            open_runs=open_runs,
            last_created=max((t for t in created if t), default=None),
        )

    # --- apply -------------------------------------------------------------------------
    def hold_schedule(self, spec: DriftCheckSpec, facts: Facts, blocked: Verdict) -> Verdict:
        """A check that ran before and is blocked now (its ModelDeployment went, say) must
        not keep running unreported: its CronJob is suspended until the check is whole."""
        selector = f"{render.LABEL_DRIFTCHECK}={label_value(self.ids.name)}"
        if not self.c.kube.list("batch/v1", "cronjobs", self.ids.namespace, selector):
            return blocked
        reference = reference_uri(spec, facts) or self.stored.get("referenceUri")
        if not reference:
            return blocked
        self.apply_cron_job(spec.model_copy(update={"suspend": True}), str(reference))
        held = (
            f"{blocked.message} CronJob {render.cron_job_name(self.ids)} is suspended until then."
        )
        return replace(blocked, message=held)

    def apply_cron_job(self, spec: DriftCheckSpec, reference: str) -> str | None:
        """Apply the CronJob (and the PrometheusRule); the API server's refusal of the
        CronJob (a schedule its validation rejects) as text, None when applied."""
        from kubernetes.client.exceptions import ApiException

        settings = self.c.settings
        wanted = [render.cron_job(self.ids, spec, reference, settings)]
        if settings.prometheus_operator:
            wanted.append(render.prometheus_rule(self.ids, spec, settings))
        selector = f"{render.LABEL_DRIFTCHECK}={label_value(self.ids.name)}"
        live = {
            (obj.get("kind") or manifest["kind"], obj["metadata"]["name"]): obj
            for manifest in wanted
            for obj in self.c.kube.list(
                manifest["apiVersion"], plural_of(manifest["kind"]), self.ids.namespace, selector
            )
        }
        for manifest in wanted:
            kind = manifest["kind"]
            found = live.get((kind, manifest["metadata"]["name"])) or {}
            applied = (found.get("metadata") or {}).get("annotations") or {}
            if applied.get(APPLIED_HASH_ANNOTATION) == manifest_hash(manifest):
                continue
            try:
                self.c.kube.apply(with_hash(manifest))
            except ApiException as err:
                message = _api_message(err)
                # Only the schedule is the user's to fix; anything else is ours, retried.
                if kind == "CronJob" and err.status in (400, 422) and "schedule" in message:
                    return message
                raise
        return None

    def start_retrain(
        self, template: str, template_spec: Mapping[str, Any], outcome: Outcome
    ) -> None:
        assert outcome.retrain_for is not None
        job, severity = outcome.retrain_for
        run = render.retrain_run(self.ids, template_spec, job, severity)
        self.c.kube.apply(run)
        name = run["metadata"]["name"]
        outcome.status.update(
            {"lastRetrain": name, "lastRetrainTime": self.c.runtime.clock().isoformat()}
        )
        outcome.events.append(
            (
                "Normal",
                Reason.RETRAIN_STARTED,
                f"{severity} drift in Job {job}: started TrainingRun {name} from {template}",
            )
        )

    # --- report ------------------------------------------------------------------------
    def write(self, outcome: Outcome) -> None:
        self.stored = report(
            self.c.kube,
            self.obj,
            DriftCheckStatus,
            self.stored,
            outcome.verdict,
            outcome.status,
            self.c.runtime.clock,
            self.c.runtime.post_event,
        )
        for kind, reason, message in outcome.events:
            self.c.runtime.post_event(self.obj, kind, reason.value, message)
        spec = self.obj.get("spec") or {}
        deployment = str(spec.get("deployment") or "")
        self.c.metrics.show(self.ids.namespace, self.ids.name, self.stored, deployment)
        last = _time(self.stored.get("lastRunTime")) or _time(
            self.obj["metadata"].get("creationTimestamp")
        )
        self.c.metrics.show_schedule(
            self.ids.namespace,
            self.ids.name,
            deployment,
            last_run=last.timestamp() if last else self.c.runtime.clock().timestamp(),
            failed=self.stored.get("lastRunReason") not in RESULT_REASONS,
            interval=schedule_interval(spec),
        )

    def report_error(self, err: Exception) -> None:
        report_failure(
            self.c.kube,
            self.obj,
            DriftCheckStatus,
            self.stored,
            err,
            self.c.runtime.clock,
            self.c.runtime.post_event,
        )


def _ended(job: Obj) -> tuple[datetime, bool] | None:
    """When a Job ended and whether it succeeded; None while it runs."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            stamp = cond.get("lastTransitionTime") or job["metadata"].get("creationTimestamp")
            when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
            return when, cond["type"] == "Complete"
    return None


# The reasons of a run that checked (whatever it found); any other one could not check.
RESULT_REASONS = (None, Reason.NO_DRIFT.value, Reason.DRIFT_DETECTED.value)
DEFAULT_SCHEDULE = str(DriftCheckSpec.model_fields["schedule"].default)


def schedule_interval(spec: Mapping[str, Any]) -> float | None:
    """The longest wait between two runs of the check's schedule; None while it is
    suspended (or its schedule cannot be read: the CronJob says why)."""
    if spec.get("suspend"):
        return None
    try:
        return longest_gap_seconds(str(spec.get("schedule") or DEFAULT_SCHEDULE))
    except ScheduleError:
        return None


def _time(stamp: Any) -> datetime | None:
    if not stamp:
        return None
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))


def _failure_reason(job: Obj) -> str:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return f"{cond.get('reason', '')}: {cond.get('message', '')}".strip(": ")
    return ""


def _api_message(err: Any) -> str:
    try:
        return str(json.loads(err.body).get("message") or err.reason)
    except (TypeError, ValueError):
        return str(err.reason)


def build(runtime: Runtime, metrics: DriftMetrics) -> Controller:
    return Controller(runtime, metrics)
