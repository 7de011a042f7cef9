"""Promotion, rollback, requests and archiving: every change to an alias goes through the
gates (rollback excepted), is approved by a known actor, and is written to the audit log
before and after the registry changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from maestro.governance import evidence
from maestro.governance.audit_chain import Action, Entry
from maestro.governance.audit_log import AuditLog
from maestro.governance.exits import Exit
from maestro.governance.gates import Report, run_gates
from maestro.governance.history import moves, previous_version
from maestro.governance.identity import Actor
from maestro.governance.policy import LoadedPolicy
from maestro.governance.registry import ARCHIVED_TAG, ModelRegistry, UnknownModel


class BadInput(ValueError):
    """Names what is wrong with the command's input; nothing was changed."""


@dataclass(frozen=True)
class Result:
    exit: Exit
    message: str
    report: Report | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Governance:
    registry: ModelRegistry
    audit: AuditLog
    actor: Actor
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def _record(self, action: Action, name: str, details: Mapping[str, Any]) -> Entry:
        return self.audit.append(self.actor.as_dict(), action, name, details, at=self.clock())

    def baseline(self, name: str, alias: str, candidate: str) -> str | None:
        """The version a candidate is judged against: the one `alias` points at, or, when
        the alias already points at the candidate (moved by hand), the last approved one."""
        current = self.registry.alias_version(name, alias)
        if current is not None and current != candidate:
            return current
        approvals = self.audit.entries(subject=name, action=Action.APPROVAL)
        for entry in reversed(approvals):
            version = str(entry.details.get("version"))
            if entry.details.get("alias") == alias and version != candidate:
                return version if self._exists(name, version) else None
        return None

    def _exists(self, name: str, version: str) -> bool:
        try:
            self.registry.version(name, version)
        except UnknownModel:
            return False
        return True

    def evaluate(self, name: str, version: str, alias: str, policy: LoadedPolicy) -> Report:
        """Run the policy's gates on `version` (a dry run: nothing is recorded)."""
        self.registry.version(name, version)
        champion = self.baseline(name, alias, version)
        try:
            measured = evidence.gather(self.registry, name, version, champion, policy.policy)
        except evidence.DatasetError as err:
            raise BadInput(str(err)) from None
        return run_gates(policy.policy.spec.gates, measured)

    def request(self, name: str, version: str, alias: str, reason: str) -> Result:
        self.audit.check()
        self.registry.version(name, version)
        entry = self._record(
            Action.REQUEST, name, {"alias": alias, "version": version, "reason": reason}
        )
        return Result(
            Exit.DONE, f"requested {name} v{version} as {alias} (audit entry {entry.seq})"
        )

    def promote(
        self, name: str, version: str, alias: str, reason: str, policy: LoadedPolicy
    ) -> Result:
        self.audit.check()
        report = self.evaluate(name, version, alias, policy)
        gates = report.as_dict()["gates"]
        self._record(
            Action.GATES,
            name,
            {
                "alias": alias,
                "version": version,
                "baseline": report.champion,
                "passed": report.passed,
                "policy": policy.reference,
                "gates": gates,
            },
        )
        if not report.passed:
            failed = ", ".join(r.gate for r in report.failed)
            # An input contract callers would break on is bad input, not a judgement call.
            code = Exit.BAD_INPUT if failed == "signature" else Exit.REFUSED
            return Result(code, f"not promoted: gate(s) failed: {failed}", report)
        refusal = self._approval_refusal(name, version, policy)
        if refusal:
            return Result(Exit.REFUSED, f"not promoted: {refusal}", report)
        current = self.registry.alias_version(name, alias)
        details = {
            "alias": alias,
            "version": version,
            "from": current,
            "reason": reason,
            "policy": policy.reference,
            "gates": gates,
        }
        approval = self._record(Action.APPROVAL, name, details)
        moved = self._move(name, alias, current, version, "promote", reason, gates)
        since = "it already pointed there" if current == version else f"from {_v(current)}"
        return Result(
            Exit.DONE,
            f"promoted {name} v{version} to {alias} ({since}; audit entries: approval"
            f" {approval.seq}, move {moved.seq})",
            report,
        )

    def _approval_refusal(self, name: str, version: str, policy: LoadedPolicy) -> str | None:
        if not policy.policy.spec.approval.distinct_approver:
            return None
        requests = [
            e
            for e in self.audit.entries(subject=name, action=Action.REQUEST)
            if str(e.details.get("version")) == version
        ]
        if not requests:
            return (
                f"policy {policy.policy.metadata.name} v{policy.policy.metadata.version} needs"
                f" a request by someone else first: maestro model request {name} --version"
                f" {version} --reason ..."
            )
        requester = requests[-1].actor.get("name")
        if requester == self.actor.name:
            return (
                f"{self.actor.name} requested this promotion and may not approve it too"
                f" (policy {policy.policy.metadata.name} requires a distinct approver)"
            )
        return None

    def _move(
        self,
        name: str,
        alias: str,
        current: str | None,
        version: str,
        kind: str,
        reason: str,
        gates: list[dict[str, Any]],
    ) -> Entry:
        try:
            self.registry.set_alias(name, alias, version)
        except Exception as err:
            self._record(
                Action.ALIAS_MOVE_FAILED,
                name,
                {"alias": alias, "from": current, "to": version, "kind": kind, "error": str(err)},
            )
            raise
        return self._record(
            Action.ALIAS_MOVED,
            name,
            {
                "alias": alias,
                "from": current,
                "to": version,
                "kind": kind,
                "reason": reason,
                "gates": gates,
            },
        )

    def rollback(self, name: str, alias: str, reason: str) -> Result:
        self.audit.check()
        current = self.registry.alias_version(name, alias)
        if current is None:
            raise BadInput(f"alias {alias!r} of {name!r} is not set: nothing to roll back")
        target = previous_version(moves(self.audit.entries(subject=name), alias), alias, current)
        if target is None:
            raise BadInput(
                f"no recorded promotion moved {name}@{alias} to v{current}: nothing to roll"
                " back to (see maestro model history)"
            )
        self.registry.version(name, target)
        details = {"alias": alias, "version": target, "from": current, "reason": reason}
        approval = self._record(Action.APPROVAL, name, {**details, "kind": "rollback"})
        moved = self._move(name, alias, current, target, "rollback", reason, [])
        return Result(
            Exit.DONE,
            f"rolled {name}@{alias} back from v{current} to v{target} (approval"
            f" {approval.seq}, move {moved.seq})",
        )

    def archive(
        self, name: str, keep: int, in_use: Mapping[str, list[str]], dry_run: bool
    ) -> Result:
        """Archive all but the newest `keep` versions, never one an alias, a deployment or
        an A/B test uses."""
        if keep < 0:
            raise BadInput(f"--keep must be 0 or more, got {keep}")
        self.audit.check()
        versions = self.registry.versions(name)
        aliased = {str(v) for v in (self.registry.model(name).aliases or {}).values()}
        newest = {str(v.version) for v in versions[len(versions) - keep :]} if keep else set()
        archived, kept = [], {}
        for v in versions:
            version = str(v.version)
            users = [*(["an alias"] if version in aliased else []), *in_use.get(version, [])]
            if version in newest or users or (v.tags or {}).get(ARCHIVED_TAG) == "true":
                if users:
                    kept[version] = users
                continue
            archived.append(version)
            if not dry_run:
                self.registry.archive(name, version)
                self._record(Action.ARCHIVED, name, {"version": version, "keep": keep})
        verb = "would archive" if dry_run else "archived"
        listed = ", ".join(f"v{v}" for v in archived) or "nothing"
        return Result(Exit.DONE, f"{verb} {listed}", details={"archived": archived, "kept": kept})


def _v(version: str | None) -> str:
    return f"v{version}" if version else "nothing"
