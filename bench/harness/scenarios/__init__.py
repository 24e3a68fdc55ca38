"""One module per scenario family; each has NAME, TITLE, DESCRIPTION and run(ctx), and
optionally QUICK = False to leave it out of --quick unless named with --only."""

from __future__ import annotations

from . import (
    conntrack,
    flow_programming,
    flow_scaling,
    kernel_ports,
    latency,
    memory,
    ovn,
    ovn_traffic,
    restart,
    tunnel,
    vhost_loop,
)

ALL = [
    vhost_loop,
    flow_scaling,
    kernel_ports,
    flow_programming,
    latency,
    memory,
    restart,
    conntrack,
    ovn,
    tunnel,
    ovn_traffic,
]
BY_NAME = {m.NAME: m for m in ALL}
