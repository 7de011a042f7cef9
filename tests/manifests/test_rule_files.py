"""The committed Prometheus rule files (manifests/monitoring/rules: the platform's rules and
those rendered for the example ModelDeployment and DriftCheck) pass `promtool check rules`,
and their hand-written `promtool test rules` files pass, with for every alert at least one
case where it fires and one where it must not."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.manifests

RULES = Path(__file__).resolve().parents[2] / "manifests" / "monitoring" / "rules"
RULE_FILES = sorted(RULES.glob("*.rules.yaml"))
TEST_FILES = sorted(RULES.glob("*.test.yaml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: install Debian's prometheus with `make services`")
    return path


def alerts_of(path: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text())
    return [r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r]


@functools.cache
def cases() -> list[tuple[str, dict[str, Any]]]:
    """(rule file, alert_rule_test case) of every test file (parsed once: the files are
    long, and every alert's test reads them)."""
    found = []
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text())
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                for rule_file in doc["rule_files"]:
                    found.append((rule_file, case))
    return found


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=RULES)


def test_there_are_the_rule_files_and_their_tests() -> None:
    assert {p.name for p in RULE_FILES} == {
        "platform.rules.yaml",
        "modeldeployment-example.rules.yaml",
        "driftcheck-example.rules.yaml",
    }
    tested = {f for path in TEST_FILES for f in yaml.safe_load(path.read_text())["rule_files"]}
    assert tested == {p.name for p in RULE_FILES}


def test_at_least_fifteen_alerts() -> None:
    names = [name for path in RULE_FILES for name in alerts_of(path)]
    assert len(names) == len(set(names)), "an alert name is used twice"
    assert len(names) >= 15


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_file_passes_promtool_check(promtool: str, path: Path) -> None:
    proc = run(promtool, "check", "rules", path.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(promtool: str, path: Path) -> None:
    proc = run(promtool, "test", "rules", path.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("path", "alert"),
    [(p, a) for p in RULE_FILES for a in alerts_of(p)],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_every_alert_has_a_firing_and_a_quiet_case(path: Path, alert: str) -> None:
    mine = [c for rule_file, c in cases() if rule_file == path.name and c["alertname"] == alert]
    assert any(c.get("exp_alerts") for c in mine), f"no case where {alert} fires"
    assert any(not c.get("exp_alerts") for c in mine), f"no case where {alert} stays quiet"
