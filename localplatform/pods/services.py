"""A stand-in for kube-proxy: each Service's ClusterIP answers on this machine and forwards
TCP connections to the Service's ready endpoints (the pods' own addresses), round robin.

Kubernetes gives every Service a virtual address that kube-proxy makes reachable on each
node; the local platform has no such proxy, so the pod runner routes the Service range to
loopback and listens on every ClusterIP:port itself, as kube-proxy's original userspace
mode did. It follows Services and EndpointSlices by listing them every second. Only what
Maestro's workloads use is covered: TCP ports of ClusterIP Services with selectors; no
session affinity, NodePorts or external traffic policies. A Service labelled
HOST_SERVED_LABEL (kube-system/kube-dns: CoreDNS listens on its ClusterIP itself) is left to
the process of the platform that answers on it."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import socket
import subprocess
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("pod-runner")

SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/16")
# On a Service: a process of the platform listens on its ClusterIP; the proxy does not.
HOST_SERVED_LABEL = "maestro.dev/served-by-platform"
POLL_SECONDS = 1.0
BUFFER = 65536


@dataclass(frozen=True)
class Frontend:
    """One ClusterIP:port of a Service, and the endpoint port it forwards to."""

    namespace: str
    service: str
    ip: str
    port: int
    port_name: str
    target: int | str


def frontends(services: Iterable[Mapping[str, Any]]) -> list[Frontend]:
    """The TCP ClusterIP:ports of these Services (pure), less those of HOST_SERVED_LABEL."""
    out = []
    for svc in services:
        if (svc["metadata"].get("labels") or {}).get(HOST_SERVED_LABEL) == "true":
            continue
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or spec.get("type", "ClusterIP") != "ClusterIP":
            continue
        for port in spec.get("ports") or []:
            if port.get("protocol", "TCP") != "TCP":
                continue
            out.append(
                Frontend(
                    svc["metadata"]["namespace"],
                    svc["metadata"]["name"],
                    ip,
                    int(port["port"]),
                    port.get("name") or "",
                    port.get("targetPort", port["port"]),
                )
            )
    return out


def backends(front: Frontend, slices: Iterable[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """Ready (address, port) endpoints of the frontend's Service from its EndpointSlices."""
    out: list[tuple[str, int]] = []
    for es in slices:
        meta = es.get("metadata") or {}
        labels = meta.get("labels") or {}
        if meta.get("namespace") != front.namespace:
            continue
        if labels.get("kubernetes.io/service-name") != front.service:
            continue
        ports = [
            p["port"]
            for p in es.get("ports") or []
            if (p.get("name") or "") == front.port_name and p.get("port")
        ]
        for endpoint in es.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or []:
                out.extend((address, int(port)) for port in ports)
    return sorted(out)


def route_service_range(network: ipaddress.IPv4Network = SERVICE_CIDR) -> bool:
    """Route the Service range to loopback (root only); True when its addresses bind."""
    probe = str(network.network_address + 1)

    def bindable() -> bool:
        with socket.socket() as s:
            try:
                s.bind((probe, 0))
                return True
            except OSError:
                return False

    if not bindable():
        subprocess.run(
            ["ip", "route", "add", "local", str(network), "dev", "lo"],
            capture_output=True,
            check=False,
        )
    return bindable()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(BUFFER):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class ServiceProxy:
    """Listens on every ClusterIP:port; `sync` (from the runner's poll) updates the set."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.servers: dict[tuple[str, int], asyncio.AbstractServer] = {}
        self.targets: dict[tuple[str, int], list[tuple[str, int]]] = {}
        self.turn = itertools.count()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        here = writer.get_extra_info("sockname")
        targets = self.targets.get((here[0], here[1])) or []
        if not targets:
            writer.close()
            return
        host, port = targets[next(self.turn) % len(targets)]
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def _open(self, key: tuple[str, int]) -> None:
        try:
            self.servers[key] = await asyncio.start_server(self._serve, key[0], key[1])
        except OSError as err:
            log.warning("service proxy cannot listen on %s:%s: %s", key[0], key[1], err)

    async def _close(self, key: tuple[str, int]) -> None:
        server = self.servers.pop(key, None)
        if server is not None:
            server.close()

    def sync(self, services: list[dict[str, Any]], slices: list[dict[str, Any]]) -> None:
        wanted: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for front in frontends(services):
            found = backends(front, slices)
            wanted[(front.ip, front.port)] = found
        self.targets = wanted
        for key in set(self.servers) - set(wanted):
            asyncio.run_coroutine_threadsafe(self._close(key), self.loop).result()
        for key in set(wanted) - set(self.servers):
            asyncio.run_coroutine_threadsafe(self._open(key), self.loop).result()
