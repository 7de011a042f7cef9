"""Settings the local platform changes in the operator's Deployment before applying it."""

from __future__ import annotations

import pytest
import yaml

from maestro.localplatform.platform import with_operator_env

pytestmark = pytest.mark.unit

MANIFESTS = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: maestro-operator}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: maestro-operator}
spec:
  template:
    spec:
      containers:
        - name: operator
          env:
            - {name: KEEP, value: "1"}
            - {name: DROP, value: "2"}
            - {name: CHANGE, value: "3"}
"""


def env_of(manifests: str) -> list[dict[str, str]]:
    docs = list(yaml.safe_load_all(manifests))
    assert docs[0]["kind"] == "ServiceAccount"
    env: list[dict[str, str]] = docs[1]["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


def test_env_entries_are_set_removed_and_kept() -> None:
    out = with_operator_env(MANIFESTS, {"DROP": None, "CHANGE": "30", "NEW": "4"})
    assert env_of(out) == [
        {"name": "KEEP", "value": "1"},
        {"name": "CHANGE", "value": "30"},
        {"name": "NEW", "value": "4"},
    ]


def test_removing_a_setting_that_is_not_there_changes_nothing() -> None:
    assert env_of(with_operator_env(MANIFESTS, {"ABSENT": None})) == env_of(MANIFESTS)
