"""The audit log's hash chain: built entry by entry, then tampered with."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from maestro.governance.audit_chain import GENESIS, Entry, Problem, body, entry_hash, verify

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def chain(n: int) -> list[Entry]:
    entries, prev = [], GENESIS
    for i in range(n):
        at = T0 + timedelta(minutes=i)
        actor, details = {"name": "alice", "source": "os"}, {"version": str(i + 1)}
        digest = entry_hash(prev, body(at, actor, "approval", "iris", details))
        entries.append(Entry(i + 1, at, actor, "approval", "iris", details, prev, digest))
        prev = digest
    return entries


def test_an_untouched_chain_verifies() -> None:
    assert verify(chain(5)) == []
    assert verify([]) == []


def test_an_edited_entry_is_named() -> None:
    entries = chain(5)
    entries[2] = dataclasses.replace(entries[2], details={"version": "99"})
    assert [(f.seq, f.problem) for f in verify(entries)] == [(3, Problem.EDITED)]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link() -> None:
    entries = chain(5)
    edited = dataclasses.replace(entries[2], details={"version": "99"})
    entries[2] = dataclasses.replace(edited, hash=entry_hash(edited.prev_hash, edited.body()))
    assert [(f.seq, f.problem) for f in verify(entries)] == [(4, Problem.REMOVED)]


def test_a_removed_entry_is_found_where_it_was() -> None:
    entries = chain(5)
    del entries[1]
    findings = verify(entries)
    assert [(f.seq, f.problem) for f in findings] == [(3, Problem.REMOVED)]
    assert "the entry before 3" in findings[0].message


def test_removing_the_first_entry_is_found() -> None:
    assert [(f.seq, f.problem) for f in verify(chain(3)[1:])] == [(2, Problem.REMOVED)]


def test_swapped_entries_are_reordered() -> None:
    entries = chain(5)
    entries[1], entries[2] = entries[2], entries[1]
    findings = verify(entries)
    assert findings[0].seq == 3 and findings[0].problem is Problem.REORDERED
    assert {f.problem for f in findings} == {Problem.REORDERED}
