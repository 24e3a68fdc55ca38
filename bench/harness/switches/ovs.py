"""Open vSwitch as the peer: the userspace (netdev) datapath on veth/TAP ports, and
OVS-DPDK (no hugepages) with dpdkvhostuser ports for the vhost-user scenarios."""

from __future__ import annotations

import glob
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

from ..flowfiles import save_flows
from ..netns import link_exists
from ..procs import PREFIX, run, spawn, stop_process, wait_for

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"

OVS_VSWITCHD = "/usr/lib/openvswitch-switch/ovs-vswitchd"
OVS_VSWITCHD_DPDK = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
BRIDGE = f"{PREFIX}-obr0"  # also the name of its internal (TAP) port
NETDEV_TAP = "ovs-netdev"


def _first_existing(*paths: str) -> str | None:
    for p in paths:
        if p and Path(p).exists():
            return p
    return None


class Ovs:
    name = "ovs"
    label = {"vhost": "OVS-DPDK", "kernel": "OVS (netdev)"}
    lacks = {
        # userspace TSO through tunnel ports came with OVS 3.3; 3.1 drops such frames
        # at the tunnel push, and without userspace TSO its AF_PACKET ports pass the
        # VMs' partial checksums on unfinished.
        "tunnel-tso": "OVS 3.1's userspace datapath does not encapsulate TSO frames: "
        "its VMs run with tx off",
    }

    def __init__(self) -> None:
        self.rundir: Path | None = None
        self.env: dict[str, str] = {}
        self.pids: dict[str, int] = {}
        self.mode = ""
        self.netns: str | None = None

    # -- availability and versions ------------------------------------------------
    @staticmethod
    def _vswitchd(mode: str) -> str | None:
        if mode == "vhost":
            return _first_existing(OVS_VSWITCHD_DPDK)
        return _first_existing(OVS_VSWITCHD, shutil.which("ovs-vswitchd") or "")

    def available(self, mode: str) -> str | None:
        for tool in ("ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-ofctl", "ovs-appctl"):
            if not shutil.which(tool):
                return f"{tool} not installed (Debian package openvswitch-switch)"
        if not Path(SCHEMA).exists():
            return f"{SCHEMA} missing"
        if self._vswitchd(mode) is None:
            if mode == "vhost":
                return f"{OVS_VSWITCHD_DPDK} missing (Debian package openvswitch-switch-dpdk)"
            return "ovs-vswitchd missing (Debian package openvswitch-switch)"
        return None

    def version(self) -> str:
        out = run(["ovs-vswitchd", "--version"], check=False).splitlines()
        ver = out[0].strip() if out else "unknown"
        dpdk = run(["dpkg-query", "-W", "-f=${Version}", "openvswitch-switch-dpdk"], check=False)
        if dpdk and "no packages" not in dpdk:
            ver += f"; openvswitch-switch-dpdk {dpdk.strip()}"
        return ver

    # -- lifecycle ----------------------------------------------------------------
    def start(self, stack: ExitStack, mode: str, netns: str | None = None) -> "Ovs":
        """``mode`` "tunnel": ovs-vswitchd (userspace datapath) in namespace ``netns``
        (ovsdb-server stays outside, on its unix socket), default settings, no bridge:
        the scenario adds its own."""
        self.mode = mode
        self.netns = netns
        # The userspace datapath leaves its kernel TAPs behind when it exits: the bridge's
        # LOCAL port, and ovs-netdev (removed only if this instance created it). In a
        # namespace they go with it.
        stale = [BRIDGE] + ([] if link_exists(NETDEV_TAP) else [NETDEV_TAP])
        for dev in [] if netns else stale:
            stack.callback(run, ["ip", "link", "del", dev], check=False)
        self.rundir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-ovs-", dir="/tmp"))
        stack.callback(shutil.rmtree, self.rundir, ignore_errors=True)
        d = str(self.rundir)
        self.env = {"OVS_RUNDIR": d, "OVS_LOGDIR": d, "OVS_DBDIR": d}
        db = self.rundir / "conf.db"
        run(["ovsdb-tool", "create", str(db), SCHEMA])
        sock = self.rundir / "db.sock"
        dbs = spawn(
            stack,
            [
                "ovsdb-server",
                str(db),
                f"--remote=punix:{sock}",
                f"--pidfile={self.rundir}/ovsdb-server.pid",
                f"--unixctl={self.rundir}/ovsdb-server.ctl",
            ],
            log_path=self.rundir / "ovsdb-server.log",
            env=self.env,
        )
        wait_for("ovsdb-server socket", sock.exists, 15, dbs)
        self.pids["ovsdb-server"] = dbs.pid
        self.vsctl("--no-wait", "init")
        if mode == "vhost":
            stack.callback(shutil.rmtree, f"/var/run/dpdk/{PREFIX}-ovsdpdk", ignore_errors=True)
            self.vsctl(
                "--no-wait",
                "set",
                "Open_vSwitch",
                ".",
                "other_config:dpdk-init=true",
                "other_config:dpdk-extra=--no-huge --legacy-mem -m 3072 --no-pci "
                f"--file-prefix={PREFIX}-ovsdpdk",
                "other_config:pmd-cpu-mask=0x2",
                "other_config:dpdk-lcore-mask=0x1",
            )
        elif mode != "tunnel":
            # Hosts send TSO super-frames and partial checksums through AF_PACKET and
            # TAP ports only if OVS negotiates vnet headers on them (off by default).
            self.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                       "other_config:userspace-tso-enable=true")  # fmt: skip
        self._spawn_vswitchd(stack)
        if mode == "tunnel":
            return self
        self.vsctl("add-br", BRIDGE, "--", "set", "bridge", BRIDGE, "datapath_type=netdev")
        # The LOCAL (internal) port would receive every flooded frame through a
        # TAP write per packet; the other switches have no such port in the path.
        self.ofctl("mod-port", self.target, BRIDGE, "no-flood")
        return self

    def _spawn_vswitchd(self, stack: ExitStack) -> None:
        assert self.rundir is not None
        vswitchd = self._vswitchd(self.mode)
        assert vswitchd is not None
        in_ns = ["ip", "netns", "exec", self.netns] if self.netns else []
        vsd = spawn(
            stack,
            [
                *in_ns,
                vswitchd,
                f"unix:{self.rundir}/db.sock",
                f"--pidfile={self.rundir}/ovs-vswitchd.pid",
                f"--unixctl={self.rundir}/ovs-vswitchd.ctl",
                f"--log-file={self.rundir}/ovs-vswitchd.log",
            ],
            log_path=self.rundir / "ovs-vswitchd.out",
            env=self.env,
        )
        self.proc = vsd
        self.pids["ovs-vswitchd"] = vsd.pid
        wait_for("ovs-vswitchd control socket", (self.rundir / "ovs-vswitchd.ctl").exists, 60, vsd)

    def restart_with_flow_restore(self, stack: ExitStack) -> None:
        """The hot-upgrade procedure of ovs-vswitchd.conf.db(5), as ovs-ctl restart
        does it: save the flows, set flow-restore-wait, restart ovs-vswitchd (the DB
        server keeps running), restore the flows, clear the key."""
        assert self.rundir is not None
        saved = self.rundir / "saved-flows.txt"
        dump = self.ofctl("dump-flows", "--no-names", "--no-stats", self.target)
        saved.write_text(save_flows(dump))
        self.vsctl("set", "Open_vSwitch", ".", "other_config:flow-restore-wait=true")
        stop_process(self.proc)
        (self.rundir / "ovs-vswitchd.ctl").unlink(missing_ok=True)
        self._spawn_vswitchd(stack)
        wait_for("OVS bridge mgmt socket", (self.rundir / f"{BRIDGE}.mgmt").exists, 60)
        self.ofctl("add-flows", self.target, str(saved))
        self.vsctl("remove", "Open_vSwitch", ".", "other_config", "flow-restore-wait")

    # -- tools ----------------------------------------------------------------------
    @property
    def target(self) -> str:
        """The bridge's OpenFlow management socket, as ovs-ofctl's target."""
        return f"unix:{self.rundir}/{BRIDGE}.mgmt"

    def vsctl(self, *args: str, timeout: float = 60) -> str:
        assert self.rundir is not None
        return run(
            ["ovs-vsctl", f"--db=unix:{self.rundir}/db.sock", f"--timeout={int(timeout)}", *args],
            env=self.env,
            timeout=timeout + 10,
        )

    def ofctl(self, *args: str, timeout: float = 600) -> str:
        return run(["ovs-ofctl", *args], env=self.env, timeout=timeout)

    def appctl(self, *args: str) -> str:
        assert self.rundir is not None
        return run(["ovs-appctl", "-t", f"{self.rundir}/ovs-vswitchd.ctl", *args], env=self.env)

    # -- ports ----------------------------------------------------------------------
    def add_vhost_port(self, name: str) -> str:
        """dpdkvhostuser: the switch is the socket server; returns the socket path."""
        assert self.rundir is not None
        self.vsctl("add-port", BRIDGE, name, "--", "set", "Interface", name, "type=dpdkvhostuser")
        path = self.rundir / name
        wait_for(f"vhost-user socket {path}", path.exists, 30)
        return str(path)

    def add_vhost_client_port(self, name: str, server_path: str) -> None:
        """dpdkvhostuserclient: the frontend owns the socket at ``server_path``; OVS
        connects to it (and reconnects after a restart)."""
        self.vsctl("add-port", BRIDGE, name, "--", "set", "Interface", name,
                   "type=dpdkvhostuserclient", f"options:vhost-server-path={server_path}")  # fmt: skip

    def add_system_port(self, name: str) -> None:
        self.vsctl("add-port", BRIDGE, name)

    def add_tap_port(self, name: str) -> None:
        self.vsctl("add-port", BRIDGE, name, "--", "set", "Interface", name, "type=tap")

    def add_afxdp_port(self, name: str) -> None:
        """netdev-afxdp (Debian's OVS is built with libxdp)."""
        self.vsctl("add-port", BRIDGE, name, "--", "set", "Interface", name, "type=afxdp")
        err = self.vsctl("get", "Interface", name, "error").strip()
        if err not in ("", "[]"):
            raise RuntimeError(f"afxdp port {name}: {err}")

    def ofport(self, name: str) -> int:
        return int(self.vsctl("get", "Interface", name, "ofport").strip())

    def add_bridge(self, name: str) -> None:
        assert self.rundir is not None
        self.vsctl("add-br", name, "--", "set", "bridge", name, "datapath_type=netdev")
        wait_for(f"{name} mgmt socket", (self.rundir / f"{name}.mgmt").exists, 30, self.proc)

    def add_port(self, bridge: str, name: str, *more: str) -> None:
        """``ovs-vsctl add-port BRIDGE NAME [-- set Interface ...]``."""
        self.vsctl("add-port", bridge, name, *more)

    def tunnel_route(self, net: str, bridge: str) -> None:
        """The userspace-tunnelling guide's `ovs-appctl ovs/route/add NET BRIDGE`."""
        self.appctl("ovs/route/add", net, bridge)

    # -- flows ----------------------------------------------------------------------
    def add_flows(self, path: str, bundle: bool = False) -> None:
        # `--bundle` commits the file as one OpenFlow bundle: 2M rules go in in about
        # 30 s instead of 5 minutes one flow_mod at a time.
        self.ofctl(*(["--bundle"] if bundle else []), "add-flows", self.target, path)

    def del_flows(self) -> None:
        self.ofctl("del-flows", self.target)

    def flow_count(self) -> int:
        out = self.ofctl("dump-flows", self.target, "--no-names")
        return sum(1 for line in out.splitlines() if "actions=" in line)

    def memory_pids(self) -> dict[str, int]:
        return dict(self.pids)

    def log_tail(self) -> str:
        if self.rundir is None:
            return ""
        files = glob.glob(f"{self.rundir}/ovs-vswitchd.log")
        if not files:
            return ""
        return "".join(Path(files[0]).read_text(errors="replace").splitlines(True)[-20:])

