"""Connection generator of the conntrack scenario, run inside a host's namespace:
one UDP datagram (1 byte by default) per (source socket, destination port) pair, sent with
sendmmsg(2) in batches so that the host's kernel, not this interpreter, sets the pace.

    python3 pairgen.py DST N FIRST_PORT PER [PAYLOAD]

Pair i goes from source socket i // PER to destination port FIRST_PORT + i % PER; each
datagram carries PAYLOAD bytes (default 1). It prints time.time() once the sockets are
ready, then serves requests on stdin: each line "A B" sends pairs A..B-1 and prints how
many datagrams were sent; "A B S" sends them over and over for S seconds (a blast of
established flows) and prints the count the same way."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import sys
import time

#: The most messages one sendmmsg call takes (the kernel's UIO_MAXIOV).
BATCH = 1024


class _SockaddrIn(ctypes.Structure):
    _fields_ = [("family", ctypes.c_uint16), ("port", ctypes.c_uint16),
                ("addr", ctypes.c_uint32), ("zero", ctypes.c_uint8 * 8)]  # fmt: skip


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(_Iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]  # fmt: skip


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


class PairSender:
    """Sends the datagrams of pairs to ``dst``; one message array serves every source
    socket, since pair i's destination port depends only on i % per."""

    def __init__(self, dst: str, n: int, first_port: int, per: int, payload: int = 1):
        self.per = per
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.socks = []
        for _ in range((n + per - 1) // per):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", 0))
            s.setblocking(False)
            self.socks.append(s)
        self.payload = ctypes.create_string_buffer(b"x" * payload, payload)
        self.iov = _Iovec(ctypes.cast(self.payload, ctypes.c_void_p), payload)
        self.addrs = (_SockaddrIn * per)()
        self.msgs = (_Mmsghdr * per)()
        packed = int.from_bytes(socket.inet_aton(dst), "little")
        for j in range(per):
            a = self.addrs[j]
            a.family, a.port, a.addr = socket.AF_INET, socket.htons(first_port + j), packed
            h = self.msgs[j].hdr
            h.name = ctypes.addressof(a)
            h.namelen = ctypes.sizeof(_SockaddrIn)
            h.iov = ctypes.pointer(self.iov)
            h.iovlen = 1
        self.msg_size = ctypes.sizeof(_Mmsghdr)

    def send(self, a: int, b: int) -> int:
        """Sends pairs a..b-1; returns how many datagrams left."""
        sent = 0
        i = a
        while i < b:
            sock, j = self.socks[i // self.per], i % self.per
            count = min(b - i, self.per - j, BATCH)
            ptr = ctypes.c_void_p(ctypes.addressof(self.msgs) + j * self.msg_size)
            r = self.libc.sendmmsg(sock.fileno(), ptr, count, 0)
            if r < 0:
                e = ctypes.get_errno()
                if e in (errno.EAGAIN, errno.ENOBUFS):
                    time.sleep(0.0001)  # the device queue is full
                    continue
                raise OSError(e, f"sendmmsg: {errno.errorcode.get(e, e)}")
            sent += r
            i += r
        return sent

    def blast(self, a: int, b: int, seconds: float) -> int:
        """Sends pairs a..b-1 over and over until ``seconds`` have passed; returns how
        many datagrams left."""
        sent = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sent += self.send(a, b)
        return sent


def main(argv: list[str]) -> None:
    dst, n, first, per = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    payload = int(argv[4]) if len(argv) > 4 else 1
    sender = PairSender(dst, n, first, per, payload)
    print(repr(time.time()), flush=True)
    for line in sys.stdin:
        words = line.split()
        a, b = int(words[0]), int(words[1])
        if len(words) > 2:
            print(sender.blast(a, b, float(words[2])), flush=True)
        else:
            print(sender.send(a, b), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
