"""What every scenario gets: the settings of this run, the results, and
``alternate``, which runs the switches one after the other for each repetition."""

from __future__ import annotations

import time
import traceback
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import switches
from .procs import CommandFailed, Skip, log
from .results import Results

# Failures of a switch or a tool under test (ValueError: output that does not parse):
# reported, the run goes on. Anything else is a bug of the harness and stops it.
EXTERNAL_FAILURES = (CommandFailed, RuntimeError, OSError, TimeoutError, ValueError)


@dataclass
class Context:
    quick: bool
    reps: int
    switch_names: list[str]
    results: Results
    logdir: Path
    flow_counts: list[int] | None = None
    deadline: float | None = None  # time.monotonic() after which nothing new starts

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def seconds(self, quick: float, full: float) -> float:
        return quick if self.quick else full

    def alternate(
        self,
        scenario: str,
        mode: str,
        body: Callable[[ExitStack, object, int], None],
        case: str = "",
        needs: tuple[str, ...] = (),
        start: bool = True,
    ) -> None:
        """For each repetition, for each switch in turn: start it in ``mode`` and run
        ``body(stack, switch, rep)``; everything is torn down after each call. ``case``
        (a prefix of the case names ``body`` records) scopes skips and failures; a switch
        that lacks one of the features in ``needs`` is skipped without being started.
        With ``start=False`` the body gets the switch unstarted and starts it (or several
        instances of it) itself, through ``stack``."""
        runnable = []
        for name in self.switch_names:
            sw = switches.make(name)
            lacking = [sw.lacks[f] for f in needs if f in getattr(sw, "lacks", {})]
            why = lacking[0] if lacking else sw.available(mode)
            if why:
                log(f"{scenario}: {name} skipped: {why}")
                self.results.skip(scenario, name, why, case)
            else:
                runnable.append(name)
        for rep in range(self.reps):
            for name in list(runnable):
                if self.out_of_time():
                    why = "time budget of --quick used up"
                    log(f"{scenario}: {name} skipped: {why}")
                    self.results.skip(scenario, name, why, case)
                    runnable.remove(name)
                    continue
                log(f"{scenario}: {name}, repetition {rep + 1}/{self.reps}")
                sw = switches.make(name)
                try:
                    with ExitStack() as stack:
                        if start:
                            sw.start(stack, mode)
                        body(stack, sw, rep)
                except Skip as e:
                    log(f"{scenario}: {name} skipped: {e}")
                    self.results.skip(scenario, name, str(e), case)
                    runnable.remove(name)
                except EXTERNAL_FAILURES as e:
                    log(f"{scenario}: {name} FAILED: {e}")
                    tail = sw.log_tail()
                    if tail:
                        log(f"{scenario}: last lines of {name}'s log:\n{tail}")
                    (self.logdir / f"{scenario}{case and '-' + case}-{name}-error.txt").write_text(
                        traceback.format_exc() + "\n" + tail
                    )
                    self.results.fail(scenario, name, str(e).splitlines()[0][:200], case)
                    runnable.remove(name)
