"""The runs the namespace queue counts: the namespace's TrainingRuns from a watch, with
what this operator wrote of their progress laid over them.

The queue (`decide.admit`, `decide.to_wake`) counts the runs that hold a slot. It used to
LIST the namespace's TrainingRuns at every start and every end: 1,000 runs made 1,000
lists of up to 1,000 objects, most of the operator's CPU in `make bench-operator`. The
store (operators.core.object_cache) costs one watch, but it shows a status write only once
the watch brings it back: a run this operator just started would look free (a slot given
twice), one it just ended would look busy (the queued run it wakes would queue again, with
nothing left to wake it). So what the operator writes is remembered here until the store
shows at least as much.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from maestro.operators.core.kube import Obj
from maestro.operators.core.object_cache import ObjectCache
from maestro.operators.trainingrun.decide import TERMINAL, RunFacts
from maestro.operators.trainingrun.gather import RUN_KIND, run_facts

WAITING, STARTED, ENDED = 0, 1, 2


def progress(run: RunFacts) -> int:
    """How far a run got; a run never goes back."""
    if run.phase in TERMINAL:
        return ENDED
    return STARTED if run.started else WAITING


@dataclass
class Written:
    """Per namespace, the runs whose progress this operator wrote, as it wrote them, by
    uid (a run deleted and created again under its name is another run)."""

    _runs: dict[str, dict[str, RunFacts]] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def wrote(self, namespace: str, run: RunFacts) -> None:
        with self._guard:
            self._runs.setdefault(namespace, {})[run.uid] = run

    def over(self, namespace: str, stored: Iterable[RunFacts]) -> list[RunFacts]:
        """The namespace's runs from the store, each as far as this operator knows it got.
        An entry is dropped once the store shows as much; an ended run the store no longer
        has is gone (deleted) and holds nothing."""
        with self._guard:
            mine = self._runs.get(namespace, {})
            runs = []
            for run in stored:
                known = mine.get(run.uid)
                if known is not None and progress(known) > progress(run):
                    runs.append(known)
                    continue
                mine.pop(run.uid, None)
                runs.append(run)
            seen = {run.uid for run in runs}
            for uid, known in list(mine.items()):
                if uid in seen:
                    continue
                if progress(known) == ENDED:
                    del mine[uid]
                else:
                    runs.append(known)  # started before the store saw it at all
            return runs


@dataclass
class NamespaceRuns:
    """What `admit` and `to_wake` read: every run of a namespace, as far as this operator
    knows. From the watch once it is up (`cache`), else a LIST (`list_runs`)."""

    list_runs: Callable[[str], list[Obj]]
    cache: ObjectCache | None = None
    written: Written = field(default_factory=Written)

    def of(self, namespace: str) -> list[RunFacts]:
        found = (
            self.cache.owned(RUN_KIND, namespace)
            if self.cache is not None
            else self.list_runs(namespace)
        )
        return self.written.over(namespace, [run_facts(obj) for obj in found])

    def wrote(self, obj: Obj, phase: str, started: bool) -> None:
        """A run's progress this operator has just written."""
        facts = replace(run_facts(obj), phase=phase, started=started)
        self.written.wrote(str(obj["metadata"].get("namespace") or ""), facts)
