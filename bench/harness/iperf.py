"""iperf3 between the two namespaces: one server run per test, JSON results."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path

from .netns import HostPair
from .procs import run, spawn, wait_for

PORT = 5201


def parse_tcp_bps(doc: dict) -> float:
    """Receiver-side TCP goodput in bits per second."""
    end = doc.get("end", {})
    for key in ("sum_received", "sum"):
        if isinstance(end.get(key), dict) and "bits_per_second" in end[key]:
            return float(end[key]["bits_per_second"])
    raise ValueError(f"iperf3 TCP result without a receiver sum: {doc.get('error', '')}")


def parse_udp(doc: dict) -> tuple[float, float]:
    """(datagrams received per second, loss in %) from a UDP client run."""
    end = doc.get("end", {})
    s = end.get("sum_received") or end.get("sum")
    if not isinstance(s, dict) or "packets" not in s:
        raise ValueError(f"iperf3 UDP result without a sum: {doc.get('error', '')}")
    seconds = float(s.get("seconds") or 0)
    if seconds <= 0:
        raise ValueError("iperf3 UDP result with zero duration")
    if "sum_received" in end:
        received = float(s["packets"])
        sent = float((end.get("sum_sent") or {}).get("packets", received))
        loss = 100.0 * max(0.0, 1 - received / sent) if sent else 100.0
        return received / seconds, loss
    received = float(s["packets"]) - float(s.get("lost_packets", 0))
    return received / seconds, float(s.get("lost_percent", 0.0))


def start_server(stack: ExitStack, pair: HostPair, log_path: Path, *extra: str) -> None:
    """One iperf3 server in the second host (``extra``: more server options); torn down
    by ``stack``."""
    proc = spawn(stack, pair.ns(1, "iperf3", "-s", "-p", str(PORT), *extra), log_path=log_path)

    def listening() -> bool:
        out = run(pair.ns(1, "ss", "-ltnH", f"sport = :{PORT}"), check=False)
        return f":{PORT}" in out

    wait_for("iperf3 server", listening, 10, proc)


def client(pair: HostPair, seconds: float, *extra: str) -> dict:
    argv = pair.ns(0, "iperf3", "-c", pair.addrs[1], "-p", str(PORT), "-t", str(seconds), "-J",
                   *extra)  # fmt: skip
    last = None
    for _ in range(3):  # the server takes one client at a time; retry if it is busy
        out = run(argv, check=False, timeout=seconds + 60)
        try:
            doc = json.loads(out)
        except json.JSONDecodeError:
            last = out[-300:]
            time.sleep(1)
            continue
        if "error" in doc and "busy" in doc["error"]:
            last = doc["error"]
            time.sleep(1)
            continue
        if "error" in doc:
            raise RuntimeError(f"iperf3: {doc['error']}")
        return doc
    raise RuntimeError(f"iperf3 client failed: {last}")
