"""Who may call a ModelDeployment: the callers its Istio AuthorizationPolicy admits (by
their mTLS identity) and its NetworkPolicy lets in (by namespace)."""

from __future__ import annotations

from pydantic import Field

from maestro.operators.api.common import SpecModel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class Caller(SpecModel):
    """Workloads allowed to send requests to the model."""

    namespace: str = Field(
        max_length=63, pattern=DNS_LABEL, description="Namespace the callers run in."
    )
    service_account: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Only pods of this ServiceAccount; unset: any pod of the namespace.",
    )
