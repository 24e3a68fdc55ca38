"""vhost-user loop: testpmd's two virtio_user ports in an io loop through two
vhost-user ports of the switch (64 B and 1518 B frames, one forwarding core each)."""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

from ..context import Context
from ..procs import log
from ..testpmd import Testpmd

NAME = "vhost-loop"
TITLE = "testpmd io loop through two vhost-user ports"
DESCRIPTION = (
    "testpmd (2 virtio_user ports, io forwarding, `start tx_first 4`, forwarding on core 0) "
    "loops 64 B and then 1518 B frames (`set txpkts`) through two dpdkvhostuser ports of "
    "the switch (forwarding thread on core 1, default NORMAL flow); then 64 B again with "
    "`start tx_first` (one burst per port: a loop bound by its round trip). "
    "Mpps each direction = "
    "what the receiving testpmd port counted; loss = 1 − received/sent over the window."
)

# The loops: (frame size as testpmd's `set txpkts` plus the 4-byte FCS, bursts each port
# starts with: `start tx_first N`). Four bursts keep the loop full; one measures a loop
# bound by its round trip through the switch.
LOOPS = ((64, 4), (1518, 4), (64, 1))
# $BENCH_PERF_DIR: `perf record -g` the forwarding thread of every switch that
# has one during each window, into DIR/<switch>-<size>B-rep<N>.data (slows the
# switch a little: use it for profiles, not for figures).
PERF_DIR = os.environ.get("BENCH_PERF_DIR", "")
# $BENCH_PMD_STATS_DIR: `appctl dpif-netdev/pmd-stats-clear` before each window and
# `dpif-netdev/pmd-perf-show` after it, into DIR/<switch>-<size>B-rep<N>.txt (per-stage
# cycles of ferrovs; OVS prints its own breakdown). Two appctl calls, cheap enough for figures.
PMD_STATS_DIR = os.environ.get("BENCH_PMD_STATS_DIR", "")


def pmd_stats(sw, clear: bool, size: str, rep: int) -> None:
    if not PMD_STATS_DIR or not hasattr(sw, "appctl"):
        return
    try:
        if clear:
            sw.appctl("dpif-netdev/pmd-stats-clear")
            return
        out = sw.appctl("dpif-netdev/pmd-perf-show")
    except Exception as e:  # noqa: BLE001 (a diagnostic; the figure does not depend on it)
        log(f"    pmd-perf-show: {sw.name}: {e}")
        return
    Path(PMD_STATS_DIR).mkdir(parents=True, exist_ok=True)
    (Path(PMD_STATS_DIR) / f"{sw.name}-{size}-rep{rep}.txt").write_text(out)


def pmd_tid(pid: int, names: tuple[str, ...] = ("pmd-0", "pmd-c01/id:3", "pmd-c01")) -> int | None:
    """The thread of ``pid`` whose name is one of ``names`` (ferrovs's pmd-0, OVS's pmd)."""
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            if comm in names or comm.startswith("pmd"):
                return int(tid)
    except OSError:
        return None
    return None


def start_perf(sw, size: str, rep: int, seconds: float) -> subprocess.Popen | None:
    if not PERF_DIR:
        return None
    pids = sw.memory_pids()
    pid = pids.get("vswitchd") or pids.get("ovs-vswitchd")
    tid = pmd_tid(pid) if pid else None
    if tid is None:
        log(f"    perf: no forwarding thread found for {sw.name}")
        return None
    Path(PERF_DIR).mkdir(parents=True, exist_ok=True)
    out = Path(PERF_DIR) / f"{sw.name}-{size}-rep{rep}.data"
    log(f"    perf: recording thread {tid} into {out}")
    return subprocess.Popen(
        ["perf", "record", "-g", "-t", str(tid), "-o", str(out), "--", "sleep", str(seconds)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def run(ctx: Context) -> None:
    warmup = ctx.seconds(1, 3)
    window = ctx.seconds(3, 10)

    def body(stack: ExitStack, sw, rep: int) -> None:
        socks = (sw.add_vhost_port("vhu0"), sw.add_vhost_port("vhu1"))
        label = sw.label["vhost"]
        add = ctx.results.add
        for size, bursts in LOOPS:
            # A fresh testpmd per frame size, so no frame of the previous size is
            # left circulating (the switch sees a reconnect, as after a VM restart).
            with ExitStack() as per_size:
                tp = Testpmd(per_size, socks, "io",
                             ctx.logdir / f"{NAME}-{sw.name}-{size}B-testpmd.log")  # fmt: skip
                tp.command(f"set txpkts {size - 4}")
                time.sleep(ctx.seconds(2, 3))
                tp.start_loop(bursts)
                time.sleep(warmup)
                tag = f"{size}B" if bursts == 4 else f"{size}B-tx_first{bursts}"
                pmd_stats(sw, True, tag, rep)
                perf = start_perf(sw, tag, rep, window)
                w = tp.measure(window)
                pmd_stats(sw, False, tag, rep)
                if perf is not None:
                    perf.wait(timeout=60)
            case = f"{size} B" if bursts == 4 else f"{size} B, tx_first {bursts}"
            add(NAME, f"{case}, port0→port1", "throughput", "Mpps", sw.name, label,
                w.rx_pps(1) / 1e6)  # fmt: skip
            add(NAME, f"{case}, port1→port0", "throughput", "Mpps", sw.name, label,
                w.rx_pps(0) / 1e6)  # fmt: skip
            add(NAME, f"{case}, both directions", "throughput", "Mpps", sw.name, label,
                w.total_rx_pps() / 1e6)  # fmt: skip
            add(NAME, f"{case}, port0→port1", "loss", "%", sw.name, label, 100 * w.loss(0, 1),
                "lower")  # fmt: skip
            add(NAME, f"{case}, port1→port0", "loss", "%", sw.name, label, 100 * w.loss(1, 0),
                "lower")  # fmt: skip

    ctx.alternate(NAME, "vhost", body)
