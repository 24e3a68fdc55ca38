"""A switch restart for an upgrade, with OVS's flow-restore-wait procedure, under a
steady UDP stream between two namespaces: how much traffic the restart costs."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

from .. import iperf, netns
from ..context import Context

NAME = "restart"
TITLE = "vswitchd restart with flow-restore-wait under a UDP stream (veth)"
RATE_PPS = 20_000
SIZE = 1000
DESCRIPTION = (
    "Hosts bn-h1/bn-h2 on veth ports, two explicit flows (in_port=1→2, 2→1, no NORMAL). "
    f"`iperf3 -u -l {SIZE} -b {RATE_PPS * SIZE * 8 // 1_000_000}M` ({RATE_PPS // 1000} kpps) "
    "runs from h1 to h2; a third of the way in, the hot-upgrade procedure of "
    "ovs-vswitchd.conf.db(5) runs: dump the flows, set other_config:flow-restore-wait=true, "
    "stop vswitchd (SIGTERM) and start it again on the same DB, add the saved flows, "
    "remove the key. 'traffic lost' = datagrams lost / send rate: the seconds of traffic "
    "the restart cost. 'procedure' = wall time of the whole procedure."
)


def run(ctx: Context) -> None:
    def body(stack: ExitStack, sw, rep: int) -> None:
        pair = netns.veth_pair(stack, tx_offload=True)
        for port in pair.ports:
            sw.add_system_port(port)
        a, b = (sw.ofport(p) for p in pair.ports)
        flows = ctx.logdir / f"{NAME}-{sw.name}-flows.txt"
        flows.write_text(f"in_port={a},actions=output:{b}\nin_port={b},actions=output:{a}\n")
        sw.del_flows()
        sw.add_flows(str(flows))
        netns.check_reachable(pair)
        iperf.start_server(stack, pair, ctx.logdir / f"{NAME}-{sw.name}-iperf3.log")
        seconds = ctx.seconds(6, 12)
        result: dict = {}

        def stream() -> None:
            rate = f"{RATE_PPS * SIZE * 8}"
            result["doc"] = iperf.client(pair, seconds, "-u", "-l", str(SIZE), "-b", rate)

        t = threading.Thread(target=stream)
        t.start()
        time.sleep(seconds / 3)
        t0 = time.monotonic()
        try:
            sw.restart_with_flow_restore(stack)
        finally:
            procedure = time.monotonic() - t0
            t.join()
        doc = result.get("doc")
        if doc is None:
            raise RuntimeError("iperf3 client did not finish")
        s = doc.get("end", {}).get("sum", {})
        sent, lost = float(s.get("packets", 0)), float(s.get("lost_packets", 0))
        if sent <= 0:
            raise ValueError("iperf3 sent nothing")
        case = f"veth, UDP {SIZE} B at {RATE_PPS // 1000} kpps"
        label = sw.label["kernel"]
        ctx.results.add(NAME, case, "traffic lost", "s", sw.name, label,
                        lost / (sent / seconds), "lower")  # fmt: skip
        ctx.results.add(NAME, case, "procedure", "s", sw.name, label, procedure, "lower")
        netns.check_reachable(pair)

    ctx.alternate(NAME, "kernel", body, needs=("restart",))
