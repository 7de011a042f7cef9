"""PromoteChallenger, applied: the alias the ModelDeployment serves moves to the challenger's
version, recorded in the audit log the way `maestro model promote` records a promotion (an
approval, then the move), so a ModelDeployment with requireApproval rolls it out too, with
its own strategy."""

from __future__ import annotations

from typing import Any

from maestro.governance.audit_chain import Action
from maestro.governance.audit_log import AuditLog
from maestro.operators.core.settings import OperatorConfig
from maestro.serving.uris import parse_models_uri


class PromotionImpossible(RuntimeError):
    """The decision cannot be applied (the deployment pins a version, say)."""


def promote(
    config: OperatorConfig, abtest: dict[str, Any], md: dict[str, Any], challenger: str
) -> str:
    """Move the alias; returns what was done, for the Event."""
    # Loaded when a test concludes, not with the operator (tests/unit/test_layering.py).
    from mlflow import MlflowClient

    served = parse_models_uri(((md.get("spec") or {}).get("model") or {}).get("uri") or "")
    target = parse_models_uri(challenger)
    if served is None or not served.alias or target is None or not target.version:
        raise PromotionImpossible(
            f"ModelDeployment {md['metadata']['name']} serves no registry alias"
            f" ({(md.get('spec') or {}).get('model')}): move its model to {challenger} by hand"
        )
    if target.name != served.name:
        raise PromotionImpossible(
            f"the challenger {challenger} is not a version of {served.name}, whose alias"
            f" {served.alias} the deployment serves"
        )
    client = MlflowClient(config.mlflow_tracking_uri, config.mlflow_tracking_uri)
    try:
        current: str | None = str(
            client.get_model_version_by_alias(served.name, served.alias).version
        )
    except Exception:
        current = None
    if current == target.version:
        # Done already (a retry after the status write failed): record nothing twice.
        return f"{served.name}@{served.alias} already points at v{target.version}"
    meta = abtest["metadata"]
    actor = {"name": f"abtest/{meta['namespace']}/{meta['name']}", "source": "maestro-operator"}
    status = abtest.get("status") or {}
    reason = f"ABTest {meta['namespace']}/{meta['name']}: PromoteChallenger"
    details = {
        "alias": served.alias,
        "version": target.version,
        "from": current,
        "reason": reason,
        "abtest": {k: status.get(k) for k in ("lift", "pValue", "champion", "challenger")},
    }
    audit = (
        AuditLog(config.audit_database_url.get_secret_value())
        if config.audit_database_url
        else None
    )
    if audit is not None:
        audit.append(actor, Action.APPROVAL, served.name, details)
    client.set_registered_model_alias(served.name, served.alias, target.version)
    if audit is not None:
        moved = {
            "alias": served.alias,
            "from": current,
            "to": target.version,
            "kind": "abtest",
            "reason": reason,
        }
        audit.append(actor, Action.ALIAS_MOVED, served.name, moved)
    recorded = (
        "recorded in the audit log" if audit else "not recorded: the operator has no audit database"
    )
    return f"moved {served.name}@{served.alias} from v{current} to v{target.version} ({recorded})"
