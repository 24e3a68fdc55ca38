"""Connection tracking: the ovs-actions(7) stateful firewall table between two hosts on
veth ports — connection setup rate through ct(commit), 64 B UDP throughput of an
established flow with and without ct, and memory per tracked connection."""

from __future__ import annotations

import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

from .. import iperf, netns
from ..context import Context
from ..procs import run as run_cmd
from ..procs import rss_kib

NAME = "conntrack"
TITLE = "Stateful firewall (ct) between two namespaces over veth"
#: First UDP destination port of the connection generator.
FIRST_PORT = 20_000
#: Pairs of the setup burst: enough that the switch is saturated for about a second
#: (at a few hundred thousand connections per second), so that the 20 ms polling of the
#: count is a small part of the time measured.
SETUP_N = 300_000
#: Destination ports per source socket (distinct 5-tuples = sockets × ports).
PORTS_PER_SOCKET = 10_000
#: The 64 B blast: established 5-tuples it cycles through (one source socket, this many
#: destination ports), and the UDP payload that makes 60-byte frames (64 B on the wire
#: with the FCS).
BLAST_PAIRS = 1024
BLAST_PAYLOAD = 18
#: Where host A sends the setup burst: a MAC host B does not have (see ``setup`` in
#: ``run``).
NOT_B_MAC = "02:62:6e:00:00:99"
#: Connections of the "1M connections held" case (skipped with --quick).
HELD_N = 1_000_000
#: The held case offers its pairs in chunks of at most this many, each once the switch
#: has forwarded the last: an unpaced burst overruns the switch's receive buffer (about a
#: thousand frames for ferrovs' AF_PACKET ring, a few hundred for OVS's socket buffer)
#: while its forwarding thread is off CPU, and the datagram never reaches the tracker.
HELD_CHUNK = 500
#: A chunk that did not leave the switch whole is sent again at half the size (not below
#: this); each whole chunk lets the next grow by HELD_CHUNK_STEP, so the chunk settles
#: just under what the switch's receive buffer absorbs.
HELD_MIN_CHUNK = 25
HELD_CHUNK_STEP = 10
#: The most sendings of one chunk start; after that the harness moves on.
HELD_MAX_TRIES = 8
#: A chunk counts as lost in part when port B's transmit count has not moved for this long.
HELD_STALL_S = 0.03
#: No chunk is offered later than this after the first datagram, so that the first
#: connections are still within their 60 s UDP timeout when counted.
HELD_WINDOW_S = 45.0
DESCRIPTION = (
    "Hosts bn-h1 (port A) and bn-h2 (port B) on veth ports. Firewall table (ovs-actions(7)): "
    "table 0 `ip,ct_state=-trk,actions=ct(table=1)` plus ARP A↔B; table 1 "
    "`ct_state=+trk+new,in_port=A → ct(commit),output:B`, `+trk+est` A→B and B→A, all else "
    "dropped. 'UDP 64 B' = `iperf3 -u -l 64 -b 0` datagrams received per second, through "
    "the firewall ('with ct') and through two plain `in_port` flows ('no ct'). 'UDP 64 B "
    f"blast' = the connection generator (below) sending {BLAST_PAYLOAD}-byte datagrams "
    f"(60-byte frames) round and round {BLAST_PAIRS} (source, destination port) pairs, "
    "after one round that establishes them, as fast as sendmmsg(2) goes, to ports host B "
    "holds with sockets it never reads (udpsink.py: no ICMP port-unreachable replies): "
    "'forwarded' = "
    "frames port B transmitted per second (its `tx_packets`, over the run's seconds, "
    "from 1 s after the start), 'offered' = datagrams sent per second over the whole "
    "blast (the generator outrunning the switch shows as offered > forwarded). 'setup' = "
    "new connections committed per second: h1 sends one 1-byte UDP datagram to each of N "
    f"distinct (source port, destination port) pairs ({PORTS_PER_SOCKET} destination ports "
    "per source socket), in sendmmsg(2) batches of up to 1,024; rate = connections counted by "
    "`dpctl/ct-get-nconns` (after a flush) / time from the first datagram until the count "
    "stopped growing; 'created' = that count / N. Host A addresses this burst to a MAC host "
    "B does not have, so B's kernel drops each frame on arrival (a veth runs B's receive "
    "on the switch's transmitting thread, where B's stack would answer every datagram with "
    "an ICMP port unreachable); 'setup, host B answers' = the same burst to B's own MAC, "
    "after the first burst's connections were flushed. 'memory per connection' = RSS "
    "growth of the switch's processes (ferrovs: vswitchd; OVS: ovs-vswitchd + "
    "ovsdb-server) over the first burst, 2 s after it, / connections created. N = 300,000 "
    "(5,000 with --quick), the count polled every 20 ms. "
    "'1M connections held' = after a flush, 1,000,000 pairs from the same sockets and "
    f"ports, paced: chunks of up to {HELD_CHUNK} pairs, the next once port B's transmit "
    "count shows the switch forwarded them all; a chunk that did not leave whole (count "
    f"still for {HELD_STALL_S * 1e3:.0f} ms) is sent again at half the size (same pairs; "
    f"at most {HELD_MAX_TRIES} sendings from one start, none later than "
    f"{HELD_WINDOW_S:.0f} s after the first datagram); whole chunks grow by "
    f"{HELD_CHUNK_STEP}. `dpctl/ct-get-nconns` 5 s after the count stops growing (UDP "
    "connections live 60 s after their last datagram), as thousands and as % of the "
    "pairs; datagrams sent per pair; RSS growth / connections held (skipped with --quick)."
)

#: The connection generator (run as a script inside host h1's namespace): sendmmsg(2)
#: batches of one datagram per pair, on stdin requests "A B" (once) and "A B S" (over and
#: over for S seconds: the blast).
GENERATOR = str(Path(__file__).resolve().parent.parent / "pairgen.py")
#: Holds the blast's destination ports on host B (see udpsink.py).
SINK = str(Path(__file__).resolve().parent.parent / "udpsink.py")


def next_chunk(size: int, forwarded: int, tries: int) -> tuple[bool, int]:
    """After a sending of ``size`` pairs of which ``forwarded`` left port B, the
    ``tries``-th from the same start: (move on to the next pairs, size of the next
    sending). A short chunk is sent again at half the size until the try limit."""
    if forwarded >= size:
        return True, min(HELD_CHUNK, size + HELD_CHUNK_STEP)
    return tries >= HELD_MAX_TRIES, max(HELD_MIN_CHUNK, size // 2)


def wait_forwarded(read, target: int, stall: float = HELD_STALL_S,
                   interval: float = 0.002) -> int:  # fmt: skip
    """Polls ``read()`` until it reaches ``target`` or has not changed for ``stall``
    seconds; returns the last value."""
    cur = read()
    still_since = time.monotonic()
    while cur < target:
        time.sleep(interval)
        new = read()
        if new != cur:
            cur, still_since = new, time.monotonic()
        elif time.monotonic() - still_since >= stall:
            break
    return cur


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
    n = 5_000 if ctx.quick else SETUP_N
    seconds = ctx.seconds(2, 10)

    def body(stack: ExitStack, sw, rep: int) -> None:
        sw.memory_pids()  # switches without a process skip here
        pair = netns.veth_pair(stack, tx_offload=False)
        for port in pair.ports:
            sw.add_system_port(port)
        a, b = (sw.ofport(p) for p in pair.ports)
        label = sw.label["kernel"]
        iperf.start_server(stack, pair, ctx.logdir / f"{NAME}-{sw.name}-iperf3.log")

        def install(tag: str, flows: str) -> None:
            """Replaces the switch's flows with ``flows`` (kept in the logs as ``tag``)."""
            path = ctx.logdir / f"{NAME}-{sw.name}-{tag.replace(' ', '-')}-flows.txt"
            path.write_text(flows)
            sw.del_flows()
            sw.add_flows(str(path))
            netns.check_reachable(pair)

        def udp(case: str, flows: str) -> None:
            install(case, flows)
            pps, loss = iperf.parse_udp(iperf.client(pair, seconds, "-u", "-l", "64", "-b", "0"))
            ctx.results.add(NAME, f"UDP 64 B, {case}", "received", "kpps", sw.name, label,
                            pps / 1e3)  # fmt: skip
            time.sleep(0.5)

        udp("no ct", plain_flows(a, b))
        udp("with ct", firewall_flows(a, b))

        tx_path = f"/sys/class/net/{pair.ports[1]}/statistics/tx_packets"

        def tx_b() -> int:
            with open(tx_path) as f:
                return int(f.read())

        # The blast's destination ports are held on host B, so that its datagrams end
        # as iperf3's do, at a socket, not in ICMP replies made by the thread that
        # delivered them.
        sink = subprocess.Popen(
            pair.ns(1, "python3", SINK, str(FIRST_PORT), str(BLAST_PAIRS)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        stack.callback(sink.kill)
        assert sink.stdout is not None
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError("udpsink did not start")

        def blast(case: str, flows: str) -> None:
            install(f"blast {case}", flows)
            gen = subprocess.Popen(
                pair.ns(0, "python3", GENERATOR, pair.addrs[1], str(BLAST_PAIRS),
                        str(FIRST_PORT), str(BLAST_PAIRS), str(BLAST_PAYLOAD)),  # fmt: skip
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert gen.stdin is not None and gen.stdout is not None
                gen.stdout.readline()
                # One round sets the connections up; the blast then runs on them.
                gen.stdin.write(f"0 {BLAST_PAIRS}\n")
                gen.stdin.flush()
                gen.stdout.readline()
                time.sleep(0.5)
                length = seconds + 2
                gen.stdin.write(f"0 {BLAST_PAIRS} {length}\n")
                gen.stdin.flush()
                time.sleep(1.0)
                c0, t0 = tx_b(), time.monotonic()
                time.sleep(seconds)
                c1, t1 = tx_b(), time.monotonic()
                line = gen.stdout.readline()
                if not line.strip().isdigit():
                    raise RuntimeError(f"blast generator: unexpected output {line[:120]!r}")
                offered = int(line) / length
            finally:
                gen.kill()
                gen.wait(timeout=30)
            title = f"UDP 64 B blast, {case}"
            ctx.results.add(NAME, title, "forwarded", "kpps", sw.name, label,
                            (c1 - c0) / (t1 - t0) / 1e3)  # fmt: skip
            ctx.results.add(NAME, title, "offered", "kpps", sw.name, label, offered / 1e3)
            time.sleep(0.5)

        blast("no ct", plain_flows(a, b))
        blast("with ct", firewall_flows(a, b))
        sink.kill()
        sink.wait(timeout=30)

        def nconns() -> int:
            return parse_nconns(sw.appctl("dpctl/ct-get-nconns"))

        def setup(case: str) -> int:
            """One setup burst after a flush: rows ``case`` (rate, % created); returns the
            connections created."""
            sw.appctl("dpctl/flush-conntrack")
            time.sleep(1.0)
            base_conns = nconns()
            out = run_cmd(
                pair.ns(0, "python3", GENERATOR, pair.addrs[1], str(n), str(FIRST_PORT),
                        str(PORTS_PER_SOCKET)),  # fmt: skip
                timeout=120,
                input_text=f"0 {n}\n",
            )
            start, sent = parse_generator(out)
            count, end = settle_count(nconns, interval=0.02)
            created = count - base_conns
            if created <= 0:
                raise RuntimeError(f"no connection was created by {sent} datagrams")
            ctx.results.add(NAME, case, "new connections", "k/s", sw.name, label,
                            created / max(end - start, 1e-3) / 1e3)  # fmt: skip
            ctx.results.add(NAME, case, "created", "%", sw.name, label, 100.0 * created / sent)
            return created

        # Host B does not take the burst: host A addresses it to a MAC that B does not
        # have, so B's kernel drops each frame on arrival. A veth delivers into B's stack
        # on the sending thread, the switch's, and B's stack would otherwise answer every
        # datagram with an ICMP port unreachable (a route lookup each, before the rate
        # limit) on the switch's core. The second burst keeps B's stack in, as before.
        def set_b_mac(mac: str) -> None:
            run_cmd(pair.ns(0, "ip", "neigh", "replace", pair.addrs[1], "lladdr", mac,
                            "dev", pair.devs[0], "nud", "permanent"))  # fmt: skip

        base_rss = _rss_kib(sw)
        set_b_mac(NOT_B_MAC)
        try:
            created = setup("setup")
            time.sleep(2.0)
            grown = _rss_kib(sw) - base_rss
        finally:
            set_b_mac(netns.MACS[1])
        ctx.results.add(NAME, "memory", "per connection", "B", sw.name, label,
                        grown * 1024 / created, "lower")  # fmt: skip
        setup("setup, host B answers")

        if ctx.quick:
            return
        # 1M concurrent connections: HELD_N pairs, paced in chunks that the switch must
        # count before the next; what the tracker still holds 5 s after the last chunk
        # (UDP connections live 60 s after their last datagram).
        sw.appctl("dpctl/flush-conntrack")
        time.sleep(1.0)
        base_conns = nconns()
        base_rss = _rss_kib(sw)
        gen = subprocess.Popen(
            pair.ns(0, "python3", GENERATOR, pair.addrs[1], str(HELD_N),
                    str(FIRST_PORT), str(PORTS_PER_SOCKET)),  # fmt: skip
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        stack.callback(gen.kill)
        assert gen.stdin is not None and gen.stdout is not None
        start = float(gen.stdout.readline())
        sent, lo, size, tries = 0, 0, HELD_CHUNK, 0
        while lo < HELD_N and time.time() - start < HELD_WINDOW_S:
            hi = min(lo + size, HELD_N)
            before = tx_b()
            gen.stdin.write(f"{lo} {hi}\n")
            gen.stdin.flush()
            line = gen.stdout.readline()
            if not line.strip().isdigit():
                raise RuntimeError(f"held generator: unexpected output {line[:120]!r}")
            sent += int(line)
            tries += 1
            out_b = wait_forwarded(tx_b, before + hi - lo) - before
            advance, size = next_chunk(hi - lo, out_b, tries)
            if advance:
                lo, tries = hi, 0
        gen.stdin.close()
        gen.wait(timeout=30)
        settle_count(nconns, interval=0.5, limit=120.0)
        time.sleep(5.0)
        held = nconns() - base_conns
        grown = _rss_kib(sw) - base_rss
        ctx.results.add(NAME, "1M connections", "held", "k", sw.name, label, held / 1e3)
        ctx.results.add(NAME, "1M connections", "held of pairs", "%", sw.name, label,
                        100.0 * held / HELD_N)  # fmt: skip
        ctx.results.add(NAME, "1M connections", "datagrams sent per pair", "count", sw.name,
                        label, sent / HELD_N, "lower")  # fmt: skip
        if held > 0:
            ctx.results.add(NAME, "1M connections", "memory per connection", "B", sw.name, label,
                            grown * 1024 / held, "lower")  # fmt: skip

    ctx.alternate(NAME, "kernel", body, needs=("openflow", "process"))
