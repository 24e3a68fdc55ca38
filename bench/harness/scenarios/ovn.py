"""Stock OVN driving the switch: how long until 1,000 logical ports, bound on this host,
all report up."""

from __future__ import annotations

import time
from contextlib import ExitStack

from .. import ovn
from ..context import Context
from ..procs import PREFIX, log, wait_for
from ..procs import run as run_command

NAME = "ovn"
TITLE = "OVN: logical ports bound on one host until all are up"
QUICK = False  # OVN central, ovn-controller and 100 ports: beyond --quick's budget
PORTS_FULL = 1000
PORTS_QUICK = 100
INT_BRIDGE = f"{PREFIX}-int"
SYSTEM_ID = f"{PREFIX}-hv1"
DESCRIPTION = (
    "Stock OVN (NB/SB ovsdb-server, ovn-northd, ovn-controller, from Debian) drives the "
    f"switch's integration bridge {INT_BRIDGE} (datapath_type=netdev). "
    f"{PORTS_FULL} internal interfaces carry external_ids:iface-id=lpN; then one ovn-nbctl "
    f"transaction creates a logical switch with {PORTS_FULL} ports lpN (each with a MAC and "
    "an IPv4 address). 'all up' = wall time from that transaction until ovn-nbctl reports "
    "every port up (ovn-controller has bound it and installed its flows; northd copied "
    f"Port_Binding.up back). --quick uses {PORTS_QUICK} ports."
)


def port_name(i: int) -> str:
    return f"{PREFIX}-lp{i:04d}"


def lsp_args(n: int) -> list[str]:
    """One ovn-nbctl command line: a logical switch and ``n`` ports with addresses."""
    args = ["ls-add", f"{PREFIX}-ls"]
    for i in range(1, n + 1):
        hi, lo = divmod(i, 256)
        args += ["--", "lsp-add", f"{PREFIX}-ls", f"lp{i}",
                 "--", "lsp-set-addresses", f"lp{i}", f"02:00:00:00:{hi:02x}:{lo:02x} 10.20.{hi}.{lo}"]  # fmt: skip
    return args


def vif_args(bridge: str, n: int) -> list[str]:
    """One vsctl command line adding ``n`` internal interfaces bound to lp1..lpN."""
    args: list[str] = []
    for i in range(1, n + 1):
        name = port_name(i)
        args += ["--", "add-port", bridge, name,
                 "--", "set", "Interface", name, "type=internal", f"external_ids:iface-id=lp{i}"]  # fmt: skip
    return args[1:]


def run(ctx: Context) -> None:
    n = PORTS_QUICK if ctx.quick else PORTS_FULL
    why = ovn.missing()
    if why:
        for name in ctx.switch_names:
            ctx.results.skip(NAME, name, why)
        log(f"{NAME}: skipped: {why}")
        return

    def body(stack: ExitStack, sw, rep: int) -> None:
        # The userspace datapaths leave internal ports' TAPs behind: remove them all.
        gone = "".join(f"link del {port_name(i)}\n" for i in range(1, n + 1))
        stack.callback(run_quiet, ["ip", "-force", "-batch", "-"], gone + f"link del {INT_BRIDGE}\n")
        central = ovn.Central(stack)
        sw.vsctl(*ovn.chassis_settings(central, SYSTEM_ID, INT_BRIDGE, "127.0.0.1"))
        ovn.start_controller(stack, central, f"unix:{sw.rundir}/db.sock", sw.rundir, SYSTEM_ID)
        wait_for("ovn-controller's integration bridge",
                 lambda: (sw.rundir / f"{INT_BRIDGE}.mgmt").exists(), 60)  # fmt: skip
        wait_for("the chassis registered",
                 lambda: SYSTEM_ID in central.sbctl("--bare", "--columns=name", "list", "Chassis"),
                 60)  # fmt: skip
        sw.vsctl(*vif_args(INT_BRIDGE, n), timeout=600)
        t0 = time.monotonic()
        central.nbctl(*lsp_args(n))
        listing = ["--bare", "--columns=up", "list", "Logical_Switch_Port"]
        wait_for(f"{n} logical ports up",
                 lambda: ovn.count_up(central.nbctl(*listing)) >= n, 600)  # fmt: skip
        took = time.monotonic() - t0
        case = f"{n} logical ports bound on one host"
        ctx.results.add(NAME, case, "all up", "s", sw.name, sw.label["kernel"], took, "lower")
        log(f"{NAME}: {sw.name}: {n} ports up in {took:.1f} s")

    ctx.alternate(NAME, "kernel", body, needs=("openflow",))


def run_quiet(argv: list[str], input_text: str) -> None:
    run_command(argv, check=False, input_text=input_text)
