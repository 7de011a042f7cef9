"""The namespace queue's view of its runs (trainingrun.namespace_runs): the watch-fed store
may not show yet what this operator just wrote, and the queue must neither give a slot
twice nor keep one for a run that ended."""

from __future__ import annotations

import pytest

from maestro.operators.trainingrun.decide import RunFacts, admit, to_wake
from maestro.operators.trainingrun.namespace_runs import Written

pytestmark = pytest.mark.unit


def run(name: str, minute: int, phase: str | None = None, started: bool = False) -> RunFacts:
    return RunFacts(name, f"2024-01-01T00:{minute:02d}:00Z", phase, started, uid=f"uid-{name}")


def test_a_run_just_started_holds_its_slot_before_the_watch_shows_it() -> None:
    written = Written()
    written.wrote("ns", run("a", 1, "Running", True))
    stale = [run("a", 1), run("b", 2)]  # the store still has a as not started
    runs = written.over("ns", stale)
    assert admit(run("b", 2), runs, limit=1) is not None  # queued: a holds the only slot
    # Once the store shows it, what was written is dropped.
    assert written.over("ns", [run("a", 1, "Running", True)]) == [run("a", 1, "Running", True)]
    assert written.over("ns", [run("a", 1)]) == [run("a", 1)]


def test_a_run_just_ended_frees_its_slot_before_the_watch_shows_it() -> None:
    written = Written()
    written.wrote("ns", run("a", 1, "Succeeded", True))
    stale = [run("a", 1, "Running", True), run("b", 2, "Queued")]
    runs = written.over("ns", stale)
    assert to_wake(runs, limit=1) == ["b"]
    assert admit(run("b", 2, "Queued"), runs, limit=1) is None  # b may start now


def test_a_run_the_store_has_not_seen_yet_counts_once_started_and_ended_ones_are_dropped() -> None:
    written = Written()
    written.wrote("ns", run("new", 3, "Running", True))
    written.wrote("ns", run("gone", 1, "Failed", True))  # deleted: the store no longer has it
    assert written.over("ns", []) == [run("new", 3, "Running", True)]
    assert written.over("other", []) == []


def test_a_run_created_again_under_the_same_name_is_another_run() -> None:
    written = Written()
    written.wrote("ns", RunFacts("a", "2024-01-01T00:01:00Z", "Succeeded", True, uid="old"))
    again = RunFacts("a", "2024-01-01T00:09:00Z", "Running", True, uid="new")
    assert written.over("ns", [again]) == [again]
