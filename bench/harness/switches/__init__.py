"""The switches under test. Each module exposes one class with the same methods:

``available(mode)`` returns None or the reason it cannot run; ``start(stack, mode)``
brings it up (``mode`` is ``"vhost"`` for the DPDK-style datapath, ``"kernel"`` for
veth/TAP ports) and returns the switch, which tears itself down through ``stack``.
"""

from __future__ import annotations

from .ferrovs import Ferrovs, FerrovsBase
from .linux_bridge import LinuxBridge
from .ovs import Ovs

ALL = {
    "ferrovs": Ferrovs,
    "ovs": Ovs,
    "linux-bridge": LinuxBridge,
    "ferrovs-base": FerrovsBase,
}

# ferrovs-base only on request (A/B runs).
DEFAULT = ("ferrovs", "ovs", "linux-bridge")


def make(name: str):
    return ALL[name]()
