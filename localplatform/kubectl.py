"""The real kubectl, run against the local cluster or any kubeconfig."""

from __future__ import annotations

import subprocess
from pathlib import Path

from maestro.localplatform.clusterconfig import ClusterConfig, ClusterError


def run_kubectl(
    kubectl_bin: Path,
    kubeconfig: Path,
    *args: str,
    input: str | None = None,
    check: bool = True,
    error: type[Exception] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real kubectl against `kubeconfig`; a failure raises `error` with its stderr."""
    proc = subprocess.run(
        [str(kubectl_bin), "--kubeconfig", str(kubeconfig), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise (error or ClusterError)(
            f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.strip()}"
        )
    return proc


def kubectl(
    cfg: ClusterConfig, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run_kubectl(cfg.bin / "kubectl", cfg.kubeconfig, *args, input=input, check=check)


def apply_manifests(cfg: ClusterConfig, manifests: str, *, force: bool = True) -> None:
    """Server-side apply as the platform's field manager (`force`: take over conflicts)."""
    flags = ["--force-conflicts"] if force else []
    kubectl(
        cfg,
        "apply",
        "--server-side",
        *flags,
        "--field-manager=maestro-local",
        "-f",
        "-",
        input=manifests,
    )
