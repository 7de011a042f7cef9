"""The rule files the local Prometheus evaluates, one file per set in its `rules/` folder:
the platform's alerts (maestro.monitoring.alerts, as `make manifests` writes them to
manifests/monitoring/rules/platform.rules.yaml) from the start, and whatever a caller loads
beside them (`prometheus.load_rules`: the rules rendered for a test's ModelDeployment, say).

In a cluster the Prometheus Operator turns PrometheusRule objects into such files; the
example rules of manifests/monitoring/rules are not loaded here, since they name a
ModelDeployment (default/iris) that the local platform does not run, and would fire.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from maestro.localplatform.http_endpoints import write_if_changed
from maestro.monitoring.alerts import Group
from maestro.monitoring.platform_alerts import platform_groups
from maestro.operators import rulegen

SUFFIX = ".rules.yaml"
PLATFORM = "platform"
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")


def rule_file(name: str, rules_dir: Path) -> Path:
    """Where the set `name` is kept; the name is a DNS-label-like word (no path)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"rule set name {name!r}: use lowercase letters, digits, '.' and '-'")
    return rules_dir / f"{name}{SUFFIX}"


def rule_files_glob(rules_dir: Path) -> str:
    """The `rule_files` entry of prometheus.yml that reads every set."""
    return str(rules_dir / f"*{SUFFIX}")


def rule_file_text(groups: Sequence[Group]) -> str:
    """A Prometheus rule file of `groups` (pure)."""
    document: dict[str, Any] = {"groups": list(groups)}
    return yaml.safe_dump(document, sort_keys=False, width=100)


def platform_rule_groups() -> list[Group]:
    """The platform's alerts, with the runbook links the shipped rule files have."""
    return platform_groups(rulegen.runbooks())


def write_rules(rules_dir: Path, name: str, groups: Sequence[Group]) -> bool:
    """Write the set `name`; return whether its file changed."""
    return write_if_changed(rule_file(name, rules_dir), rule_file_text(groups))


def remove_rules(rules_dir: Path, name: str) -> bool:
    """Remove the set `name`; return whether it was there."""
    path = rule_file(name, rules_dir)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
