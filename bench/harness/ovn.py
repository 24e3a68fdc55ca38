"""Stock OVN beside a switch under test: the NB and SB databases and ovn-northd
(``Central``), and an ovn-controller that programs the switch's integration bridge."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

from .procs import PREFIX, Skip, run, spawn, wait_for

NB_SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"
SB_SCHEMA = "/usr/share/ovn/ovn-sb.ovsschema"
TOOLS = ("ovsdb-server", "ovsdb-tool", "ovn-northd", "ovn-nbctl", "ovn-controller")


def missing() -> str | None:
    """Why OVN cannot run here, or None."""
    for tool in TOOLS:
        if not shutil.which(tool):
            return f"{tool} not installed (Debian packages ovn-central, ovn-host)"
    for schema in (NB_SCHEMA, SB_SCHEMA):
        if not Path(schema).exists():
            return f"{schema} missing (Debian package ovn-common)"
    return None


class Central:
    """NB and SB ovsdb-servers and ovn-northd, on unix sockets in a private directory."""

    def __init__(self, stack: ExitStack) -> None:
        why = missing()
        if why:
            raise Skip(why)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-ovn-", dir="/tmp"))
        stack.callback(shutil.rmtree, self.dir, ignore_errors=True)
        env = {"OVS_RUNDIR": str(self.dir), "OVS_LOGDIR": str(self.dir), "OVS_DBDIR": str(self.dir)}
        for db, schema in (("nb", NB_SCHEMA), ("sb", SB_SCHEMA)):
            file = self.dir / f"{db}.db"
            run(["ovsdb-tool", "create", str(file), schema])
            proc = spawn(
                stack,
                ["ovsdb-server", str(file), f"--remote=punix:{self.dir}/{db}.sock",
                 f"--unixctl={self.dir}/{db}.ctl", "--no-chdir", "-vconsole:off"],
                log_path=self.dir / f"{db}.log",
                env=env,
            )  # fmt: skip
            wait_for(f"OVN {db} database", (self.dir / f"{db}.sock").exists, 15, proc)
        spawn(
            stack,
            ["ovn-northd", f"--ovnnb-db={self.nb}", f"--ovnsb-db={self.sb}",
             f"--unixctl={self.dir}/northd.ctl", "-vconsole:off"],
            log_path=self.dir / "northd.log",
            env={"OVN_RUNDIR": str(self.dir), "OVN_LOGDIR": str(self.dir)},
        )  # fmt: skip

    @property
    def nb(self) -> str:
        return f"unix:{self.dir}/nb.sock"

    @property
    def sb(self) -> str:
        return f"unix:{self.dir}/sb.sock"

    def nbctl(self, *args: str, timeout: float = 120) -> str:
        return run(["ovn-nbctl", f"--db={self.nb}", f"--timeout={int(timeout)}", *args],
                   timeout=timeout + 10)  # fmt: skip

    def sbctl(self, *args: str, timeout: float = 60) -> str:
        return run(["ovn-sbctl", f"--db={self.sb}", f"--timeout={int(timeout)}", *args],
                   timeout=timeout + 10)  # fmt: skip


def start_controller(stack: ExitStack, central: Central, db: str, rundir: Path,
                     system_id: str, netns: str | None = None) -> None:
    """Stock ovn-controller for the switch whose DB is ``db`` and whose run directory
    (where ovn-controller finds ``<bridge>.mgmt``) is ``rundir``, inside namespace
    ``netns`` if given (a hypervisor's). The chassis settings are written with the
    switch's own vsctl by the caller; see ``chassis_settings``."""
    (central.dir / system_id).mkdir(exist_ok=True)
    in_ns = ["ip", "netns", "exec", netns] if netns else []
    spawn(
        stack,
        [*in_ns, "ovn-controller", db, f"--log-file={central.dir}/ovn-controller-{system_id}.log",
         "-vconsole:off"],
        log_path=central.dir / f"ovn-controller-{system_id}.out",
        env={"OVS_RUNDIR": str(rundir), "OVN_RUNDIR": str(central.dir / system_id),
             "OVN_LOGDIR": str(central.dir)},
    )  # fmt: skip


def chassis_settings(central: Central, system_id: str, bridge: str, encap_ip: str) -> list[str]:
    """``vsctl`` arguments that make ovn-controller manage ``bridge`` on this chassis."""
    return [
        "set", "Open_vSwitch", ".",
        f"external_ids:system-id={system_id}",
        f"external_ids:ovn-remote={central.sb}",
        "external_ids:ovn-encap-type=geneve",
        f"external_ids:ovn-encap-ip={encap_ip}",
        "external_ids:ovn-bridge-datapath-type=netdev",
        f"external_ids:ovn-bridge={bridge}",
    ]  # fmt: skip


def installed(external_ids: str) -> bool:
    """Whether ovn-controller marked an Interface installed, from
    ``vsctl get Interface PORT external_ids``."""
    return 'ovn-installed="true"' in external_ids or "ovn-installed=true" in external_ids


def count_up(listing: str) -> int:
    """Logical switch ports reported up, from
    ``ovn-nbctl --bare --columns=up list Logical_Switch_Port``."""
    return sum(1 for line in listing.split() if line.strip() == "true")
