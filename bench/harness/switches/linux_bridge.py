"""The in-kernel Linux bridge (bn-br0) as the kernel-forwarding reference."""

from __future__ import annotations

import platform
import shutil
from contextlib import ExitStack

from ..procs import PREFIX, Skip, run

BRIDGE = f"{PREFIX}-br0"


class LinuxBridge:
    name = "linux-bridge"
    label = {"vhost": "Linux bridge", "kernel": "Linux bridge"}
    lacks = {
        "openflow": "the Linux bridge has no OpenFlow table",
        "process": "the Linux bridge lives in the kernel: no process RSS to compare",
        "restart": "the Linux bridge lives in the kernel: there is no daemon to restart",
        "afxdp": "the Linux bridge forwards in the kernel: it has no AF_XDP ports",
        "tap": "a TAP port on the Linux bridge has a userspace fd, not a host, on its far "
        "end: no equivalent topology",
        "tunnel": "the Linux bridge has no userspace tunnel ports (kernel VXLAN devices are "
        "another datapath)",
    }

    def available(self, mode: str) -> str | None:
        if mode == "vhost":
            return "the Linux bridge has no vhost-user ports"
        if not shutil.which("ip"):
            return "iproute2 not installed"
        return None

    def version(self) -> str:
        return f"Linux bridge, kernel {platform.release()}"

    def start(self, stack: ExitStack, mode: str) -> "LinuxBridge":
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        stack.callback(run, ["ip", "link", "del", BRIDGE], check=False)
        run(["ip", "link", "set", BRIDGE, "up"])
        return self

    def add_system_port(self, name: str) -> None:
        run(["ip", "link", "set", name, "master", BRIDGE])

    def add_tap_port(self, name: str) -> None:
        raise Skip(self.lacks["tap"])

    def add_vhost_port(self, name: str) -> str:
        raise Skip("the Linux bridge has no vhost-user ports")

    def add_vhost_client_port(self, name: str, server_path: str) -> None:
        raise Skip("the Linux bridge has no vhost-user ports")

    def add_flows(self, path: str, bundle: bool = False) -> None:
        raise Skip(self.lacks["openflow"])

    def del_flows(self) -> None:
        raise Skip(self.lacks["openflow"])

    def flow_count(self) -> int:
        raise Skip(self.lacks["openflow"])

    def ofport(self, name: str) -> int:
        raise Skip(self.lacks["openflow"])

    def memory_pids(self) -> dict[str, int]:
        raise Skip(self.lacks["process"])

    def log_tail(self) -> str:
        return ""
