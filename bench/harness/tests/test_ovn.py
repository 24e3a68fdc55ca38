import unittest

from harness.ovn import count_up
from harness.scenarios.ovn import lsp_args, vif_args


class OvnScenario(unittest.TestCase):
    def test_only_ports_reported_true_count_as_up(self):
        self.assertEqual(count_up("true\n\nfalse\n\ntrue\n\n\n"), 2)
        self.assertEqual(count_up(""), 0)

    def test_every_logical_port_gets_a_distinct_mac_and_address(self):
        args = lsp_args(300)
        addrs = [args[i + 2] for i, a in enumerate(args) if a == "lsp-set-addresses"]
        self.assertEqual(len(addrs), 300)
        self.assertEqual(len(set(addrs)), 300)
        self.assertIn("02:00:00:00:01:2c 10.20.1.44", addrs)

    def test_interfaces_are_bound_by_iface_id_to_the_logical_ports(self):
        args = vif_args("br", 2)
        self.assertEqual(args[0], "add-port")
        self.assertIn("external_ids:iface-id=lp2", args)
        self.assertFalse(any(len(a) > 15 for a in args if a.startswith("bn-lp")))


if __name__ == "__main__":
    unittest.main()
