"""Stock OVN, second figure: throughput between two VMs on different hosts through the
full OVN pipeline with ACLs (conntrack) and Geneve. The hypervisors, VMs and underlay
are the tunnel scenario's; OVN central and one ovn-controller per hypervisor drive
them."""

from __future__ import annotations

import time
from contextlib import ExitStack

from .. import netns, ovn
from ..context import Context
from ..procs import PREFIX, log, wait_for
from . import tunnel

NAME = "ovn-traffic"
TITLE = "OVN: two VMs on different hosts, Geneve, allow-related ACL (conntrack)"
QUICK = False  # OVN central, two switches and two ovn-controllers: beyond --quick's budget

KIND = "OVN Geneve + ACLs"
LS = f"{PREFIX}-ls"
LSPS = ("vm1", "vm2")
SYSTEM_IDS = tuple(f"{PREFIX}-hv{s}" for s in tunnel.SIDES)
INT_BRIDGES = tuple(f"{PREFIX}-i{s}" for s in tunnel.SIDES)

DESCRIPTION = (
    "The tunnel scenario's hypervisors (namespaces, each with its own switch; the underlay "
    "bridge's internal port holds the hypervisor's address) under stock OVN from Debian: "
    "NB/SB ovsdb-server and ovn-northd in the root namespace, one ovn-controller per "
    "hypervisor running in its namespace with OVS_RUNDIR = that switch's run directory "
    "(ovn-encap-type=geneve, ovn-encap-ip = the underlay address). ovn-controller creates "
    f"the integration bridge ({INT_BRIDGES[0]}/{INT_BRIDGES[1]}) and its Geneve tunnel "
    f"port. One logical switch {LS} with one port per host ({LSPS[0]} bound to VM "
    f"{netns.HOSTS[0]}'s veth on hypervisor a, {LSPS[1]} to {netns.HOSTS[1]}'s on b, by "
    "external_ids:iface-id), each with its MAC/IP and port security; ACLs on the switch: "
    "to-lport drop of TCP 8080 (priority 1002) and allow-related for ip4 from-lport and "
    "to-lport (1001), so every packet goes through conntrack on both hosts. Measured once "
    "both ports are ovn-installed and ping: iperf3 TCP receiver goodput with the VMs' "
    "`ethtool -K eth0 tx off` (the tunnel scenario's comparable case), and "
    "`iperf3 -u -l 64 -b 0`. No forwarding core is pinned: two switches, two "
    "ovn-controllers, northd, both iperf3 ends and the kernel share the 2 cores."
)


def nb_args() -> list[str]:
    """One ovn-nbctl transaction: the logical switch, its two VM ports (addresses and
    port security) and its ACLs."""
    args = ["ls-add", LS]
    for i, lp in enumerate(LSPS):
        addr = f"{netns.MACS[i]} {netns.ADDRS[i]}"
        args += ["--", "lsp-add", LS, lp, "--", "lsp-set-addresses", lp, addr,
                 "--", "lsp-set-port-security", lp, addr]  # fmt: skip
    outports = " || ".join(f'outport == "{lp}"' for lp in LSPS)
    args += ["--", "acl-add", LS, "to-lport", "1002", f"({outports}) && tcp && tcp.dst == 8080",
             "drop",
             "--", "acl-add", LS, "to-lport", "1001", "ip4", "allow-related",
             "--", "acl-add", LS, "from-lport", "1001", "ip4", "allow-related"]  # fmt: skip
    return args


def run(ctx: Context) -> None:
    why = ovn.missing()
    if why:
        for name in ctx.switch_names:
            ctx.results.skip(NAME, name, why)
        log(f"{NAME}: skipped: {why}")
        return

    def body(stack: ExitStack, sw, rep: int) -> None:
        pair = tunnel.topology(stack, tx_offload=False)
        sws = tunnel.start_hypervisors(stack, sw)
        central = ovn.Central(stack)
        for i, s in enumerate(sws):
            tunnel.configure_underlay(s, i)
            s.vsctl(*ovn.chassis_settings(central, SYSTEM_IDS[i], INT_BRIDGES[i],
                                          tunnel.UNDERLAY[i]))  # fmt: skip
            ovn.start_controller(stack, central, f"unix:{s.rundir}/db.sock", s.rundir,
                                 SYSTEM_IDS[i], netns=tunnel.HYPERVISORS[i])  # fmt: skip
        central.nbctl(*nb_args())
        for i, s in enumerate(sws):
            integ = INT_BRIDGES[i]
            wait_for(f"ovn-controller's {integ}", lambda: (s.rundir / f"{integ}.mgmt").exists(),
                     60)  # fmt: skip
            port = pair.ports[i]
            s.vsctl("add-port", integ, port, "--", "set", "Interface", port,
                    f"external_ids:iface-id={LSPS[i]}")  # fmt: skip
        for i, s in enumerate(sws):
            port = pair.ports[i]
            wait_for(f"{port} ovn-installed",
                     lambda: ovn.installed(s.vsctl("get", "Interface", port, "external_ids")),
                     60)  # fmt: skip
        up = ["--bare", "--columns=up", "list", "Logical_Switch_Port"]
        wait_for("both logical ports up", lambda: ovn.count_up(central.nbctl(*up)) >= 2, 60)
        # The Geneve tunnel ports ovn-controller creates towards the other chassis.
        for i, s in enumerate(sws):
            wait_for(f"hypervisor {tunnel.SIDES[i]}'s Geneve port",
                     lambda: tunnel.UNDERLAY[1 - i] in s.vsctl(
                         "--bare", "--columns=options", "find", "Interface", "type=geneve"),
                     60)  # fmt: skip
        time.sleep(1)
        tunnel.measure(ctx, stack, sw, pair, KIND, tx_on=False, scenario=NAME)
        # The ACLs sent the VMs' traffic through conntrack on both hosts.
        for i, s in enumerate(sws):
            if not tracked(s.appctl("dpctl/dump-conntrack")):
                raise RuntimeError(f"no conntrack entry between the VMs on hypervisor "
                                   f"{tunnel.SIDES[i]}: the ACLs did not apply")  # fmt: skip

    ctx.alternate(NAME, "kernel", body, needs=("tunnel", "openflow"), start=False)


def tracked(dump: str) -> bool:
    """Whether ``dpctl/dump-conntrack`` lists a connection between the two VMs."""
    x, y = netns.ADDRS
    ways = (f"src={x},dst={y}", f"src={y},dst={x}")
    return any(w in line for line in dump.splitlines() for w in ways)
