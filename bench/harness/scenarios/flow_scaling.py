"""Flow-count scaling: testpmd's flowgen engine sends 64 B UDP frames to N distinct
IPv4 destinations through two vhost-user ports, with a single NORMAL rule or with
one OpenFlow rule per flow."""

from __future__ import annotations

import time
from contextlib import ExitStack

from ..context import Context
from ..flowfiles import write_normal, write_rule_per_flow
from ..procs import log
from ..testpmd import Testpmd

NAME = "flow-scaling"
TITLE = "throughput against the number of distinct flows (vhost-user, 64 B)"
DESCRIPTION = (
    "testpmd `--forward-mode=flowgen --flowgen-flows=N` on both virtio_user ports "
    "(64 B UDP, destinations 10.253.0.0+i) through two dpdkvhostuser ports; the switch's "
    "table is either one `actions=NORMAL` rule or 2N rules "
    "`in_port=A,ip,nw_dst=…,actions=output:B` (both directions) plus a drop rule. Throughput = frames both testpmd ports received per second; fraction = "
    "that over the 1-flow figure of the same repetition and table."
)
FULL_FLOWS = [1, 1_000, 100_000, 1_000_000]
QUICK_FLOWS = [1, 1_000]
TABLES = ["NORMAL", "rule per flow"]


def run(ctx: Context) -> None:
    counts = ctx.flow_counts or (QUICK_FLOWS if ctx.quick else FULL_FLOWS)
    window = ctx.seconds(2, 5)

    def body(stack: ExitStack, sw, rep: int) -> None:
        socks = (sw.add_vhost_port("vhu0"), sw.add_vhost_port("vhu1"))
        label = sw.label["vhost"]
        ports = (sw.ofport("vhu0"), sw.ofport("vhu1"))
        for table in TABLES:
            base = None
            for n in counts:
                path = ctx.logdir / f"flows-{sw.name}.txt"
                if table == "NORMAL":
                    rules = write_normal(path)
                else:
                    rules = write_rule_per_flow(path, n, ports)
                sw.del_flows()
                t0 = time.monotonic()
                # Install time is not what this measures: let each switch take the
                # file its fastest way (for Open vSwitch, one bundle).
                sw.add_flows(str(path), bundle=True)
                installed = sw.flow_count()
                if installed < rules:
                    raise RuntimeError(f"{installed} of {rules} rules installed")
                log(f"    {table}, {n} flows: {rules} rules in {time.monotonic() - t0:.1f}s")
                with ExitStack() as point:
                    tp = Testpmd(point, socks, "flowgen",
                                 ctx.logdir / f"{NAME}-{sw.name}-testpmd.log",
                                 extra=(f"--flowgen-flows={n}",))  # fmt: skip
                    # Sending before the switch enabled the queues can wedge the rings.
                    time.sleep(3)
                    tp.start_generating()
                    # Let every flow be seen at least once before measuring.
                    time.sleep(min(ctx.seconds(2, 15), max(ctx.seconds(1, 3), n / 100_000)))
                    w = tp.measure(window)
                mpps = w.total_rx_pps() / 1e6
                case = f"{table}, {n} flows"
                ctx.results.add(NAME, case, "throughput", "Mpps", sw.name, label, mpps)
                if n == counts[0] == 1:
                    base = mpps
                if base:
                    ctx.results.add(NAME, case, "fraction of 1 flow", "×", sw.name, label,
                                    mpps / base)  # fmt: skip
                if mpps == 0:
                    raise RuntimeError(f"nothing forwarded with {case}")

    ctx.alternate(NAME, "vhost", body)
