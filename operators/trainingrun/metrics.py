"""The gauges the operator exports per TrainingRun, set from its status after every status
write (so a restarted operator shows them again once it has reconciled each run): the
phase, as kube-state-metrics shows a pod's (1 for the current phase, 0 for the others),
and the Optuna trial counts. The platform's training alerts (maestro.monitoring.alerts)
read them: failed runs, runs queued too long, trials that stopped finishing."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from maestro.monitoring import metric_names as names
from maestro.operators.api.trainingrun import TrainingPhase

RUN_LABELS = ("namespace", "trainingrun")
TRIAL_STATES = ("total", "running", "completed", "pruned", "failed")


class TrainingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.phase = Gauge(
            names.TRAINING_PHASE,
            "1 for the TrainingRun's current phase, 0 for the others.",
            (*RUN_LABELS, "phase"),
            registry=registry,
        )
        self.trials = Gauge(
            names.TRAINING_TRIALS,
            "Optuna trials of a tuning TrainingRun, by state (total = trials requested).",
            (*RUN_LABELS, "state"),
            registry=registry,
        )
        self._tuning: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def show(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        phase = status.get("phase")
        trials = status.get("trials")
        with self._lock:
            if phase is None:
                self._remove(namespace, name)
                return
            for each in TrainingPhase:
                self.phase.labels(namespace, name, each.value).set(
                    1.0 if each.value == phase else 0.0
                )
            if isinstance(trials, Mapping):
                for state in TRIAL_STATES:
                    self.trials.labels(namespace, name, state).set(float(trials.get(state) or 0))
                self._tuning.add((namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._remove(namespace, name)

    def _remove(self, namespace: str, name: str) -> None:
        for each in TrainingPhase:
            with contextlib.suppress(KeyError):
                self.phase.remove(namespace, name, each.value)
        if (namespace, name) in self._tuning:
            self._tuning.discard((namespace, name))
            for state in TRIAL_STATES:
                with contextlib.suppress(KeyError):
                    self.trials.remove(namespace, name, state)
