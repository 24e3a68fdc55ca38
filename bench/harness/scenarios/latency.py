"""Round-trip latency through the switch (veth ports) while iperf3 loads it with
64 B UDP at 10/50/90 % of the rate it just measured as the maximum."""

from __future__ import annotations

import json
import math
import subprocess
import time
from contextlib import ExitStack

from .. import iperf, netns
from ..context import Context
from ..latency_parse import ping_rtts_us
from ..procs import log, spawn
from ..stats import percentile

NAME = "latency"
TITLE = "ping round trip under 10/50/90 % load (veth)"
DESCRIPTION = (
    "Same two namespaces over veth ports as kernel-ports. First `iperf3 -u -l 64 -b 0` "
    "measures the maximum datagram rate; then, for 10/50/90 % of it, iperf3 sends at that "
    "rate while `ping -i 0.001` (1000 probes per second) runs between the hosts. "
    "p50/p99/max of the per-reply round-trip times, in µs."
)
LOADS = (10, 50, 90)


def run(ctx: Context) -> None:
    probes = int(ctx.seconds(300, 3000))

    def body(stack: ExitStack, sw, rep: int) -> None:
        pair = netns.veth_pair(stack)
        for port in pair.ports:
            sw.add_system_port(port)
        netns.check_reachable(pair)
        iperf.start_server(stack, pair, ctx.logdir / f"{NAME}-{sw.name}-iperf3.log")
        max_pps, _ = iperf.parse_udp(iperf.client(pair, ctx.seconds(2, 5), "-u", "-l", "64",
                                                  "-b", "0"))  # fmt: skip
        label = sw.label["kernel"]
        for load in LOADS:
            bits = int(max_pps * load / 100 * 64 * 8)
            duration = math.ceil(probes / 1000 + 1.5)
            load_out = ctx.logdir / f"{NAME}-{sw.name}-load-{load}.json"
            load_out.unlink(missing_ok=True)  # one JSON document per run, not appended
            with ExitStack() as loadgen:
                loader = spawn(
                    loadgen,
                    pair.ns(0, "iperf3", "-c", pair.addrs[1], "-p", str(iperf.PORT), "-u",
                            "-l", "64", "-b", str(bits), "-t", str(duration), "-J"),
                    log_path=load_out,
                )  # fmt: skip
                time.sleep(0.5)  # the load is running before the first probe
                # Into a file, not a pipe: read from a pipe, each reply would wake this
                # harness (1000 times a second), which then preempts whatever runs there,
                # such as the switch's forwarding thread.
                ping_log = ctx.logdir / f"{NAME}-{sw.name}-ping-{load}.txt"
                with open(ping_log, "w") as ping_out:
                    subprocess.run(
                        pair.ns(0, "ping", "-n", "-i", "0.001", "-c", str(probes), "-W", "1",
                                pair.addrs[1]),
                        stdout=ping_out, stderr=subprocess.STDOUT, timeout=duration + 30,
                        check=False,
                    )  # fmt: skip
                out = ping_log.read_text()
                loader.wait(timeout=duration + 30)  # the server is free for the next one
            achieved, _ = iperf.parse_udp(json.loads(load_out.read_text()))
            rtts = ping_rtts_us(out)
            if len(rtts) < probes // 2:
                raise RuntimeError(f"only {len(rtts)} of {probes} pings answered at {load}% load")
            log(f"    {load}% load ({achieved / 1e3:.0f} of {max_pps / 1e3:.0f} kpps): "
                f"{len(rtts)}/{probes} replies")  # fmt: skip
            case = f"{load}% of max UDP load"
            for name, value in (("p50", percentile(rtts, 50)), ("p99", percentile(rtts, 99)),
                                ("max", max(rtts))):  # fmt: skip
                ctx.results.add(NAME, case, f"RTT {name}", "µs", sw.name, label, value, "lower")
            ctx.results.add(NAME, case, "load achieved", "kpps", sw.name, label, achieved / 1e3)
            ctx.results.add(NAME, case, "ping loss", "%", sw.name, label,
                            100 * (1 - len(rtts) / probes), "lower")  # fmt: skip

    ctx.alternate(NAME, "kernel", body)

