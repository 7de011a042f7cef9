"""Who runs a governance command: the caller's Kubernetes identity where there is one (a
SelfSubjectReview answered by the API server, so it is the authenticated user, not a
claim), else MAESTRO_ACTOR (e.g. a CI system's user), else the local OS user."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from typing import Any

KUBE_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Actor:
    name: str
    source: str  # kubernetes | environment | os
    groups: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "source": self.source}
        if self.groups:
            out["groups"] = list(self.groups)
        return out


def kubernetes_identity() -> Actor | None:
    """The authenticated user of the current kubeconfig, or None without a reachable API."""
    try:
        from kubernetes import client, config

        config.load_kube_config()
        review = client.AuthenticationV1Api().create_self_subject_review(
            client.V1SelfSubjectReview(), _request_timeout=KUBE_TIMEOUT_SECONDS
        )
    except Exception:  # no kubeconfig, no API, too old a server: other sources then
        return None
    info = review.status.user_info if review.status else None
    if info is None or not info.username:
        return None
    return Actor(info.username, "kubernetes", tuple(info.groups or ()))


def current_actor(declared: str | None) -> Actor:
    found = kubernetes_identity()
    if found is not None:
        return found
    if declared:
        return Actor(declared, "environment")
    return Actor(getpass.getuser(), "os")
