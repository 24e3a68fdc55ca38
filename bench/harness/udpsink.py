"""A receiver that never reads, run inside a host's namespace: binds UDP ports
FIRST..FIRST+N-1 on every address, each with the smallest receive buffer, prints
"ready", and keeps them until its standard input closes.

    python3 udpsink.py FIRST N

Datagrams to those ports then end at a full socket buffer (a cheap drop the kernel
counts in RcvbufErrors) instead of in an ICMP port-unreachable reply, whose cost falls on
whichever thread's transmit delivered the datagram: a switch's forwarding thread."""

from __future__ import annotations

import socket
import sys


def main(argv: list[str]) -> None:
    first, n = int(argv[0]), int(argv[1])
    socks = []
    for port in range(first, first + n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        s.bind(("0.0.0.0", port))
        socks.append(s)
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1:])
