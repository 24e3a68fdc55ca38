"""A switch restart for an upgrade, with OVS's flow-restore-wait procedure, under a
steady UDP stream between two namespaces: how much traffic the restart costs."""

from __future__ import annotations

import re
import threading
import time
from contextlib import ExitStack

from .. import iperf, netns
from ..context import Context

NAME = "restart"
TITLE = "vswitchd restart with flow-restore-wait under a UDP stream (veth)"
RATE_PPS = 5_000
INTERVAL = 0.1
SIZE = 1000
DESCRIPTION = (
    "Hosts bn-h1/bn-h2 on veth ports, two explicit flows (in_port=1→2, 2→1, no NORMAL). "
    f"`iperf3 -u -l {SIZE} -b {RATE_PPS * SIZE * 8 // 1_000_000}M` ({RATE_PPS // 1000} kpps) "
    "runs from h1 to h2; a third of the way in, the hot-upgrade procedure of "
    "ovs-vswitchd.conf.db(5) runs: dump the flows, set other_config:flow-restore-wait=true, "
    "stop vswitchd (SIGTERM) and start it again on the same DB, add the saved flows, "
    "remove the key. 'traffic lost' = datagrams lost / send rate over the whole run (the "
    "restart plus any steady loss); 'longest gap' = the longest run of 0.1 s receiver "
    "intervals with nothing received; 'procedure' = wall time of the whole procedure."
)


def longest_gap(doc: dict) -> float:
    """The longest run of receiver intervals in which no datagram arrived, in seconds."""
    received = receiver_intervals(doc)
    if not received:
        raise ValueError("iperf3 gave no receiver intervals (--get-server-output)")
    longest = run_len = 0.0
    for seconds, packets in received:
        if packets == 0:
            run_len += seconds
            longest = max(longest, run_len)
        else:
            run_len = 0.0
    return longest


# A receiver interval line of iperf3's text report: "[  5]   1.00-1.10  sec ... 3/2000 (0.15%)".
INTERVAL_LINE = re.compile(r"\]\s+([\d.]+)-([\d.]+)\s+sec\s.*?(\d+)/(\d+)\s+\(")


def receiver_intervals(doc: dict) -> list[tuple[float, int]]:
    """(seconds, datagrams received) per receiver interval: from the server's JSON when it
    ran with -J, else from its text report."""
    server = doc.get("server_output_json") or {}
    if server.get("intervals"):
        return [
            (float(iv["sum"].get("seconds", INTERVAL)), int(iv["sum"].get("packets", 0)))
            for iv in server["intervals"]
        ]
    out = []
    for line in (doc.get("server_output_text") or "").splitlines():
        m = INTERVAL_LINE.search(line)
        if m and "receiver" not in line and "sender" not in line:
            start, end, lost, total = m.groups()
            seconds = float(end) - float(start)
            if seconds <= 2 * INTERVAL:  # not the whole-run summary
                out.append((seconds, max(0, int(total) - int(lost))))
    return out


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
        iperf.start_server(stack, pair, ctx.logdir / f"{NAME}-{sw.name}-iperf3.log",
                           "-i", str(INTERVAL))  # fmt: skip
        seconds = ctx.seconds(6, 12)
        result: dict = {}

        def stream() -> None:
            rate = f"{RATE_PPS * SIZE * 8}"
            result["doc"] = iperf.client(pair, seconds, "-u", "-l", str(SIZE), "-b", rate,
                                         "-i", str(INTERVAL), "--get-server-output")  # fmt: skip

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
        ctx.results.add(NAME, case, "longest gap", "s", sw.name, label, longest_gap(doc), "lower")
        ctx.results.add(NAME, case, "procedure", "s", sw.name, label, procedure, "lower")
        netns.check_reachable(pair)

    ctx.alternate(NAME, "kernel", body, needs=("restart",))
