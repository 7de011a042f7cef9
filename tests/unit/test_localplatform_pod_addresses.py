"""The local pod runner hands out pod addresses in turn, as host-local IPAM does: a freed
address is not given again until the others after it were, and a pod keeps the address
its status already records."""

from __future__ import annotations

import ipaddress

import pytest

from maestro.localplatform.pods.addresses import AddressPool
from maestro.localplatform.pods.network import POD_CIDR

pytestmark = pytest.mark.unit

# 10.0.0.0/29: .0 and .1 look like a network's and a gateway's, .7 is broadcast.
SMALL = ipaddress.IPv4Network("10.0.0.0/29")
SMALL_USABLE = [f"10.0.0.{i}" for i in range(2, 7)]


def pool(network: ipaddress.IPv4Network = SMALL) -> AddressPool:
    return AddressPool(network)


def test_addresses_are_handed_out_in_turn_from_the_pod_network() -> None:
    p = pool(POD_CIDR)
    assert [p.allocate() for _ in range(3)] == ["10.244.0.2", "10.244.0.3", "10.244.0.4"]
    assert p.used == {"10.244.0.2", "10.244.0.3", "10.244.0.4"}


def test_a_small_network_yields_each_usable_address_once() -> None:
    p = pool()
    assert [p.allocate() for _ in SMALL_USABLE] == SMALL_USABLE


def test_addresses_ending_in_0_or_1_are_skipped_in_every_slash_24() -> None:
    p = pool(ipaddress.IPv4Network("10.0.0.0/23"))
    given = [p.allocate() for _ in range(255)]
    assert given[-2:] == ["10.0.0.255", "10.0.1.2"]
    assert not any(ip.endswith((".0", ".1")) for ip in given)


# (addresses released after the first allocations) -> what comes next
RELEASES = [
    pytest.param(3, ["10.0.0.3"], "10.0.0.5", id="freed-address-not-reused-at-once"),
    pytest.param(3, ["10.0.0.4"], "10.0.0.5", id="last-given-not-reused-at-once"),
    pytest.param(5, ["10.0.0.3"], "10.0.0.3", id="wraps-around-to-a-freed-one"),
    pytest.param(5, ["10.0.0.4", "10.0.0.2"], "10.0.0.2", id="wraps-to-the-first-free"),
    pytest.param(2, ["10.0.0.9"], "10.0.0.4", id="releasing-an-unknown-address"),
]


@pytest.mark.parametrize(("allocated", "released", "following"), RELEASES)
def test_after_releases(allocated: int, released: list[str], following: str) -> None:
    p = pool()
    for _ in range(allocated):
        p.allocate()
    for ip in released:
        p.release(ip)
    assert p.allocate() == following
    assert following in p.used


def test_an_exhausted_network_raises() -> None:
    p = pool()
    for _ in SMALL_USABLE:
        p.allocate()
    with pytest.raises(RuntimeError, match="pod network exhausted"):
        p.allocate()
    assert p.used == set(SMALL_USABLE)


# (address the pod's status records, addresses already given) -> the pod's address
RECORDED = [
    pytest.param("10.0.0.5", 0, "10.0.0.5", id="kept"),
    pytest.param("10.0.0.2", 1, "10.0.0.3", id="taken-gets-the-next"),
    pytest.param("10.9.0.5", 0, "10.0.0.2", id="outside-the-network"),
    pytest.param(None, 0, "10.0.0.2", id="none"),
    pytest.param("", 0, "10.0.0.2", id="empty"),
]


@pytest.mark.parametrize(("recorded", "given", "address"), RECORDED)
def test_keep_or_allocate(recorded: str | None, given: int, address: str) -> None:
    p = pool()
    for _ in range(given):
        p.allocate()
    assert p.keep_or_allocate(recorded) == address
    assert address in p.used


def test_a_kept_address_does_not_move_the_turn() -> None:
    p = pool()
    p.keep_or_allocate("10.0.0.5")
    assert [p.allocate() for _ in range(4)] == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.6"]
