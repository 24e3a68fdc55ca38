"""Collects measurements per (scenario, case, metric, switch) and skips/failures."""

from __future__ import annotations

from dataclasses import dataclass, field

from .stats import summarize


@dataclass
class Series:
    scenario: str
    case: str
    metric: str
    unit: str
    switch: str
    label: str
    better: str  # "higher" or "lower"
    values: list[float] = field(default_factory=list)


class Results:
    def __init__(self) -> None:
        self.series: dict[tuple[str, str, str, str], Series] = {}
        self.order: list[tuple[str, str, str]] = []  # rows in first-seen order
        self.skipped: list[dict[str, str]] = []
        self.failed: list[dict[str, str]] = []

    def add(self, scenario: str, case: str, metric: str, unit: str, switch: str,
            label: str, value: float, better: str = "higher") -> None:
        key = (scenario, case, metric, switch)
        if key not in self.series:
            self.series[key] = Series(scenario, case, metric, unit, switch, label, better)
            row = (scenario, case, metric)
            if row not in self.order:
                self.order.append(row)
        self.series[key].values.append(float(value))

    def skip(self, scenario: str, switch: str, reason: str, case: str = "") -> None:
        entry = {"scenario": scenario, "case": case, "switch": switch, "reason": reason}
        if entry not in self.skipped:
            self.skipped.append(entry)

    def fail(self, scenario: str, switch: str, message: str, case: str = "") -> None:
        self.failed.append(
            {"scenario": scenario, "case": case, "switch": switch, "message": message}
        )

    def to_json(self) -> dict:
        rows = []
        for s in self.series.values():
            rows.append({
                "scenario": s.scenario, "case": s.case, "metric": s.metric, "unit": s.unit,
                "switch": s.switch, "label": s.label, "better": s.better,
                "values": s.values, **summarize(s.values),
            })  # fmt: skip
        return {"results": rows, "skipped": self.skipped, "failed": self.failed}
