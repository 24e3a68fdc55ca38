"""OpenFlow flow files in ovs-ofctl syntax, shared by every switch with a flow table."""

from __future__ import annotations

import ipaddress
from pathlib import Path

# testpmd's flowgen engine varies the IPv4 destination from 10.253.0.0 upwards.
FLOWGEN_BASE = ipaddress.IPv4Address("10.253.0.0")


def flowgen_dst(i: int) -> str:
    return str(FLOWGEN_BASE + i)


def write_normal(path: Path) -> int:
    """One rule: everything goes to the NORMAL (L2 learning) pipeline."""
    path.write_text("priority=0,actions=NORMAL\n")
    return 1


def write_rule_per_flow(
    path: Path, flows: int, ports: tuple[int, int], extra: list[str] | None = None
) -> int:
    """Per flowgen destination one exact rule per direction (in_port + nw_dst, output to
    the other port), everything else dropped; ``extra`` lines come before the drop rule.
    Explicit outputs keep MAC learning (testpmd's flowgen sends the same source MAC on
    both ports) out of the measurement. Returns the rule count."""
    a, b = ports
    with path.open("w") as f:
        for i in range(flows):
            dst = flowgen_dst(i)
            f.write(f"priority=100,in_port={a},ip,nw_dst={dst},actions=output:{b}\n")
            f.write(f"priority=100,in_port={b},ip,nw_dst={dst},actions=output:{a}\n")
        for line in extra or []:
            f.write(line + "\n")
        f.write("priority=0,actions=drop\n")
    return 2 * flows + len(extra or []) + 1


def write_many_rules(path: Path, rules: int, out_port: int, extra: list[str]) -> int:
    """``rules`` exact-destination rules (10.253.0.0+i, output to ``out_port``), then
    ``extra`` lines last, so the traffic they let through proves the whole file is in."""
    with path.open("w") as f:
        for i in range(rules):
            f.write(f"priority=100,ip,nw_dst={flowgen_dst(i)},actions=output:{out_port}\n")
        for line in extra:
            f.write(line + "\n")
    return rules + len(extra)


def save_flows(dump: str) -> str:
    """A dump-flows listing as an add-flows file (what ovs-save keeps)."""
    return "".join(
        line.strip() + "\n"
        for line in dump.splitlines()
        if "actions=" in line and "_FLOW reply" not in line
    )
