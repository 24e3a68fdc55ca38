"""vhost-user loop: testpmd's two virtio_user ports in an io loop through two
vhost-user ports of the switch (64 B frames, one forwarding core each)."""

from __future__ import annotations

import time
from contextlib import ExitStack

from ..context import Context
from ..testpmd import Testpmd

NAME = "vhost-loop"
TITLE = "testpmd io loop through two vhost-user ports"
DESCRIPTION = (
    "testpmd (2 virtio_user ports, io forwarding, `start tx_first`, forwarding on core 0) "
    "loops 64 B frames through two dpdkvhostuser ports of the switch (forwarding thread "
    "on core 1, default NORMAL flow). Mpps each direction = what the receiving testpmd "
    "port counted; loss = 1 − received/sent over the window."
)


def run(ctx: Context) -> None:
    warmup = ctx.seconds(1, 3)
    window = ctx.seconds(3, 10)

    def body(stack: ExitStack, sw, rep: int) -> None:
        socks = (sw.add_vhost_port("vhu0"), sw.add_vhost_port("vhu1"))
        tp = Testpmd(stack, socks, "io", ctx.logdir / f"{NAME}-{sw.name}-testpmd.log")
        time.sleep(ctx.seconds(2, 3))
        tp.start_loop()
        time.sleep(warmup)
        w = tp.measure(window)
        label = sw.label["vhost"]
        add = ctx.results.add
        add(NAME, "64 B, port0→port1", "throughput", "Mpps", sw.name, label, w.rx_pps(1) / 1e6)
        add(NAME, "64 B, port1→port0", "throughput", "Mpps", sw.name, label, w.rx_pps(0) / 1e6)
        add(NAME, "64 B, both directions", "throughput", "Mpps", sw.name, label,
            w.total_rx_pps() / 1e6)  # fmt: skip
        add(NAME, "64 B, port0→port1", "loss", "%", sw.name, label, 100 * w.loss(0, 1), "lower")
        add(NAME, "64 B, port1→port0", "loss", "%", sw.name, label, 100 * w.loss(1, 0), "lower")

    ctx.alternate(NAME, "vhost", body)
