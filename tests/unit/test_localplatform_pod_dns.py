"""A pod's resolv.conf as the kubelet writes it (localplatform.pods.dns)."""

from __future__ import annotations

from typing import Any

import pytest

from maestro.localplatform.pods.dns import ClusterDns, Resolver, parse_resolv_conf, pod_resolver

pytestmark = pytest.mark.unit

CLUSTER = ClusterDns("10.96.0.10", "cluster.local")
HOST = parse_resolv_conf("# host\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n")


def test_the_hosts_file_is_parsed() -> None:
    assert Resolver(("192.0.2.53",), ("corp.example",), ("edns0",)) == HOST
    assert parse_resolv_conf("domain a.example\nsearch b.example c.example\n").searches == (
        "b.example",
        "c.example",
    )


def test_cluster_first_is_the_kubelets_file() -> None:
    resolver = pod_resolver("ml", {}, CLUSTER, HOST)
    assert resolver is not None
    assert resolver.text() == (
        "search ml.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n"
    )


CASES: list[tuple[str, dict[str, Any], ClusterDns | None, Resolver | None]] = [
    ("default-policy-is-the-hosts", {"dnsPolicy": "Default"}, CLUSTER, None),
    ("host-network-is-default", {"hostNetwork": True}, CLUSTER, None),
    ("no-cluster-dns-is-default", {}, None, None),
    (
        "with-host-net-asks-the-cluster",
        {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"},
        CLUSTER,
        Resolver(
            ("10.96.0.10",),
            ("ns.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"),
            ("ndots:5",),
        ),
    ),
    (
        "dns-config-merged",
        {
            "dnsConfig": {
                "nameservers": ["192.0.2.99"],
                "searches": ["extra.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "single-request"}],
            }
        },
        CLUSTER,
        Resolver(
            ("10.96.0.10", "192.0.2.99"),
            (
                "ns.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
                "extra.example",
            ),
            ("ndots:2", "single-request"),
        ),
    ),
    (
        "none-is-dns-config-only",
        {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["192.0.2.99"]}},
        CLUSTER,
        Resolver(("192.0.2.99",), (), ()),
    ),
    (
        "default-with-dns-config",
        {"dnsPolicy": "Default", "dnsConfig": {"searches": ["x.example"]}},
        CLUSTER,
        Resolver(("192.0.2.53",), ("corp.example", "x.example"), ("edns0",)),
    ),
]


@pytest.mark.parametrize(
    ("spec", "cluster", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_dns_policies(
    spec: dict[str, Any], cluster: ClusterDns | None, expected: Resolver | None
) -> None:
    assert pod_resolver("ns", spec, cluster, HOST) == expected


def test_at_most_three_nameservers_are_written() -> None:
    resolver = Resolver(("a", "b", "c", "d"))
    assert resolver.text() == "nameserver a\nnameserver b\nnameserver c\n"
