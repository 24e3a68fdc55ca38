"""Round-trip times out of ping's per-reply lines."""

from __future__ import annotations

import re

_TIME = re.compile(r"icmp_seq=\d+ .*?time=([0-9.]+) ms")


def ping_rtts_us(output: str) -> list[float]:
    """Every reply's round-trip time in microseconds (lines without one are ignored)."""
    return [float(m.group(1)) * 1000.0 for m in _TIME.finditer(output)]
