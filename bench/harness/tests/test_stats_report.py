"""Summaries, flow files, and the markdown/JSON report."""

import json
import tempfile
import unittest
from pathlib import Path

from harness.flowfiles import flowgen_dst, write_many_rules, write_normal, write_rule_per_flow
from harness.report import embed_in_readme, fmt_cell, parse_case, render_markdown, status_of, write_all
from harness.results import Results
from harness.stats import percentile, summarize


class Stats(unittest.TestCase):
    def test_summary_is_median_min_max_of_all_values(self):
        self.assertEqual(summarize([5, 1, 3, 2, 4]), {"median": 3, "min": 1, "max": 5, "n": 5})

    def test_even_count_median_is_the_mean_of_the_middle_two(self):
        self.assertEqual(summarize([1, 2, 3, 10])["median"], 2.5)

    def test_nothing_measured_is_an_error_not_a_zero(self):
        with self.assertRaises(ValueError):
            summarize([])

    def test_nearest_rank_percentiles(self):
        values = list(range(1, 101))
        self.assertEqual(percentile(values, 50), 50)
        self.assertEqual(percentile(values, 99), 99)
        self.assertEqual(percentile(values, 100), 100)
        self.assertEqual(percentile([7.0], 99), 7.0)


class FlowFiles(unittest.TestCase):
    def test_flowgen_destinations_count_up_from_10_253_0_0(self):
        self.assertEqual(flowgen_dst(0), "10.253.0.0")
        self.assertEqual(flowgen_dst(256), "10.253.1.0")
        self.assertEqual(flowgen_dst(999_999), "11.12.66.63")

    def test_rule_per_flow_has_one_rule_per_direction_and_a_drop(self):
        with tempfile.TemporaryDirectory(prefix="bn-test-") as d:
            path = Path(d) / "f"
            count = write_rule_per_flow(path, 3, (1, 2))
            lines = path.read_text().splitlines()
        self.assertEqual(count, 7)
        self.assertEqual(len(lines), 7)
        self.assertIn("priority=100,in_port=1,ip,nw_dst=10.253.0.2,actions=output:2", lines)
        self.assertIn("priority=100,in_port=2,ip,nw_dst=10.253.0.2,actions=output:1", lines)
        self.assertEqual(lines[-1], "priority=0,actions=drop")

    def test_many_rules_puts_the_extra_lines_last(self):
        with tempfile.TemporaryDirectory(prefix="bn-test-") as d:
            path = Path(d) / "f"
            count = write_many_rules(path, 5, 2, ["priority=200,arp,actions=NORMAL"])
            lines = path.read_text().splitlines()
            self.assertEqual(write_normal(path), 1)
        self.assertEqual(count, 6)
        self.assertEqual(lines[-1], "priority=200,arp,actions=NORMAL")
        self.assertEqual(lines[0], "priority=100,ip,nw_dst=10.253.0.0,actions=output:2")


def sample_doc() -> dict:
    r = Results()
    for v in (1.0, 3.0, 2.0):
        r.add("vhost-loop", "64 B, both directions", "throughput", "Mpps", "ovs", "OVS-DPDK", v)
    r.add("flow-scaling", "NORMAL, 1 flows", "throughput", "Mpps", "ovs", "OVS-DPDK", 2.0)
    r.add("flow-scaling", "NORMAL, 1000 flows", "throughput", "Mpps", "ovs", "OVS-DPDK", 1.0)
    r.skip("vhost-loop", "ferrovs", "ferrovs not built: vswitchd missing")
    r.skip("vhost-loop", "linux-bridge", "the Linux bridge has no vhost-user ports")
    r.skip("kernel-ports", "linux-bridge", "no TAP", case="TAP")
    r.fail("flow-scaling", "ferrovs", "testpmd: nothing came back")
    stamp = {
        "date_utc": "2026-11-23T00:00:00Z", "mode": "quick", "reps": 3, "host_cores": 2,
        "cpu_model": "cpu", "kernel": "6.1", "os": "Debian", "loadavg_at_start": (1, 1, 1),
        "loadavg_at_end": (2, 2, 2), "versions": {"ovs": "3.1.0"},
        "switches": ["ferrovs", "ovs", "linux-bridge"], "scenarios": ["vhost-loop", "flow-scaling"],
    }
    return {"stamp": stamp, **r.to_json()}


class Report(unittest.TestCase):
    def test_cells_show_median_with_min_and_max(self):
        self.assertEqual(fmt_cell([1.0, 3.0, 2.0]), "2.00 (1.00–3.00)")
        self.assertEqual(fmt_cell([0.5]), "0.5")

    def test_markdown_marks_unbuilt_ferrovs_pending_and_peers_skipped(self):
        md = render_markdown(sample_doc(), {"vhost-loop": "loop"})
        row = next(line for line in md.splitlines() if line.startswith("| 64 B, both"))
        self.assertEqual(row, "| 64 B, both directions | throughput (Mpps) | pending | "
                              "2.00 (1.00–3.00) | skipped |")
        self.assertIn("- linux-bridge: the Linux bridge has no vhost-user ports", md)
        self.assertIn("failed: testpmd: nothing came back", md)

    def test_a_case_scoped_skip_applies_only_to_that_case(self):
        doc = sample_doc()
        self.assertIsNotNone(status_of(doc, "kernel-ports", "linux-bridge", "TAP, TCP"))
        self.assertIsNone(status_of(doc, "kernel-ports", "linux-bridge", "veth, TCP"))

    def test_flow_scaling_case_names_round_trip(self):
        self.assertEqual(parse_case("rule per flow, 100000 flows"), ("rule per flow", 100000))

    def test_json_and_markdown_land_timestamped_and_as_latest(self):
        with tempfile.TemporaryDirectory(prefix="bn-test-") as d:
            out = Path(d)
            write_all(sample_doc(), {}, out, "20260101T000000Z")
            doc = json.loads((out / "latest.json").read_text())
            self.assertTrue((out / "20260101T000000Z.json").exists())
            self.assertTrue((out / "20260101T000000Z.md").exists())
            self.assertIn("pending", (out / "latest.md").read_text())
        row = next(r for r in doc["results"] if r["scenario"] == "vhost-loop")
        self.assertEqual((row["median"], row["min"], row["max"], row["n"]), (2.0, 1.0, 3.0, 3))

    def test_readme_results_are_replaced_between_the_markers_only(self):
        with tempfile.TemporaryDirectory(prefix="bn-test-") as d:
            readme = Path(d) / "README.md"
            readme.write_text("intro\n<!-- results:begin -->\nold\n<!-- results:end -->\noutro\n")
            md = "# ferrovs side-by-side benchmarks — T\n\n## s\n![p](latest.png)\n"
            self.assertTrue(embed_in_readme(readme, md, "latest.png"))
            text = readme.read_text()
            self.assertTrue(embed_in_readme(readme, md, "latest.png"))  # idempotent
            self.assertEqual(readme.read_text(), text)
            readme.write_text("no markers")
            self.assertFalse(embed_in_readme(readme, md, "latest.png"))
        self.assertNotIn("old", text)
        self.assertTrue(text.startswith("intro\n") and text.endswith("outro\n"))
        self.assertIn("### Run of T", text)
        self.assertIn("#### s", text)
        self.assertIn("](results/latest.png)", text)


if __name__ == "__main__":
    unittest.main()
