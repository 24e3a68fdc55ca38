"""bench/run: set up, measure, tear down, report."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from . import scenarios, switches
from .context import Context
from .machine import machine_stamp, tool_versions
from .netns import sweep_stale
from .procs import PREFIX, install_signal_handlers, log
from .report import embed_in_readme, write_all
from .results import Results

BENCH_DIR = Path(__file__).resolve().parent.parent
FULL_REPS = 5
QUICK_BUDGET_S = 240  # nothing new starts after this; CI needs the run under 5 minutes


def _csv(choices: list[str]):
    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in choices]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(bad)} (choose from {', '.join(choices)})"
            )
        return items

    return parse


def parse_args(argv: list[str]) -> argparse.Namespace:
    names = [m.NAME for m in scenarios.ALL]
    slow = [m.NAME for m in scenarios.ALL if not getattr(m, "QUICK", True)]
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Side-by-side benchmarks: ferrovs vs Open vSwitch vs the Linux bridge.",
    )
    p.add_argument("--quick", action="store_true",
                   help="a few seconds per scenario, 1 repetition (CI: keeps the harness working)")
    p.add_argument("--only", type=_csv(names), default=None, metavar="SCENARIO,...",
                   help=f"scenarios to run (default all: {','.join(names)}; with --quick "
                   f"all but {','.join(slow) or 'none'})")
    p.add_argument("--switches", type=_csv(list(switches.ALL)), default=list(switches.DEFAULT),
                   metavar="NAME,...", help="switches to compare (default ferrovs,ovs,linux-bridge)")
    p.add_argument("--reps", type=int, default=None,
                   help=f"repetitions per figure (default {FULL_REPS}, or 1 with --quick)")
    p.add_argument("--flows", type=lambda t: [int(x) for x in t.split(",")], default=None,
                   metavar="N,...", help="flow counts for flow-scaling (default 1,1000,100000,1000000; "
                   "quick: 1,1000)")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep /tmp/bn-bench-*/ (testpmd, iperf3, flow files) even on success")
    p.add_argument("--update-readme", action="store_true",
                   help="also put the results into bench/README.md (between its results markers)")
    p.add_argument("--results-dir", type=Path, default=None,
                   help="where the markdown/JSON/PNG go (default bench/results, "
                   "bench/results/quick with --quick)")
    args = p.parse_args(argv)
    if args.only is None:
        args.only = [n for n in names if not (args.quick and n in slow)]
    return args  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("bench/run: needs root (namespaces, veth, TAP, OVS daemons)", file=sys.stderr)
        return 2
    install_signal_handlers()
    reps = args.reps or (1 if args.quick else FULL_REPS)
    if args.results_dir is None:
        args.results_dir = BENCH_DIR / "results" / ("quick" if args.quick else "")
    stamp_name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logdir = Path(f"/tmp/{PREFIX}-bench-{stamp_name}")
    logdir.mkdir(parents=True, exist_ok=True)
    results = Results()
    ctx = Context(quick=args.quick, reps=reps, switch_names=args.switches,
                  results=results, logdir=logdir, flow_counts=args.flows,
                  deadline=time.monotonic() + QUICK_BUDGET_S if args.quick else None)  # fmt: skip
    stale = sweep_stale()
    if stale:
        log(f"removed leftovers of an earlier run: {', '.join(stale)}")
    stamp = machine_stamp()
    versions = tool_versions()
    for name in args.switches:
        versions[name] = switches.make(name).version()
    log(f"bench/run: {'quick' if args.quick else 'full'} run, {reps} repetition(s), "
        f"switches {','.join(args.switches)}, logs in {logdir}")  # fmt: skip
    started = time.monotonic()
    interrupted = False
    started_scenarios: list[str] = []
    try:
        for name in args.only:
            started_scenarios.append(name)
            module = scenarios.BY_NAME[name]
            log(f"== {name}: {module.TITLE}")
            t0 = time.monotonic()
            module.run(ctx)
            log(f"== {name} done in {time.monotonic() - t0:.0f}s")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: everything started has been torn down; writing partial results")
    finally:
        left = sweep_stale()
        if left:
            log(f"warning: had to remove leftovers: {', '.join(left)}")
    stamp.update(
        mode="quick" if args.quick else "full",
        reps=reps,
        switches=args.switches,
        scenarios=started_scenarios,
        versions=versions,
        loadavg_at_end=os.getloadavg(),
        duration_s=round(time.monotonic() - started),
        interrupted=interrupted,
        logs=str(logdir),
    )
    doc = {"stamp": stamp, **results.to_json()}
    titles = {m.NAME: m.TITLE for m in scenarios.ALL}
    for path in write_all(doc, titles, args.results_dir, stamp_name):
        log(f"wrote {path}")
    latest = (args.results_dir / "latest.md").read_text()
    print(latest)
    if args.update_readme:
        if embed_in_readme(BENCH_DIR / "README.md", latest, "latest-flow-scaling.png"):
            log("bench/README.md: latest results embedded")
        else:
            log("bench/README.md: results markers missing, not updated")
    if results.failed or interrupted or args.keep_logs:
        log(f"logs kept in {logdir}")
    else:
        shutil.rmtree(logdir, ignore_errors=True)
    return 130 if interrupted else 0
