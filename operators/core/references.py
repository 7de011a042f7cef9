"""Which objects name which others, so a kind that depends on another kind's objects is
re-checked when they appear, change or go away, without importing that kind.

A dependent kind records the references of each of its objects from their specs; its
handler for the referenced kind asks which dependents to requeue. Thread-safe: Kopf calls
sync handlers from its thread pool.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

# (namespace, kind, name) of a referenced object.
RefKey = tuple[str, str, str]
_UNSEEN = object()


@dataclass
class References:
    _by_ref: dict[RefKey, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    _by_dependent: dict[tuple[str, str], set[RefKey]] = field(default_factory=dict)
    # What dependents last saw of each referenced object, to fan out on real changes only.
    _seen: dict[RefKey, object] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def record(self, namespace: str, dependent: str, refs: set[RefKey]) -> None:
        """The references object `dependent` makes now (replacing what it made before)."""
        with self._guard:
            for ref in self._by_dependent.pop((namespace, dependent), set()):
                self._by_ref[ref].discard((namespace, dependent))
                if not self._by_ref[ref]:
                    del self._by_ref[ref]
            if refs:
                self._by_dependent[(namespace, dependent)] = set(refs)
                for ref in refs:
                    self._by_ref[ref].add((namespace, dependent))

    def forget(self, namespace: str, dependent: str) -> None:
        self.record(namespace, dependent, set())

    def dependents(self, ref: RefKey) -> list[str]:
        """Names of the objects of `ref`'s namespace that name it."""
        return [name for namespace, name in self.dependents_anywhere(ref) if namespace == ref[0]]

    def dependents_anywhere(self, ref: RefKey) -> list[tuple[str, str]]:
        """(namespace, name) of every object that names `ref`, e.g. a registered model,
        which lives outside any namespace."""
        with self._guard:
            return sorted(self._by_ref.get(ref, ()))

    def changed(self, ref: RefKey, event_type: str | None, value: object) -> bool:
        """Whether dependents of `ref` must be re-checked after this watch event.

        Initial-listing events (type None) only record: every dependent is listed too and
        reconciles itself. Status-only updates of the referenced object change nothing here.
        """
        with self._guard:
            if event_type == "DELETED":
                self._seen.pop(ref, None)
                return True
            previous = self._seen.get(ref, _UNSEEN)
            self._seen[ref] = value
            return event_type is not None and previous != value
