"""Kernel-facing ports: iperf3 TCP and small-datagram UDP between two namespaces,
attached to the switch by veth pairs or by TAP devices the switch holds."""

from __future__ import annotations

import time
from contextlib import ExitStack

from .. import iperf, netns
from ..context import Context

NAME = "kernel-ports"
TITLE = "iperf3 between two namespaces over veth and TAP ports"
DESCRIPTION = (
    "Hosts bn-h1/bn-h2 (10.77.0.1/.2) reach each other through the switch. veth: the "
    "switch owns bn-v1/bn-v2 (system ports); TAP: the switch creates bn-t1/bn-t2 "
    "(`type=tap`) and their kernel side is moved into the hosts; AF_XDP veth: the same veth "
    "pairs with the switch's ports `type=afxdp` (AF_XDP sockets behind an XDP program; "
    "default `xdp-mode=best-effort`, native on veth; AF_XDP carries no checksum state, so "
    "these hosts run with `tx off` throughout). TCP = `iperf3 -c` "
    "receiver goodput, first with the hosts' default offloads (checksum offload and "
    "TSO/GSO on: super-frames reach the switch; Open vSwitch runs with "
    "`other_config:userspace-tso-enable=true` for this), then with `ethtool -K … tx off` "
    "in both hosts (every frame ≤ MTU and checksummed by the host). UDP = `iperf3 -u -l 64 "
    "-b 0` (64 B payload) datagrams received per second and loss."
)


def measure(
    ctx: Context, stack: ExitStack, sw, pair: netns.HostPair, kind: str, offloads: bool = True
) -> None:
    """The TCP and UDP cases over ``pair``. ``offloads=False``: the hosts run with
    ``tx off`` throughout (the "offloads on" case is skipped with a note)."""
    netns.check_reachable(pair)
    iperf.start_server(stack, pair, ctx.logdir / f"{NAME}-{sw.name}-iperf3.log")
    seconds = ctx.seconds(2, 10)
    label = sw.label["kernel"]

    def tcp(case: str) -> None:
        out = iperf.client(pair, seconds)
        ctx.results.add(NAME, f"{kind}, TCP, {case}", "goodput", "Gbit/s", sw.name, label,
                        iperf.parse_tcp_bps(out) / 1e9)  # fmt: skip
        time.sleep(0.5)

    if offloads:
        tcp("offloads on")
    else:
        ctx.results.skip(NAME, sw.name, "AF_XDP carries no checksum state: a partial "
                         "checksum the host leaves reaches the other host unfinished, so "
                         "the hosts run with tx off", f"{kind}, TCP, offloads on")  # fmt: skip
    udp = iperf.client(pair, seconds, "-u", "-l", "64", "-b", "0")
    pps, loss = iperf.parse_udp(udp)
    ctx.results.add(NAME, f"{kind}, UDP 64 B", "received", "kpps", sw.name, label, pps / 1e3)
    ctx.results.add(NAME, f"{kind}, UDP 64 B", "loss", "%", sw.name, label, loss, "lower")
    time.sleep(0.5)
    for i, dev in enumerate(pair.devs):
        netns.set_tx_offload(i, dev, False)
    tcp("tx off")


def run(ctx: Context) -> None:
    def veth(stack: ExitStack, sw, rep: int) -> None:
        pair = netns.veth_pair(stack, tx_offload=True)
        for port in pair.ports:
            sw.add_system_port(port)
        measure(ctx, stack, sw, pair, "veth")

    def veth_afxdp(stack: ExitStack, sw, rep: int) -> None:
        pair = netns.veth_pair(stack, tx_offload=False)
        for port in pair.ports:
            sw.add_afxdp_port(port)
        measure(ctx, stack, sw, pair, "AF_XDP veth", offloads=False)

    def tap(stack: ExitStack, sw, rep: int) -> None:
        taps = netns.tap_names()
        for t in taps:
            sw.add_tap_port(t)
        pair = netns.move_taps_into_hosts(stack, taps, tx_offload=True)
        measure(ctx, stack, sw, pair, "TAP")

    ctx.alternate(NAME, "kernel", veth, case="veth")
    ctx.alternate(NAME, "kernel", veth_afxdp, case="AF_XDP veth", needs=("afxdp",))
    ctx.alternate(NAME, "kernel", tap, case="TAP", needs=("tap",))
