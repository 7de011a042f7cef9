"""The operator's own metrics: reconcile time and errors per kind, the work queue's depth,
and its writes to the API server per kind and verb."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from maestro.operators.core.kube import Kube
from maestro.operators.core.operator_metrics import OperatorMetrics
from maestro.operators.core.workqueue import WorkQueue

pytestmark = pytest.mark.unit


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


class Step:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.reported: list[Exception] = []

    def run(self) -> None:
        if self.fail:
            raise RuntimeError("boom")

    def report_error(self, err: Exception) -> None:
        self.reported.append(err)


def test_reconciles_are_timed_and_failures_counted_per_kind() -> None:
    registry = CollectorRegistry()
    queue = WorkQueue("DriftCheck", lambda ns, n: None, metrics=OperatorMetrics(registry))
    obj = {"metadata": {"name": "a"}}
    queue.process("ns", "a", lambda: obj, lambda o: Step(fail=False))
    failing = Step(fail=True)
    queue.process("ns", "a", lambda: obj, lambda o: failing)
    count = "maestro_operator_reconcile_duration_seconds_count"
    assert value(registry, count, kind="DriftCheck") == 2
    assert value(registry, "maestro_operator_reconcile_errors_total", kind="DriftCheck") == 1
    assert len(failing.reported) == 1


def test_a_kind_that_never_failed_exports_zero_errors_and_depth_not_nothing() -> None:
    registry = CollectorRegistry()
    WorkQueue("TrainingRun", lambda ns, n: None, metrics=OperatorMetrics(registry))
    errors = registry.get_sample_value(
        "maestro_operator_reconcile_errors_total", {"kind": "TrainingRun"}
    )
    depth = registry.get_sample_value("maestro_operator_workqueue_depth", {"kind": "TrainingRun"})
    assert (errors, depth) == (0.0, 0.0)


def test_the_depth_counts_objects_waiting_for_a_recheck() -> None:
    registry = CollectorRegistry()
    loop = asyncio.new_event_loop()
    fired: list[str] = []
    queue = WorkQueue(
        "ABTest", lambda ns, n: fired.append(n), loop=loop, metrics=OperatorMetrics(registry)
    )
    try:
        queue.requeue("ns", "a", 60)
        queue.requeue("ns", "b", 60)
        queue.requeue("ns", "a", 30)  # the same object: still one waiting
        loop.run_until_complete(asyncio.sleep(0.01))
        assert value(registry, "maestro_operator_workqueue_depth", kind="ABTest") == 2
        queue.forget("ns", "b")
        assert value(registry, "maestro_operator_workqueue_depth", kind="ABTest") == 1
    finally:
        loop.close()


class Api:
    def call_api(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {}


def test_writes_are_counted_per_kind_and_verb() -> None:
    registry = CollectorRegistry()
    kube = Kube(Api(), 5.0, OperatorMetrics(registry).wrote)
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"namespace": "n", "name": "c"},
    }
    kube.apply(cron)
    kube.apply(cron)
    kube.patch_status("mlops.maestro.dev/v1alpha1", "driftchecks", "n", "d", {"phase": "Active"})
    kube.delete("apps/v1", "Deployment", "n", "x")
    writes = "maestro_operator_api_writes_total"
    assert value(registry, writes, kind="cronjobs", verb="apply") == 2
    assert value(registry, writes, kind="driftchecks", verb="patch-status") == 1
    assert value(registry, writes, kind="deployments", verb="delete") == 1
