"""alternate(): repetition order across switches, and how skips and failures land."""

import tempfile
import unittest
from pathlib import Path
from unittest import mock

from harness import switches
from harness.context import Context
from harness.procs import Skip
from harness.results import Results


def fake_switch(name, lacks=None, unavailable=None):
    class Fake:
        def __init__(self):
            self.name = name
            self.lacks = lacks or {}

        def available(self, mode):
            return unavailable

        def start(self, stack, mode):
            stack.callback(events.append, f"stop {name}")
            events.append(f"start {name}")
            return self

        def log_tail(self):
            return ""

    return Fake


events: list[str] = []


class Alternate(unittest.TestCase):
    def setUp(self):
        events.clear()
        self.tmp = tempfile.TemporaryDirectory(prefix="bn-test-")
        self.results = Results()

    def tearDown(self):
        self.tmp.cleanup()

    def ctx(self, names, reps):
        return Context(quick=True, reps=reps, switch_names=names, results=self.results,
                       logdir=Path(self.tmp.name))

    def test_switches_take_turns_within_each_repetition_and_are_torn_down(self):
        fakes = {"a": fake_switch("a"), "b": fake_switch("b")}
        with mock.patch.dict(switches.ALL, fakes, clear=True):
            self.ctx(["a", "b"], 2).alternate("s", "kernel",
                                              lambda st, sw, rep: events.append(f"{sw.name}{rep}"))
        self.assertEqual(events, ["start a", "a0", "stop a", "start b", "b0", "stop b",
                                  "start a", "a1", "stop a", "start b", "b1", "stop b"])

    def test_a_skip_is_recorded_once_and_the_switch_is_not_run_again(self):
        def body(st, sw, rep):
            if sw.name == "a":
                raise Skip("no vhost-user here")
            self.results.add("s", "c", "m", "u", sw.name, sw.name, 1.0)

        fakes = {"a": fake_switch("a"), "b": fake_switch("b")}
        with mock.patch.dict(switches.ALL, fakes, clear=True):
            self.ctx(["a", "b"], 3).alternate("s", "kernel", body)
        self.assertEqual(events.count("start a"), 1)
        self.assertEqual(events.count("start b"), 3)
        self.assertEqual(self.results.skipped,
                         [{"scenario": "s", "case": "", "switch": "a", "reason": "no vhost-user here"}])
        self.assertEqual(self.results.series[("s", "c", "m", "b")].values, [1.0, 1.0, 1.0])

    def test_a_failing_switch_is_reported_and_the_others_go_on(self):
        def body(st, sw, rep):
            if sw.name == "a":
                raise RuntimeError("testpmd: nothing came back\nmore detail")

        fakes = {"a": fake_switch("a"), "b": fake_switch("b")}
        with mock.patch.dict(switches.ALL, fakes, clear=True):
            self.ctx(["a", "b"], 2).alternate("s", "vhost", body, case="TAP")
        self.assertEqual(self.results.failed, [{"scenario": "s", "case": "TAP", "switch": "a",
                                                "message": "testpmd: nothing came back"}])
        self.assertEqual(events.count("start b"), 2)
        self.assertIn("stop a", events)  # torn down despite the failure
        self.assertTrue((Path(self.tmp.name) / "s-TAP-a-error.txt").exists())

    def test_a_harness_bug_is_not_swallowed(self):
        def body(st, sw, rep):
            raise KeyError("bug")

        with mock.patch.dict(switches.ALL, {"a": fake_switch("a")}, clear=True):
            with self.assertRaises(KeyError):
                self.ctx(["a"], 1).alternate("s", "kernel", body)
        self.assertEqual(events, ["start a", "stop a"])

    def test_missing_features_and_peers_skip_without_starting(self):
        fakes = {
            "lb": fake_switch("lb", lacks={"openflow": "no OpenFlow table"}),
            "gone": fake_switch("gone", unavailable="ovs-vswitchd missing"),
        }
        with mock.patch.dict(switches.ALL, fakes, clear=True):
            self.ctx(["lb", "gone"], 2).alternate("s", "kernel", lambda *a: None,
                                                  needs=("openflow",))
        self.assertEqual(events, [])
        reasons = {s["switch"]: s["reason"] for s in self.results.skipped}
        self.assertEqual(reasons, {"lb": "no OpenFlow table", "gone": "ovs-vswitchd missing"})

    def test_nothing_new_starts_once_the_quick_budget_is_used_up(self):
        with mock.patch.dict(switches.ALL, {"a": fake_switch("a")}, clear=True):
            ctx = self.ctx(["a"], 1)
            ctx.deadline = 0.0  # long past
            ctx.alternate("s", "kernel", lambda *a: events.append("ran"))
        self.assertEqual(events, [])
        self.assertEqual(self.results.skipped[0]["reason"], "time budget of --quick used up")


if __name__ == "__main__":
    unittest.main()
