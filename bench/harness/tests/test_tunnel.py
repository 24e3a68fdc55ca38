"""The tunnel scenario's pieces that need no namespaces: its ratio rows, its place in
--quick, and alternate(start=False)."""

import tempfile
import unittest
from pathlib import Path
from unittest import mock

from harness import switches
from harness.cli import parse_args
from harness.context import Context
from harness.results import Results
from harness.scenarios import tunnel


class TunnelRatios(unittest.TestCase):
    def ctx(self):
        return Context(quick=True, reps=3, switch_names=["ferrovs"], results=Results(),
                       logdir=Path("/nonexistent"))  # fmt: skip

    def test_vxlan_over_no_tunnel_is_the_ratio_of_the_medians_per_switch_and_row(self):
        ctx = self.ctx()
        for v in (2.0, 3.0, 9.0):
            ctx.results.add("tunnel", "VXLAN, TCP, tx off", "goodput", "Gbit/s", "ferrovs", "f", v)
        for v in (4.0, 6.0, 1.0):
            ctx.results.add("tunnel", "no tunnel, TCP, tx off", "goodput", "Gbit/s", "ferrovs",
                            "f", v)  # fmt: skip
        tunnel.add_ratios(ctx)
        ratio = ctx.results.series[("tunnel", "VXLAN / no tunnel, TCP, tx off", "goodput",
                                    "ferrovs")]  # fmt: skip
        self.assertEqual(ratio.unit, "%")
        self.assertAlmostEqual(ratio.values[0], 75.0)

    def test_rows_without_a_plain_counterpart_and_loss_get_no_ratio(self):
        ctx = self.ctx()
        ctx.results.add("tunnel", "VXLAN, TCP, offloads on", "goodput", "Gbit/s", "ovs", "o", 1)
        ctx.results.add("tunnel", "VXLAN, UDP 64 B", "loss", "%", "ovs", "o", 5.0, "lower")
        ctx.results.add("tunnel", "no tunnel, UDP 64 B", "loss", "%", "ovs", "o", 1.0, "lower")
        tunnel.add_ratios(ctx)
        self.assertFalse([k for k in ctx.results.series if k[1].startswith("VXLAN /")])

    def test_a_zero_plain_figure_gives_no_ratio(self):
        self.assertIsNone(tunnel.ratio_of_medians([1.0], [0.0]))


class TunnelInQuick(unittest.TestCase):
    def test_quick_leaves_the_tunnel_scenario_out_by_default(self):
        self.assertNotIn("tunnel", parse_args(["--quick"]).only)
        self.assertIn("tunnel", parse_args([]).only)

    def test_quick_runs_it_when_named(self):
        self.assertEqual(parse_args(["--quick", "--only", "tunnel"]).only, ["tunnel"])


class AlternateWithoutStart(unittest.TestCase):
    def test_the_body_gets_the_switch_unstarted(self):
        started = []

        class Fake:
            name = "a"
            lacks: dict = {}

            def available(self, mode):
                return None

            def start(self, stack, mode):
                started.append(mode)

            def log_tail(self):
                return ""

        seen = []
        with tempfile.TemporaryDirectory(prefix="bn-test-") as d, \
                mock.patch.dict(switches.ALL, {"a": Fake}, clear=True):  # fmt: skip
            ctx = Context(quick=True, reps=2, switch_names=["a"], results=Results(), logdir=Path(d))
            ctx.alternate("s", "kernel", lambda st, sw, rep: seen.append(rep), start=False)
        self.assertEqual(started, [])
        self.assertEqual(seen, [0, 1])


if __name__ == "__main__":
    unittest.main()
