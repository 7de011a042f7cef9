"""Debian's Prometheus on 127.0.0.1:9090, scraping the serving pods of the local control
plane. `python -m maestro.localplatform.prometheus up|down`.

Targets are the pods of the local API server with the meta labels of Prometheus'
Kubernetes pod discovery. Debian compiles that discovery out, so localplatform/
prometheus_sd.py serves them over HTTP SD; the relabel rules are those of a
`kubernetes_sd_configs` job: pods annotated `prometheus.io/scrape: "true"` are scraped
at `<pod IP>:<prometheus.io/port>` on `prometheus.io/path`. The pod runner binds each
pod's process to its own pod IP (10.244.x.y, routed to loopback), so Prometheus reaches
them directly.

It evaluates the rule files of its `rules/` folder (localplatform/prometheus_rules.py: the
platform's alerts, and whatever `load_rules` adds) every second and sends alerts to the
local Alertmanager (localplatform/alertmanager.py), which `up` starts first.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from maestro.localplatform import alertmanager, custom_metrics, prometheus_rules
from maestro.localplatform.http_endpoints import answers_ok, write_if_changed
from maestro.localplatform.procs import ProcessTable
from maestro.monitoring import adapter_rules

REPO = Path(__file__).resolve().parents[1]
PROCESS = "prometheus"
SD_PROCESS = "prometheus-sd"


class PrometheusError(RuntimeError):
    """Prometheus could not be started or reloaded; the message says why."""


@dataclass(frozen=True)
class PrometheusConfig:
    """Where the local Prometheus listens, keeps its data and finds the cluster."""

    host: str = "127.0.0.1"
    port: int = field(
        default_factory=lambda: int(os.environ.get("MAESTRO_PROMETHEUS_PORT", "9090"))
    )
    sd_port: int = field(
        default_factory=lambda: int(os.environ.get("MAESTRO_PROMETHEUS_SD_PORT", "9095"))
    )
    # Short enough that a canary analysis over a 1m window sees many samples per revision.
    scrape_interval: str = "1s"
    retention: str = "2d"
    root: Path = REPO / ".maestro"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def sd_url(self) -> str:
        return f"http://{self.host}:{self.sd_port}/targets"

    @property
    def home(self) -> Path:
        return self.root / "prometheus"

    @property
    def config_file(self) -> Path:
        return self.home / "prometheus.yml"

    @property
    def rules_dir(self) -> Path:
        return self.home / "rules"

    @property
    def alertmanager(self) -> alertmanager.AlertmanagerConfig:
        return alertmanager.AlertmanagerConfig(root=self.root)

    @property
    def kubeconfig(self) -> Path:
        # Written by localplatform/cluster.py when the control plane starts.
        return self.root / "kubeconfig"

    def processes(self) -> ProcessTable:
        return ProcessTable(self.root / "cluster" / "run", self.root / "logs")


def scrape_config(
    sd_url: str,
    scrape_interval: str,
    rule_files: Sequence[str] = (),
    alertmanagers: Sequence[str] = (),
) -> dict[str, Any]:
    """The prometheus.yml for the local platform, as a dict (pure); rules are evaluated at
    the scrape interval and their alerts sent to `alertmanagers` (host:port)."""

    def copy(meta: str, target: str) -> dict[str, Any]:
        return {"source_labels": [meta], "target_label": target, "action": "replace"}

    return {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        **({"rule_files": list(rule_files)} if rule_files else {}),
        **(
            {
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
                }
            }
            if alertmanagers
            else {}
        ),
        "scrape_configs": [
            {
                "job_name": "maestro-pods",
                # The servers label every series with their own deployment and revision;
                # the pod labels below fill those in only for series that lack them.
                "honor_labels": True,
                # In place of `kubernetes_sd_configs: [{role: pod}]`, see the module docstring.
                "http_sd_configs": [{"url": sd_url, "refresh_interval": scrape_interval}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                        "regex": "true",
                        "action": "keep",
                    },
                    {
                        # Finished pods keep their IP, which a new pod may already reuse.
                        "source_labels": ["__meta_kubernetes_pod_phase"],
                        "regex": "Pending|Running",
                        "action": "keep",
                    },
                    {
                        "source_labels": [
                            "__meta_kubernetes_pod_ip",
                            "__meta_kubernetes_pod_annotation_prometheus_io_port",
                        ],
                        "regex": r"(.+);(\d+)",
                        "replacement": "$1:$2",
                        "target_label": "__address__",
                        "action": "replace",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                        "regex": "(.+)",
                        "target_label": "__metrics_path__",
                        "action": "replace",
                    },
                    copy("__meta_kubernetes_namespace", "namespace"),
                    copy("__meta_kubernetes_pod_name", "pod"),
                    copy("__meta_kubernetes_pod_label_mlops_maestro_dev_deployment", "deployment"),
                    copy("__meta_kubernetes_pod_label_mlops_maestro_dev_revision", "revision"),
                ],
            }
        ],
    }


def ready(cfg: PrometheusConfig) -> bool:
    return answers_ok(f"{cfg.url}/-/ready")


def _binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        raise PrometheusError(
            "the `prometheus` binary is not on PATH; install Debian's prometheus package "
            "with `make services` (or `sudo apt-get install -y prometheus`)"
        )
    return path


def _write_config(cfg: PrometheusConfig) -> bool:
    """Write prometheus.yml; return whether its content changed."""
    config = scrape_config(
        cfg.sd_url,
        cfg.scrape_interval,
        rule_files=[prometheus_rules.rule_files_glob(cfg.rules_dir)],
        alertmanagers=[cfg.alertmanager.address],
    )
    return write_if_changed(cfg.config_file, yaml.safe_dump(config, sort_keys=False))


def _reload(cfg: PrometheusConfig) -> None:
    log = cfg.processes().log(PROCESS)
    request = urllib.request.Request(f"{cfg.url}/-/reload", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            if resp.status == 200:
                return
    except (urllib.error.URLError, OSError) as err:
        raise PrometheusError(
            f"the Prometheus at {cfg.url} did not reload {cfg.config_file} ({err}); "
            f"see its log {log}"
        ) from err
    raise PrometheusError(f"the Prometheus at {cfg.url} did not reload; see its log {log}")


def _sd_healthy(cfg: PrometheusConfig) -> bool:
    try:
        with urllib.request.urlopen(f"http://{cfg.host}:{cfg.sd_port}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait(cfg: PrometheusConfig, name: str, check: Callable[[], bool], timeout: float) -> None:
    procs = cfg.processes()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if procs.pid(name) is None:
            break
        time.sleep(0.2)
    raise PrometheusError(
        f"{name} did not become ready; see its log {procs.log(name)}, which ends:\n"
        f"{procs.tail(name)}"
    )


def _start_discovery(cfg: PrometheusConfig, timeout: float) -> None:
    if not cfg.kubeconfig.is_file():
        raise PrometheusError(
            f"{cfg.kubeconfig} is missing, so Prometheus cannot discover pods; "
            "start the local control plane first with `make cluster-up`"
        )
    if _sd_healthy(cfg):
        return
    cfg.processes().start(
        SD_PROCESS,
        [
            sys.executable,
            "-m",
            "maestro.localplatform.prometheus_sd",
            f"--kubeconfig={cfg.kubeconfig}",
            f"--listen={cfg.host}:{cfg.sd_port}",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    _wait(cfg, SD_PROCESS, lambda: _sd_healthy(cfg), timeout)


def _adapter_healthy() -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # its self-signed serving certificate
    url = f"https://127.0.0.1:{custom_metrics.port()}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=1, context=ctx) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def _start_adapter(cfg: PrometheusConfig, timeout: float) -> None:
    """prometheus-adapter (custom.metrics.k8s.io) once Prometheus answers, registered
    with the API server (see localplatform.custom_metrics)."""
    binary = custom_metrics.binary(cfg)
    if not binary.is_file():
        raise PrometheusError(
            f"{binary} is missing; build it with `make prometheus-adapter` (or `make binaries`)"
        )
    rules = cfg.home / "adapter-rules.yaml"
    rules.write_text(adapter_rules.rules_yaml(adapter_rules.LOCAL_WINDOW))
    cfg.processes().start(custom_metrics.PROCESS, custom_metrics.adapter_argv(binary, cfg, rules))
    _wait(cfg, custom_metrics.PROCESS, _adapter_healthy, timeout)
    try:
        custom_metrics.kubectl(
            cfg,
            "apply",
            "--server-side",
            "--field-manager=maestro-local",
            "-f",
            "-",
            input=custom_metrics.apiservices(custom_metrics.port()),
        )
    except subprocess.CalledProcessError as err:
        raise PrometheusError(f"custom.metrics.k8s.io not registered: {err.stderr}") from err


def _stop_adapter(cfg: PrometheusConfig) -> None:
    if cfg.kubeconfig.is_file():
        # When the API server is gone already, nothing is left registered to break.
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            custom_metrics.kubectl(
                cfg, "delete", "--ignore-not-found", *custom_metrics.registered_names()
            )
    cfg.processes().stop(custom_metrics.PROCESS)


def load_rules(cfg: PrometheusConfig, name: str, groups: Sequence[dict[str, Any]]) -> None:
    """Have the running Prometheus evaluate `groups` as the rule set `name` (replacing a
    set of that name); PrometheusError, naming the problem, if it refuses them."""
    if prometheus_rules.write_rules(cfg.rules_dir, name, groups):
        _reload(cfg)


def unload_rules(cfg: PrometheusConfig, name: str) -> None:
    if prometheus_rules.remove_rules(cfg.rules_dir, name) and ready(cfg):
        _reload(cfg)


def up(cfg: PrometheusConfig, timeout: float = 60) -> float:
    """Start pod discovery, Alertmanager and Prometheus unless they already answer (then
    only reload a changed config), then prometheus-adapter; return the seconds it took."""
    started = time.monotonic()
    binary = _binary()
    _start_discovery(cfg, timeout)
    try:
        alertmanager.up(cfg.alertmanager, timeout)
    except alertmanager.AlertmanagerError as err:
        raise PrometheusError(str(err)) from err
    changed = _write_config(cfg)
    rules = prometheus_rules.platform_rule_groups()
    changed |= prometheus_rules.write_rules(cfg.rules_dir, prometheus_rules.PLATFORM, rules)
    if ready(cfg):
        if changed:
            _reload(cfg)
        _start_adapter(cfg, timeout)
        return time.monotonic() - started
    (cfg.home / "data").mkdir(parents=True, exist_ok=True)
    cfg.processes().start(
        PROCESS,
        [
            binary,
            f"--config.file={cfg.config_file}",
            f"--storage.tsdb.path={cfg.home / 'data'}",
            f"--storage.tsdb.retention.time={cfg.retention}",
            f"--web.listen-address={cfg.host}:{cfg.port}",
            "--web.enable-lifecycle",
            # A reload (a rule set loaded) leaves the notifier without its Alertmanager for up
            # to 5 s, until discovery resends it, and an alert that fires meanwhile is dropped;
            # at the default (1m) it would reach Alertmanager only a minute later.
            "--rules.alert.resend-delay=1s",
            "--log.level=warn",
        ],
    )
    _wait(cfg, PROCESS, lambda: ready(cfg), timeout)
    _start_adapter(cfg, timeout)
    return time.monotonic() - started


def down(cfg: PrometheusConfig) -> None:
    _stop_adapter(cfg)
    procs = cfg.processes()
    procs.stop(PROCESS)
    procs.stop(SD_PROCESS)
    alertmanager.down(cfg.alertmanager)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maestro.localplatform.prometheus",
        description="Start or stop the local Prometheus that scrapes the serving pods.",
    )
    parser.add_argument("command", choices=("up", "down"))
    args = parser.parse_args(argv)
    cfg = PrometheusConfig()
    try:
        if args.command == "up":
            print(f"Prometheus at {cfg.url} (started in {up(cfg):.1f}s)")
        else:
            down(cfg)
    except PrometheusError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
