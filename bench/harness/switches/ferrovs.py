"""ferrovs, driven only through its stable CLI contract:
``vswitchd --rundir DIR --db FILE`` plus ``vsctl``/``ofctl``/``appctl`` with
``FERROVS_RUNDIR=DIR``. The binaries are looked up in ``$FERROVS_BIN_DIR`` or the
workspace's ``target/release``."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path

from ..flowfiles import save_flows
from ..procs import PREFIX, run, spawn, stop_process, wait_for

REPO = Path(__file__).resolve().parents[3]
BRIDGE = f"{PREFIX}-fbr0"
BINARIES = ("vswitchd", "vsctl", "ofctl", "appctl")


def bin_dir() -> Path:
    return Path(os.environ.get("FERROVS_BIN_DIR", REPO / "target" / "release"))


class Ferrovs:
    name = "ferrovs"
    label = {"vhost": "ferrovs", "kernel": "ferrovs"}

    def bin_dir(self) -> Path:
        return bin_dir()

    def __init__(self) -> None:
        self.rundir: Path | None = None
        self.env: dict[str, str] = {}
        self.pids: dict[str, int] = {}
        self.added: list[str] = []
        self.netns: str | None = None

    def available(self, mode: str) -> str | None:
        missing = [b for b in BINARIES if not (self.bin_dir() / b).is_file()]
        if missing:
            return (
                f"ferrovs not built: {', '.join(missing)} missing in {self.bin_dir()} "
                "(cargo build --release -p vswitchd -p ofctl, or set FERROVS_BIN_DIR)"
            )
        return None

    def version(self) -> str:
        if self.available("kernel"):
            return "not built"
        rev = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False).strip()
        dirty = run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], check=False)
        ver = run([str(self.bin_dir() / "vswitchd"), "--version"], check=False).strip().splitlines()
        head = ver[0] if ver and "error" not in ver[0].lower() else "ferrovs"
        return f"{head} (git {rev or 'unknown'}{'+dirty' if dirty.strip() else ''})"

    def _tool(self, tool: str, *args: str, timeout: float = 600) -> str:
        return run([str(self.bin_dir() / tool), *args], env=self.env, timeout=timeout)

    def vsctl(self, *args: str, timeout: float = 60) -> str:
        return self._tool("vsctl", *args, timeout=timeout)

    def ofctl(self, *args: str, timeout: float = 600) -> str:
        return self._tool("ofctl", *args, timeout=timeout)

    def appctl(self, *args: str) -> str:
        return self._tool("appctl", *args, timeout=60)

    def start(self, stack: ExitStack, mode: str, netns: str | None = None) -> "Ferrovs":
        """``mode`` "tunnel": vswitchd in namespace ``netns``, no forwarding core pinned
        (two of them share the machine) and no bridge: the scenario adds its own."""
        self.netns = netns
        self.rundir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-ferrovs-", dir="/tmp"))
        stack.callback(shutil.rmtree, self.rundir, ignore_errors=True)
        self.env = {"FERROVS_RUNDIR": str(self.rundir)}
        self._spawn_vswitchd(stack)
        if mode != "tunnel":
            self.vsctl("set", "Open_vSwitch", ".", "other_config:pmd-cpu-mask=0x2")
        # Extra other_config keys for experiments, e.g. FERROVS_OTHER_CONFIG="pmd-maxsleep=500".
        for kv in os.environ.get("FERROVS_OTHER_CONFIG", "").split():
            self.vsctl("set", "Open_vSwitch", ".", f"other_config:{kv}")
        if mode == "tunnel":
            return self
        try:
            self.vsctl("add-br", BRIDGE)
        except RuntimeError:
            # A daemon that creates br0 on its own refuses a second one; that is fine.
            if not (self.rundir / f"{BRIDGE}.mgmt").exists():
                raise
        wait_for("ferrovs bridge mgmt socket", (self.rundir / f"{BRIDGE}.mgmt").exists, 30, self.proc)
        # The bridge's internal port is a persistent TAP (as in OVS): it would
        # outlive the run; delete it at teardown.
        stack.callback(subprocess.run, ["ip", "link", "del", BRIDGE], capture_output=True)
        # As for OVS: the bridge's own (internal, TAP) port would get every
        # flooded frame through a TAP write per packet; keep it out.
        self.ofctl("-O", "OpenFlow10", "mod-port", BRIDGE, "LOCAL", "no-flood")
        return self

    def _spawn_vswitchd(self, stack: ExitStack) -> None:
        assert self.rundir is not None
        in_ns = ["ip", "netns", "exec", self.netns] if self.netns else []
        proc = spawn(
            stack,
            [
                *in_ns,
                str(self.bin_dir() / "vswitchd"),
                "--rundir",
                str(self.rundir),
                "--db",
                str(self.rundir / "conf.db"),
            ],
            log_path=self.rundir / "vswitchd.log",
            env={**self.env, "RUST_LOG": os.environ.get("RUST_LOG", "info")},
        )
        self.proc = proc
        self.pids["vswitchd"] = proc.pid
        wait_for("ferrovs db.sock", (self.rundir / "db.sock").exists, 30, proc)
        wait_for("ferrovs vswitchd.ctl", (self.rundir / "vswitchd.ctl").exists, 30, proc)

    def restart_with_flow_restore(self, stack: ExitStack) -> None:
        """The hot-upgrade procedure of ovs-vswitchd.conf.db(5): save the flows, set
        other_config:flow-restore-wait, restart vswitchd on the same DB, restore the
        flows, clear the key."""
        assert self.rundir is not None
        saved = self.rundir / "saved-flows.txt"
        saved.write_text(save_flows(self.ofctl("dump-flows", BRIDGE, "--no-stats")))
        self.vsctl("set", "Open_vSwitch", ".", "other_config:flow-restore-wait=true")
        stop_process(self.proc)
        (self.rundir / "db.sock").unlink(missing_ok=True)
        (self.rundir / "vswitchd.ctl").unlink(missing_ok=True)
        self._spawn_vswitchd(stack)
        wait_for("ferrovs bridge mgmt socket", (self.rundir / f"{BRIDGE}.mgmt").exists, 30)
        self.ofctl("add-flows", BRIDGE, str(saved))
        self.vsctl("remove", "Open_vSwitch", ".", "other_config", "flow-restore-wait")

    def add_vhost_port(self, name: str) -> str:
        assert self.rundir is not None
        self.added.append(name)
        self.vsctl("add-port", BRIDGE, name, "--", "set", "Interface", name, "type=dpdkvhostuser")
        path = self.rundir / name
        wait_for(f"vhost-user socket {path}", path.exists, 30)
        return str(path)

    def add_vhost_client_port(self, name: str, server_path: str) -> None:
        """dpdkvhostuserclient: the frontend owns the socket at ``server_path`` and the
        switch connects to it (and reconnects after a restart)."""
        self.added.append(name)
        self.vsctl("add-port", BRIDGE, name, "--", "set", "Interface", name,
                   "type=dpdkvhostuserclient", f"options:vhost-server-path={server_path}")  # fmt: skip

    def ofport(self, name: str) -> int:
        """OpenFlow port number; if ``vsctl get`` does not know the column, ports are
        assumed numbered 1, 2, … in the order they were added."""
        try:
            return int(self.vsctl("get", "Interface", name, "ofport").strip())
        except (RuntimeError, ValueError):
            return self.added.index(name) + 1

    def add_system_port(self, name: str) -> None:
        self.added.append(name)
        self.vsctl("add-port", BRIDGE, name)

    def add_afxdp_port(self, name: str) -> None:
        self.added.append(name)
        self.vsctl("add-port", BRIDGE, name, "--", "set", "Interface", name, "type=afxdp")
        err = self.vsctl("get", "Interface", name, "error").strip()
        if err not in ("", "[]"):
            raise RuntimeError(f"afxdp port {name}: {err}")

    def add_bridge(self, name: str) -> None:
        assert self.rundir is not None
        self.vsctl("add-br", name)
        wait_for(f"{name} mgmt socket", (self.rundir / f"{name}.mgmt").exists, 30, self.proc)

    def add_port(self, bridge: str, name: str, *more: str) -> None:
        """``vsctl add-port BRIDGE NAME [-- set Interface ...]``."""
        self.vsctl("add-port", bridge, name, *more)

    def tunnel_route(self, net: str, bridge: str) -> None:
        """Nothing to do: ferrovs takes its tunnel routes from the kernel's table (the
        underlay bridge's internal port has the address) and follows it."""
        del net, bridge

    def add_tap_port(self, name: str) -> None:
        self.added.append(name)
        self.vsctl("add-port", BRIDGE, name, "--", "set", "Interface", name, "type=tap")

    def add_flows(self, path: str, bundle: bool = False) -> None:
        self.ofctl(*(["--bundle"] if bundle else []), "add-flows", BRIDGE, path)

    def del_flows(self) -> None:
        self.ofctl("del-flows", BRIDGE)

    def flow_count(self) -> int:
        out = self.ofctl("dump-flows", BRIDGE)
        return sum(1 for line in out.splitlines() if "actions=" in line)

    def memory_pids(self) -> dict[str, int]:
        return dict(self.pids)

    def log_tail(self) -> str:
        if self.rundir is None or not (self.rundir / "vswitchd.log").exists():
            return ""
        text = (self.rundir / "vswitchd.log").read_text(errors="replace")
        return "".join(text.splitlines(True)[-20:])


class FerrovsBase(Ferrovs):
    """A second ferrovs build, from ``$FERROVS_BASE_BIN_DIR``, run beside the first in
    the same repetitions: an A/B comparison of two commits under the same machine drift
    (``--switches ferrovs,ferrovs-base,ovs``)."""

    name = "ferrovs-base"
    label = {"vhost": "ferrovs (base)", "kernel": "ferrovs (base)"}

    def bin_dir(self) -> Path:
        return Path(os.environ.get("FERROVS_BASE_BIN_DIR", "/nonexistent"))

    def available(self, mode: str) -> str | None:
        if "FERROVS_BASE_BIN_DIR" not in os.environ:
            return "FERROVS_BASE_BIN_DIR is not set"
        return super().available(mode)

    def version(self) -> str:
        return f"{super().version()} from {self.bin_dir()}"
