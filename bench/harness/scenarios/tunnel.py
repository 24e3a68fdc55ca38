"""VXLAN between two "hypervisors": each a namespace with its own switch, a VM
namespace on its integration bridge, and an underlay veth to the other one, set up as
Open vSwitch's userspace-tunnelling guide says. The same topology without a tunnel (VM
and underlay port on one bridge per hypervisor) gives each switch's unencapsulated
figure."""

from __future__ import annotations

import time
from contextlib import ExitStack

from .. import iperf, netns, switches
from ..context import Context
from ..procs import PREFIX, wait_for
from ..procs import run as sh
from ..stats import summarize

NAME = "tunnel"
TITLE = "VXLAN between two hypervisor namespaces, each with its own switch (veth)"
QUICK = False  # two switches and two topologies per repetition: beyond --quick's budget

SIDES = ("a", "b")
HYPERVISORS = tuple(f"{PREFIX}-h{s}" for s in SIDES)  # the switches' namespaces
UNDERLAY = ("10.79.0.1", "10.79.0.2")
UNDERLAY_NET = "10.79.0.0/24"
VNI = 5
VM_MTU = 1400  # room for the 50 bytes of outer headers on the 1500-byte underlay

VXLAN = "VXLAN"
PLAIN = "no tunnel"
TX_ON = "offloads on"
TX_OFF = "tx off"

DESCRIPTION = (
    f"Hypervisors {HYPERVISORS[0]}/{HYPERVISORS[1]} are namespaces, each running its own "
    "switch (ferrovs vswitchd, or ovs-vswitchd with `datapath_type=netdev`), joined by the "
    f"underlay veth {PREFIX}-ua/{PREFIX}-ub ({UNDERLAY[0]}/{UNDERLAY[1]}). As in OVS's "
    "userspace-tunnelling guide: the underlay veth is a port of the underlay bridge "
    f"({PREFIX}-pa), whose internal port holds the underlay address; the integration "
    f"bridge ({PREFIX}-ia) holds the VM's veth and `type=vxlan options:remote_ip=PEER "
    f"options:key={VNI}`; OVS also gets `ovs/route/add {UNDERLAY_NET} {PREFIX}-pa` "
    "(ferrovs takes the route from the namespace's kernel table). The VMs (namespaces "
    f"bn-h1/bn-h2, 10.77.0.1/.2, MTU {VM_MTU}) run iperf3: TCP receiver goodput with "
    "the VMs' offloads on (TSO super-frames reach the switch and are segmented before "
    "encapsulation; not OVS, see below) and with `ethtool -K eth0 tx off`, and "
    "`iperf3 -u -l 64 -b 0` (64 B payload, VMs with tx off). 'no tunnel' = the same "
    "namespaces and veths, each hypervisor one bridge holding the VM's veth and the "
    "underlay veth (the VMs' frames cross the underlay unencapsulated). 'VXLAN / no "
    "tunnel' = ratio of the medians. No forwarding core is pinned: both switches, "
    "both iperf3 ends and the kernel share the 2 cores."
)


def vm_pair() -> netns.HostPair:
    return netns.HostPair(ports=(f"{PREFIX}-va", f"{PREFIX}-vb"), devs=("eth0", "eth0"))


def topology(stack: ExitStack, tx_offload: bool) -> netns.HostPair:
    """Namespaces and veths: hypervisors bn-ha/bn-hb with the underlay veth between
    them, VMs bn-h1/bn-h2 on a veth into their hypervisor. No switch yet."""
    for ns in (*HYPERVISORS, *netns.HOSTS):
        sh(["ip", "netns", "add", ns])
        stack.callback(sh, ["ip", "netns", "del", ns], check=False)
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    ua, ub = (f"{PREFIX}-u{s}" for s in SIDES)
    sh(["ip", "link", "add", ua, "netns", HYPERVISORS[0], "type", "veth",
         "peer", "name", ub, "netns", HYPERVISORS[1]])  # fmt: skip
    pair = vm_pair()
    for i, hv in enumerate(HYPERVISORS):
        sh(["ip", "-n", hv, "link", "set", f"{PREFIX}-u{SIDES[i]}", "up"])
        sh(["ip", "-n", hv, "link", "add", pair.ports[i], "type", "veth",
             "peer", "name", "eth0", "netns", netns.HOSTS[i]])  # fmt: skip
        sh(["ip", "-n", hv, "link", "set", pair.ports[i], "up"])
        vm = netns.HOSTS[i]
        sh(["ip", "-n", vm, "link", "set", "eth0", "address", netns.MACS[i]])
        sh(["ip", "-n", vm, "addr", "add", f"{netns.ADDRS[i]}/24", "dev", "eth0"])
        sh(["ip", "-n", vm, "link", "set", "eth0", "mtu", str(VM_MTU), "up"])
        netns.set_tx_offload(i, "eth0", tx_offload)
    return pair


def start_hypervisors(stack: ExitStack, sw) -> list:
    """``sw`` (not started) and a second instance of the same switch, each started in
    its hypervisor's namespace."""
    pair = [sw, switches.make(sw.name)]
    for i, s in enumerate(pair):
        s.start(stack, "tunnel", netns=HYPERVISORS[i])
    return pair


def configure_underlay(s, i: int) -> None:
    """Hypervisor ``i``'s underlay bridge: the underlay veth as its port, the underlay
    address on its internal port, the tunnel route through it."""
    side, hv = SIDES[i], HYPERVISORS[i]
    phy = f"{PREFIX}-p{side}"
    s.add_bridge(phy)
    s.add_port(phy, f"{PREFIX}-u{side}")
    wait_for(f"{phy} internal port", lambda: netns.link_exists(phy, hv), 15)
    sh(["ip", "-n", hv, "link", "set", phy, "up"])
    sh(["ip", "-n", hv, "addr", "add", f"{UNDERLAY[i]}/24", "dev", phy])
    s.tunnel_route(UNDERLAY_NET, phy)


def configure_vxlan(sws: list) -> None:
    for i, s in enumerate(sws):
        side = SIDES[i]
        integ = f"{PREFIX}-i{side}"
        configure_underlay(s, i)
        s.add_bridge(integ)
        s.add_port(integ, vm_pair().ports[i])
        tnl = f"{PREFIX}-x{side}"
        s.add_port(integ, tnl, "--", "set", "Interface", tnl, "type=vxlan",
                   f"options:remote_ip={UNDERLAY[1 - i]}", f"options:key={VNI}")  # fmt: skip


def configure_plain(sws: list) -> None:
    for i, s in enumerate(sws):
        br = f"{PREFIX}-i{SIDES[i]}"
        s.add_bridge(br)
        s.add_port(br, f"{PREFIX}-u{SIDES[i]}")
        s.add_port(br, vm_pair().ports[i])


def reach(pair: netns.HostPair) -> None:
    """The first pings of a tunnel may go to ARP resolution of the next hop."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ok = sh(pair.ns(0, "ping", "-c", "1", "-W", "1", pair.addrs[1]), check=False, timeout=5)
        if " 0% packet loss" in ok:
            break
    netns.check_reachable(pair)


def measure(ctx: Context, stack: ExitStack, sw, pair: netns.HostPair, kind: str,
            tx_on: bool, scenario: str = NAME) -> None:  # fmt: skip
    """iperf3 between the VMs: TCP (with offloads on first if ``tx_on``), then with tx
    off, then 64 B UDP; recorded under ``scenario``, cases prefixed by ``kind``."""
    reach(pair)
    iperf.start_server(stack, pair, ctx.logdir / f"{scenario}-{sw.name}-iperf3.log")
    seconds = ctx.seconds(2, 10)
    label = sw.label["kernel"]

    def tcp(case: str) -> None:
        out = iperf.client(pair, seconds)
        ctx.results.add(scenario, f"{kind}, TCP, {case}", "goodput", "Gbit/s", sw.name, label,
                        iperf.parse_tcp_bps(out) / 1e9)  # fmt: skip
        time.sleep(0.5)

    if tx_on:
        tcp(TX_ON)
        for i, dev in enumerate(pair.devs):
            netns.set_tx_offload(i, dev, False)
    tcp(TX_OFF)
    udp = iperf.client(pair, seconds, "-u", "-l", "64", "-b", "0")
    pps, loss = iperf.parse_udp(udp)
    ctx.results.add(scenario, f"{kind}, UDP 64 B", "received", "kpps", sw.name, label,
                    pps / 1e3)  # fmt: skip
    ctx.results.add(scenario, f"{kind}, UDP 64 B", "loss", "%", sw.name, label, loss, "lower")


def tso_through_tunnel(sw) -> bool:
    return "tunnel-tso" not in getattr(sw, "lacks", {})


def add_ratios(ctx: Context) -> None:
    """'VXLAN / no tunnel' per switch and row, from the medians of this run."""
    rows = [k for k in ctx.results.series if k[0] == NAME and k[1].startswith(VXLAN + ", ")]
    for _, case, metric, switch in rows:
        if metric == "loss":
            continue
        tunnel = ctx.results.series[(NAME, case, metric, switch)]
        plain_case = PLAIN + case[len(VXLAN) :]
        plain = ctx.results.series.get((NAME, plain_case, metric, switch))
        if plain is None:
            continue
        ratio = ratio_of_medians(tunnel.values, plain.values)
        if ratio is not None:
            ctx.results.add(NAME, f"VXLAN / no tunnel, {case[len(VXLAN) + 2 :]}", metric, "%",
                            switch, tunnel.label, 100 * ratio)  # fmt: skip


def ratio_of_medians(a: list[float], b: list[float]) -> float | None:
    if not a or not b:
        return None
    denominator = summarize(b)["median"]
    return summarize(a)["median"] / denominator if denominator else None


def run(ctx: Context) -> None:
    def body(kind: str):
        def go(stack: ExitStack, sw, rep: int) -> None:
            tx_on = tso_through_tunnel(sw)
            if not tx_on:
                ctx.results.skip(NAME, sw.name, sw.lacks["tunnel-tso"], f"{kind}, TCP, {TX_ON}")
            pair = topology(stack, tx_offload=tx_on)
            sws = start_hypervisors(stack, sw)
            (configure_vxlan if kind == VXLAN else configure_plain)(sws)
            measure(ctx, stack, sw, pair, kind, tx_on)

        return go

    for kind in (VXLAN, PLAIN):
        ctx.alternate(NAME, "kernel", body(kind), case=kind, needs=("tunnel",), start=False)
    add_ratios(ctx)
