"""Parsers of tool output: testpmd port stats, ping replies, iperf3 JSON."""

import unittest

from harness.iperf import parse_tcp_bps, parse_udp
from harness.latency_parse import ping_rtts_us
from harness.testpmd import parse_port_stats, window_between

STATS = """
  ######################## NIC statistics for port 0  ########################
  RX-packets: 1634016    RX-missed: 0          RX-bytes:  104577024
  RX-errors: 0
  RX-nombuf:  0
  TX-packets: 1636128    TX-errors: 0          TX-bytes:  104712192

  Throughput (since last show)
  Rx-pps:       211233          Rx-bps:    108151400
  Tx-pps:       211412          Tx-bps:    108242952
  ############################################################################

  ######################## NIC statistics for port 1  ########################
  RX-packets: 1636096    RX-missed: 0          RX-bytes:  104710144
  RX-errors: 0
  RX-nombuf:  0
  TX-packets: 1634048    TX-errors: 0          TX-bytes:  104579072

  Throughput (since last show)
  Rx-pps:       211411          Rx-bps:    108242928
  Tx-pps:       211239          Tx-bps:    108154656
  ############################################################################
testpmd> """


class TestpmdStats(unittest.TestCase):
    def test_both_ports_counters_are_read_from_show_port_stats(self):
        ports = parse_port_stats(STATS)
        self.assertEqual(ports[0]["RX-packets"], 1634016)
        self.assertEqual(ports[0]["TX-packets"], 1636128)
        self.assertEqual(ports[1]["RX-packets"], 1636096)
        self.assertEqual(ports[1]["TX-packets"], 1634048)

    def test_a_block_cut_before_its_closing_line_is_not_reported(self):
        cut = STATS[: STATS.index("NIC statistics for port 1") + 200]
        self.assertEqual(set(parse_port_stats(cut)), {0})

    def test_garbage_gives_no_ports_instead_of_raising(self):
        self.assertEqual(parse_port_stats("testpmd> \x00\xff NIC statistics for port"), {})

    def test_the_last_block_of_a_port_wins(self):
        later = STATS.replace("1634016", "9999999", 1)
        ports = parse_port_stats(STATS + later)
        self.assertEqual(ports[0]["RX-packets"], 9999999)

    def test_window_rates_and_loss_come_from_counter_deltas(self):
        a = {0: {"RX-packets": 100, "TX-packets": 100}, 1: {"RX-packets": 50, "TX-packets": 0}}
        b = {0: {"RX-packets": 2100, "TX-packets": 1100}, 1: {"RX-packets": 950, "TX-packets": 2000}}
        w = window_between(a, b, 2.0)
        self.assertEqual(w.rx_pps(0), 1000.0)
        self.assertEqual(w.rx_pps(1), 450.0)
        self.assertEqual(w.total_rx_pps(), 1450.0)
        self.assertAlmostEqual(w.loss(0, 1), 0.1)  # port 0 sent 1000, port 1 got 900
        self.assertEqual(w.loss(1, 0), 0.0)  # more received than sent clamps at 0

    def test_loss_with_nothing_sent_is_total(self):
        w = window_between({}, {0: {"RX-packets": 0, "TX-packets": 0}}, 1.0)
        self.assertEqual(w.loss(0, 1), 1.0)


class Ping(unittest.TestCase):
    def test_each_reply_time_is_returned_in_microseconds(self):
        out = (
            "PING 10.77.0.2 (10.77.0.2) 56(84) bytes of data.\n"
            "64 bytes from 10.77.0.2: icmp_seq=1 ttl=64 time=0.045 ms\n"
            "64 bytes from 10.77.0.2: icmp_seq=2 ttl=64 time=1.50 ms\n"
            "--- 10.77.0.2 ping statistics ---\n"
            "rtt min/avg/max/mdev = 0.045/0.772/1.500/0.727 ms\n"
        )
        self.assertEqual(ping_rtts_us(out), [45.0, 1500.0])

    def test_no_replies_gives_an_empty_list(self):
        self.assertEqual(ping_rtts_us("From 10.77.0.1 icmp_seq=1 Destination Host Unreachable"), [])


class Iperf(unittest.TestCase):
    def test_tcp_uses_the_receiver_sum(self):
        doc = {"end": {"sum_sent": {"bits_per_second": 9e9},
                       "sum_received": {"bits_per_second": 8e9}}}
        self.assertEqual(parse_tcp_bps(doc), 8e9)

    def test_udp_with_sender_and_receiver_sums(self):
        doc = {"end": {"sum_sent": {"packets": 1000, "seconds": 2.0},
                       "sum_received": {"packets": 900, "seconds": 2.0}}}
        pps, loss = parse_udp(doc)
        self.assertEqual(pps, 450.0)
        self.assertAlmostEqual(loss, 10.0)

    def test_udp_with_a_single_sum_subtracts_lost_datagrams(self):
        doc = {"end": {"sum": {"packets": 1000, "lost_packets": 250, "seconds": 1.0,
                               "lost_percent": 25.0}}}
        self.assertEqual(parse_udp(doc), (750.0, 25.0))

    def test_an_iperf3_error_document_is_rejected(self):
        with self.assertRaises(ValueError):
            parse_udp({"error": "unable to connect to server"})
        with self.assertRaises(ValueError):
            parse_tcp_bps({"error": "unable to connect to server"})


if __name__ == "__main__":
    unittest.main()
