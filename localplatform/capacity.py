"""What each simulated node advertises as capacity and allocatable: by default its share
of this machine, so the scheduler keeps Pending what the machine could not run.

The nodes are kwok's, but every pod of the project's own image really runs here, as a
process of this one machine. Each node gets an equal share of the machine's CPUs and
memory (two nodes on 2 cores: 1 CPU each), so the requests the scheduler admits over all
nodes add up to no more than the machine has, as on a cluster whose nodes are real
machines. Pods per node default to the kubelet's maxPods (110): a setting, not a resource
of the machine. MAESTRO_NODE_CPU, MAESTRO_NODE_MEMORY and MAESTRO_NODE_PODS set each
node's figures instead (Kubernetes quantities: "4", "1500m", "8Gi").
"""

from __future__ import annotations

import os
import re
from pathlib import Path

KUBELET_MAX_PODS = "110"
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")


def is_quantity(value: str) -> bool:
    """A plain Kubernetes resource quantity (no exponent form)."""
    return _QUANTITY.fullmatch(value) is not None


def meminfo_total_kib(meminfo: str) -> int:
    """MemTotal of a /proc/meminfo text, in KiB."""
    for line in meminfo.splitlines():
        key, _, value = line.partition(":")
        if key == "MemTotal":
            return int(value.split()[0])
    raise ValueError("no MemTotal in meminfo")


def cpu_share(cpus: int, nodes: int) -> str:
    """One node's share of `cpus` cores as a quantity: "1", or "1500m" when not whole."""
    millis = cpus * 1000 // nodes
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_share(total_kib: int, nodes: int) -> str:
    return f"{total_kib // nodes}Ki"


def machine_cpus() -> int:
    return os.cpu_count() or 1


def machine_memory_kib(meminfo: Path = Path("/proc/meminfo")) -> int:
    return meminfo_total_kib(meminfo.read_text())


def node_cpu(nodes: int) -> str:
    return os.environ.get("MAESTRO_NODE_CPU") or cpu_share(machine_cpus(), nodes)


def node_memory(nodes: int) -> str:
    return os.environ.get("MAESTRO_NODE_MEMORY") or memory_share(machine_memory_kib(), nodes)


def node_pods() -> str:
    return os.environ.get("MAESTRO_NODE_PODS") or KUBELET_MAX_PODS
