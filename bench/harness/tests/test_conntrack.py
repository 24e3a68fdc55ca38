import unittest

from harness.scenarios.conntrack import (
    HELD_CHUNK,
    HELD_CHUNK_STEP,
    HELD_MAX_TRIES,
    HELD_MIN_CHUNK,
    next_chunk,
    wait_forwarded,
    firewall_flows,
    parse_generator,
    parse_nconns,
    settle_count,
)


class ConntrackHelpers(unittest.TestCase):
    def test_nconns_output_is_an_integer(self):
        self.assertEqual(parse_nconns("1234\n"), 1234)

    def test_nconns_error_text_is_rejected(self):
        with self.assertRaises(ValueError):
            parse_nconns("ovs-appctl: command failed\n")

    def test_generator_output_gives_start_time_and_datagrams_sent(self):
        self.assertEqual(parse_generator("1764750000.25\n5000\n"), (1764750000.25, 5000))

    def test_truncated_generator_output_is_an_error(self):
        with self.assertRaises(ValueError):
            parse_generator("1764750000.25\n")

    def test_firewall_commits_only_new_connections_from_port_a(self):
        flows = firewall_flows(3, 7).splitlines()
        commits = [f for f in flows if "ct(commit)" in f]
        self.assertEqual(len(commits), 1)
        self.assertIn("ct_state=+trk+new,in_port=3", commits[0])
        self.assertIn("output:7", commits[0])
        self.assertTrue(any("ct_state=+trk+est,in_port=7,actions=output:3" in f for f in flows))
        self.assertFalse(any("+new,in_port=7" in f for f in flows))

    def test_settle_waits_until_the_count_stops_growing(self):
        reads = iter([10, 20, 30, 30, 99])
        count, _ = settle_count(lambda: next(reads), interval=0)
        self.assertEqual(count, 30)

    def test_a_whole_chunk_moves_on_and_the_next_grows_up_to_the_cap(self):
        self.assertEqual(next_chunk(100, 100, 1), (True, 100 + HELD_CHUNK_STEP))
        self.assertEqual(next_chunk(HELD_CHUNK, HELD_CHUNK, 3), (True, HELD_CHUNK))

    def test_a_short_chunk_is_sent_again_at_half_the_size(self):
        self.assertEqual(next_chunk(500, 280, 1), (False, 250))
        self.assertEqual(next_chunk(HELD_MIN_CHUNK, 0, 2), (False, HELD_MIN_CHUNK))

    def test_a_chunk_short_at_the_try_limit_is_left_behind(self):
        self.assertEqual(next_chunk(40, 39, HELD_MAX_TRIES), (True, 25))

    def test_forwarding_wait_returns_at_the_target(self):
        reads = iter([0, 200, 500, 999])
        self.assertEqual(wait_forwarded(lambda: next(reads), 500, interval=0), 500)

    def test_forwarding_wait_gives_up_when_the_count_stalls(self):
        reads = iter([0, 200] + [300] * 1000)
        self.assertEqual(wait_forwarded(lambda: next(reads), 500, stall=0.01,
                                        interval=0.001), 300)  # fmt: skip

if __name__ == "__main__":
    unittest.main()
