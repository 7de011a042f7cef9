"""The gauges the operator exports per ABTest, set from its status after every status
write: 1 for the test's current phase and Ready reason (GuardrailBreached,
SampleRatioMismatch, ChallengerWins, ...), and the sample-ratio-mismatch p-value of its
split. The platform's A/B alerts (maestro.monitoring.alerts) read them."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from maestro.monitoring import metric_names as names

TEST_LABELS = ("namespace", "abtest", "deployment")


def ready_reason(status: Mapping[str, Any]) -> str:
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return str(cond.get("reason") or "")
    return ""


class ABTestStatusMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.status = Gauge(
            names.ABTEST_STATUS,
            "1 for the ABTest's current phase and Ready condition reason.",
            (*TEST_LABELS, "phase", "reason"),
            registry=registry,
        )
        self.srm = Gauge(
            names.ABTEST_SRM_P_VALUE,
            "Sample-ratio-mismatch p-value of the ABTest's assignment counts (low: broken split).",
            TEST_LABELS,
            registry=registry,
        )
        self._shown: dict[tuple[str, str], tuple[tuple[str, ...], bool]] = {}
        self._lock = threading.Lock()

    def show(self, namespace: str, name: str, deployment: str, status: Mapping[str, Any]) -> None:
        phase = status.get("phase")
        with self._lock:
            self._remove(namespace, name)
            if phase is None:
                return
            labels = (namespace, name, deployment)
            status_labels = (*labels, str(phase), ready_reason(status))
            self.status.labels(*status_labels).set(1.0)
            srm = status.get("srmPValue")
            if srm is not None:
                self.srm.labels(*labels).set(float(srm))
            self._shown[(namespace, name)] = (status_labels, srm is not None)

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._remove(namespace, name)

    def _remove(self, namespace: str, name: str) -> None:
        shown = self._shown.pop((namespace, name), None)
        if shown is None:
            return
        status_labels, with_srm = shown
        with contextlib.suppress(KeyError):
            self.status.remove(*status_labels)
        if with_srm:
            with contextlib.suppress(KeyError):
                self.srm.remove(*status_labels[:3])
