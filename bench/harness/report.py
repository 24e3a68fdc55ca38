"""Markdown table, JSON, and the flow-scaling plot under bench/results/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .stats import summarize

SWITCH_ORDER = ["ferrovs", "ferrovs-base", "ovs", "linux-bridge"]
DISPLAY = {"ferrovs": "ferrovs", "ovs": "OVS", "linux-bridge": "Linux bridge"}


def fmt_number(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def fmt_cell(values: list[float]) -> str:
    s = summarize(values)
    if s["n"] == 1:
        return fmt_number(s["median"])
    return f"{fmt_number(s['median'])} ({fmt_number(s['min'])}–{fmt_number(s['max'])})"


def _status_cell(status: str | None, switch: str) -> str:
    if status is None:
        return "—"
    if switch == "ferrovs" and "not built" in status:
        return "pending"
    return status.split(":", 1)[0]


def render_markdown(doc: dict, titles: dict[str, str]) -> str:
    stamp = doc["stamp"]
    lines = [f"# ferrovs side-by-side benchmarks — {stamp['date_utc']}", ""]
    lines.append(
        f"Mode: **{stamp['mode']}** ({stamp['reps']} repetition(s) per figure; "
        "cells are median (min–max)). "
        f"Machine: {stamp['host_cores']} cores, {stamp['cpu_model']}, kernel {stamp['kernel']}, "
        f"{stamp['os']}. Load average at start {fmt_load(stamp['loadavg_at_start'])}, "
        f"at end {fmt_load(stamp.get('loadavg_at_end'))}."
    )
    lines.append("")
    lines.append("Versions: " + "; ".join(f"{k}: {v}" for k, v in stamp["versions"].items()))
    lines.append("")
    rows = doc["results"]
    switches = [s for s in SWITCH_ORDER if s in stamp["switches"]]
    for scenario in stamp["scenarios"]:
        lines.append(f"## {scenario}: {titles.get(scenario, '')}".rstrip(": "))
        lines.append("")
        srows = [r for r in rows if r["scenario"] == scenario]
        by_key = {(r["case"], r["metric"], r["switch"]): r for r in srows}
        labels = {r["switch"]: r["label"] for r in srows}
        header = ["case", "metric"] + [labels.get(s, DISPLAY.get(s, s)) for s in switches]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        seen: list[tuple[str, str, str]] = []
        for r in srows:
            k = (r["case"], r["metric"], r["unit"])
            if k not in seen:
                seen.append(k)
        if not seen:
            lines.append("| (no measurements) | |" + " |" * len(switches))
        for case, metric, unit in seen:
            cells = []
            for s in switches:
                r = by_key.get((case, metric, s))
                if r is not None:
                    cells.append(fmt_cell(r["values"]))
                else:
                    cells.append(_status_cell(status_of(doc, scenario, s, case), s))
            lines.append(f"| {case} | {metric} ({unit}) | " + " | ".join(cells) + " |")
        notes = [x for x in doc["skipped"] if x["scenario"] == scenario]
        notes += [
            {"switch": x["switch"], "case": x.get("case", ""), "reason": "failed: " + x["message"]}
            for x in doc["failed"]
            if x["scenario"] == scenario
        ]
        if notes:
            lines.append("")
            for n in notes:
                where = f" ({n['case']})" if n.get("case") else ""
                lines.append(f"- {n['switch']}{where}: {n['reason']}")
        lines.append("")
    return "\n".join(lines)


def fmt_load(load) -> str:
    if not load:
        return "?"
    return "/".join(f"{x:.1f}" for x in load)


def status_of(doc: dict, scenario: str, switch: str, case: str = "") -> str | None:
    """Why a switch has no figure for a row: a skip or failure of the whole scenario,
    or of a case whose name is a prefix of the row's case."""

    def applies(entry: dict) -> bool:
        return (
            entry["scenario"] == scenario
            and entry["switch"] == switch
            and case.startswith(entry.get("case", ""))
        )

    for s in doc["skipped"]:
        if applies(s):
            return f"skipped: {s['reason']}"
    for f in doc["failed"]:
        if applies(f):
            return f"failed: {f['message']}"
    return None


def plot_flow_scaling(doc: dict, path: Path) -> str | None:
    """Mpps against flow count, one line per switch and flow-table mode.
    Returns None on success or why there is no plot."""
    rows = [
        r for r in doc["results"]
        if r["scenario"] == "flow-scaling" and r["metric"] == "throughput"
    ]  # fmt: skip
    if not rows:
        return "no flow-scaling measurements"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed (python3 -m pip install matplotlib)"
    series: dict[tuple[str, str], list[tuple[int, float, float, float]]] = {}
    for r in rows:
        table, flows = parse_case(r["case"])
        series.setdefault((r["label"], table), []).append((flows, r["median"], r["min"], r["max"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {label: f"C{i}" for i, label in enumerate(sorted({k[0] for k in series}))}
    for (label, table), pts in sorted(series.items()):
        pts.sort()
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
        style = "-" if table == "NORMAL" else "--"
        ax.errorbar(xs, ys, yerr=err, fmt=style + "o", color=colors[label], capsize=3,
                    label=f"{label}, {table}")
    ax.set_xscale("log")
    ax.set_xlabel("distinct flows")
    ax.set_ylabel("Mpps through the switch (both directions)")
    ax.set_title(f"64 B frames, vhost-user, one forwarding core — {doc['stamp']['date_utc']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def parse_case(case: str) -> tuple[str, int]:
    """'NORMAL, 1000 flows' -> ('NORMAL', 1000)."""
    table, _, rest = case.partition(", ")
    return table, int(rest.split()[0])


def write_all(doc: dict, titles: dict[str, str], outdir: Path, stamp: str) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    md = render_markdown(doc, titles)
    png = outdir / f"{stamp}-flow-scaling.png"
    why = plot_flow_scaling(doc, png)
    if why is None:
        md += f"\n![Mpps against flow count]({png.name})\n"
        shutil.copyfile(png, outdir / "latest-flow-scaling.png")
        written += [png, outdir / "latest-flow-scaling.png"]
    else:
        doc["stamp"]["plot"] = f"none: {why}"
    for name in (f"{stamp}.json", "latest.json"):
        (outdir / name).write_text(json.dumps(doc, indent=2) + "\n")
        written.append(outdir / name)
    for name in (f"{stamp}.md", "latest.md"):
        text = md if name != "latest.md" else md.replace(png.name, "latest-flow-scaling.png")
        (outdir / name).write_text(text)
        written.append(outdir / name)
    return written


BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def embed_in_readme(readme: Path, md: str, image: str) -> bool:
    """Replaces the text between the results markers of ``readme`` with ``md`` (its title
    demoted, the plot linked from results/). False if the markers are missing."""
    text = readme.read_text()
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        return False
    body = md.replace("# ferrovs side-by-side benchmarks — ", "### Run of ", 1)
    body = body.replace("\n## ", "\n#### ").replace(f"]({image})", f"](results/{image})")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{body.strip()}\n{END}{tail}")
    return True
