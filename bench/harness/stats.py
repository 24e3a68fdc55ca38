"""Summaries of repeated measurements: median with min and max."""

from __future__ import annotations

import statistics


def summarize(values: list[float]) -> dict[str, float | int]:
    """Median, min, max and count; an empty list is an error (nothing was measured)."""
    if not values:
        raise ValueError("no values to summarize")
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty list."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil, at least the first sample
    return ordered[int(min(rank, len(ordered))) - 1]
