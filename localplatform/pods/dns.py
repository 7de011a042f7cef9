"""A pod's resolv.conf as the kubelet writes it (pure): with the default `dnsPolicy:
ClusterFirst`, the cluster DNS as nameserver, the search path `<namespace>.svc.<domain>
svc.<domain> <domain>` (then the host's search domains) and `options ndots:5`, so that a
Service's short name (`<job>-master-0`) resolves in its namespace; `Default` is the host's
file; `None` only the pod's `dnsConfig`, which is merged into the others as the kubelet
merges it (nameservers and searches appended, options replaced by name).

The runner bind-mounts the result over /etc/resolv.conf in each container's mount
namespace (volumes.in_mount_namespace), as a container runtime mounts the file the kubelet
wrote."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NDOTS = 5
# glibc reads at most this many nameservers; the kubelet keeps the first three too.
MAX_NAMESERVERS = 3


@dataclass(frozen=True)
class ClusterDns:
    """The kubelet's --cluster-dns and --cluster-domain."""

    nameserver: str
    domain: str = "cluster.local"


@dataclass(frozen=True)
class Resolver:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [f"nameserver {n}" for n in self.nameservers[:MAX_NAMESERVERS]]
        if self.searches:
            lines.insert(0, "search " + " ".join(self.searches))
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "\n".join(lines) + "\n"


def parse_resolv_conf(text: str) -> Resolver:
    """The nameserver, search (or domain) and options lines of a resolv.conf."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = words[1:]  # the last of them wins, as in glibc
        elif words[0] == "options":
            options.extend(words[1:])
    return Resolver(tuple(nameservers), tuple(searches), tuple(options))


def _merge_options(base: tuple[str, ...], extra: list[Mapping[str, Any]]) -> tuple[str, ...]:
    """Options by name, the pod's dnsConfig replacing the base's (`ndots:5` by `ndots:2`)."""
    merged: dict[str, str] = {}
    for text in base:
        merged[text.split(":", 1)[0]] = text
    for option in extra:
        name = str(option["name"])
        value = option.get("value")
        merged[name] = f"{name}:{value}" if value not in (None, "") else name
    return tuple(merged.values())


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def pod_resolver(
    namespace: str, pod_spec: Mapping[str, Any], cluster: ClusterDns | None, host: Resolver
) -> Resolver | None:
    """The pod's resolver, or None when it is the host's unchanged (no file to mount).

    As the kubelet: ClusterFirst on the host network, or with no cluster DNS configured,
    is Default; ClusterFirstWithHostNet is ClusterFirst."""
    policy = pod_spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirst" and pod_spec.get("hostNetwork"):
        policy = "Default"
    if policy == "ClusterFirstWithHostNet":
        policy = "ClusterFirst"
    if policy == "ClusterFirst" and cluster is None:
        policy = "Default"
    config = pod_spec.get("dnsConfig") or {}
    if policy == "ClusterFirst":
        assert cluster is not None
        domain = cluster.domain
        base = Resolver(
            (cluster.nameserver,),
            _unique([f"{namespace}.svc.{domain}", f"svc.{domain}", domain, *host.searches]),
            (f"ndots:{NDOTS}",),
        )
    elif policy == "None":
        base = Resolver()
    else:
        if not config:
            return None
        base = host
    return Resolver(
        _unique([*base.nameservers, *(config.get("nameservers") or [])]),
        _unique([*base.searches, *(config.get("searches") or [])]),
        _merge_options(base.options, config.get("options") or []),
    )
