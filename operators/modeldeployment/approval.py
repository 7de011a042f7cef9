"""spec.model.requireApproval: whether the version an alias points at now was approved."""

from __future__ import annotations

from maestro.operators.core.approvals import Approvals
from maestro.operators.modeldeployment.decide import messages
from maestro.serving.uris import parse_models_uri


def unapproved(uri: str, concrete: str, approvals: Approvals | None) -> str | None:
    """Why `concrete` (uri's alias resolved) may not roll out yet; None when it may.
    A pinned version changes through the spec, reviewed in Git: always allowed."""
    ref = parse_models_uri(uri)
    if ref is None or not ref.alias:
        return None
    version = parse_models_uri(concrete)
    target = version.version if version is not None else ""
    if approvals is None:
        return messages.approvals_not_configured(uri)
    latest = approvals.latest(ref.name, ref.alias)
    if latest is not None and latest.version == target:
        return None
    return messages.awaiting_approval(ref.name, ref.alias, target, latest)
