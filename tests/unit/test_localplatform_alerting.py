"""The local platform's alerting path as configuration: Alertmanager's routing, the rule
files and Alertmanager in Prometheus' config, and the hold of the serving alerts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from maestro.localplatform.alertmanager import routing_config
from maestro.localplatform.prometheus import scrape_config
from maestro.localplatform.prometheus_rules import (
    platform_rule_groups,
    remove_rules,
    rule_file,
    rule_file_text,
    write_rules,
)
from maestro.monitoring.alerts import SERVING_FOR, ServingLimits, serving_alerts

pytestmark = pytest.mark.unit

INTERVALS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}


def test_every_alert_goes_to_the_webhooks_which_also_hear_of_resolved_alerts() -> None:
    config = routing_config(["http://a/alerts", "http://b/alerts"], **INTERVALS)
    route = config["route"]
    (receiver,) = config["receivers"]
    assert route["receiver"] == receiver["name"]
    assert "routes" not in route  # nothing is routed elsewhere
    assert {"alertname", "namespace", "deployment"} <= set(route["group_by"])
    assert {k: route[k] for k in INTERVALS} == INTERVALS
    assert receiver["webhook_configs"] == [
        {"url": "http://a/alerts", "send_resolved": True},
        {"url": "http://b/alerts", "send_resolved": True},
    ]


def test_without_webhooks_the_receiver_has_none_and_drops_notifications() -> None:
    (receiver,) = routing_config([], **INTERVALS)["receivers"]
    assert receiver["webhook_configs"] == []


def test_prometheus_reads_the_rule_files_and_sends_to_alertmanager() -> None:
    config = scrape_config(
        "http://127.0.0.1:9095/targets",
        "1s",
        rule_files=["/rules/*.rules.yaml"],
        alertmanagers=["127.0.0.1:9093"],
    )
    assert config["rule_files"] == ["/rules/*.rules.yaml"]
    assert config["alerting"] == {
        "alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]
    }
    assert config["global"]["evaluation_interval"] == "1s"


def test_without_rules_or_alertmanagers_the_config_names_neither() -> None:
    config = scrape_config("http://127.0.0.1:9095/targets", "1s")
    assert "rule_files" not in config and "alerting" not in config


def test_the_platform_rule_file_holds_the_shipped_platform_groups() -> None:
    shipped = Path(__file__).resolve().parents[2] / "manifests/monitoring/rules/platform.rules.yaml"
    text = rule_file_text(platform_rule_groups())
    assert yaml.safe_load(text) == yaml.safe_load(shipped.read_text())


def test_a_rule_set_is_written_once_and_removed_once(tmp_path: Path) -> None:
    groups = [{"name": "g", "rules": [{"record": "r", "expr": "1"}]}]
    assert write_rules(tmp_path, "test-ns", groups)
    assert not write_rules(tmp_path, "test-ns", groups)  # unchanged: no reload needed
    assert yaml.safe_load(rule_file("test-ns", tmp_path).read_text()) == {"groups": groups}
    assert remove_rules(tmp_path, "test-ns")
    assert not remove_rules(tmp_path, "test-ns")


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "Upper"])
def test_a_rule_set_name_cannot_leave_the_rules_folder(name: str) -> None:
    with pytest.raises(ValueError, match="rule set name"):
        rule_file(name, Path("rules"))


def test_serving_alerts_hold_production_s_duration_unless_told_otherwise() -> None:
    default = serving_alerts("ml", "iris", ServingLimits(), runbooks="")
    short = serving_alerts("ml", "iris", ServingLimits(hold="2s"), runbooks="")
    assert {r["for"] for r in default} == {SERVING_FOR}
    assert {r["for"] for r in short} == {"2s"}
    assert [r["expr"] for r in short] == [r["expr"] for r in default]


def test_serving_alerts_carry_their_namespace_so_alertmanager_tells_namesakes_apart() -> None:
    a = serving_alerts("team-a", "iris", ServingLimits(), runbooks="")
    b = serving_alerts("team-b", "iris", ServingLimits(), runbooks="")
    for rule_a, rule_b in zip(a, b, strict=True):
        assert rule_a["labels"]["namespace"] == "team-a"
        assert rule_a["labels"] != rule_b["labels"]
