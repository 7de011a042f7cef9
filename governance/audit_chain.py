"""The audit log's hash chain, pure: how an entry's hash is computed and how a log read
back in order is checked.

Each entry's hash covers its content and the previous entry's hash, so an entry edited in
place, removed, or moved breaks the chain where it happened. (Truncating the newest
entries leaves a valid shorter chain: compare the head hash `maestro audit verify` prints
with one kept elsewhere to catch that.)"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

GENESIS = "0" * 64


class Action(StrEnum):
    GATES = "gates.evaluated"
    REQUEST = "promotion.requested"
    APPROVAL = "approval"
    ALIAS_MOVED = "alias.moved"
    ALIAS_MOVE_FAILED = "alias.move-failed"
    ARCHIVED = "version.archived"


@dataclass(frozen=True)
class Entry:
    seq: int
    at: datetime  # UTC
    actor: Mapping[str, Any]  # {"name", "source", ...}
    action: str
    subject: str  # the registered model's name
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        return body(self.at, self.actor, self.action, self.subject, self.details)

    @property
    def actor_label(self) -> str:
        """Who, and how that was established: "alice (kubernetes)"."""
        who, source = self.actor.get("name", "?"), self.actor.get("source")
        return f"{who} ({source})" if source else str(who)


def body(
    at: datetime, actor: Mapping[str, Any], action: str, subject: str, details: Mapping[str, Any]
) -> dict[str, Any]:
    # Microseconds survive a PostgreSQL timestamptz round trip exactly.
    return {
        "at": at.isoformat(timespec="microseconds"),
        "actor": dict(actor),
        "action": action,
        "subject": subject,
        "details": dict(details),
    }


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(content)).hexdigest()


class Problem(StrEnum):
    EDITED = "edited"
    REMOVED = "removed"
    REORDERED = "reordered"


@dataclass(frozen=True)
class Finding:
    seq: int
    problem: Problem
    message: str


def verify(entries: Sequence[Entry]) -> list[Finding]:
    """Check `entries` in storage order (by seq); empty when the chain is intact."""
    findings: list[Finding] = []
    position = {e.hash: i for i, e in enumerate(entries)}
    prev = GENESIS
    for i, e in enumerate(entries):
        if entry_hash(e.prev_hash, e.body()) != e.hash:
            findings.append(
                Finding(
                    e.seq, Problem.EDITED, f"entry {e.seq} ({e.action}) does not match its hash"
                )
            )
        elif e.prev_hash != prev:
            j = position.get(e.prev_hash)
            if j is None:
                findings.append(
                    Finding(
                        e.seq,
                        Problem.REMOVED,
                        f"the entry before {e.seq} ({e.action}) is missing or was changed",
                    )
                )
            else:
                findings.append(
                    Finding(
                        e.seq,
                        Problem.REORDERED,
                        f"entry {e.seq} ({e.action}) follows entry {entries[j].seq}, not"
                        f" {entries[i - 1].seq if i else 'the start'}",
                    )
                )
        prev = e.hash
    return findings
