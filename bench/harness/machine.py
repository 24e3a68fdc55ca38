"""The stamp on every result: machine, load, and each peer's version."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from .procs import run


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "unknown"


def _first_line(argv: list[str]) -> str:
    out = run(argv, check=False).strip().splitlines()
    return out[0] if out else "not installed"


def _deb_version(pkg: str) -> str:
    out = run(["dpkg-query", "-W", "-f=${Version}", pkg], check=False).strip()
    return out if out and "no packages" not in out.lower() else "not installed"


def machine_stamp() -> dict[str, object]:
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host_cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "os": _os_name(),
        "loadavg_at_start": os.getloadavg(),
    }


def tool_versions() -> dict[str, str]:
    return {
        "dpdk-testpmd": f"dpdk {_deb_version('dpdk')}",
        "iperf3": _first_line(["iperf3", "--version"]),
        "ping": _first_line(["ping", "-V"]),
        "python": platform.python_version(),
    }
