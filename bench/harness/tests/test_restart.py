import unittest

from harness.scenarios.restart import longest_gap, receiver_intervals

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
