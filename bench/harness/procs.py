"""Processes and teardown: everything the harness starts is registered here and undone,
in reverse order, even on failure or Ctrl-C."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Sequence

PREFIX = "bn"  # every namespace, device, socket and temp dir carries it


class Skip(Exception):
    """A scenario cannot run for a reason outside the harness (a peer is missing...)."""


class CommandFailed(RuntimeError):
    def __init__(self, argv: Sequence[str], rc: int, output: str):
        self.argv = list(argv)
        self.rc = rc
        self.output = output
        tail = output.strip().splitlines()[-5:]
        super().__init__(f"`{shlex.join(self.argv)}` exited {rc}: {' | '.join(tail)}")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
) -> str:
    """Runs a command to completion and returns stdout+stderr."""
    full_env = None if env is None else {**os.environ, **env}
    try:
        cp = subprocess.run(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            env=full_env,
            input=input_text,
        )
    except FileNotFoundError as e:
        if not check:
            return ""
        raise CommandFailed(argv, 127, str(e)) from e
    except subprocess.TimeoutExpired as e:
        out = e.output.decode() if isinstance(e.output, bytes) else (e.output or "")
        raise CommandFailed(argv, -1, f"timed out after {timeout}s\n{out}") from e
    if check and cp.returncode != 0:
        raise CommandFailed(argv, cp.returncode, cp.stdout)
    return cp.stdout


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Stops a child we started (its own process group), politely first."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=grace)


def spawn(
    stack: ExitStack,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.Popen:
    """Starts a long-running child in its own process group; the stack stops it."""
    full_env = None if env is None else {**os.environ, **env}
    logf = open(log_path, "ab")
    stack.callback(logf.close)
    proc = subprocess.Popen(
        list(argv),
        stdout=logf,
        stderr=subprocess.STDOUT,
        stdin=stdin,
        env=full_env,
        start_new_session=True,
    )
    stack.callback(stop_process, proc)
    return proc


def wait_for(
    what: str, cond: Callable[[], bool], timeout: float, proc: subprocess.Popen | None = None
) -> None:
    """Polls ``cond`` until true; fails early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not ready after {timeout}s")


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc (KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP behave like Ctrl-C so that every ``finally`` tears down."""

    def _raise(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGHUP, _raise)
