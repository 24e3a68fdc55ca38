"""Two hosts in network namespaces (bn-h1, bn-h2) wired to a switch by veth or TAP ports."""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from dataclasses import dataclass

from .procs import PREFIX, run

HOSTS = (f"{PREFIX}-h1", f"{PREFIX}-h2")
ADDRS = ("10.77.0.1", "10.77.0.2")
MACS = ("02:62:6e:00:00:01", "02:62:6e:00:00:02")


@dataclass
class HostPair:
    """The switch-side port names and the namespaces behind them."""

    ports: tuple[str, str]
    #: The hosts' interface names (inside their namespaces).
    devs: tuple[str, str]
    hosts: tuple[str, str] = HOSTS
    addrs: tuple[str, str] = ADDRS

    def ns(self, i: int, *argv: str) -> list[str]:
        return [*host_cpu_prefix(), "ip", "netns", "exec", self.hosts[i], *argv]


def host_cpu_prefix() -> list[str]:
    """``taskset -c CPUS`` when ``$BENCH_HOST_CPUS`` is set: the hosts' programs (iperf3,
    ping) then run only on those CPUs, leaving the others to the switch, as on a hypervisor
    whose forwarding cores are kept for the switch (isolcpus)."""
    cpus = os.environ.get("BENCH_HOST_CPUS", "").strip()
    return ["taskset", "-c", cpus] if cpus else []


def link_exists(name: str, netns: str | None = None) -> bool:
    argv = ["ip", "-j", "link", "show", name]
    if netns:
        argv = ["ip", "-n", netns, "-j", "link", "show", name]
    return run(argv, check=False).strip().startswith("[")


def sweep_stale() -> list[str]:
    """Deletes bn-* namespaces and links left behind by an earlier killed run."""
    removed = []
    for ns in json.loads(run(["ip", "-j", "netns", "list"], check=False) or "[]"):
        name = ns.get("name", "")
        if name.startswith(f"{PREFIX}-"):
            run(["ip", "netns", "del", name], check=False)
            removed.append(name)
    out = run(["ip", "-j", "link", "show"], check=False)
    for link in json.loads(out or "[]"):
        name = link.get("ifname", "")
        if name.startswith(f"{PREFIX}-"):
            run(["ip", "link", "del", name], check=False)
            removed.append(name)
    return removed


def _add_namespaces(stack: ExitStack) -> None:
    for host in HOSTS:
        run(["ip", "netns", "add", host])
        stack.callback(run, ["ip", "netns", "del", host], check=False)
        run(["ip", "-n", host, "link", "set", "lo", "up"])


def _configure_host(i: int, dev: str, tx_offload: bool) -> None:
    host = HOSTS[i]
    run(["ip", "-n", host, "link", "set", dev, "address", MACS[i]])
    run(["ip", "-n", host, "addr", "add", f"{ADDRS[i]}/24", "dev", dev])
    run(["ip", "-n", host, "link", "set", dev, "up"])
    if not tx_offload:
        set_tx_offload(i, dev, False)


def set_tx_offload(i: int, dev: str, on: bool) -> None:
    """``ethtool -K DEV tx on|off`` in host ``i``. With it off the host's stack
    checksums every frame itself and sends no TSO/GSO super-frames (turning tx
    checksumming off turns segmentation offload off with it)."""
    run(["ip", "netns", "exec", HOSTS[i], "ethtool", "-K", dev, "tx", "on" if on else "off"])


def veth_pair(stack: ExitStack, tx_offload: bool = False) -> HostPair:
    """bn-v1/bn-v2 in the root namespace, eth0 inside bn-h1/bn-h2. Without
    ``tx_offload`` the hosts run with ``tx off`` (every switch gets the same: Open
    vSwitch's AF_PACKET ports need it unless its userspace TSO is enabled)."""
    _add_namespaces(stack)
    ports = (f"{PREFIX}-v1", f"{PREFIX}-v2")
    for i, port in enumerate(ports):
        run(["ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", HOSTS[i]])
        stack.callback(run, ["ip", "link", "del", port], check=False)
        run(["ip", "link", "set", port, "up"])
        _configure_host(i, "eth0", tx_offload)
    return HostPair(ports=ports, devs=("eth0", "eth0"))


def tap_names() -> tuple[str, str]:
    return (f"{PREFIX}-t1", f"{PREFIX}-t2")


def move_taps_into_hosts(
    stack: ExitStack, taps: tuple[str, str], tx_offload: bool = False
) -> HostPair:
    """The switch created (and holds) the TAP devices; their kernel side goes into the hosts."""
    _add_namespaces(stack)
    for i, tap in enumerate(taps):
        if not link_exists(tap):
            raise RuntimeError(f"switch did not create TAP device {tap}")
        run(["ip", "link", "set", tap, "netns", HOSTS[i]])
        _configure_host(i, tap, tx_offload)
    return HostPair(ports=taps, devs=taps)


def check_reachable(pair: HostPair) -> None:
    """Fails unless h1 reaches h2 (ARP + one ping) within a few seconds."""
    run(pair.ns(0, "ping", "-c", "3", "-i", "0.3", "-W", "2", pair.addrs[1]), timeout=15)
