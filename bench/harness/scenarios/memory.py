"""Memory: resident set of the switch's processes with 4 ports, before and after
100k rules."""

from __future__ import annotations

import time
from contextlib import ExitStack

from .. import procs
from ..context import Context
from ..flowfiles import write_many_rules
from ..procs import PREFIX, log, rss_kib

NAME = "memory"
TITLE = "RSS with 4 ports, empty table and 100k rules"
DESCRIPTION = (
    "The switch gets 4 veth ports (bn-m1…bn-m4, peers up, no traffic). RSS (VmRSS) summed "
    "over its processes — ferrovs: vswitchd (it holds its database); OVS (netdev datapath): "
    "ovs-vswitchd + ovsdb-server — with the default table, then after 100,000 "
    "`ip,nw_dst=…` rules (10,000 with --quick) are installed, in MiB, once RSS has "
    "settled (two samples a second apart within 0.5 MiB, at most 15 s)."
)
PORTS = 4


def _rss_mib(sw) -> float:
    return sum(rss_kib(pid) for pid in sw.memory_pids().values()) / 1024


def _settled_rss_mib(sw, step: float = 1.0, tolerance: float = 0.5, limit: float = 15.0) -> float:
    """RSS once it stops moving: sampled every ``step`` s (at least twice) until two
    samples in a row differ by less than ``tolerance`` MiB, or ``limit`` s passed. A
    daemon may still be freeing the buffers of a burst of flow_mods (ferrovs trims its
    heap from a once-a-second timer), so one early sample measures the burst, not the
    rules."""
    waited = 2 * step
    time.sleep(2 * step)
    prev = _rss_mib(sw)
    while waited < limit:
        time.sleep(step)
        waited += step
        cur = _rss_mib(sw)
        if abs(cur - prev) < tolerance:
            return cur
        prev = cur
    return prev


def run(ctx: Context) -> None:
    rules = 10_000 if ctx.quick else 100_000

    def body(stack: ExitStack, sw, rep: int) -> None:
        sw.memory_pids()  # switches without processes skip here
        names = [f"{PREFIX}-m{i + 1}" for i in range(PORTS)]
        for name in names:
            procs.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"])
            stack.callback(procs.run, ["ip", "link", "del", name], check=False)
            procs.run(["ip", "link", "set", name, "up"])
            procs.run(["ip", "link", "set", f"{name}p", "up"])
            sw.add_system_port(name)
        time.sleep(2)
        label = sw.label["kernel"]
        idle = _rss_mib(sw)
        path = ctx.logdir / f"{NAME}-{sw.name}.flows"
        total = write_many_rules(path, rules, sw.ofport(names[1]), [])
        sw.add_flows(str(path))
        if sw.flow_count() < total:
            raise RuntimeError("not every rule was installed")
        loaded = _settled_rss_mib(sw)
        log(f"    RSS {idle:.1f} MiB idle, {loaded:.1f} MiB with {total} rules")
        ctx.results.add(NAME, f"{PORTS} ports, default table", "RSS", "MiB", sw.name, label,
                        idle, "lower")  # fmt: skip
        ctx.results.add(NAME, f"{PORTS} ports, {total:,} rules", "RSS", "MiB", sw.name,
                        label, loaded, "lower")  # fmt: skip

    ctx.alternate(NAME, "kernel", body, needs=("process", "openflow"))
