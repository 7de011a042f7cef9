"""core.references: which objects name which others, and when their dependents must be
re-checked."""

from __future__ import annotations

import pytest

from maestro.operators.core.references import References

pytestmark = pytest.mark.unit

MD = ("ns", "ModelDeployment", "iris")
TR = ("ns", "TrainingRun", "train")


def test_dependents_follow_what_each_object_names_now() -> None:
    refs = References()
    refs.record("ns", "ab-1", {MD})
    refs.record("ns", "dc-1", {MD, TR})
    assert refs.dependents(MD) == ["ab-1", "dc-1"]
    assert refs.dependents(TR) == ["dc-1"]
    # An edited spec replaces what the object named before.
    refs.record("ns", "dc-1", {TR})
    assert refs.dependents(MD) == ["ab-1"]
    refs.forget("ns", "ab-1")
    assert refs.dependents(MD) == []
    assert refs.dependents(TR) == ["dc-1"]


def test_namespaces_do_not_mix() -> None:
    refs = References()
    refs.record("other", "ab-1", {("other", "ModelDeployment", "iris")})
    assert refs.dependents(MD) == []


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([(None, "a")], [False], id="initial-listing-only-records"),
        pytest.param([(None, "a"), ("MODIFIED", "a")], [False, False], id="status-only-update"),
        pytest.param([(None, "a"), ("MODIFIED", "b")], [False, True], id="what-dependents-read"),
        pytest.param([("ADDED", "a")], [True], id="appeared"),
        pytest.param([(None, "a"), ("DELETED", "a")], [False, True], id="deleted"),
        pytest.param(
            [("DELETED", "a"), ("ADDED", "a")], [True, True], id="re-created-after-delete"
        ),
    ],
)
def test_changed(events: list[tuple[str | None, str]], expected: list[bool]) -> None:
    refs = References()
    assert [refs.changed(MD, type_, value) for type_, value in events] == expected
