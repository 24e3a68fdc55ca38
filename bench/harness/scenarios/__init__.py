"""One module per scenario family; each has NAME, TITLE, DESCRIPTION and run(ctx)."""

from __future__ import annotations

from . import flow_programming, flow_scaling, kernel_ports, latency, memory, vhost_loop

ALL = [vhost_loop, flow_scaling, kernel_ports, flow_programming, latency, memory]
BY_NAME = {m.NAME: m for m in ALL}
