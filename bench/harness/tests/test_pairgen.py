"""The conntrack scenario's connection generator sends one datagram per pair, each pair a
distinct (source socket, destination port), and answers each request with the count."""

import socket
import subprocess
import sys
import time
import unittest
from pathlib import Path

GENERATOR = Path(__file__).resolve().parent.parent / "pairgen.py"
SINK = Path(__file__).resolve().parent.parent / "udpsink.py"


class PairGeneratorTest(unittest.TestCase):
    def test_every_pair_arrives_once_from_its_own_source_and_port(self):
        first, per, n = 31_700, 8, 20  # 3 source sockets, the last one with 4 pairs
        receivers = []
        for port in range(first, first + per):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", port))
            s.settimeout(5)
            receivers.append(s)
        try:
            out = subprocess.run(
                [sys.executable, str(GENERATOR), "127.0.0.1", str(n), str(first), str(per)],
                input="0 13\n13 20\n", capture_output=True, text=True, timeout=30, check=True,
            )  # fmt: skip
            lines = out.stdout.split()
            self.assertEqual(len(lines), 3, out.stdout)
            float(lines[0])  # the start time
            self.assertEqual([int(x) for x in lines[1:]], [13, 7])
            seen = []
            for i in range(n):
                s = receivers[i % per]
                data, (_, src_port) = s.recvfrom(16)
                self.assertEqual(data, b"x")
                seen.append((src_port, s.getsockname()[1]))
            self.assertEqual(len(set(seen)), n, "every pair is a distinct 5-tuple")
            self.assertEqual(len({src for src, _ in seen}), 3, "one source port per socket")
            for s in receivers:
                s.settimeout(0.2)
                with self.assertRaises(socket.timeout):
                    s.recvfrom(16)  # nothing more than one datagram per pair
        finally:
            for s in receivers:
                s.close()

    def test_a_blast_repeats_its_pairs_for_the_time_asked_with_the_payload_asked(self):
        first, per = 31_800, 4
        receivers = []
        for port in range(first, first + per):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.settimeout(5)
            receivers.append(s)
        try:
            t0 = time.monotonic()
            out = subprocess.run(
                [sys.executable, str(GENERATOR), "127.0.0.1", str(per), str(first), str(per),
                 "18", ], input="0 4 0.3\n", capture_output=True, text=True, timeout=30,
                check=True,
            )  # fmt: skip
            took = time.monotonic() - t0
            lines = out.stdout.split()
            self.assertEqual(len(lines), 2, out.stdout)
            sent = int(lines[1])
            self.assertGreater(sent, per, "the pairs were sent more than once")
            self.assertEqual(sent % per, 0, "whole rounds of the pairs")
            self.assertGreaterEqual(took, 0.3, "it kept sending for the time asked")
            for s in receivers:
                data, _ = s.recvfrom(64)
                self.assertEqual(data, b"x" * 18)
        finally:
            for s in receivers:
                s.close()



class UdpSinkTest(unittest.TestCase):
    def test_the_sink_holds_its_ports_until_stdin_closes_so_nothing_is_refused(self):
        first, n = 31_900, 16
        sink = subprocess.Popen([sys.executable, str(SINK), str(first), str(n)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            self.assertEqual(sink.stdout.readline().strip(), "ready")
            for port in (first, first + n - 1):
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                with self.assertRaises(OSError, msg=f"port {port} is taken"):
                    probe.bind(("127.0.0.1", port))
                probe.close()
                # A connected sender learns of an unreachable port on its next
                # send; a held port refuses nothing.
                c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                c.connect(("127.0.0.1", port))
                for _ in range(3):
                    c.send(b"x" * 18)
                    time.sleep(0.01)
                c.close()
        finally:
            sink.stdin.close()
            sink.wait(timeout=10)
        free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        free.bind(("127.0.0.1", first))  # released once stdin closed
        free.close()


if __name__ == "__main__":
    unittest.main()
