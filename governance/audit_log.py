"""The audit log: append-only, hash-chained entries in PostgreSQL, shared by every
`maestro` command and the operator, so it outlives any one machine."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.extensions

from maestro.governance.audit_chain import GENESIS, Action, Entry, body, entry_hash

_SCHEMA = """
CREATE TABLE IF NOT EXISTS maestro_audit (
    seq BIGINT PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    actor JSONB NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    details JSONB NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS maestro_audit_subject ON maestro_audit (subject, action, seq);
"""
# One writer at a time: each entry's hash needs the one before it.
_LOCK_KEY = 0x6D61657374726F  # "maestro"
_COLUMNS = "seq, at, actor, action, subject, details, prev_hash, hash"


class AuditUnavailable(RuntimeError):
    """The audit database cannot be reached (or used): nothing may change without a record."""


def _entry(row: tuple[Any, ...]) -> Entry:
    seq, at, actor, action, subject, details, prev_hash, digest = row
    return Entry(seq, at.astimezone(UTC), actor, action, subject, details, prev_hash, digest)


class AuditLog:
    def __init__(self, url: str, connect_timeout: int = 5) -> None:
        self._url = url
        self._timeout = connect_timeout
        self._ready = False

    def _ensure(self, cur: psycopg2.extensions.cursor) -> None:
        """Create the table once per process, under the writers' lock (two concurrent
        CREATE ... IF NOT EXISTS can collide)."""
        if not self._ready:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            cur.execute(_SCHEMA)
            self._ready = True

    @contextmanager
    def _connect(self) -> Iterator[psycopg2.extensions.connection]:
        try:
            conn = psycopg2.connect(self._url, connect_timeout=self._timeout)
        except psycopg2.Error as err:
            raise AuditUnavailable(f"cannot reach the audit database: {str(err).strip()}") from None
        try:
            with conn:  # commits, or rolls back on an exception
                yield conn
        finally:
            conn.close()

    def check(self) -> None:
        """Connect and create the table if needed; raises AuditUnavailable."""
        with self._connect() as conn, conn.cursor() as cur:
            self._ensure(cur)

    def append(
        self,
        actor: Mapping[str, Any],
        action: Action,
        subject: str,
        details: Mapping[str, Any],
        at: datetime | None = None,
    ) -> Entry:
        when = (at or datetime.now(UTC)).astimezone(UTC)
        with self._connect() as conn, conn.cursor() as cur:
            self._ensure(cur)
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            cur.execute("SELECT seq, hash FROM maestro_audit ORDER BY seq DESC LIMIT 1")
            last = cur.fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            # Round-trip the details through JSON so the hash covers what is stored.
            stored = json.loads(json.dumps(dict(details), default=str))
            digest = entry_hash(prev, body(when, actor, action, subject, stored))
            cur.execute(
                f"INSERT INTO maestro_audit ({_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    seq,
                    when,
                    json.dumps(dict(actor)),
                    str(action),
                    subject,
                    json.dumps(stored),
                    prev,
                    digest,
                ),
            )
        return Entry(seq, when, dict(actor), str(action), subject, stored, prev, digest)

    def entries(self, subject: str | None = None, action: Action | None = None) -> list[Entry]:
        """Entries in storage order, optionally of one model and/or one action."""
        where, args = [], []
        if subject is not None:
            where.append("subject = %s")
            args.append(subject)
        if action is not None:
            where.append("action = %s")
            args.append(str(action))
        sql = f"SELECT {_COLUMNS} FROM maestro_audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._connect() as conn, conn.cursor() as cur:
            self._ensure(cur)
            cur.execute(sql + " ORDER BY seq", args)
            return [_entry(row) for row in cur.fetchall()]

    def latest_approval(self, model: str, alias: str) -> Entry | None:
        """The newest approval of a version for `model@alias` (what the operator checks)."""
        with self._connect() as conn, conn.cursor() as cur:
            self._ensure(cur)
            cur.execute(
                f"SELECT {_COLUMNS} FROM maestro_audit WHERE subject = %s AND action = %s"
                " AND details->>'alias' = %s ORDER BY seq DESC LIMIT 1",
                (model, str(Action.APPROVAL), alias),
            )
            row = cur.fetchone()
        return _entry(row) if row else None
