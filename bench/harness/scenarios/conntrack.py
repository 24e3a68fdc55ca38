"""Connection tracking: the ovs-actions(7) stateful firewall table between two hosts on
veth ports — connection setup rate through ct(commit), 64 B UDP throughput of an
established flow with and without ct, and memory per tracked connection."""

from __future__ import annotations

import time
from contextlib import ExitStack

from .. import iperf, netns
from ..context import Context
from ..procs import run as run_cmd
from ..procs import rss_kib

NAME = "conntrack"
TITLE = "Stateful firewall (ct) between two namespaces over veth"
#: First UDP destination port of the connection generator.
FIRST_PORT = 20_000
#: Destination ports per source socket (distinct 5-tuples = sockets × ports).
PORTS_PER_SOCKET = 10_000
#: Connections of the "1M connections held" case (skipped with --quick).
HELD_N = 1_000_000
DESCRIPTION = (
    "Hosts bn-h1 (port A) and bn-h2 (port B) on veth ports. Firewall table (ovs-actions(7)): "
    "table 0 `ip,ct_state=-trk,actions=ct(table=1)` plus ARP A↔B; table 1 "
    "`ct_state=+trk+new,in_port=A → ct(commit),output:B`, `+trk+est` A→B and B→A, all else "
    "dropped. 'UDP 64 B' = `iperf3 -u -l 64 -b 0` datagrams received per second, through "
    "the firewall ('with ct') and through two plain `in_port` flows ('no ct'). 'setup' = "
    "new connections committed per second: h1 sends one 1-byte UDP datagram to each of N "
    f"distinct (source port, destination port) pairs ({PORTS_PER_SOCKET} destination ports "
    "per source socket) as fast as Python can; rate = connections counted by "
    "`dpctl/ct-get-nconns` (after a flush) / time from the first datagram until the count "
    "stopped growing; 'created' = that count / N. 'memory per connection' = RSS growth of "
    "the switch's processes (ferrovs: vswitchd; OVS: ovs-vswitchd + ovsdb-server) over "
    "the same burst, 2 s after it, / connections created. N = 100,000 (5,000 with --quick). "
    "'1M connections held' = after a flush, the same generator for 1,000,000 pairs; "
    "`dpctl/ct-get-nconns` once the count has stopped growing and 5 s more (UDP "
    "connections live 30-60 s), as thousands and as % of datagrams sent, and RSS "
    "growth / connections held (skipped with --quick)."
)

# One datagram per (source socket, destination port); prints time.time() before the first.
GENERATOR = """
import socket, sys, time
dst, n, first, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
socks = []
for _ in range((n + per - 1) // per):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    socks.append(s)
print(repr(time.time()), flush=True)
sent = 0
for s in socks:
    for port in range(first, first + min(per, n - sent)):
        for attempt in range(1000):  # ENOBUFS/EAGAIN: the device queue is full
            try:
                s.sendto(b"x", (dst, port))
                break
            except OSError:
                if attempt == 999:
                    raise
                time.sleep(0.0001)
        sent += 1
print(sent, flush=True)
"""


def firewall_flows(a: int, b: int) -> str:
    """The stateful firewall of ovs-actions(7) for ports ``a`` (inside) and ``b``, in
    ofctl add-flows syntax."""
    return "".join(
        f"{line}\n"
        for line in (
            "table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1)",
            f"table=0,priority=50,arp,in_port={a},actions=output:{b}",
            f"table=0,priority=50,arp,in_port={b},actions=output:{a}",
            "table=0,priority=0,actions=drop",
            f"table=1,priority=100,ip,ct_state=+trk+new,in_port={a},actions=ct(commit),output:{b}",
            f"table=1,priority=100,ip,ct_state=+trk+est,in_port={a},actions=output:{b}",
            f"table=1,priority=100,ip,ct_state=+trk+est,in_port={b},actions=output:{a}",
            "table=1,priority=0,actions=drop",
        )
    )


def plain_flows(a: int, b: int) -> str:
    return f"in_port={a},actions=output:{b}\nin_port={b},actions=output:{a}\n"


def parse_nconns(out: str) -> int:
    """The connection count printed by `dpctl/ct-get-nconns`."""
    text = out.strip()
    if not text.isdigit():
        raise ValueError(f"dpctl/ct-get-nconns: unexpected output {text[:80]!r}")
    return int(text)


def parse_generator(out: str) -> tuple[float, int]:
    """(wall-clock start, datagrams sent) from the generator's two output lines."""
    lines = out.split()
    if len(lines) != 2:
        raise ValueError(f"connection generator: unexpected output {out[:120]!r}")
    return float(lines[0]), int(lines[1])


def settle_count(read, interval: float = 0.05, limit: float = 30.0) -> tuple[int, float]:
    """Polls ``read()`` until two reads in a row agree; returns (count, time.time() of
    the first read that showed it)."""
    prev = read()
    first_seen = time.time()
    waited = 0.0
    while waited < limit:
        time.sleep(interval)
        waited += interval
        cur = read()
        if cur == prev:
            return cur, first_seen
        prev, first_seen = cur, time.time()
    return prev, first_seen


def _rss_kib(sw) -> int:
    return sum(rss_kib(pid) for pid in sw.memory_pids().values())


def run(ctx: Context) -> None:
    n = 5_000 if ctx.quick else 100_000
    seconds = ctx.seconds(2, 10)

    def body(stack: ExitStack, sw, rep: int) -> None:
        sw.memory_pids()  # switches without a process skip here
        pair = netns.veth_pair(stack, tx_offload=False)
        for port in pair.ports:
            sw.add_system_port(port)
        a, b = (sw.ofport(p) for p in pair.ports)
        label = sw.label["kernel"]
        iperf.start_server(stack, pair, ctx.logdir / f"{NAME}-{sw.name}-iperf3.log")

        def udp(case: str, flows: str) -> None:
            path = ctx.logdir / f"{NAME}-{sw.name}-{case.replace(' ', '-')}-flows.txt"
            path.write_text(flows)
            sw.del_flows()
            sw.add_flows(str(path))
            netns.check_reachable(pair)
            pps, loss = iperf.parse_udp(iperf.client(pair, seconds, "-u", "-l", "64", "-b", "0"))
            ctx.results.add(NAME, f"UDP 64 B, {case}", "received", "kpps", sw.name, label,
                            pps / 1e3)  # fmt: skip
            time.sleep(0.5)

        udp("no ct", plain_flows(a, b))
        udp("with ct", firewall_flows(a, b))

        def nconns() -> int:
            return parse_nconns(sw.appctl("dpctl/ct-get-nconns"))

        sw.appctl("dpctl/flush-conntrack")
        time.sleep(1.0)
        base_conns = nconns()
        base_rss = _rss_kib(sw)
        out = run_cmd(
            pair.ns(0, "python3", "-c", GENERATOR, pair.addrs[1], str(n), str(FIRST_PORT),
                    str(PORTS_PER_SOCKET)),  # fmt: skip
            timeout=120,
        )
        start, sent = parse_generator(out)
        count, end = settle_count(nconns)
        created = count - base_conns
        if created <= 0:
            raise RuntimeError(f"no connection was created by {sent} datagrams")
        ctx.results.add(NAME, "setup", "new connections", "k/s", sw.name, label,
                        created / max(end - start, 1e-3) / 1e3)  # fmt: skip
        ctx.results.add(NAME, "setup", "created", "%", sw.name, label, 100.0 * created / sent)
        time.sleep(2.0)
        grown = _rss_kib(sw) - base_rss
        ctx.results.add(NAME, "memory", "per connection", "B", sw.name, label,
                        grown * 1024 / created, "lower")  # fmt: skip

        if ctx.quick:
            return
        # 1M concurrent connections: the same generator, HELD_N pairs; what the
        # tracker still holds 5 s after the burst (UDP connections live 30-60 s).
        sw.appctl("dpctl/flush-conntrack")
        time.sleep(1.0)
        base_conns = nconns()
        base_rss = _rss_kib(sw)
        out = run_cmd(
            pair.ns(0, "python3", "-c", GENERATOR, pair.addrs[1], str(HELD_N), str(FIRST_PORT),
                    str(PORTS_PER_SOCKET)),  # fmt: skip
            timeout=900,
        )
        _, sent = parse_generator(out)
        settle_count(nconns, interval=0.5, limit=120.0)
        time.sleep(5.0)
        held = nconns() - base_conns
        grown = _rss_kib(sw) - base_rss
        ctx.results.add(NAME, "1M connections", "held", "k", sw.name, label, held / 1e3)
        ctx.results.add(NAME, "1M connections", "held of datagrams sent", "%", sw.name, label,
                        100.0 * held / sent)  # fmt: skip
        if held > 0:
            ctx.results.add(NAME, "1M connections", "memory per connection", "B", sw.name, label,
                            grown * 1024 / held, "lower")  # fmt: skip

    ctx.alternate(NAME, "kernel", body, needs=("openflow", "process"))
