"""Debian's Alertmanager on 127.0.0.1:9093, where the local Prometheus sends its alerts.
`python -m maestro.localplatform.alertmanager up|down`.

It lives with Prometheus, which sends to it: `prometheus.up` starts it first and
`prometheus.down` stops it last. Every alert goes to one webhook receiver, which posts each
group of alerts (firing, then resolved) to the URLs of `AlertmanagerConfig.webhook_urls`
(`MAESTRO_ALERT_WEBHOOK_URLS`, comma-separated); with none, notifications are dropped, but
the alerts are still listed at /api/v2/alerts. A caller with its own receiver (a test, say)
runs `up` with its URL, which rewrites the config and reloads the running Alertmanager.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from maestro.localplatform.http_endpoints import answers_ok, post, write_if_changed
from maestro.localplatform.procs import ProcessTable

REPO = Path(__file__).resolve().parents[1]
PROCESS = "alertmanager"
RECEIVER = "webhook"
# What Alertmanager groups one notification by: one alert of one object per message.
GROUP_BY = ("alertname", "namespace", "deployment")
# Debian names the binary after its package; upstream's tarball calls it `alertmanager`.
BINARIES = ("prometheus-alertmanager", "alertmanager")


class AlertmanagerError(RuntimeError):
    """Alertmanager could not be started or reloaded; the message says why."""


def _webhook_urls_from_env() -> tuple[str, ...]:
    raw = os.environ.get("MAESTRO_ALERT_WEBHOOK_URLS", "")
    return tuple(url.strip() for url in raw.split(",") if url.strip())


@dataclass(frozen=True)
class AlertmanagerConfig:
    """Where the local Alertmanager listens and keeps its data, and where it notifies."""

    host: str = "127.0.0.1"
    port: int = field(
        default_factory=lambda: int(os.environ.get("MAESTRO_ALERTMANAGER_PORT", "9093"))
    )
    webhook_urls: tuple[str, ...] = field(default_factory=_webhook_urls_from_env)
    # Upstream's defaults (30s, 5m, 4h) suit a pager; locally a notification, and the
    # resolved one after it, should arrive within seconds of Prometheus sending the alert.
    group_wait: str = "1s"
    group_interval: str = "1s"
    repeat_interval: str = "1h"
    root: Path = REPO / ".maestro"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def home(self) -> Path:
        return self.root / "alertmanager"

    @property
    def config_file(self) -> Path:
        return self.home / "alertmanager.yml"

    def processes(self) -> ProcessTable:
        return ProcessTable(self.root / "cluster" / "run", self.root / "logs")


def routing_config(
    webhook_urls: Sequence[str],
    *,
    group_wait: str,
    group_interval: str,
    repeat_interval: str,
) -> dict[str, Any]:
    """The alertmanager.yml, as a dict (pure): every alert to one webhook receiver, which
    also reports when an alert resolves."""
    return {
        "route": {
            "receiver": RECEIVER,
            "group_by": list(GROUP_BY),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": RECEIVER,
                # A receiver without configs is valid: Alertmanager drops its notifications.
                "webhook_configs": [{"url": url, "send_resolved": True} for url in webhook_urls],
            }
        ],
    }


def ready(cfg: AlertmanagerConfig) -> bool:
    return answers_ok(f"{cfg.url}/-/ready")


def alerts(cfg: AlertmanagerConfig) -> list[dict[str, Any]]:
    """The alerts Alertmanager holds now (its v2 API), for diagnostics."""
    with urllib.request.urlopen(f"{cfg.url}/api/v2/alerts", timeout=5) as resp:
        found: list[dict[str, Any]] = json.load(resp)
    return found


def _binary() -> str:
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    raise AlertmanagerError(
        "Alertmanager (`prometheus-alertmanager`) is not on PATH; install Debian's package "
        "with `make services` (or `sudo apt-get install -y prometheus-alertmanager`)"
    )


def _write_config(cfg: AlertmanagerConfig) -> bool:
    """Write alertmanager.yml; return whether its content changed."""
    config = routing_config(
        cfg.webhook_urls,
        group_wait=cfg.group_wait,
        group_interval=cfg.group_interval,
        repeat_interval=cfg.repeat_interval,
    )
    return write_if_changed(cfg.config_file, yaml.safe_dump(config, sort_keys=False))


def _reload(cfg: AlertmanagerConfig) -> None:
    reason = post(f"{cfg.url}/-/reload")
    if reason is None:
        return
    raise AlertmanagerError(
        f"the Alertmanager at {cfg.url} did not reload {cfg.config_file} ({reason}); "
        f"see its log {cfg.processes().log(PROCESS)}"
    )


def up(cfg: AlertmanagerConfig, timeout: float = 30) -> float:
    """Start Alertmanager unless it already answers (then only reload a changed config);
    return the seconds it took."""
    started = time.monotonic()
    binary = _binary()
    changed = _write_config(cfg)
    if ready(cfg):
        if changed:
            _reload(cfg)
        return time.monotonic() - started
    (cfg.home / "data").mkdir(parents=True, exist_ok=True)
    procs = cfg.processes()
    procs.start(
        PROCESS,
        [
            binary,
            f"--config.file={cfg.config_file}",
            f"--storage.path={cfg.home / 'data'}",
            f"--web.listen-address={cfg.address}",
            # One instance, no peers: with gossip on it would also bind 9094 and hold every
            # notification until the (empty) cluster settled.
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
    )
    deadline = time.monotonic() + timeout
    while not ready(cfg):
        if procs.pid(PROCESS) is None or time.monotonic() > deadline:
            raise AlertmanagerError(
                f"Alertmanager did not become ready; see its log {procs.log(PROCESS)}, which "
                f"ends:\n{procs.tail(PROCESS)}"
            )
        time.sleep(0.2)
    return time.monotonic() - started


def down(cfg: AlertmanagerConfig) -> None:
    cfg.processes().stop(PROCESS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maestro.localplatform.alertmanager",
        description="Start or stop the local Alertmanager that Prometheus sends alerts to.",
    )
    parser.add_argument("command", choices=("up", "down"))
    args = parser.parse_args(argv)
    cfg = AlertmanagerConfig()
    try:
        if args.command == "up":
            print(f"Alertmanager at {cfg.url} (started in {up(cfg):.1f}s)")
        else:
            down(cfg)
    except AlertmanagerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
