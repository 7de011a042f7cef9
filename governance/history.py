"""Alias history read from the audit log, pure: every recorded move of an alias, and which
version an alias pointed at, at a given time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from maestro.governance.audit_chain import Action, Entry


@dataclass(frozen=True)
class Move:
    seq: int
    at: datetime
    alias: str
    from_version: str | None
    to_version: str
    actor: str
    kind: str  # promote | rollback
    reason: str
    gates: Sequence[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "alias": self.alias,
            "from": self.from_version,
            "to": self.to_version,
            "who": self.actor,
            "kind": self.kind,
            "why": self.reason,
            "gates": list(self.gates),
        }


def moves(entries: Sequence[Entry], alias: str | None = None) -> list[Move]:
    """The alias moves among `entries` (oldest first), of one alias when given."""
    found = []
    for e in entries:
        if e.action != Action.ALIAS_MOVED or (alias and e.details.get("alias") != alias):
            continue
        d = e.details
        found.append(
            Move(
                seq=e.seq,
                at=e.at,
                alias=str(d["alias"]),
                from_version=d.get("from"),
                to_version=str(d["to"]),
                actor=e.actor_label,
                kind=str(d.get("kind", "promote")),
                reason=str(d.get("reason", "")),
                gates=list(d.get("gates") or []),
            )
        )
    return found


def version_at(history: Sequence[Move], alias: str, when: datetime) -> Move | None:
    """The move that put `alias` where it was at `when` (None: it pointed nowhere known)."""
    current = None
    for move in history:
        if move.alias == alias and move.at <= when:
            current = move
    return current


def previous_version(history: Sequence[Move], alias: str, current: str | None) -> str | None:
    """What a one-step rollback of `alias` returns to: the version the promotion to
    `current` moved it away from (so two rollbacks step back twice, not forth)."""
    for move in reversed(history):
        if move.alias == alias and move.to_version == current and move.kind == "promote":
            return move.from_version
    return None
