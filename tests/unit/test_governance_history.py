"""Alias history from audit entries: moves, the version at a time, one-step rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from maestro.governance.audit_chain import Action, Entry
from maestro.governance.history import moves, previous_version, version_at

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def entry(seq: int, action: str, **details: Any) -> Entry:
    at = T0 + timedelta(hours=seq)
    return Entry(seq, at, {"name": "bob", "source": "kubernetes"}, action, "iris", details, "", "")


LOG = [
    entry(1, Action.APPROVAL, alias="champion", version="1"),
    entry(2, Action.ALIAS_MOVED, alias="champion", to="1", kind="promote", reason="first"),
    entry(3, Action.ALIAS_MOVED, alias="challenger", to="2", kind="promote", reason="try"),
    entry(4, Action.ALIAS_MOVED, alias="champion", **{"from": "1"}, to="3", kind="promote"),
    entry(5, Action.ALIAS_MOVED, alias="champion", **{"from": "3"}, to="1", kind="rollback"),
]


def test_moves_of_one_alias_in_order() -> None:
    found = moves(LOG, "champion")
    assert [(m.from_version, m.to_version, m.kind) for m in found] == [
        (None, "1", "promote"),
        ("1", "3", "promote"),
        ("3", "1", "rollback"),
    ]
    assert found[0].actor == "bob (kubernetes)" and found[0].reason == "first"
    assert len(moves(LOG)) == 4


@pytest.mark.parametrize(
    ("hours", "version"),
    [(1, None), (2, "1"), (3.5, "1"), (4, "3"), (4.9, "3"), (5, "1"), (100, "1")],
)
def test_version_at(hours: float, version: str | None) -> None:
    move = version_at(moves(LOG), "champion", T0 + timedelta(hours=hours))
    assert (move.to_version if move else None) == version


def test_rollback_steps_back_through_promotions_only() -> None:
    history = moves(LOG)
    assert previous_version(history, "champion", "3") == "1"
    # v1 came back by a rollback: one more step goes to what preceded v1's promotion.
    assert previous_version(history, "champion", "1") is None
    assert previous_version(history, "challenger", "2") is None
