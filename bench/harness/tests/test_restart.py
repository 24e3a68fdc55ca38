import unittest

from harness.scenarios.restart import (
    counter_gap,
    longest_gap,
    lost_seconds,
    receiver_intervals,
    tail_rate,
)

TEXT = """Accepted connection from 10.77.0.1, port 40000
[  5]   0.00-0.10   sec  1.95 MBytes  164 Mbits/sec  0.010 ms  0/2000 (0%)
[  5]   0.10-0.20   sec  0.00 Bytes  0.00 bits/sec  0.010 ms  0/0 (0%)
[  5]   0.20-0.30   sec  0.00 Bytes  0.00 bits/sec  0.010 ms  0/0 (0%)
[  5]   0.30-0.40   sec  1.95 MBytes  164 Mbits/sec  0.010 ms  1500/2000 (75%)
[  5]   0.40-0.50   sec  0.00 Bytes  0.00 bits/sec  0.010 ms  0/0 (0%)
[  5]   0.00-0.50   sec  1.95 MBytes  164 Mbits/sec  0.010 ms  1500/6000 (25%)  receiver
"""


class RestartGap(unittest.TestCase):
    def test_text_intervals_count_received_datagrams_and_skip_the_summary(self):
        got = receiver_intervals({"server_output_text": TEXT})
        self.assertEqual([p for _, p in got], [2000, 0, 0, 500, 0])

    def test_the_longest_gap_is_the_longest_run_of_empty_intervals(self):
        self.assertAlmostEqual(longest_gap({"server_output_text": TEXT}), 0.2)

    def test_json_intervals_are_used_when_the_server_gave_them(self):
        doc = {"server_output_json": {"intervals": [
            {"sum": {"seconds": 0.1, "packets": 0}},
            {"sum": {"seconds": 0.1, "packets": 9}},
        ]}}  # fmt: skip
        self.assertAlmostEqual(longest_gap(doc), 0.1)

    def test_no_intervals_is_an_error_not_a_zero_gap(self):
        with self.assertRaises(ValueError):
            longest_gap({})


if __name__ == "__main__":
    unittest.main()


class CounterGap(unittest.TestCase):
    def test_the_gap_runs_from_the_first_to_the_last_reading_of_a_stuck_value(self):
        samples = [(0.0, 10), (0.1, 20), (0.2, 30), (0.3, 30), (0.6, 30), (0.7, 40), (0.8, 40)]
        self.assertAlmostEqual(counter_gap(samples), 0.4)

    def test_a_counter_that_always_moves_has_no_gap(self):
        self.assertEqual(counter_gap([(0.0, 1), (0.1, 2), (0.2, 3)]), 0.0)

    def test_lost_seconds_is_elapsed_time_minus_arrivals_at_the_rate(self):
        # 2 s elapsed, 1500 packets at 1000 pps: half a second missing.
        self.assertAlmostEqual(lost_seconds([(0.0, 0), (1.0, 1000), (2.0, 1500)], 1000), 0.5)
        self.assertEqual(lost_seconds([(0.0, 0), (1.0, 2000)], 1000), 0.0)

    def test_tail_rate_reads_the_last_second(self):
        samples = [(0.0, 0), (1.0, 100), (2.0, 1100), (3.0, 2100)]
        self.assertAlmostEqual(tail_rate(samples, 1.0), 1000.0)
