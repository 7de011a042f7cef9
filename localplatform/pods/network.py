"""The host side of pod addresses: which range pods get, routed to loopback if need be."""

from __future__ import annotations

import ipaddress
import logging
import socket
import subprocess

POD_CIDR = ipaddress.IPv4Network("10.244.0.0/16")
FALLBACK_CIDR = ipaddress.IPv4Network("127.1.0.0/16")
log = logging.getLogger("pod-runner")


def fallback_network(network: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    """Where pod IPs go when `network` cannot be routed to loopback: 127.1/16 for the
    default range, the same host bits in 127.0.0.0/8 for another (a second platform)."""
    if network == POD_CIDR or network.prefixlen < 8:
        return FALLBACK_CIDR
    loopback = int(ipaddress.IPv4Address("127.0.0.0"))
    low = int(network.network_address) & 0x00FFFFFF
    return ipaddress.IPv4Network((loopback | low, network.prefixlen))


def choose_pod_network(network: ipaddress.IPv4Network = POD_CIDR) -> ipaddress.IPv4Network:
    """Pod IPs come from a range routed to loopback, so Services may list them as
    endpoints (the API refuses 127.0.0.0/8 there); fall back to loopback addresses
    (fallback_network) when the route cannot be added (not root)."""

    def bindable(ip: str) -> bool:
        with socket.socket() as s:
            try:
                s.bind((ip, 0))
                return True
            except OSError:
                return False

    probe = str(network.network_address + 1)
    if not bindable(probe):
        subprocess.run(
            ["ip", "route", "add", "local", str(network), "dev", "lo"],
            capture_output=True,
            check=False,
        )
    if bindable(probe):
        return network
    fallback = fallback_network(network)
    log.warning(
        "cannot route %s to loopback (needs root); pod IPs fall back to %s, "
        "which Services cannot list as endpoints",
        network,
        fallback,
    )
    return fallback
