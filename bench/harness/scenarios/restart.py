"""A switch restart for an upgrade, with OVS's flow-restore-wait procedure, under a
steady UDP stream between two namespaces: how much traffic the restart costs."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from .. import iperf, netns
from ..context import Context
from ..procs import PREFIX, log, wait_for
from ..testpmd import Testpmd

NAME = "restart"
TITLE = "vswitchd restart with flow-restore-wait under a UDP stream (veth) and a testpmd stream (vhost-user client mode)"
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
    "intervals with nothing received; 'procedure' = wall time of the whole procedure. "
    "vhost-user variant: the same procedure on two dpdkvhostuserclient ports (the switch "
    "connects to sockets testpmd listens on: `net_virtio_user…,server=1`, as QEMU with "
    "`server=on`), testpmd `flowgen` (one flow, received frames counted and dropped) sending 64 B frames on both ports as fast as it can; "
    "'longest gap' = the longest time testpmd's RX-packets counter (either port, read "
    "every ~50 ms with `show port stats all`) did not move; 'traffic lost' = the restart "
    "window minus what arrived in it at the rate measured before the restart."
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


def counter_gap(samples: list[tuple[float, int]]) -> float:
    """The longest time a monotonic counter, read at (time, value) ``samples``, stayed
    the same: from the first reading of a value to the last reading of it."""
    longest = 0.0
    start = 0
    for i in range(1, len(samples) + 1):
        if i == len(samples) or samples[i][1] != samples[start][1]:
            longest = max(longest, samples[i - 1][0] - samples[start][0])
            start = i
    return longest


def lost_seconds(samples: list[tuple[float, int]], rate: float) -> float:
    """Seconds of traffic at ``rate`` (packets/s) missing from ``samples`` of a
    cumulative counter: elapsed time minus what arrived divided by the rate."""
    if len(samples) < 2 or rate <= 0:
        return 0.0
    elapsed = samples[-1][0] - samples[0][0]
    received = samples[-1][1] - samples[0][1]
    return max(0.0, elapsed - received / rate)


def keep_logs(sw, dest: Path) -> None:
    """Copies the switch's logs (both runs, before and after the restart) out of its
    run directory before it is removed."""
    rundir = getattr(sw, "rundir", None)
    if rundir is None or not Path(rundir).is_dir():
        return
    dest.mkdir(parents=True, exist_ok=True)
    for f in Path(rundir).glob("*.log"):
        shutil.copy(f, dest / f.name)


def tail_rate(samples: list[tuple[float, int]], seconds: float) -> float:
    """Packets per second over the last ``seconds`` of cumulative ``samples``."""
    last_t, last_n = samples[-1]
    first = next(((t, n) for t, n in samples if last_t - t <= seconds), samples[0])
    dt = last_t - first[0]
    return (last_n - first[1]) / dt if dt > 0 else 0.0


VHOST_SIZE = 64
RESUME_TIMEOUT = 30.0


def run_vhost(ctx: Context) -> None:
    settle = ctx.seconds(2, 4)
    after = ctx.seconds(3, 5)

    def body(stack: ExitStack, sw, rep: int) -> None:
        stack.callback(keep_logs, sw, ctx.logdir / f"{NAME}-vhost-{sw.name}-rep{rep}")
        sockdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-rsv-", dir="/tmp"))
        stack.callback(shutil.rmtree, sockdir, ignore_errors=True)
        socks = (str(sockdir / "tp0.sock"), str(sockdir / "tp1.sock"))
        tp = Testpmd(stack, socks, "flowgen",
                     ctx.logdir / f"{NAME}-vhost-{sw.name}-testpmd.log", ("--flowgen-flows=1",),
                     server=True)  # fmt: skip
        names = ("rsvhu0", "rsvhu1")
        # testpmd creates each socket in turn and waits for its client before the next.
        for name, sock in zip(names, socks):
            wait_for(f"testpmd socket {sock}", Path(sock).exists, 30, tp.proc)
            sw.add_vhost_client_port(name, sock)
        tp.wait_ready(60)
        tp.command(f"set txpkts {VHOST_SIZE - 4}")
        a, b = (sw.ofport(n) for n in names)
        flows = ctx.logdir / f"{NAME}-vhost-{sw.name}-flows.txt"
        flows.write_text(f"in_port={a},actions=output:{b}\nin_port={b},actions=output:{a}\n")
        sw.del_flows()
        sw.add_flows(str(flows))
        time.sleep(settle)
        tp.start_generating(timeout=30)
        time.sleep(1.0)
        before = tp.measure(ctx.seconds(1, 2))
        rates = [before.rx_pps(0), before.rx_pps(1)]
        if min(rates) <= 0:
            raise RuntimeError(f"testpmd: one direction carries nothing before the restart: {rates}")
        samples: list[tuple[float, dict[int, int]]] = []
        done = threading.Event()
        err: list[BaseException] = []

        def restart() -> None:
            try:
                sw.restart_with_flow_restore(stack)
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                err.append(e)
            finally:
                done.set()

        t0, first = tp.stats()
        samples.append((t0, {p: first[p]["RX-packets"] for p in (0, 1)}))
        t = threading.Thread(target=restart)
        t.start()
        procedure_end = None
        while True:
            ts, ports = tp.stats()
            samples.append((ts, {p: ports[p]["RX-packets"] for p in (0, 1)}))
            if done.is_set() and procedure_end is None:
                procedure_end = ts
            moving = len(samples) >= 2 and all(
                samples[-1][1][p] > samples[-2][1][p] for p in (0, 1)
            )
            if procedure_end is not None and ts - procedure_end >= after and moving:
                break
            if procedure_end is not None and ts - procedure_end > RESUME_TIMEOUT:
                break
            if ts - t0 > 120:
                break
            time.sleep(0.05)
        t.join()
        if err:
            raise err[0]
        if procedure_end is None:
            raise RuntimeError("the restart procedure did not finish within 120 s")
        procedure = procedure_end - t0
        per_port = [[(ts, c[p]) for ts, c in samples] for p in (0, 1)]
        gap = max(counter_gap(s) for s in per_port)
        lost = max(lost_seconds(s, r) for s, r in zip(per_port, rates))
        resumed = [s[-1][1] - s[-2][1] > 0 for s in per_port]
        if not all(resumed):
            raise RuntimeError(
                f"traffic did not resume within {RESUME_TIMEOUT} s of the procedure's end "
                f"(per port: {resumed}, longest gap so far {gap:.1f} s)"
            )
        # The rate once traffic is back (the last second of readings), against the
        # rate before: 'traffic lost' counts a slower switch after the restart too.
        after_rate = min(tail_rate(s, 1.0) for s in per_port)
        ratio = after_rate / min(rates)
        log(f"    {sw.name}: gap {gap:.3f} s, lost {lost:.3f} s, procedure {procedure:.3f} s, "
            f"rates {rates[0] / 1e6:.2f}/{rates[1] / 1e6:.2f} Mpps before, "
            f"{after_rate / 1e6:.2f} after")  # fmt: skip
        with open(ctx.logdir / f"{NAME}-vhost-{sw.name}-rep{rep}-samples.csv", "w") as out:
            for ts, c in samples:
                out.write(f"{ts - t0:.3f},{c[0]},{c[1]}\n")
        case = f"vhost-user client mode, testpmd flowgen {VHOST_SIZE} B"
        label = sw.label["vhost"]
        ctx.results.add(NAME, case, "longest gap", "s", sw.name, label, gap, "lower")
        ctx.results.add(NAME, case, "traffic lost", "s", sw.name, label, lost, "lower")
        ctx.results.add(NAME, case, "procedure", "s", sw.name, label, procedure, "lower")
        ctx.results.add(NAME, case, "rate after / before", "%", sw.name, label, 100 * ratio)

    ctx.alternate(NAME, "vhost", body, case="vhost-user", needs=("restart",))


# $BENCH_RESTART_VARIANTS: which variants to run (default "veth,vhost").
VARIANTS = os.environ.get("BENCH_RESTART_VARIANTS", "veth,vhost").split(",")


def run(ctx: Context) -> None:
    if "veth" in VARIANTS:
        run_veth(ctx)
    if "vhost" in VARIANTS:
        run_vhost(ctx)


def run_veth(ctx: Context) -> None:
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

    ctx.alternate(NAME, "kernel", body, case="veth", needs=("restart",))
