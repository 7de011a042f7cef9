"""The gauges the operator exports per DriftCheck, set from its status after every
reconcile (so a restarted operator shows the same figures again once it reconciled).
The PrometheusRule (driftcheck.render.prometheus_rule) alerts on the drift share."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from maestro.monitoring import metric_names as names
from maestro.operators.driftcheck.render import SEVERITY_LEVEL

CHECK_LABELS = ("namespace", "driftcheck", "deployment")


class DriftMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.share = Gauge(
            names.DRIFT_SHARE,
            "Share of checked columns that drifted in the DriftCheck's last run (0-1).",
            CHECK_LABELS,
            registry=registry,
        )
        self.severity = Gauge(
            names.DRIFT_SEVERITY,
            "Severity of the DriftCheck's last run: 0 Ok, 1 Warning, 2 Critical.",
            CHECK_LABELS,
            registry=registry,
        )
        self.score = Gauge(
            names.DRIFT_COLUMN_SCORE,
            "Per-column test score of the last run (p-value for ks/chisquare/z, else distance).",
            (*CHECK_LABELS, "column", "test"),
            registry=registry,
        )
        self.drifted = Gauge(
            names.DRIFT_COLUMN_DRIFTED,
            "1 when the column drifted in the DriftCheck's last run.",
            (*CHECK_LABELS, "column", "test"),
            registry=registry,
        )
        self.last_run = Gauge(
            names.DRIFT_LAST_RUN,
            "When the DriftCheck's last run ended (before its first: when it was created).",
            CHECK_LABELS,
            registry=registry,
        )
        self.last_run_failed = Gauge(
            names.DRIFT_LAST_RUN_FAILED,
            "1 when the DriftCheck's last run could not check (bad input, a service down).",
            CHECK_LABELS,
            registry=registry,
        )
        self.interval = Gauge(
            names.DRIFT_SCHEDULE_INTERVAL,
            "Longest time the DriftCheck's schedule leaves between two runs (absent while"
            " suspended).",
            CHECK_LABELS,
            registry=registry,
        )
        self._shown: dict[tuple[str, str], list[tuple[str, ...]]] = {}
        self._scheduled: dict[tuple[str, str], tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def show_schedule(
        self,
        namespace: str,
        name: str,
        deployment: str,
        *,
        last_run: float,
        failed: bool,
        interval: float | None,
    ) -> None:
        """Set when the check last ran and how long its schedule may leave it waiting;
        `interval` None (suspended, or a schedule that cannot be read) drops them, so a
        paused check raises no missed-schedule alert."""
        labels = (namespace, name, deployment)
        with self._lock:
            self._unschedule(namespace, name)
            if interval is None:
                return
            self.last_run.labels(*labels).set(last_run)
            self.last_run_failed.labels(*labels).set(1.0 if failed else 0.0)
            self.interval.labels(*labels).set(interval)
            self._scheduled[(namespace, name)] = labels

    def _unschedule(self, namespace: str, name: str) -> None:
        labels = self._scheduled.pop((namespace, name), None)
        if labels is not None:
            for gauge in (self.last_run, self.last_run_failed, self.interval):
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)

    def show(self, namespace: str, name: str, status: Mapping[str, Any], deployment: str) -> None:
        """Set the gauges from a DriftCheck's stored status (columns of an older run go)."""
        share = status.get("driftShare")
        with self._lock:
            self._remove(namespace, name)
            if share is None:
                return
            labels = (namespace, name, deployment)
            self.share.labels(*labels).set(float(share))
            self.severity.labels(*labels).set(SEVERITY_LEVEL.get(status.get("severity") or "", 0))
            shown = []
            for col in status.get("columns") or []:
                key = (*labels, str(col.get("name")), str(col.get("test")))
                if col.get("score") is not None:
                    self.score.labels(*key).set(float(col["score"]))
                self.drifted.labels(*key).set(1.0 if col.get("drifted") else 0.0)
                shown.append(key)
            self._shown[(namespace, name)] = [labels, *shown]

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._remove(namespace, name)
            self._unschedule(namespace, name)

    def _remove(self, namespace: str, name: str) -> None:
        keys = self._shown.pop((namespace, name), [])
        if not keys:
            return
        check, columns = keys[0], keys[1:]
        self.share.remove(*check)
        self.severity.remove(*check)
        for key in columns:
            for gauge in (self.score, self.drifted):
                with contextlib.suppress(KeyError):
                    gauge.remove(*key)
