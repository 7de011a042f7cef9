"""Pod addresses handed out in turn from one network, as host-local IPAM does (pure)."""

from __future__ import annotations

import ipaddress


class AddressPool:
    """The addresses of one network in use by pods, and the offset of the one given last.

    Not locked: only the watch thread hands addresses out; releasing one from another
    thread is a single set operation."""

    def __init__(self, network: ipaddress.IPv4Network) -> None:
        self.network = network
        self.used: set[str] = set()
        self.last = 0  # offset in the network of the address given last

    def allocate(self) -> str:
        """The next free address after the last one given: an address just freed is not
        handed out again at once, so a client still calling a deleted pod reaches nothing
        rather than its replacement. Raises RuntimeError when none is free."""
        size = self.network.num_addresses
        for step in range(1, size):
            index = (self.last + step) % size
            ip = str(self.network.network_address + index)
            # The broadcast address and those that look like a network's or a gateway's.
            if index == size - 1 or ip.endswith((".0", ".1")) or ip in self.used:
                continue
            self.last = index
            self.used.add(ip)
            return ip
        raise RuntimeError("pod network exhausted")

    def keep_or_allocate(self, recorded: str | None) -> str:
        """The address a pod's status already records when it is in this network and free
        (a restarted runner keeps its pods' addresses), otherwise the next one in turn."""
        if (
            recorded
            and ipaddress.ip_address(recorded) in self.network
            and recorded not in self.used
        ):
            self.used.add(recorded)
            return recorded
        return self.allocate()

    def release(self, ip: str) -> None:
        self.used.discard(ip)
