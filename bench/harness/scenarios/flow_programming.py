"""Flow programming: how long until 100k rules from one `add-flows` file are installed
and the traffic that only the last lines allow is forwarded."""

from __future__ import annotations

import time
from contextlib import ExitStack

from .. import netns, procs
from ..context import Context
from ..flowfiles import write_many_rules
from ..procs import log

NAME = "flow-programming"
TITLE = "100k rules through add-flows (plain and --bundle) until installed and forwarding"
DESCRIPTION = (
    "Two namespaces on veth ports, flow table emptied with `del-flows`. One file of "
    "100,000 rules `ip,nw_dst=10.253.x.y,actions=output:2` followed by two rules that "
    "let ARP and 10.77.0.0/24 through (NORMAL) goes in with `ofctl add-flows br0 FILE` "
    "(`ovs-ofctl add-flows` for OVS), then again, after `del-flows`, with `--bundle` (one "
    "atomic OpenFlow bundle). Times from the start of add-flows to: its exit, "
    "`dump-flows` listing every rule, and the first ping answered between the hosts."
)
FULL_RULES = 100_000
QUICK_RULES = 10_000


def run(ctx: Context) -> None:
    rules = QUICK_RULES if ctx.quick else FULL_RULES

    def body(stack: ExitStack, sw, rep: int) -> None:
        pair = netns.veth_pair(stack)
        for port in pair.ports:
            sw.add_system_port(port)
        out_port = sw.ofport(pair.ports[1])
        path = ctx.logdir / f"{NAME}-{sw.name}.flows"
        total = write_many_rules(path, rules, out_port, [
            "priority=200,arp,actions=NORMAL",
            "priority=200,ip,nw_dst=10.77.0.0/24,actions=NORMAL",
        ])  # fmt: skip
        for bundle in (False, True):
            program(sw, pair, path, total, bundle)

    def program(sw, pair, path, total: int, bundle: bool) -> None:
        sw.del_flows()
        # OVS revalidates its datapath flows a moment after del-flows: give
        # the emptied table up to 5 s to stop the traffic.
        ping = pair.ns(0, "ping", "-c", "1", "-W", "1", pair.addrs[1])
        t_del = time.monotonic()
        while procs.run(ping, check=False).count(" 0% packet loss"):
            if time.monotonic() - t_del > 5:
                raise RuntimeError("hosts still reach each other with an empty flow table")
        t0 = time.monotonic()
        sw.add_flows(str(path), bundle=bundle)
        t_cmd = time.monotonic() - t0
        while (count := sw.flow_count()) < total:
            if time.monotonic() - t0 > 300:
                raise RuntimeError(f"only {count} of {total} rules after 300 s")
            time.sleep(0.2)
        t_listed = time.monotonic() - t0
        while " 0% packet loss" not in procs.run(
            pair.ns(0, "ping", "-c", "1", "-W", "0.2", pair.addrs[1]), check=False
        ):
            if time.monotonic() - t0 > 300:
                raise RuntimeError("no forwarding 300 s after add-flows")
        t_fwd = time.monotonic() - t0
        how = " (--bundle)" if bundle else ""
        log(f"    {total} rules{how}: add-flows {t_cmd:.2f}s, listed {t_listed:.2f}s, "
            f"forwarding {t_fwd:.2f}s")  # fmt: skip
        label = sw.label["kernel"]
        case = f"{total:,} rules" + (", --bundle" if bundle else "")
        add = ctx.results.add
        add(NAME, case, "add-flows exits", "s", sw.name, label, t_cmd, "lower")
        add(NAME, case, "all listed by dump-flows", "s", sw.name, label, t_listed, "lower")
        add(NAME, case, "forwarding", "s", sw.name, label, t_fwd, "lower")
        add(NAME, case, "rate until forwarding", "k rules/s", sw.name, label,
            total / t_fwd / 1e3)  # fmt: skip

    ctx.alternate(NAME, "kernel", body, needs=("openflow",))
