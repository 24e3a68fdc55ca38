"""DPDK testpmd (22.11) as the vhost-user traffic source and sink: two virtio_user
ports, one forwarding lcore (core 0), driven interactively over its stdin."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .procs import PREFIX, Skip, log, stop_process

TESTPMD = "dpdk-testpmd"
# Extra virtio_user devargs for experiments, e.g. TESTPMD_VDEV_EXTRA=",in_order=0".
VDEV_EXTRA = os.environ.get("TESTPMD_VDEV_EXTRA", "")
FILE_PREFIX = f"{PREFIX}-tp"

_BLOCK = re.compile(r"NIC statistics for port (\d+)\s*#+\s*\n(.*?)\n\s*#{20,}", re.S)
_FIELD = re.compile(r"(RX-packets|RX-missed|TX-packets|TX-errors|RX-nombuf):\s*(\d+)")


def parse_port_stats(text: str) -> dict[int, dict[str, int]]:
    """Counters per port from the output of ``show port stats all`` (the last block of
    each port wins). Unparseable text gives an empty dict, never an exception."""
    ports: dict[int, dict[str, int]] = {}
    for m in _BLOCK.finditer(text):
        fields = {k: int(v) for k, v in _FIELD.findall(m.group(2))}
        if "RX-packets" in fields and "TX-packets" in fields:
            ports[int(m.group(1))] = fields
    return ports


@dataclass
class Window:
    """What crossed the switch during one measurement window."""

    seconds: float
    rx: dict[int, int]  # packets each testpmd port received (i.e. the switch delivered)
    tx: dict[int, int]  # packets each testpmd port handed to the switch

    def rx_pps(self, port: int) -> float:
        return self.rx.get(port, 0) / self.seconds if self.seconds > 0 else 0.0

    def total_rx_pps(self) -> float:
        return sum(self.rx.values()) / self.seconds if self.seconds > 0 else 0.0

    def loss(self, src: int, dst: int) -> float:
        """Fraction of what ``src`` sent that ``dst`` did not receive (clamped at 0)."""
        sent = self.tx.get(src, 0)
        if sent <= 0:
            return 1.0
        return max(0.0, 1.0 - self.rx.get(dst, 0) / sent)


def window_between(
    a: dict[int, dict[str, int]], b: dict[int, dict[str, int]], seconds: float
) -> Window:
    rx = {p: b[p]["RX-packets"] - a.get(p, {}).get("RX-packets", 0) for p in b}
    tx = {p: b[p]["TX-packets"] - a.get(p, {}).get("TX-packets", 0) for p in b}
    return Window(seconds=seconds, rx=rx, tx=tx)


class Testpmd:
    def __init__(self, stack: ExitStack, sockets: tuple[str, str], forward_mode: str,
                 log_path: Path, extra: tuple[str, ...] = (), server: bool = False):
        if shutil.which(TESTPMD) is None:
            raise Skip("dpdk-testpmd not installed (Debian package dpdk)")
        # server=1: testpmd listens on the sockets and the switch connects
        # (dpdkvhostuserclient), as QEMU does with `server=on`.
        srv = ",server=1" if server else ""
        # stdbuf: testpmd's printf output is block-buffered on a pipe; only the prompt
        # would come through.
        argv = [
            "stdbuf", "-oL", TESTPMD, "-l", "0,1", "--main-lcore", "1", "--no-huge", "-m", "512",
            "--no-pci", f"--file-prefix={FILE_PREFIX}",
            "--vdev", f"net_virtio_user0,path={sockets[0]},queues=1{srv}{VDEV_EXTRA}",
            "--vdev", f"net_virtio_user1,path={sockets[1]},queues=1{srv}{VDEV_EXTRA}",
            "--", "-i", f"--forward-mode={forward_mode}", "--nb-cores=1",
            "--total-num-mbufs=32768", *extra,
        ]  # fmt: skip
        self._buf: list[str] = []
        self._lock = threading.Lock()
        self._log = open(log_path, "a")
        stack.callback(self._log.close)
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, start_new_session=True,
        )  # fmt: skip
        stack.callback(shutil.rmtree, f"/var/run/dpdk/{FILE_PREFIX}", ignore_errors=True)
        stack.callback(self.close)
        threading.Thread(target=self._pump, daemon=True).start()
        if not server:
            self._wait_for("testpmd> ", 60)

    def wait_ready(self, timeout: float = 60) -> None:
        """Waits for the prompt (server mode: testpmd probes its ports only once a
        client connected to each socket)."""
        self._wait_for("testpmd> ", timeout)

    def _pump(self) -> None:
        # Raw reads: the prompt comes without a newline, so line reads would stall.
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunk = data.decode(errors="replace")
            with self._lock:
                self._buf.append(chunk)
            self._log.write(chunk)

    def _text(self) -> str:
        with self._lock:
            return "".join(self._buf)

    def _wait_for(self, marker: str, timeout: float, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self._text()
            if marker in text[start:]:
                return text[start:]
            if self.proc.poll() is not None:
                raise RuntimeError(f"testpmd exited ({self.proc.returncode}):\n{text[-1500:]}")
            time.sleep(0.05)
        raise RuntimeError(f"testpmd: no {marker!r} within {timeout}s:\n{self._text()[-1500:]}")

    def command(self, line: str, timeout: float = 30, until: str = "testpmd> ") -> str:
        assert self.proc.stdin is not None
        start = len(self._text())
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._wait_for(until, timeout, start)

    def stats(self) -> tuple[float, dict[int, dict[str, int]]]:
        assert self.proc.stdin is not None
        start = len(self._text())
        self.proc.stdin.write("show port stats all\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ports = parse_port_stats(self._text()[start:])
            if 0 in ports and 1 in ports:
                return time.monotonic(), ports
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"testpmd: no port stats:\n{self._text()[start:][-1500:]}")

    def measure(self, seconds: float) -> Window:
        t0, a = self.stats()
        time.sleep(seconds)
        t1, b = self.stats()
        return window_between(a, b, t1 - t0)

    def start_loop(self, bursts: int = 4, attempts: int = 10) -> None:
        """``start tx_first BURSTS`` until both ports' first bursts circulate: each port's
        bursts keep one direction alive, and a burst sent before the switch enabled the
        queues is lost."""
        for attempt in range(attempts):
            self.command(f"start tx_first {bursts}")
            time.sleep(1.0)
            w = self.measure(0.5)
            if w.rx.get(0, 0) > 0 and w.rx.get(1, 0) > 0:
                return
            log(f"    testpmd: loop not circulating yet (attempt {attempt + 1}), retrying")
            self.command("stop")
            time.sleep(1.0)
        raise RuntimeError("testpmd: nothing circulates through the switch")

    def start_generating(self, timeout: float = 10) -> None:
        """``start`` (flowgen/txonly) and wait until both ports receive."""
        self.command("start")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            w = self.measure(0.5)
            if w.rx.get(0, 0) > 0 and w.rx.get(1, 0) > 0:
                return
        raise RuntimeError(f"testpmd: nothing came back through the switch within {timeout}s")

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write("stop\nquit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        stop_process(self.proc)
