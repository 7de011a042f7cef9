"""The local pod runner: the kubelet for pods of the project's own image.

Pods labelled `maestro.dev/local-run=true` and bound to a node are run as local
processes in the project's virtualenv with the pod's command, args and env, each on
its own loopback address. Their phase, readiness (from the readiness probe), pod IP
and exit codes are written back to the pod status, so Jobs complete through the real
job controller and Services find real endpoints. kwok keeps handling every other pod.
"""

# The parts live in maestro.localplatform.pods; this module is the command that
# components.pod_runner_argv starts (`python -m maestro.localplatform.podrunner`).

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path

from maestro.localplatform.pods.dns import ClusterDns
from maestro.localplatform.pods.network import POD_CIDR
from maestro.localplatform.pods.runner import PodRunner
from maestro.localplatform.procs import MARKER


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument(
        "--state", type=Path, required=True, help="folder for pod work dirs and logs"
    )
    parser.add_argument(
        "--pod-cidr",
        type=ipaddress.IPv4Network,
        default=POD_CIDR,
        help="pod addresses, routed to loopback (default: %(default)s)",
    )
    parser.add_argument(
        "--cluster-dns",
        help="the cluster DNS's address, nameserver of pods with dnsPolicy ClusterFirst "
        "(as the kubelet's flag; without it, pods use the host's resolver)",
    )
    parser.add_argument("--cluster-domain", default="cluster.local")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # Started by the platform, the runner carries its mark: its pods' processes get it too.
    platform = {MARKER: os.environ[MARKER]} if MARKER in os.environ else {}
    cluster_dns = ClusterDns(args.cluster_dns, args.cluster_domain) if args.cluster_dns else None
    runner = PodRunner(
        args.kubeconfig,
        args.state,
        Path(sys.executable).parent,
        args.pod_cidr,
        platform,
        cluster_dns,
    )
    signal.signal(signal.SIGTERM, lambda *_: runner.stopping.set())
    runner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
