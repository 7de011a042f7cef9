"""`maestro model`, `maestro audit` and `maestro lineage`: the governance commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from maestro.governance.exits import DEFAULT_ALIAS, Exit

MODEL_EPILOG = """\
exit status: 0 done (promoted, rolled back, ...), 1 refused (a gate failed, or the approval
rules), 2 bad input (unknown model or version, a policy that does not parse, a signature
callers of the champion would break on), 3 the registry, the audit database or the cluster
could not be reached (nothing was changed)

environment:
  MLFLOW_TRACKING_URI          the MLflow server holding the registered models
  MAESTRO_AUDIT_DATABASE_URL   PostgreSQL of the audit log (postgresql://user:pw@host/db)
  MAESTRO_POLICY               promotion policy file when --policy is not given
  MAESTRO_ACTOR                who you are when no Kubernetes identity is available
                               (the kubeconfig's user, checked by the API server, wins)
  KUBECONFIG                   the cluster asked who you are and what it serves
"""

AUDIT_EPILOG = """\
exit status: 0 the chain is intact, 1 it is broken (each finding names the entry), 3 the
audit database could not be reached

environment:
  MAESTRO_AUDIT_DATABASE_URL   PostgreSQL of the audit log
"""


class _Usage(ValueError):
    """A missing setting or malformed argument (exit 2)."""


def _settings() -> Any:
    from maestro.governance.settings import GovernanceSettings

    return GovernanceSettings()


def _tracking_uri(settings: Any) -> str:
    if not settings.tracking_uri:
        raise _Usage("set MLFLOW_TRACKING_URI to the MLflow server holding the model")
    # A registry that is down should be reported in seconds, not after minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    return str(settings.tracking_uri)


def _audit(settings: Any) -> Any:
    from maestro.governance.audit_log import AuditLog

    if settings.audit_database_url is None:
        raise _Usage(
            "set MAESTRO_AUDIT_DATABASE_URL to the audit log's PostgreSQL database"
            " (postgresql://user:password@host:5432/db)"
        )
    return AuditLog(settings.audit_database_url.get_secret_value())


def _governance(settings: Any) -> Any:
    from maestro.governance.identity import current_actor
    from maestro.governance.promotion import Governance
    from maestro.governance.registry import ModelRegistry

    registry = ModelRegistry(_tracking_uri(settings))
    return Governance(registry, _audit(settings), current_actor(settings.actor))


def _policy(args: argparse.Namespace, settings: Any) -> Any:
    from maestro.governance.policy import load_policy

    path = args.policy or settings.policy
    if path is None:
        raise _Usage("give --policy FILE (or set MAESTRO_POLICY): the gates to run")
    return load_policy(Path(path))


def _print_report(report: Any, out: TextIO) -> None:
    against = f"champion v{report.champion}" if report.champion else "no champion"
    print(f"gates for v{report.candidate} (against {against}):", file=out)
    for result in report.results:
        mark = "PASS" if result.passed else "FAIL"
        print(f"  {mark}  {result.gate:<20} {result.message}", file=out)


def _gates(args: argparse.Namespace) -> int:
    settings = _settings()
    policy = _policy(args, settings)
    gov = _governance(settings)
    print(f"evaluating {args.name} v{args.version} ...", file=sys.stderr, flush=True)
    report = gov.evaluate(args.name, args.version, args.alias, policy)
    if args.json:
        print(json.dumps({**report.as_dict(), "policy": policy.reference}, indent=2))
    else:
        _print_report(report, sys.stdout)
    return int(Exit.DONE if report.passed else Exit.REFUSED)


def _finish(result: Any, as_json: bool) -> int:
    if as_json:
        doc = {"exit": int(result.exit), "message": result.message, **result.details}
        if result.report is not None:
            doc["report"] = result.report.as_dict()
        print(json.dumps(doc, indent=2))
    else:
        if result.report is not None:
            _print_report(result.report, sys.stdout)
        print(result.message, file=sys.stdout if result.exit == Exit.DONE else sys.stderr)
    return int(result.exit)


def _promote(args: argparse.Namespace) -> int:
    settings = _settings()
    policy = _policy(args, settings)
    gov = _governance(settings)
    print(f"evaluating {args.name} v{args.version} ...", file=sys.stderr, flush=True)
    return _finish(gov.promote(args.name, args.version, args.alias, args.reason, policy), args.json)


def _request(args: argparse.Namespace) -> int:
    gov = _governance(_settings())
    return _finish(gov.request(args.name, args.version, args.alias, args.reason), args.json)


def _rollback(args: argparse.Namespace) -> int:
    gov = _governance(_settings())
    return _finish(gov.rollback(args.name, args.alias, args.reason), args.json)


def _archive(args: argparse.Namespace) -> int:
    from maestro.governance.served import cluster_versions_in_use

    gov = _governance(_settings())
    gov.registry.model(args.name)
    in_use = cluster_versions_in_use(args.name)
    return _finish(gov.archive(args.name, args.keep, in_use, args.dry_run), args.json)


def parse_time(text: str) -> datetime:
    """ISO 8601; a time without a zone is UTC."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _Usage(f"--at {text!r} is not an ISO 8601 time (e.g. 2026-11-26T14:30:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _history(args: argparse.Namespace) -> int:
    from maestro.governance.history import moves, version_at

    settings = _settings()
    entries = _audit(settings).entries(subject=args.name)
    found = moves(entries, args.alias)
    if args.at is not None:
        alias = args.alias or DEFAULT_ALIAS
        when = parse_time(args.at)
        move = version_at(found, alias, when)
        if args.json:
            print(
                json.dumps(
                    {"alias": alias, "at": when.isoformat(), "move": move and move.as_dict()}
                )
            )
        elif move is None:
            print(f"{args.name}@{alias} pointed at no recorded version at {when.isoformat()}")
        else:
            print(
                f"{args.name}@{alias} was v{move.to_version} at {when.isoformat()}"
                f" (since {move.at.isoformat()}: {move.kind} by {move.actor}: {move.reason})"
            )
        return 0
    if args.json:
        print(json.dumps([m.as_dict() for m in found], indent=2))
        return 0
    if not found:
        print(f"no recorded alias move of {args.name}")
        return 0
    print(f"{'WHEN (UTC)':<20} {'ALIAS':<10} {'FROM':>5} {'TO':>4}  {'KIND':<9} {'WHO':<28} WHY")
    for m in found:
        gates = ", ".join(f"{g['gate']} {'ok' if g['passed'] else 'FAIL'}" for g in m.gates)
        print(
            f"{m.at.strftime('%Y-%m-%d %H:%M:%S'):<20} {m.alias:<10}"
            f" {m.from_version or '-':>5} {m.to_version:>4}  {m.kind:<9} {m.actor:<28}"
            f" {m.reason}{f'  [{gates}]' if gates else ''}"
        )
    return 0


def _verify(args: argparse.Namespace) -> int:
    from maestro.governance.audit_chain import verify

    entries = _audit(_settings()).entries()
    findings = verify(entries)
    head = entries[-1].hash if entries else "(empty)"
    for finding in findings:
        print(f"{finding.problem.value.upper()}: {finding.message}", file=sys.stderr)
    if findings:
        print(f"audit log BROKEN: {len(findings)} finding(s) over {len(entries)} entries")
        return 1
    print(f"audit log intact: {len(entries)} entries, head {head}")
    return 0


def _log(args: argparse.Namespace) -> int:
    entries = _audit(_settings()).entries(subject=args.model)
    for e in entries[-args.last :] if args.last else entries:
        doc = {
            "seq": e.seq,
            "at": e.at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "subject": e.subject,
            "details": e.details,
            "hash": e.hash,
        }
        print(json.dumps(doc))
    return 0


def _lineage(args: argparse.Namespace) -> int:
    from maestro.governance import lineage

    settings = _settings()
    return lineage.run(_tracking_uri(settings), args.name, args.version, args.format, sys.stdout)


def run(args: argparse.Namespace) -> int:
    """Run a governance subcommand; map the errors every command shares to exit codes."""
    from maestro.governance.audit_log import AuditUnavailable
    from maestro.governance.lineage_cluster import DeploymentsUnavailable
    from maestro.governance.policy import PolicyError
    from maestro.governance.promotion import BadInput
    from maestro.governance.registry import RegistryUnavailable, UnknownModel

    try:
        code: int = args.governance(args)
        return code
    except (_Usage, BadInput, UnknownModel, PolicyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return int(Exit.BAD_INPUT)
    except (RegistryUnavailable, AuditUnavailable, DeploymentsUnavailable) as err:
        print(f"error: {err}; nothing was changed", file=sys.stderr)
        return int(Exit.UNAVAILABLE)


def _common(p: argparse.ArgumentParser, alias: bool = True) -> None:
    if alias:
        p.add_argument(
            "--alias", default=DEFAULT_ALIAS, help=f"the alias to move (default: {DEFAULT_ALIAS})"
        )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def add_commands(commands: Any) -> None:
    """Add `model`, `audit` and `lineage` to the `maestro` command's subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    model = commands.add_parser(
        "model",
        help="gate, promote, roll back and archive registered model versions",
        description=(
            "Move a registered model's alias (champion) only through the promotion policy's"
            " gates and a recorded approval; every move lands in the hash-chained audit log."
        ),
        epilog=MODEL_EPILOG,
        formatter_class=raw,
    )
    sub = model.add_subparsers(dest="model_command", required=True, metavar="SUBCOMMAND")

    def policy_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--policy", type=Path, metavar="FILE", help="promotion policy (YAML)")

    gates = sub.add_parser(
        "gates",
        help="dry run: evaluate a version against the policy's gates, change nothing",
        epilog=MODEL_EPILOG,
        formatter_class=raw,
    )
    gates.add_argument("name")
    gates.add_argument("--version", required=True)
    policy_arg(gates)
    _common(gates)
    gates.set_defaults(governance=_gates)

    promote = sub.add_parser(
        "promote",
        help="run the gates, record the approval, move the alias to the version",
        epilog=MODEL_EPILOG,
        formatter_class=raw,
    )
    promote.add_argument("name")
    promote.add_argument("--version", required=True)
    promote.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    policy_arg(promote)
    _common(promote)
    promote.set_defaults(governance=_promote)

    request = sub.add_parser(
        "request",
        help="ask for a promotion (a policy with distinctApprover needs someone else to promote)",
        epilog=MODEL_EPILOG,
        formatter_class=raw,
    )
    request.add_argument("name")
    request.add_argument("--version", required=True)
    request.add_argument("--reason", required=True)
    _common(request)
    request.set_defaults(governance=_request)

    rollback = sub.add_parser(
        "rollback",
        help="move the alias back to the version it held before the last promotion",
        epilog=MODEL_EPILOG,
        formatter_class=raw,
    )
    rollback.add_argument("name")
    rollback.add_argument("--reason", required=True)
    _common(rollback)
    rollback.set_defaults(governance=_rollback)

    history = sub.add_parser(
        "history",
        help="every recorded alias move (when, from, to, who, why, gates), or --at a time",
        epilog=MODEL_EPILOG,
        formatter_class=raw,
    )
    history.add_argument("name")
    history.add_argument("--alias", help="only this alias (--at: default champion)")
    history.add_argument(
        "--at", metavar="TIME", help="which version the alias held then (ISO 8601)"
    )
    history.add_argument("--json", action="store_true", help="print the result as JSON")
    history.set_defaults(governance=_history)

    archive = sub.add_parser(
        "archive",
        help="archive all but the newest N versions (never one an alias or the cluster uses)",
        epilog=MODEL_EPILOG,
        formatter_class=raw,
    )
    archive.add_argument("name")
    archive.add_argument("--keep", type=int, required=True, metavar="N")
    archive.add_argument("--dry-run", action="store_true", help="list, archive nothing")
    archive.add_argument("--json", action="store_true", help="print the result as JSON")
    archive.set_defaults(governance=_archive)

    audit = commands.add_parser(
        "audit",
        help="check or print the hash-chained audit log",
        epilog=AUDIT_EPILOG,
        formatter_class=raw,
    )
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    verify = audit_sub.add_parser(
        "verify",
        help="find edited, removed or reordered entries",
        epilog=AUDIT_EPILOG,
        formatter_class=raw,
    )
    verify.set_defaults(governance=_verify)
    log = audit_sub.add_parser("log", help="print entries as JSON lines")
    log.add_argument("--model", help="only entries of this registered model")
    log.add_argument("--last", type=int, metavar="N", help="only the newest N")
    log.set_defaults(governance=_log)

    lineage = commands.add_parser(
        "lineage",
        help="data -> features -> training run -> model version -> deployments",
        description=(
            "Show where a registered model version came from (dataset and digest, Feast"
            " features, training run and parameters, code version) and what serves it now."
        ),
    )
    lineage.add_argument("name")
    lineage.add_argument("--version", required=True)
    lineage.add_argument("--format", choices=["json", "mermaid", "dot"], default="json")
    lineage.set_defaults(governance=_lineage)

    for parser in (model, audit, lineage):
        parser.set_defaults(handler=run)
