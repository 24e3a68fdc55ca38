"""One module per scenario family; each has NAME, TITLE, DESCRIPTION and run(ctx)."""

from __future__ import annotations

from . import (
    conntrack,
    flow_programming,
    flow_scaling,
    kernel_ports,
    latency,
    memory,
    ovn,
    restart,
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
]
BY_NAME = {m.NAME: m for m in ALL}
